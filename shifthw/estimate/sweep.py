"""Sweeps: synthesise (and place) a grid of shift designs and their multiplier twins.

Every point is a :class:`SweepPoint`; :func:`run_sweep_points` synthesises the points in
parallel over the cores (one process per point, each in a work folder of its own), places and
routes the ones that fit (FPGA targets), and returns one flat row per point (the CSV's
columns, :data:`CSV_FIELDS`).  With ``check_netlist`` every point's mapped netlist is also
simulated against the golden model (:func:`.netlist.check_netlist`).  :func:`largest_fit`
answers "what is the largest array that fits the target?" per design family.
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from .. import numerics as nx
from ..rtl_gen.config import EngineConfig
from .targets import get_target

__all__ = ["SweepPoint", "CSV_FIELDS", "SETTINGS", "settings_of", "parse_list", "sweep_grid",
           "run_point", "run_sweep_points", "netlist_failures", "synthesis_faults",
           "write_csv", "read_csv",
           "largest_fit"]

#: The engine's settings beyond R, C, A, b and G that every row records (as resolved by
#: EngineConfig: ``bias_lanes`` and ``out_lanes`` are numbers), so that a row names the
#: design it measured and :func:`shifthw.estimate.model.config_of_row` rebuilds it.
SETTINGS = ("k_depth", "weight_depth", "bias_depth", "bias_lanes", "out_lanes",
            "param_word_bits", "out_depth", "count_bits", "input_registers",
            "registered_stall", "stall_free", "pe_register")

#: Columns of a sweep CSV (and keys of every row).
CSV_FIELDS = ("label", "pe", "dsp", "booth", "rows", "cols", "act_bits", "weight_bits",
              "guard_bits", "acc_bits", "pipeline_stages", *SETTINGS, "pes", "lut", "lut4",
              "carry", "ff", "bram", "spram", "dsp_blocks", "nand2_eq", "fits", "placed",
              "fmax_mhz", "logic_cells", "logic_cells_est", "shorted_nets", "netlist_check",
              "netlist_outputs", "netlist_mismatches", "seconds", "error")


def settings_of(cfg: EngineConfig) -> dict:
    """The :data:`SETTINGS` of an engine, as a row records them."""
    return {k: getattr(cfg, k) for k in SETTINGS}


@dataclass(frozen=True)
class SweepPoint:
    """One design of a sweep: the engine parameters, whether multipliers go to DSPs, and
    whether they are Yosys' Booth multipliers (``booth``, LUT- or gate-built ones)."""

    rows: int
    cols: int
    act_bits: int
    weight_bits: int
    pe: str = "shift"
    guard_bits: int | None = None
    dsp: bool = False
    engine: tuple = field(default_factory=tuple)   # further EngineConfig fields, as pairs
    booth: bool = False

    def config(self) -> EngineConfig:
        extra = dict(self.engine)
        for lanes in ("bias_lanes", "out_lanes"):   # one setting for every array width
            if lanes in extra:
                extra[lanes] = min(extra[lanes], self.cols)
        return EngineConfig(rows=self.rows, cols=self.cols, act_bits=self.act_bits,
                            weight_bits=self.weight_bits, pe=self.pe,
                            guard_bits=self.guard_bits if self.pe == "shift" else None,
                            **extra)

    @property
    def label(self) -> str:
        if self.pe == "shift":
            return f"shift b={self.weight_bits} G={self.guard_bits}"
        kind = "DSP" if self.dsp else "Booth" if self.booth else "LUT"
        return f"mult b={self.weight_bits} ({kind})"


def parse_list(text, name: str, *, allow_p: bool = False) -> list:
    """``"2,4,8"`` as ``[2, 4, 8]`` (and ``"P"`` kept when ``allow_p``); errors name
    the option."""
    items = []
    for part in str(text).split(","):
        part = part.strip()
        if allow_p and part.upper() == "P":
            items.append("P")
            continue
        try:
            items.append(int(part))
        except ValueError:
            raise ValueError(f"{name} must be a comma-separated list of integers"
                             + (" (or P)" if allow_p else "") + f", not {text!r}") from None
    if not items:
        raise ValueError(f"{name} is empty")
    twice = sorted({str(v) for v in items if items.count(v) > 1})
    if twice:
        raise ValueError(f"{name} lists {', '.join(twice)} more than once ({text!r})")
    return items


def sweep_grid(rows, cols, weight_bits, guard_bits, act_bits, *, target, mult_bits=(8,),
               baseline: bool = True, engine: dict | None = None, mult_booth: bool = False
               ) -> tuple[list[SweepPoint], list[str]]:
    """The points of a grid, and why some combinations were skipped.

    ``guard_bits`` may hold ``"P"`` (G = P of each b); a G above P is skipped.  Multiplier
    twins (one per R, C, A and multiplier width; LUT-built, plus DSP where the target has
    DSP blocks) are added with ``baseline``; with ``mult_booth`` also the LUT- (gate-) built
    twin with Yosys' Booth multipliers.
    """
    tgt = get_target(target)
    if mult_booth and not baseline:
        raise ValueError("mult_booth (--mult-booth) adds a multiplier baseline; it needs the "
                         "baseline (drop --no-baseline)")
    extra = tuple(sorted((engine or {}).items()))
    if baseline:
        for mb in mult_bits:
            try:
                nx.check_weight_bits(mb)
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"multiplier weight bits (--mult-weight-bits): {exc}") from None
    points, skipped = [], []
    for a in act_bits:
        for r in rows:
            for c in cols:
                for b in weight_bits:
                    p = nx.max_shift(b)
                    for g in guard_bits:
                        gv = p if g == "P" else g
                        if gv > p:
                            skipped.append(f"b={b} G={g}: G above P={p}")
                            continue
                        pt = SweepPoint(r, c, a, b, "shift", gv, False, extra)
                        if pt not in points:
                            points.append(pt)
                if baseline:
                    for mb in mult_bits:
                        points.append(SweepPoint(r, c, a, mb, "mult", None, False, extra))
                        if mult_booth:
                            points.append(SweepPoint(r, c, a, mb, "mult", None, False, extra,
                                                     booth=True))
                        if tgt.dsp:
                            points.append(SweepPoint(r, c, a, mb, "mult", None, True, extra))
    if not any(pt.pe == "shift" for pt in points):
        # (the multiplier twins alone are no sweep of shift designs)
        raise ValueError(f"no shift design to synthesise: every combination was skipped "
                         f"({'; '.join(sorted(set(skipped)))})")
    for pt in points:
        pt.config()  # every point is a valid engine (a clear error now, not in a worker)
    return points, sorted(set(skipped))


def run_point(point: SweepPoint, target: str, work_root: str, place: bool,
              freq_mhz: float | None, wide_luts: bool = True,
              check_netlist: bool = False) -> dict:
    """Synthesise (and place) one point; a flat row of :data:`CSV_FIELDS`.  Runs in a worker
    process; errors become the row's ``error``.  ``wide_luts``: as
    :func:`shifthw.estimate.area.synthesize` (ECP5).  ``check_netlist``: also simulate the
    point's mapped netlist against the golden model (:func:`.netlist.check_netlist`):
    ``netlist_check`` True or False, with ``netlist_outputs`` and ``netlist_mismatches``;
    a check that could not run or did not finish is False with the reason in ``error``."""
    from . import area, timing

    tgt = get_target(target)
    cfg = point.config()
    row = dict.fromkeys(CSV_FIELDS)
    row.update(label=point.label, pe=point.pe, dsp=point.dsp, booth=point.booth,
               rows=point.rows,
               cols=point.cols, act_bits=point.act_bits, weight_bits=point.weight_bits,
               guard_bits=cfg.guard_bits if point.pe == "shift" else None,
               acc_bits=cfg.acc_bits, pipeline_stages=cfg.pipeline_stages,
               **settings_of(cfg), pes=point.rows * point.cols)
    work = Path(tempfile.mkdtemp(prefix="pt-", dir=work_root))
    t0 = time.perf_counter()
    try:
        syn = area.synthesize(cfg, tgt, work, dsp=point.dsp, booth=point.booth,
                              wide_luts=wide_luts, breakdown=False)
        if tgt.is_fpga:
            res = syn["resources"]
            row.update(lut=res["lut"], lut4=res["lut4"], carry=res["carry"], ff=res["ff"],
                       bram=res["bram"], spram=res["spram"], dsp_blocks=res["dsp"],
                       fits=syn["fits"], logic_cells_est=syn.get("logic_cells_estimate"))
            if place and syn["fits"]:
                pr = timing.place_and_route(tgt, work, freq_mhz=freq_mhz)
                row.update(placed=pr["fits"], fmax_mhz=pr["fmax_mhz"],
                           logic_cells=pr["logic_cells"], error=pr["error"])
                row["fits"] = bool(syn["fits"] and pr["fits"])
                if timing.tool_failure(pr["error"]):
                    row["fits"] = None      # nextpnr failed: no verdict (an error row)
            elif not syn["fits"]:
                row.update(placed=False, error="over capacity: " + ", ".join(syn["over"]))
        else:
            row.update(nand2_eq=round(syn["nand2_eq"], 1), ff=syn["flip_flops"],
                       lut=None, fits=True)
        row["shorted_nets"] = len(syn["shorted_nets"])
        if syn["shorted_nets"]:
            _add_error(row, area.shorted_nets_message(syn["shorted_nets"]))
        if check_netlist:
            _check_point(row, cfg, tgt, point, work, syn, wide_luts)
    except Exception as exc:  # noqa: BLE001 - one failed point must not stop a sweep
        row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    finally:
        shutil.rmtree(work, ignore_errors=True)
    row["seconds"] = round(time.perf_counter() - t0, 1)
    return row


def _add_error(row: dict, why: str) -> None:
    """``why`` into the row's ``error``, after any error it has (e.g. over capacity)."""
    row["error"] = "; ".join(e for e in (row["error"], why) if e)


def _check_point(row: dict, cfg: EngineConfig, tgt, point: SweepPoint, work: Path, syn: dict,
                 wide_luts: bool) -> None:
    """The gate-level check of one point, into its row."""
    from . import netlist

    try:
        chk = netlist.check_netlist(cfg, tgt, work / "netlist", dsp=point.dsp,
                                    booth=point.booth, wide_luts=wide_luts,
                                    area_run=None if tgt.is_fpga else (work, syn))
    except Exception as exc:  # noqa: BLE001 - the synthesis figures stand
        row["netlist_check"] = False
        _add_error(row, f"netlist check: {type(exc).__name__}: {str(exc).splitlines()[0]}")
        return
    row.update(netlist_check=chk["passed"], netlist_outputs=chk["outputs"],
               netlist_mismatches=chk["mismatches"])
    if chk["error"]:
        _add_error(row, f"netlist check did not finish: {chk['error']}")


def netlist_failures(rows: list[dict]) -> list[dict]:
    """The rows whose gate-level check failed (a wrong output, a hang, or no run)."""
    return [r for r in rows if r.get("netlist_check") is False]


def synthesis_faults(rows: list[dict]) -> list[dict]:
    """The rows whose measured netlist has nets with two drivers (``shorted_nets``: a Yosys
    fault, :func:`.area.shorted_nets`); their figures are of a wrong netlist."""
    return [r for r in rows if r.get("shorted_nets")]


def run_sweep_points(points: list[SweepPoint], target, *, jobs: int | None = None,
                     place: bool = True, freq_mhz: float | None = None, progress=None,
                     work_dir: str | os.PathLike | None = None,
                     wide_luts: bool = True, check_netlist: bool = False) -> list[dict]:
    """Run every point, ``jobs`` at a time (default: one per core); rows in point order.
    ``wide_luts=False``: every point with ``synth_ecp5 -nowidelut`` (ECP5 targets).
    ``check_netlist``: also simulate every point's mapped netlist (:func:`run_point`)."""
    from .area import check_wide_luts

    tgt = get_target(target)
    check_wide_luts(wide_luts, tgt)
    if freq_mhz is not None:
        from ..rtl_gen.board import check_freq

        check_freq(freq_mhz)
    say = progress or (lambda msg: None)
    jobs = jobs or os.cpu_count() or 1
    root = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="shifthw-sweep-"))
    root.mkdir(parents=True, exist_ok=True)
    rows: list[dict | None] = [None] * len(points)
    start = time.perf_counter()
    try:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(run_point, p, tgt.name, str(root), place, freq_mhz,
                                   wide_luts, check_netlist): i
                       for i, p in enumerate(points)}
            for done, fut in enumerate(as_completed(futures), 1):
                i = futures[fut]
                row = fut.result()
                rows[i] = row
                fig = (f"lut {row['lut']}" if row["lut"] is not None
                       else f"NAND2 {row['nand2_eq']}" if row["nand2_eq"] is not None
                       else "not measured")
                fm = f", {row['fmax_mhz']:.1f} MHz" if row.get("fmax_mhz") else ""
                chk = {True: ", netlist checked", False: ", NETLIST CHECK FAILED"}.get(
                    row["netlist_check"], "")
                if row["netlist_mismatches"]:
                    chk += (f" ({row['netlist_mismatches']} of {row['netlist_outputs']} "
                            f"outputs wrong)")
                elif row["netlist_check"] is False:
                    chk += f" ({row['error']})"
                if row["shorted_nets"]:
                    chk += f", SHORTED NETS: {row['shorted_nets']}"
                say(f"[{done}/{len(points)}] {row['label']} {row['rows']}x{row['cols']} "
                    f"A={row['act_bits']}: {fig}, ff {row['ff']}{fm}{chk}"
                    + ("" if row["fits"] or row["fits"] is None else " (does not fit)")
                    + (f" ERROR {row['error']}" if row["error"] and row["fits"] is None
                       else "") + f"  ({row['seconds']} s; {time.perf_counter() - start:.0f} s)")
    finally:
        if not work_dir:
            shutil.rmtree(root, ignore_errors=True)
    return rows


def write_csv(rows: list[dict], path) -> None:
    """Write sweep rows as CSV (columns :data:`CSV_FIELDS`)."""
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r[k]) for k in CSV_FIELDS})


def read_csv(path) -> list[dict]:
    """Sweep rows from a CSV of :func:`write_csv` (numbers back as numbers)."""
    def conv(v):
        if v == "":
            return None
        if v in ("True", "False"):
            return v == "True"
        for t in (int, float):
            try:
                return t(v)
            except ValueError:
                pass
        return v
    with open(path, newline="") as fh:
        return [{k: conv(v) for k, v in r.items()} for r in csv.DictReader(fh)]


def largest_fit(rows: list[dict]) -> dict:
    """Per design family (label and A), the fitting point with the most PEs (the first in
    sweep order of equally large ones), with:

    * ``also``: the other arrays of as many PEs that fit (``"4x2"``...);
    * ``placed``: whether that point was placed and routed (False: Yosys' counts alone,
      ``--no-place``, which a placement can exceed, as a logic cell holds one LUT4 and one
      flip-flop);
    * ``unmeasured``: larger arrays whose run failed (neither fits nor fails to), so the
      answer is only a lower bound when this is not empty;
    * ``logic_cells_est``: on the iCE40, the logic cells a placement of that point will need
      by :func:`.model.ice40_logic_cells` (the answer to check without placement).
    """
    best = {}
    for r in rows:
        key = f"{r['label']} A={r['act_bits']}"
        b = best.setdefault(key, {"pes": 0, "rows": None, "cols": None, "lut": None,
                                  "also": [], "placed": None, "unmeasured": []})
        if r.get("fits") and r["pes"] > b["pes"]:
            b.update(pes=r["pes"], rows=r["rows"], cols=r["cols"], lut=r["lut"],
                     dsp_blocks=r.get("dsp_blocks"), fmax_mhz=r.get("fmax_mhz"), also=[],
                     placed=bool(r.get("placed")), logic_cells_est=r.get("logic_cells_est"))
        elif r.get("fits") and r["pes"] == b["pes"]:
            b["also"].append(f"{r['rows']}x{r['cols']}")
    for r in rows:
        b = best[f"{r['label']} A={r['act_bits']}"]
        if r.get("fits") is None and r["pes"] > b["pes"]:
            b["unmeasured"].append(f"{r['rows']}x{r['cols']}")
    return best

