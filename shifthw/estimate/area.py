"""Area from Yosys (YoWASP): device resources of the board top, or gates of the bare engine.

FPGA targets synthesise the board top of :class:`~shifthw.rtl_gen.board.BoardTop` (the
generated engine Verilog, with pseudo-random stimulus on its streams and its outputs
folded into a rotating signature register on one LED, so that nothing is optimised away and
no more than two pins are used) exactly as :func:`~shifthw.rtl_gen.board.synthesize_board`
does, with ``synth_ice40`` or ``synth_ecp5`` (flattened).  That run gives the totals, the
netlist for place and route and the share of the device used.

A second run gives the breakdown per component: the design is read in, processed
(``proc; memory -nomap``), its array cells are labelled by :mod:`.hierarchy` and moved into
modules of their own with Yosys' ``submod``, and it is synthesised without flattening, so
that ``stat`` counts every component on its own.  Optimisation cannot cross a component's
boundary there, so its total differs a little from the flat run's (both are reported).

The ``generic`` target maps the bare engine (no board top: it has no pins to run out of) to
the gate set AND, NAND, OR, NOR, XOR, XNOR, ANDNOT, ORNOT, MUX with ``abc -g``, keeps the
memories as macros (their bits are reported), and weighs every cell in NAND2 equivalents from
``generic_cells.json`` (an assumption, labelled as such).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from importlib import import_module, resources
from pathlib import Path

from amaranth.back import verilog

from .. import toolchain
from ..rtl_gen.board import BoardTop
from ..rtl_gen.config import EngineConfig
from ..rtl_gen.engine import LayerEngine
from ..rtl_gen.synth import fpga_resources, pre_synthesis
from .hierarchy import COMPONENTS, ENGINE, annotate_for_submod, module_component
from .model import ice40_cells_fit, ice40_logic_cells
from .targets import Target, get_target

__all__ = ["GATE_TABLE", "load_gate_table", "prepare", "synthesize", "check_wide_luts",
           "lut_equivalent", "dropped_dsp_inputs", "shorted_nets", "shorted_nets_message",
           "ICE40_DSP_WORKAROUND",
           "nand2_equivalents"]

GATE_TABLE = "generic_cells.json"
_GATES = "AND,NAND,OR,NOR,XOR,XNOR,ANDNOT,ORNOT,MUX"
_SYNTH = {"ice40": "synth_ice40", "ecp5": "synth_ecp5"}


def load_gate_table(path: str | os.PathLike | None = None) -> dict:
    """NAND2 equivalents per gate: the shipped assumption, or a JSON file of the same form."""
    if path is None:
        return json.loads(resources.files(__package__).joinpath(GATE_TABLE).read_text())
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"gate table {os.fspath(path)!r}: no such file")
    table = json.loads(p.read_text())
    if "nand2_equivalents" not in table:
        raise ValueError(f"gate table {p}: missing key 'nand2_equivalents'")
    return table


def _dsp_flag(target: Target, dsp: bool) -> str:
    if target.family == "ice40":
        return " -dsp" if dsp else ""
    return "" if dsp else " -nodsp"


def prepare(cfg: EngineConfig, target: Target, work: Path) -> None:
    """Write the design files of ``cfg`` for ``target`` into ``work``.

    FPGA targets: the board top's build plan (``shifthw_engine.v``, ``top.il``, the pin
    constraints); ``generic``: the engine's Verilog only.
    """
    work.mkdir(parents=True, exist_ok=True)
    if target.is_fpga:
        module, cls = target.platform
        platform = getattr(import_module(module), cls)()
        plan = platform.build(BoardTop(config=cfg, engine_name=ENGINE), name="top",
                              do_build=False)
        plan.extract(str(work))
    else:
        (work / f"{ENGINE}.v").write_text(verilog.convert(LayerEngine(config=cfg), name=ENGINE))


def _read_lines(target: Target) -> list[str]:
    if target.is_fpga:
        return [f"read_verilog {ENGINE}.v", "read_rtlil top.il", *pre_synthesis("top")]
    return [f"read_verilog {ENGINE}.v", *pre_synthesis(ENGINE)]


def _map_lines(target: Target, dsp: bool, *, flatten: bool, booth: bool = False,
               wide_luts: bool = True, top: str | None = None) -> list[str]:
    top = top or ("top" if target.is_fpga else ENGINE)
    # Yosys' `booth` pass (opt-in: no synth_* script runs it by default) rewrites each
    # `$mul` cell as a radix-4 Booth multiplier before the family's mapping.
    pre = ["booth"] if booth else []
    if target.is_fpga:
        device = f" {target.synth_opts}" if target.synth_opts else ""
        return [*pre, f"{_SYNTH[target.family]}{device} -top {top}{_dsp_flag(target, dsp)}"
                + ("" if wide_luts else " -nowidelut") + ("" if flatten else " -noflatten")]
    return [*pre, f"synth -top {top}{' -flatten' if flatten else ''} -run begin:fine",
            "opt -fast -full", "techmap", "opt -fast", f"abc -g {_GATES}", "opt_clean"]


def _script(work: Path, name: str, lines: list[str]) -> str:
    (work / f"{name}.ys").write_text("\n".join(lines) + "\n")
    return f"{name}.ys"


def _run(work: Path, name: str, lines: list[str], progress, timeout) -> None:
    toolchain.run_yosys(["-q", "-l", f"{name}.log", _script(work, name, lines)], cwd=work,
                        progress=progress, timeout=timeout)


#: Yosys 0.70 stops on an internal assertion (``count_id(...) == 0`` in ``kernel/rtlil.cc``)
#: for some designs: synth_ecp5 for a few small engines while it maps small memories to LUT
#: RAM (TRELLIS_DPR16X4), and ABC9's reintegration, on either family, for some modules
#: (YosysHQ/yosys#4349: a wire name it creates already exists; splitting multi-bit wires into
#: single bits first avoids it).  The run is retried with these workarounds, in this order.
_ASSERT = re.compile(r"^ERROR: Assert .* failed in .*kernel/rtlil\.cc", re.M)
ECP5_LUTRAM_WORKAROUND = ("synth_ecp5 -nolutram: Yosys 0.70 hit an internal assertion mapping "
                          "this design's small memories to LUT RAM")
SPLITNETS_WORKAROUND = ("splitnets before synthesis: Yosys 0.70 hit an internal assertion in "
                        "ABC9's reintegration (YosysHQ/yosys#4349)")


#: Yosys 0.70's ``ice40_dsp`` pass (``synth_ice40 -dsp``) can drop a multiplier: where two
#: products registered without an enable are added (the stall-free array's first adder-tree
#: level), it packs one product's register and the adder into the other product's SB_MAC16
#: and leaves that adder's other input (C or D) undriven, so the netlist loses the first
#: product and the weights it read (three lines of Verilog show it: ``p1 <= a1 * w1;
#: p2 <= a2 * w2; s <= p1 + p2;`` maps to one SB_MAC16 with D undriven, a1 and w1 unused).
#: Such a netlist (:func:`dropped_dsp_inputs`) is synthesised again without that pass: the
#: SB_MAC16s multiply, the registers and adders stay in the fabric.
ICE40_DSP_WORKAROUND = ("synth_ice40 -dsp without ice40_dsp's register and adder packing: "
                        "Yosys 0.70's ice40_dsp left an SB_MAC16 adder input undriven, "
                        "dropping a multiplier")
#: ``synth_ice40 -dsp``'s ``coarse`` step in Yosys 0.70 without ``ice40_dsp``.
_ICE40_COARSE_WITHOUT_DSP_PACKING = [
    "opt_expr", "check", "opt_clean", "opt -nodffe -nosdff", "fsm", "opt", "wreduce",
    "peepopt", "opt_clean", "share", "techmap -map +/cmp2lut.v -D LUT_WIDTH=4", "opt_expr",
    "opt_clean", "memory_dff", "alumacc -macc-only", "maccmap -unmap", "opt_clean",
    "wreduce t:$mul",
    "techmap -map +/mul2dsp.v -map +/ice40/dsp_map.v -D DSP_A_MAXWIDTH=16 "
    "-D DSP_B_MAXWIDTH=16 -D DSP_A_MINWIDTH=2 -D DSP_B_MINWIDTH=2 -D DSP_Y_MINWIDTH=11 "
    "-D DSP_NAME=$__MUL16X16",
    "select a:mul2dsp", "setattr -unset mul2dsp", "opt_expr -fine", "wreduce", "select -clear",
    "chtype -set $mul t:$__soft_mul", "alumacc", "opt", "memory -nomap", "opt_clean"]


def _without_ice40_dsp_packing(lines: list[str]) -> list[str]:
    """A script's ``synth_ice40 ... -dsp`` run in three parts, without ``ice40_dsp``."""
    out = []
    for line in lines:
        if line.startswith("synth_ice40 ") and " -dsp" in f"{line} ":
            out += [f"{line} -run begin:coarse", *_ICE40_COARSE_WITHOUT_DSP_PACKING,
                    f"{line} -run map_ram:"]
        else:
            out.append(line)
    return out


def dropped_dsp_inputs(netlist: dict) -> list[str]:
    """The SB_MAC16 cells of a Yosys JSON netlist whose used adder (its output feeds
    something) adds an input (C for the upper half, D for the lower) that nothing drives
    (every bit ``"x"``): the ``ice40_dsp`` fault of :data:`ICE40_DSP_WORKAROUND`."""
    bad = []
    for mod in netlist.get("modules", {}).values():
        cells = mod.get("cells", {})
        used = {b for cell in cells.values()
                for port, bits in cell.get("connections", {}).items()
                if cell.get("port_directions", {}).get(port) != "output"
                for b in bits if isinstance(b, int)}
        used |= {b for port in mod.get("ports", {}).values()
                 if port.get("direction") != "input"
                 for b in port.get("bits", []) if isinstance(b, int)}
        for name, cell in cells.items():
            if cell.get("type") != "SB_MAC16":
                continue
            par, con = cell.get("parameters", {}), cell.get("connections", {})
            out = con.get("O", [])
            for half, port, bits in (("TOP", "C", out[16:32]), ("BOT", "D", out[0:16])):
                adds = str(par.get(f"{half}ADDSUB_UPPERINPUT", "0")).lstrip("0") == "1"
                via_adder = int(str(par.get(f"{half}OUTPUT_SELECT", "0")) or "0", 2) in (0, 1)
                # Undriven: every bit "x" (an adder input tied off on purpose is "0").
                undriven = all(b in ("x", "z") for b in con.get(port, ["0"]))
                if adds and via_adder and undriven and any(b in used for b in bits):
                    bad.append(name)
                    break
    return bad


def shorted_nets(netlist: dict) -> list[str]:
    """Nets of a Yosys JSON netlist that two drivers drive (cell outputs or module inputs),
    each as ``"module.net[bit]: driver, driver"``.  A mapped netlist has none; Yosys 0.70's
    ECP5 mapping joined two block RAM read-data bits into one net through a wire-name clash
    that :data:`~shifthw.rtl_gen.synth.HIDE_INDEXED_NAMES` now avoids; this finds any other
    such fault (``docs/estimation.md``)."""
    out = []
    for mname, mod in netlist.get("modules", {}).items():
        if mod.get("attributes", {}).get("blackbox"):
            continue
        drivers: dict[int, list[str]] = {}
        for pname, port in mod.get("ports", {}).items():
            if port.get("direction") == "input":
                for b in port.get("bits", []):
                    drivers.setdefault(b, []).append(f"input {pname}")
        for cname, cell in mod.get("cells", {}).items():
            dirs = cell.get("port_directions", {})
            for pname, bits in cell.get("connections", {}).items():
                if dirs.get(pname) == "output":
                    for b in bits:
                        drivers.setdefault(b, []).append(f"{cell.get('type')} {cname}.{pname}")
        names = {}
        for nname, net in mod.get("netnames", {}).items():
            for i, b in enumerate(net.get("bits", [])):
                if not net.get("hide_name") or b not in names:
                    names[b] = f"{nname}[{i}]"
        out += [f"{mname}.{names.get(b, b)}: {', '.join(d)}"
                for b, d in drivers.items() if isinstance(b, int) and len(d) > 1]
    return out


def shorted_nets_message(shorts: list[str]) -> str:
    """One line on :func:`shorted_nets`' findings (for a report note or a sweep row)."""
    return (f"Yosys' netlist has {len(shorts)} net(s) with two drivers "
            f"(first: {shorts[0]})")


def _retries(lines: list[str], target: Target) -> list[tuple[list[str], str]]:
    def split(ls):
        synth = next(i for i, ln in enumerate(ls) if ln.startswith("synth"))
        return [*ls[:synth], "splitnets", *ls[synth:]]

    out = []
    if target.family == "ecp5":
        nolutram = [ln + " -nolutram" if ln.startswith("synth_ecp5 ") else ln for ln in lines]
        out.append((nolutram, ECP5_LUTRAM_WORKAROUND))
    out.append((split(lines), SPLITNETS_WORKAROUND))
    if target.family == "ecp5":
        out.append((split(nolutram), f"{ECP5_LUTRAM_WORKAROUND}; {SPLITNETS_WORKAROUND}"))
    return out


def _run_mapped(work: Path, name: str, lines: list[str], target: Target, progress,
                timeout) -> str | None:
    """:func:`_run`, retried with the workarounds above where Yosys hits its assertion;
    returns the workaround used, if any."""
    log = work / f"{name}.log"

    def asserted():
        return log.exists() and _ASSERT.search(log.read_text(errors="replace"))

    last = None
    for script, workaround in [(lines, None), *_retries(lines, target)]:
        try:
            _run(work, name, script, progress, timeout)
            return workaround
        except toolchain.ToolError as exc:
            if not asserted():
                raise
            last = exc
    # Seen once, on an earlier generator (ECP5, 4 x 8, A = 4, b = 3, G = 0, default buffers:
    # the assertion came back in ABC9 with or without LUT RAM, wide LUTs or CCU2s).
    raise toolchain.ToolError(
        f"Yosys stopped on an internal assertion (a Yosys bug, not an error in the design) "
        f"synthesising this engine for the {target.family}, also with every workaround "
        f"({'; '.join(w.split(':')[0] for _, w in _retries(lines, target)[:2])}); other "
        f"buffer depths or lanes usually avoid it (log: {log})",
        tool="yosys", command=last.command, log=last.log) from None


def _stat_modules(path: Path) -> dict[str, dict[str, int]]:
    obj = json.loads(path.read_text())
    return {m.lstrip("\\"): {str(k): int(v) for k, v in d.get("num_cells_by_type", {}).items()}
            for m, d in obj.get("modules", {}).items()}


def _multiplicity(mods: dict[str, dict[str, int]], top: str) -> dict[str, int]:
    """How many instances of every module the design holds."""
    count = Counter({top: 1})
    order = [top]
    for name in order:  # breadth first; a module's instances are known before its children
        for kind, n in mods.get(name, {}).items():
            child = kind.lstrip("\\")
            if child in mods:
                if child not in order:
                    order.append(child)
                count[child] += count[name] * n
    return dict(count)


def _own_cells(cells: dict[str, int], mods) -> dict[str, int]:
    return {k: v for k, v in cells.items()
            if k.lstrip("\\") not in mods and k != "$scopeinfo"}


def lut_equivalent(res: dict[str, int], cells: dict[str, int], family: str) -> int:
    """LUT4s a design occupies: iCE40 SB_LUT4 (carries share the logic cell); ECP5 LUT4 plus
    two per CCU2C carry cell and two per TRELLIS_DPR16X4 distributed RAM (a slice's LUTs)."""
    if family == "ecp5":
        dpr = sum(v for k, v in cells.items() if k.endswith("TRELLIS_DPR16X4"))
        return res["lut4"] + 2 * res["carry"] + 2 * dpr
    return res["lut4"]


def _fpga_figures(cells: dict[str, int], family: str) -> dict[str, int]:
    res = fpga_resources(cells, family)
    res["lut"] = lut_equivalent(res, cells, family)
    return res


def _is_ff(kind: str) -> bool:
    return kind.startswith(("$_DFF", "$_SDFF", "$_ALDFF", "$_DLATCH", "$_SR"))


def nand2_equivalents(cells: dict[str, int], table: dict) -> tuple[float, dict]:
    """NAND2 equivalents of generic cells, and the gate / flip-flop counts."""
    eq = table["nand2_equivalents"]
    total, gates, ffs, unknown = 0.0, 0, 0, {}
    for kind, n in cells.items():
        if kind in ("$scopeinfo", "$mem_v2"):
            continue
        if _is_ff(kind):
            enable = re.search(r"DFFC?E", kind) is not None
            reset = kind.startswith(("$_SDFF", "$_DFFSR")) or re.match(
                r"\$_DFFE?_[PN]{2,3}[01]", kind) is not None
            key = "flip-flop" + {(True, True): " with enable and reset",
                                 (True, False): " with enable",
                                 (False, True): " with reset"}.get((enable, reset), "")
            total += eq[key] * n
            ffs += n
        elif kind in eq:
            total += eq[kind] * n
            gates += n
        else:
            unknown[kind] = n
    return total, {"gates": gates, "flip_flops": ffs, "unknown_cells": unknown}


def _memories(netlist: dict) -> dict[str, int]:
    """Bits of every memory ($mem_v2) of a Yosys JSON netlist, by memory name."""
    out = {}
    for mod in netlist["modules"].values():
        for cell in mod.get("cells", {}).values():
            if cell["type"] == "$mem_v2":
                p = cell["parameters"]
                name = str(p.get("MEMID", "?")).strip().lstrip("\\")
                out[name] = int(p["WIDTH"], 2) * int(p["SIZE"], 2)
    return out


def check_wide_luts(wide_luts, target: Target) -> None:
    """``wide_luts=False`` (``synth_ecp5 -nowidelut``) is an ECP5 option: one clear error
    for anything else."""
    if not isinstance(wide_luts, bool):
        raise TypeError(f"wide_luts must be a bool, not {wide_luts!r}")
    if not wide_luts and target.family != "ecp5":
        raise ValueError(f"wide_luts=False (--no-wide-luts) is an ECP5 option (synth_ecp5 "
                         f"-nowidelut); target {target.name!r} has no wide LUTs to leave out")


def synthesize(cfg: EngineConfig, target, work_dir: str | os.PathLike, *, dsp: bool = False,
               booth: bool = False, wide_luts: bool = True, breakdown: bool = True,
               progress=None, timeout: float | None = None) -> dict:
    """Synthesise ``cfg`` for ``target`` in ``work_dir``; return its area figures.

    Parameters
    ----------
    cfg : the engine.
    target : a :class:`~.targets.Target` or its name.
    work_dir : a folder for the tools (created); the flat netlist is left there as
        ``flat.json`` for place and route.
    dsp : map multipliers to DSP blocks (iCE40UP5K SB_MAC16, ECP5 MULT18X18D); False builds
        them from LUTs.  Shift designs have no multiplier, so it changes nothing for them.
    booth : build the multipliers that are not in DSP blocks as radix-4 Booth multipliers
        (Yosys' opt-in ``booth`` pass; fewer LUTs than the default mapping for signed
        multipliers of 8 bits and more).  Changes nothing for shift designs either.
    wide_luts : ECP5 only: False runs ``synth_ecp5 -nowidelut`` (no LUT5..LUT7 built from
        two to eight LUT4s and the slices' PFU muxes): the logic is mapped to LUT4s alone,
        fewer of them for wide multiplexers and multipliers, in more levels.
    breakdown : also run the per-component synthesis.
    progress : callable taking a one-line message, or None.

    Returns
    -------
    dict
        FPGA: ``cells`` (flat cell counts), ``resources`` (lut, lut4, carry, ff, bram, spram,
        dsp), ``capacity``, ``utilisation`` (share of each), ``fits`` (every resource within
        the device), ``over`` (resources beyond it), ``breakdown`` (per component, from the
        hierarchical run) and ``breakdown_total``.  Generic: ``cells``, ``nand2_eq``,
        ``gates``, ``flip_flops``, ``memory_bits``, ``logic_depth``, ``breakdown``.
        Both: ``synthesis`` (the Yosys command that mapped the flat design),
        ``workarounds`` (tool workarounds this run needed, as sentences; normally empty),
        ``shorted_nets`` (nets of the flat netlist with two drivers, :func:`shorted_nets`: a
        Yosys fault; normally empty) and ``seconds``.
    """
    target = get_target(target)
    check_wide_luts(wide_luts, target)
    say = progress or (lambda msg: None)
    work = Path(work_dir)
    t0 = time.perf_counter()
    prepare(cfg, target, work)
    top = "top" if target.is_fpga else ENGINE
    pre = [*_read_lines(target), f"hierarchy -top {top}", "proc", "opt_clean",
           "opt", "memory -nomap", "write_json pre.json"]
    mapping = _map_lines(target, dsp, flatten=True, booth=booth, wide_luts=wide_luts)
    flat = [*_read_lines(target), *mapping,
            "tee -q -o flat.stat.json stat -json", "write_json flat.json"]
    if not target.is_fpga:
        flat.append("tee -q -o flat.ltp.txt ltp -noff")
    jobs = {"flat": flat}
    if breakdown:
        _run(work, "pre", pre, say, timeout)
        netlist = json.loads((work / "pre.json").read_text())
        annotate_for_submod(netlist, ENGINE)
        (work / "ann.json").write_text(json.dumps(netlist))
        jobs["hier"] = ["read_json ann.json", "submod", "opt_clean -purge",
                        *_map_lines(target, dsp, flatten=False, booth=booth,
                                    wide_luts=wide_luts),
                        "tee -q -o hier.stat.json stat -json"]
    workarounds, still, repaired = run_repairing_dsp(work, jobs, "flat.json", target, dsp,
                                                     say, timeout)
    if repaired:
        mapping = _without_ice40_dsp_packing(mapping)
    if still:
        raise toolchain.ToolError(
            f"Yosys mapped {len(still)} SB_MAC16 blocks with an undriven adder input "
            f"(a dropped multiplier), also without ice40_dsp's packing (first: "
            f"{still[0]}); synthesise this design without DSP blocks",
            tool="yosys")
    mods = _stat_modules(work / "flat.stat.json")
    cells = _own_cells(mods[top], mods) if top in mods else {}
    flat_json = json.loads((work / "flat.json").read_text())
    gate_table = load_gate_table() if not target.is_fpga else None
    if target.is_fpga:
        res = _fpga_figures(cells, target.family)
        cap = dict(target.capacity)
        util = {k: (res.get(k if k != "lut4" else "lut", 0) / v if v else None)
                for k, v in cap.items()}
        over = [k for k, v in cap.items() if res.get(k if k != "lut4" else "lut", 0) > v]
        result = {"cells": cells, "resources": res, "capacity": cap, "utilisation": util,
                  "fits": not over, "over": over}
        if target.family == "ice40":
            # What a placement will need (model.ice40_logic_cells, within a few % of placed
            # designs), for runs without one: Yosys' counts can fit where the cells do not.
            per_ff, err = ice40_cells_fit()
            result["logic_cells_estimate"] = round(ice40_logic_cells(res["lut"], res["ff"],
                                                                     per_ff))
            result["logic_cells_estimate_error_pct"] = err
    else:
        nand2, counts = nand2_equivalents(cells, gate_table)
        text = (work / "flat.ltp.txt").read_text() if (work / "flat.ltp.txt").exists() else ""
        depth = re.search(r"length=(\d+)", text)
        result = {"cells": cells, "nand2_eq": nand2, **counts,
                  "memory_bits": _memories(flat_json),
                  "logic_depth": int(depth.group(1)) if depth else None,
                  "nand2_source": gate_table["source"]}
    if breakdown:
        result.update(_breakdown(work / "hier.stat.json", top, target, gate_table))
    result["synthesis"] = "; ".join(mapping)
    result["workarounds"] = workarounds
    result["shorted_nets"] = shorted_nets(flat_json)
    result["seconds"] = time.perf_counter() - t0
    return result


def run_repairing_dsp(work: Path, jobs: dict[str, list[str]], netlist: str, target: Target,
                      dsp: bool, say, timeout, *, repair: bool = True
                      ) -> tuple[list[str], list[str], bool]:
    """Run the synthesis ``jobs``; where ``synth_ice40 -dsp`` left the JSON netlist
    ``netlist`` with a dropped multiplier (:func:`dropped_dsp_inputs`) and ``repair``, run
    them again without ``ice40_dsp``'s packing (:data:`ICE40_DSP_WORKAROUND`).

    Returns the workarounds used, the SB_MAC16 cells with an undriven adder input left in
    the final netlist, and whether the jobs were run again."""
    workarounds = _run_jobs(work, jobs, target, say, timeout)
    if target.family != "ice40" or not dsp:
        return workarounds, [], False
    dropped = dropped_dsp_inputs(json.loads((work / netlist).read_text()))
    if not dropped or not repair:
        return workarounds, dropped, False
    jobs = {name: _without_ice40_dsp_packing(lines) for name, lines in jobs.items()}
    workarounds = sorted({*workarounds, ICE40_DSP_WORKAROUND,
                          *_run_jobs(work, jobs, target, say, timeout)})
    return workarounds, dropped_dsp_inputs(json.loads((work / netlist).read_text())), True


def _run_jobs(work: Path, jobs: dict[str, list[str]], target: Target, say, timeout) -> list[str]:
    """Run the synthesis jobs side by side; the workarounds they needed."""
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = [pool.submit(_run_mapped, work, name, lines, target, say, timeout)
                   for name, lines in jobs.items()]
        return sorted({w for w in (f.result() for f in futures) if w})


def _breakdown(path: Path, top: str, target: Target, gate_table) -> dict:
    mods = _stat_modules(path)
    mult = _multiplicity(mods, top)
    comps: dict[str, Counter] = {c: Counter() for c in (*COMPONENTS, "harness")}
    for name, n in mult.items():
        own = _own_cells(mods.get(name, {}), mods)
        comps[module_component(name, ENGINE)].update({k: v * n for k, v in own.items()})
    out, total = {}, Counter()
    for comp, cells in comps.items():
        cells = dict(cells)
        if target.is_fpga:
            figs = _fpga_figures(cells, target.family)
        else:
            nand2, counts = nand2_equivalents(cells, gate_table)
            figs = {"nand2_eq": nand2, "gates": counts["gates"],
                    "flip_flops": counts["flip_flops"]}
        out[comp] = figs
        if comp != "harness":
            total.update(figs)
    return {"breakdown": out, "breakdown_total": dict(total)}

