"""Fmax from nextpnr place and route of the synthesised board top.

nextpnr-ice40 / nextpnr-ecp5 place the flat netlist of :func:`.area.synthesize` with the
board's pin constraints, whose clock frequency is replaced by the target's (so the placer
works for the speed asked for, not for the board oscillator's 12 or 25 MHz), with
``--timing-allow-fail``: a slow design still reports its Fmax.  A design too big for the
device fails placement; that is reported as "does not fit", with nextpnr's reason.

On the ECP5, flip-flops that only register block-RAM read data are first packed into the
DP16KD output registers (:mod:`.bram_pack`; ``bram_output_registers`` says how many), as a
vendor flow would; the netlist nextpnr places is ``flat.pnr.json``.

From nextpnr's JSON report: the achieved Fmax of the clock, the utilisation of every cell
type; from the critical path: its start and end cells, the engine components they belong to,
and the generator source lines (``shifthw/rtl_gen/*.py:N``) along it, read from the log.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .. import toolchain
from ..rtl_gen.board import set_clock_frequency
from .bram_pack import pack_output_registers
from .hierarchy import scope_component
from .targets import Target, get_target

__all__ = ["place_and_route", "check_placement_options", "cell_component"]


def _constraints(work: Path, target: Target, freq_mhz: float) -> list[str]:
    """Pin constraints with the clock at ``freq_mhz``, as nextpnr arguments."""
    ext, flag = ("pcf", "--pcf") if target.family == "ice40" else ("lpf", "--lpf")
    dst = work / f"place.{ext}"
    dst.write_text(set_clock_frequency((work / f"top.{ext}").read_text(), target.family,
                                       freq_mhz))
    return [flag, dst.name]


def cell_component(cell: str) -> str:
    """The engine component a placed cell's name points to (its hierarchical prefix and the
    signal it was named after, by the rules of :mod:`.hierarchy`)."""
    name = cell.split("$", 1)[0]
    if not name.startswith("engine."):
        return "harness"
    parts = name[len("engine."):].split(".")
    scope = []
    for part in parts[:-1]:
        if part not in ("array", "output", "fifo") and not part.startswith("pe_"):
            break
        scope.append(part)
    return scope_component(tuple(scope), _signal(".".join(parts[len(scope):])))


def _signal(cell: str) -> str:
    """A readable signal name from a packed cell name (``engine.d_SB_DFFESR_Q_20_DFFLC``)."""
    return re.split(r"_(SB_|TRELLIS_|LUT4|CCU2C|DP16KD|MULT18|PFUMX|L6MUX)", cell, maxsplit=1)[0]


def _critical(report: dict, log: str) -> dict | None:
    paths = [p for p in report.get("critical_paths", [])
             if p.get("path") and "<async>" not in (p.get("from", ""), p.get("to", ""))]
    if not paths:
        return None
    path = max(paths, key=lambda p: sum(step.get("delay", 0.0) for step in p["path"]))
    first, last = path["path"][0], path["path"][-1]
    start, end = first["from"]["cell"], last["to"]["cell"]
    # Generator source lines along the path, from the log's text report of the same path.
    block = re.search(r"Critical path report for clock .*?\n(.*?)\n\s*\n", log, re.S)
    lines = []
    if block:
        for m in re.finditer(r"(shifthw/rtl_gen/\w+\.py:\d+)", block.group(1)):
            if m.group(1) not in lines:
                lines.append(m.group(1))
    through = []
    for step in path["path"]:
        cell = step["to"]["cell"]
        comp = None if cell.startswith("$") else cell_component(cell)   # $nextpnr_... cells
        if comp and comp not in through:
            through.append(comp)
    return {"start": start, "end": end, "start_signal": _signal(start),
            "through": through,
            "end_signal": _signal(end), "start_component": cell_component(start),
            "end_component": cell_component(end),
            "delay_ns": sum(step.get("delay", 0.0) for step in path["path"]),
            "logic_levels": sum(1 for step in path["path"] if step.get("type") == "logic"),
            "source_lines": lines}


#: The largest placer timing weight taken (nextpnr's default is 10; it fails on values
#: beyond a C int, and far below that the placer ignores wire length altogether).
TIMING_WEIGHT_MAX = 1000


#: nextpnr's errors when a design does not fit the device (as opposed to a tool failure).
_CAPACITY = re.compile(r"Failed to expand region|no BELs remaining|Unable to place cell|"
                       r"Unable to find legal placement|utilisation limit|"
                       r"too many|exceed|not enough", re.I)
#: nextpnr's count of the cells a region needed ("... of 5512 ICESTORM_LCs").
_NEEDED = re.compile(r"of (\d+) (ICESTORM_LC|TRELLIS_COMB|TRELLIS_SLICE)s")


def capacity_error(text: str | None) -> bool:
    """Whether nextpnr's error ``text`` says the design does not fit the device (False for
    a crash, a timeout or an error of another kind)."""
    return bool(text) and bool(_CAPACITY.search(text))


#: How :func:`place_and_route` begins the ``error`` of a failure that is not a capacity
#: error (no verdict on whether the design fits).
TOOL_FAILURE = "nextpnr failed (not a capacity error): "


def tool_failure(error: str | None) -> bool:
    """Whether a placement's ``error`` is a tool failure rather than "does not fit"."""
    return bool(error) and error.startswith(TOOL_FAILURE)


def check_placement_options(placements, timing_weight=None, jobs=None, opt_timing=False,
                            target=None) -> None:
    """Refuse a ``placements``, ``timing_weight`` or ``jobs`` of :func:`place_and_route`
    that is not a positive integer (the last two may be None), and an ``opt_timing`` that
    is not a bool or is asked of a target without it, naming it."""
    if not isinstance(opt_timing, bool):
        raise TypeError(f"opt_timing must be a bool, not {opt_timing!r}")
    if opt_timing and target is not None and get_target(target).family != "ice40":
        raise ValueError(f"opt_timing: nextpnr's post-placement timing optimisation "
                         f"(--opt-timing) is nextpnr-ice40's alone; target "
                         f"{get_target(target).name!r} has no such pass")
    for name, value, optional in (("placements", placements, False),
                                  ("timing_weight", timing_weight, True),
                                  ("jobs", jobs, True)):
        if value is None and optional:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, not {value!r}")
    if timing_weight is not None and timing_weight > TIMING_WEIGHT_MAX:
        raise ValueError(f"timing_weight must be at most {TIMING_WEIGHT_MAX} (nextpnr's "
                         f"default is 10), not {timing_weight!r}")


def place_and_route(target, work_dir, *, freq_mhz: float | None = None, progress=None,
                    timeout: float | None = None, seed: int = 1, placements: int = 1,
                    timing_weight: int | None = None, jobs: int | None = None,
                    opt_timing: bool = False) -> dict:
    """Place and route ``work_dir/flat.json`` (from :func:`.area.synthesize`) with nextpnr.

    ``placements`` > 1 places the netlist that many times, with seeds ``seed``,
    ``seed + 1``, ..., and keeps the fastest placement (as a vendor flow's placement
    iterations do: each is a real placement whose bitstream runs at its Fmax); the figures
    and ``place.log`` / ``place.report.json`` are that placement's, ``placements`` lists
    every seed's Fmax (the spread a user sees from run to run).  ``jobs`` placements run at
    once (default: one per core, at most ``placements``), each nextpnr writing its own
    ``seed<N>.place.log`` / ``seed<N>.place.report.json``; the result does not depend on
    ``jobs``.

    ``timing_weight`` is the weight of timing against wire length in nextpnr's analytic
    placer (``--placer-heap-timingweight``; None leaves nextpnr's default, 10).  Higher
    values pull the cells of critical paths closer at some cost in total wire length.
    ``opt_timing`` (iCE40 only) runs nextpnr-ice40's post-placement timing optimisation
    (``--opt-timing``), which moves cells of critical paths after the placer.

    Returns
    -------
    dict
        ``fits`` (placed and routed), ``fmax_mhz`` (achieved), ``target_mhz``, ``met``
        (Fmax reaches the target), ``utilisation`` (nextpnr's used / available of every
        cell type in use), ``logic_cells`` (ICESTORM_LC or TRELLIS_COMB used),
        ``bram_output_registers`` (flip-flops packed into block-RAM output registers),
        ``critical_path`` (start, end, their components, delay, source lines), ``error``
        (why it does not fit), ``seed`` (of the placement reported), ``placements``
        (``seed`` and ``fmax_mhz`` of every placement) and ``seconds``.
    """
    target = get_target(target)
    if not target.is_fpga:
        raise ValueError(f"target {target.name!r} has no place and route (generic gates)")
    check_placement_options(placements, timing_weight, jobs, opt_timing, target)
    lock = threading.Lock()

    def say(msg: str) -> None:  # one whole line at a time from the placements' threads
        if progress is not None:
            with lock:
                progress(msg)

    work = Path(work_dir)
    if not (work / "flat.json").exists():
        raise FileNotFoundError(f"{work / 'flat.json'}: synthesise first (no netlist)")
    freq = float(freq_mhz or target.freq_mhz)
    t0 = time.perf_counter()
    netlist, packed = "flat.json", 0
    if target.family == "ecp5":
        design = json.loads((work / "flat.json").read_text())
        packed = pack_output_registers(design)
        netlist = "flat.pnr.json"
        (work / netlist).write_text(json.dumps(design))
    pins = _constraints(work, target, freq)
    seeds = [seed + k for k in range(placements)]
    names = {s: (("place.log", "place.report.json") if placements == 1 else
                 (f"seed{s}.place.log", f"seed{s}.place.report.json")) for s in seeds}

    def place(k: int) -> dict:
        s = seeds[k]
        if placements > 1:
            say(f"placement {k + 1} of {placements} (seed {s})")
        return _place_once(target, work, netlist, pins, freq, s, say, timeout, timing_weight,
                           *names[s], opt_timing=opt_timing)

    workers = min(placements, jobs or os.cpu_count() or 1)
    results: list[dict] = []
    if workers > 1 and toolchain.first_run_pending(f"nextpnr-{target.family}"):
        # Place once alone while YoWASP compiles the tool, so that two runs do not both
        # compile it (and race on its cache).
        results.append(place(0))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results += list(pool.map(place, range(len(results), placements)))
    tries = [{"seed": out["seed"], "fmax_mhz": out["fmax_mhz"]} for out in results]
    # In seed order, so the first of equally fast placements is kept.
    best = max(results, key=lambda out: out["fmax_mhz"] or 0.0)
    if placements > 1:
        for name, kept in zip(("place.log", "place.report.json"), names[best["seed"]]):
            (work / name).unlink(missing_ok=True)
            if (work / kept).exists():
                shutil.copyfile(work / kept, work / name)
    best.update(bram_output_registers=packed, placements=tries, timing_weight=timing_weight,
                opt_timing=opt_timing, seconds=time.perf_counter() - t0)
    return best


def _place_once(target, work: Path, netlist: str, pins: list[str], freq: float, seed: int,
                say, timeout, timing_weight: int | None = None, log_name: str = "place.log",
                report_name: str = "place.report.json", *, opt_timing: bool = False) -> dict:
    args = [*target.nextpnr, "--json", netlist, *pins,
            "--freq", f"{freq:g}", "--timing-allow-fail", "--seed", str(seed),
            "--report", report_name, "--log", log_name]
    if timing_weight is not None:
        args += ["--placer-heap-timingweight", str(timing_weight)]
    if opt_timing:
        args.append("--opt-timing")
    out = {"target_mhz": freq, "fits": False, "fmax_mhz": None, "met": False,
           "utilisation": {}, "logic_cells": None, "critical_path": None, "error": None,
           "seed": seed}
    try:
        toolchain.run_nextpnr(target.family, args, cwd=work, progress=say, timeout=timeout)
    except toolchain.ToolError as exc:
        log = (work / log_name).read_text(errors="replace") if (work / log_name).exists() \
            else str(exc)
        errors = [ln.strip() for ln in log.splitlines() if ln.startswith("ERROR")]
        out["error"] = errors[0] if errors else str(exc).splitlines()[0]
        if not capacity_error(out["error"]):
            # Not a verdict on the design: said as a failure, not as "does not fit".
            out["error"] = TOOL_FAILURE + out["error"]
        elif (m := _NEEDED.search(out["error"])):
            cap = target.capacity.get("lut4") if m.group(2) == "ICESTORM_LC" else None
            out["error"] = (f"the placement needs {m.group(1)} {m.group(2)} cells"
                            + (f", more than the device's {cap} (a logic cell holds one LUT4 "
                               f"and one flip-flop)" if cap else "")
                            + f" (nextpnr: {out['error']})")
        return out
    report = json.loads((work / report_name).read_text())
    log = (work / log_name).read_text(errors="replace")
    clocks = report.get("fmax", {})
    fmax = min((c["achieved"] for c in clocks.values()), default=None)
    util = {k: v for k, v in report.get("utilization", {}).items() if v.get("used")}
    lc = "ICESTORM_LC" if target.family == "ice40" else "TRELLIS_COMB"
    out.update(fits=True, fmax_mhz=fmax, met=fmax is not None and fmax >= freq,
               utilisation=util, logic_cells=util.get(lc, {}).get("used"),
               critical_path=_critical(report, log))
    return out
