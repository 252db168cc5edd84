"""``shifthw estimate`` and ``shifthw sweep``: the command-line layer over :mod:`.flow` and
:mod:`.sweep`.

``shifthw/cli.py`` builds the subcommands with :func:`add_estimate_arguments` /
:func:`add_sweep_arguments` and calls :func:`run_estimate` / :func:`run_sweep`, which print what
they measured and return an exit code.  Bad options raise ValueError or FileNotFoundError with
one message naming the option or file.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from .. import numerics as nx
from ..cli import check_output
from ..files import write_texts_atomic
from ..rtl_gen.config import EngineConfig, check_verilog_name
from .targets import TARGET_NAMES, get_target
from .timing import TIMING_WEIGHT_MAX

__all__ = ["add_estimate_arguments", "run_estimate", "add_sweep_arguments", "run_sweep",
           "config_from_design_dir", "add_engine_extra", "engine_extra"]

#: Engine options shared by both commands: (flag, type, help).
_ENGINE_OPTIONS = (
    ("--k-depth", int, "activation buffer words per bank: max ceil(K / R)"),
    ("--weight-depth", int, "weight buffer entries"),
    ("--bias-depth", int, "bias buffer entries"),
    ("--bias-lanes", int, "biases read per cycle (default C; fewer saves block RAM; "
                          "sweeps cap it at each point's C)"),
    ("--out-lanes", int, "output lanes requantised per cycle (default C; fewer saves logic)"),
    ("--param-word-bits", int, "params stream word bits"),
    ("--out-depth", int, "output FIFO depth (0: none, 1, or 3 and more)"),
    ("--pipeline-stages", int, "array register stages (default min(2, ceil(log2 R) + 1))"),
    ("--input-registers", int, "registers between the buffers and the PEs, 0..2 (default 1; "
                               "2: for high Fmax on the ECP5; 0: on the full UP5K, with "
                               "--registered-stall --pipeline-stages 4)"),
)
#: Engine switches shared by both commands: (flag, help); given, they set the option True.
_ENGINE_FLAGS = (
    ("--registered-stall", "decide the array's stall a cycle ahead (one-result skid register; "
                           "higher Fmax on iCE40 and ECP5, ~250 more LUTs at 8 x 8)"),
    ("--stall-free", "no clock enable on the array's datapath (16-word result FIFO and "
                     "credits; for high Fmax at G > 0 on the ECP5; exact accumulator only)"),
    ("--pe-register", "a register inside every PE (shift and mult alike): one cycle more "
                      "latency, for high Fmax at G > 0"),
)
_TARGET_HELP = f"one of {', '.join(TARGET_NAMES)}"


def _say(args, command: str):
    if getattr(args, "quiet", False):
        return None
    return lambda msg: print(f"shifthw {command}: {msg}", flush=True)


def engine_extra(args) -> dict:
    """The engine options of :func:`add_engine_extra` that were given, by field name."""
    out = {}
    for flag, *_ in _ENGINE_OPTIONS + _ENGINE_FLAGS:
        dest = flag[2:].replace("-", "_")
        value = getattr(args, dest, None)
        if value is not None:
            out[dest] = value
    return out


def add_engine_extra(p) -> None:
    """Add the engine options beyond the array's size and widths (buffers, lanes, pipeline,
    the high-Fmax switches) to ``p``, a parser or argument group; all default to unset."""
    for flag, kind, help_ in _ENGINE_OPTIONS:
        p.add_argument(flag, type=kind, default=None, help=help_)
    for flag, help_ in _ENGINE_FLAGS:
        p.add_argument(flag, action="store_const", const=True, default=None, help=help_)


def _add_synthesis_options(p: argparse.ArgumentParser, unit: str, booth_name: str) -> None:
    """--mult-booth and --no-wide-luts, the same for estimate and sweep."""
    p.add_argument("--mult-booth", action="store_true",
                   help="also the LUT-built baseline with radix-4 Booth multipliers (Yosys' "
                        f"opt-in booth pass): {booth_name}a stronger baseline")
    p.add_argument("--no-wide-luts", action="store_true",
                   help=f"ECP5: synthesise every {unit} with synth_ecp5 -nowidelut (LUT4s "
                        "only, no LUT5..LUT7 of PFU muxes): fewer LUTs, deeper logic; the "
                        "analytic model has a calibration of its own for it")


# -- estimate -------------------------------------------------------------------------------
def add_estimate_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``shifthw estimate`` to ``parser``."""
    p = parser
    p.add_argument("design", nargs="?", type=Path, default=None,
                   help="a folder written by `shifthw generate` (or give engine options)")
    p.add_argument("--target", required=True, help=_TARGET_HELP)
    g = p.add_argument_group("engine options (instead of DESIGN)")
    g.add_argument("--rows", type=int, default=None, help="array rows R (default 8)")
    g.add_argument("--cols", type=int, default=None, help="array columns C (default 8)")
    g.add_argument("--act-bits", type=int, default=None, help="activation bits A (default 8)")
    g.add_argument("--weight-bits", type=int, default=None, help="weight bits b (default 5)")
    m = g.add_mutually_exclusive_group()
    m.add_argument("--guard-bits", type=int, default=None, help="G, 0..P (default P)")
    m.add_argument("--mode", choices=["exact", "truncate"], default=None,
                   help="exact: G = P; truncate: G = 0")
    g.add_argument("--acc-bits", type=int, default=None, help="accumulator bits")
    add_engine_extra(g)
    p.add_argument("--model", default=None,
                   help="energy per inference of this model: zoo name (mlp, cnn), "
                        ".shiftprog or checkpoint")
    p.add_argument("--baseline", choices=["mult", "none"], default="mult",
                   help="compare with the multiplier twin (default) or not")
    p.add_argument("--mult-weight-bits", type=int, default=None,
                   help="integer weight bits of the multiplier baseline (default 8)")
    _add_synthesis_options(p, "design", "design mult_booth, ")
    p.add_argument("--images", type=int, default=None,
                   help="images per batch, simulated for the switching activity (default 4, "
                        "or every image of --inputs if it has fewer)")
    p.add_argument("--inputs", type=Path, default=None,
                   help="--model's own real-valued inputs for its energy runs (a .npy, "
                        "(B, *input shape) or flat rows; default: digits test images for 8 x 8 "
                        "inputs, else random activations)")
    p.add_argument("--no-activity", action="store_true",
                   help="op-count energy only (no Verilator runs)")
    p.add_argument("--no-place", action="store_true", help="synthesis only (no Fmax)")
    p.add_argument("--freq", type=float, default=None,
                   help="clock target for nextpnr in MHz (default: 60 iCE40, 200 ECP5)")
    p.add_argument("--placements", type=int, default=1,
                   help="place every design N times (nextpnr seeds 1..N) and report the "
                        "fastest placement, with every seed's Fmax (default 1)")
    p.add_argument("--timing-weight", type=int, default=None,
                   help="nextpnr placer timing weight (--placer-heap-timingweight; nextpnr's "
                        "default 10): higher pulls critical paths closer, for every design")
    p.add_argument("--jobs", type=int, default=None,
                   help="placements run at once (default: one per core)")
    p.add_argument("--opt-timing", action="store_true",
                   help="iCE40: nextpnr's post-placement timing optimisation (--opt-timing) "
                        "for every design")
    p.add_argument("--energy-table", type=Path, default=None,
                   help="energy-per-operation table (JSON) replacing the shipped one")
    p.add_argument("--check-netlist", action="store_true",
                   help="also simulate each design's mapped netlist (the engine mapped by "
                        "the same Yosys command, Yosys' cell models) in Verilator on random "
                        "layer jobs (and --model's layers) against the golden model; exit "
                        "code 1 if one differs")
    p.add_argument("--analytic", action="store_true",
                   help="the analytic area model's estimate alone (LUT, FF, BRAM, DSP of the "
                        "design and its twin, in milliseconds): no synthesis, no tools")
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="report folder: estimate.json, estimate.md, PNG plots "
                        "(with --analytic: analytic.json)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress messages")


#: Options of ``shifthw estimate`` that only placement uses (--no-place runs none), and all
#: that run tools (--analytic runs none), with their defaults.
_PLACE_OPTIONS = (("freq", None), ("placements", 1), ("timing_weight", None), ("jobs", None),
                  ("opt_timing", False))
_TOOL_OPTIONS = (("model", None), ("images", None), ("inputs", None), ("no_activity", False),
                 ("no_place", False),
                 *_PLACE_OPTIONS, ("energy_table", None), ("check_netlist", False))


def _logic(verilog_text: str) -> str:
    """Verilog without its ``(* src = "file:line" *)`` attributes: they name where the
    generator's source lies (its install folder, its line numbers), not the logic."""
    return re.sub(r'\(\* src = "[^"]*" \*\)', "", verilog_text)


def config_from_design_dir(folder) -> EngineConfig:
    """The :class:`EngineConfig` recorded in a ``shifthw generate`` folder's manifest.

    The folder's engine Verilog must be what those parameters generate: shifthw measures
    and verifies the engine it generates from them (in its own build), so an edited file,
    or one from another shifthw or Amaranth version, is refused rather than passed over.
    """
    from importlib import metadata

    from amaranth.back import verilog

    from ..rtl_gen.engine import LayerEngine

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"design folder {str(folder)!r}: "
                                + ("a file, not a folder" if folder.exists() else "no such folder"))
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: no manifest.json; DESIGN must be a folder "
                                f"written by `shifthw generate`")
    try:
        info = json.loads(manifest.read_text())
        cfg = EngineConfig(**info["parameters"])
        top = check_verilog_name(info["top"], "top")
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{manifest}: not a shifthw generate manifest ({exc})") from None
    except ValueError as exc:
        raise ValueError(f"{manifest}: {exc}") from None
    source = folder / f"{top}.v"
    if not source.is_file():
        raise FileNotFoundError(f"{source}: missing (the manifest's engine, top {top!r})")
    if _logic(source.read_text()) != _logic(verilog.convert(LayerEngine(config=cfg), name=top)):
        made = info.get("generator", {})
        raise ValueError(
            f"{source} is not the Verilog its manifest's parameters generate (edited, or "
            f"written by another version: shifthw {made.get('shifthw', '?')}, amaranth "
            f"{made.get('amaranth', '?')}; this is shifthw {metadata.version('shifthw')}, "
            f"amaranth {metadata.version('amaranth')}); shifthw verifies and measures the "
            f"engine it generates: run `shifthw generate` again for this folder")
    return cfg


def _estimate_config(args) -> EngineConfig:
    given = {k: getattr(args, k) for k in ("rows", "cols", "act_bits", "weight_bits",
                                           "guard_bits", "mode", "acc_bits")
             if getattr(args, k, None) is not None}
    given.update(engine_extra(args))
    if args.design is not None:
        if given:
            raise ValueError(f"give either DESIGN ({args.design}) or engine options "
                             f"(--{', --'.join(k.replace('_', '-') for k in given)}), not both")
        return config_from_design_dir(args.design)
    b = given.pop("weight_bits", 5)
    mode = given.pop("mode", None)
    if mode is not None:
        given["guard_bits"] = nx.max_shift(b) if mode == "exact" else 0
    return EngineConfig(pe="shift", weight_bits=b, **given)


def _check_freq(args) -> None:
    from ..rtl_gen.board import check_freq

    if args.freq is not None:
        check_freq(args.freq, "--freq")


def run_estimate(args: argparse.Namespace) -> int:
    """``shifthw estimate``: measure, print the comparison, write the reports."""
    from .flow import estimate
    from .report import markdown

    target = get_target(args.target)
    if args.output:
        check_output(args.output, "-o", folder=True)
        from .flow import ESTIMATE_FILES, ESTIMATE_REPORTS, check_report_folder

        check_report_folder(args.output, "-o", ESTIMATE_REPORTS, ESTIMATE_FILES)
    if args.baseline == "none" and args.mult_weight_bits is not None:
        raise ValueError("--baseline none synthesises no multiplier twin, so "
                         "--mult-weight-bits does not apply")
    mult_bits = 8 if args.mult_weight_bits is None else args.mult_weight_bits
    if args.analytic:
        return _run_analytic(args, _estimate_config(args), target, mult_bits)
    if args.model is None and args.images is not None:
        raise ValueError("--images sets the images of --model's energy runs; give --model")
    if args.model is None and args.inputs is not None:
        raise ValueError("--inputs are --model's inputs for its energy runs; give --model")
    if args.model is None and args.energy_table is not None:
        raise ValueError("--energy-table prices --model's energy per inference; without "
                         "--model there is none (give --model or leave it out)")
    if args.model is None and args.no_activity:
        raise ValueError("--no-activity leaves out --model's switching-activity runs; "
                         "without --model there are none (give --model or leave it out)")
    images = (min(DEFAULT_IMAGES, _rows_of(args.inputs)) if args.images is None
              else args.images)
    if images < 1:
        raise ValueError(f"--images must be a positive integer, not {images}")
    if args.placements < 1:
        raise ValueError(f"--placements must be a positive integer, not {args.placements}")
    if args.timing_weight is not None and not 1 <= args.timing_weight <= TIMING_WEIGHT_MAX:
        raise ValueError(f"--timing-weight must be an integer of 1 to {TIMING_WEIGHT_MAX} "
                         f"(nextpnr's default is 10), not {args.timing_weight}")
    if args.jobs is not None and args.jobs < 1:
        raise ValueError(f"--jobs must be a positive integer, not {args.jobs}")
    _check_freq(args)
    if args.no_place or not target.is_fpga:
        given = [f"--{d.replace('_', '-')}" for d, default in _PLACE_OPTIONS
                 if getattr(args, d) != default]
        if given:
            why = ("--no-place runs no placement" if args.no_place else
                   f"target {target.name!r} is not placed (gates, no Fmax)")
            raise ValueError(f"{why}, so {', '.join(given)} "
                             f"{'does' if len(given) == 1 else 'do'} not apply")
    try:
        nx.check_weight_bits(mult_bits)
    except ValueError as exc:
        raise ValueError(f"--mult-weight-bits: {exc}") from None
    if args.opt_timing and target.family != "ice40":
        raise ValueError(f"--opt-timing is nextpnr-ice40's post-placement pass; target "
                         f"{target.name!r} has none")
    cfg = _estimate_config(args)
    say = _say(args, "estimate")
    rep = estimate(cfg, target, model=args.model,
                   baseline=None if args.baseline == "none" else "mult",
                   out_dir=args.output, progress=say,
                   mult_weight_bits=mult_bits, images=images,
                   activity=not args.no_activity, place=not args.no_place,
                   freq_mhz=args.freq, energy_table=args.energy_table,
                   placements=args.placements, timing_weight=args.timing_weight,
                   jobs=args.jobs, opt_timing=args.opt_timing, mult_booth=args.mult_booth,
                   wide_luts=not args.no_wide_luts, check_netlist=args.check_netlist,
                   inputs=args.inputs)
    text = markdown(rep)
    # The summary: everything up to the per-component tables.
    print(text.split("## Area by component")[0].rstrip())
    en = rep.get("energy")
    if en:
        for kind, ent in en["designs"].items():
            oc, ac = ent["op_count"], ent.get("activity")
            print(f"energy per inference of {en['model']} on {kind}: op-count "
                  f"{oc['total_pj'] / 1000:.2f} nJ"
                  + (f", activity {ac['total_pj'] / 1000:.2f} nJ" if ac else ""))
    for note in rep["notes"]:
        print(f"note: {note}")
    if args.output:
        print(f"wrote {args.output}: {', '.join(rep.get('files', []))}")
    checks = {k: d["netlist_check"] for k, d in rep["designs"].items() if d["netlist_check"]}
    for key, chk in checks.items():
        print(f"gate-level check of {key}'s mapped netlist: "
              + ("passed" if chk["passed"] else "FAILED")
              + f" ({chk['outputs'] - chk['mismatches']} of {chk['outputs']} outputs as the "
              f"golden model, {chk['jobs'] - chk['model_jobs']} random jobs"
              + (f" and {chk['model_jobs']} model layers" if chk["model_jobs"] else "")
              + f", {chk['cycles']} cycles)"
              + (f"; did not finish: {chk['error']}" if chk["error"] else ""))
    # A measured netlist with a shorted net (a Yosys fault, named in the notes) fails too.
    shorted = any(d["area"].get("shorted_nets") for d in rep["designs"].values())
    return 1 if shorted or any(not chk["passed"] for chk in checks.values()) else 0


def _run_analytic(args, cfg: EngineConfig, target, mult_bits: int) -> int:
    """``shifthw estimate --analytic``: the area model's figures, printed (and JSON)."""
    from .flow import estimate_analytic

    given = [f"--{dest.replace('_', '-')}" for dest, default in _TOOL_OPTIONS
             if getattr(args, dest, default) != default]
    if given:
        raise ValueError(f"--analytic runs no tools, so {', '.join(given)} "
                         f"{'does' if len(given) == 1 else 'do'} not apply: drop "
                         f"{'it' if len(given) == 1 else 'them'}, or leave out --analytic")
    rep = estimate_analytic(cfg, target, baseline=None if args.baseline == "none" else "mult",
                            mult_weight_bits=mult_bits,
                            mult_booth=args.mult_booth,
                            wide_luts=not args.no_wide_luts)
    metric = "lut" if target.is_fpga else "nand2_eq"
    cols = (("lut", "LUT"), ("ff", "FF"), ("bram", "BRAM"), ("dsp", "DSP")) \
        if target.is_fpga else (("nand2_eq", "NAND2 eq"), ("ff", "FF"))
    if target.family == "ice40":
        cols = (*cols, ("logic_cells", "logic cells"))     # what a placement needs
    print(f"analytic area model, {target.name} ({target.device}): "
          f"R={cfg.rows}, C={cfg.cols}, A={cfg.act_bits}, b={cfg.weight_bits}, "
          f"G={cfg.guard_bits}")
    head = f"{'design':<12}" + "".join(f"{name:>16}" for _, name in cols)
    print(head + ("  fits" if target.is_fpga else ""))
    for kind, d in rep["designs"].items():
        line = f"{kind:<12}"
        for key, _ in cols:
            err = d.get(f"{key}_error_pct")
            # No stated error: the rule-based BRAM / DSP counts, or a design beyond the
            # calibration (the notes say so).
            fig = f"{d[key]:.0f}" + (f" (±{err:.0f} %)" if err is not None else "")
            line += f"{fig:>16}"
        fits = "yes" if d.get("fits") else f"no ({', '.join(d.get('over', []))} over)"
        print(line + (f"  {fits}" if target.is_fpga else ""))
    for kind, r in rep["lut_ratio"].items():
        print(f"{metric} ratio {kind} / shift: {r:.2f}x")
    for note in rep["notes"]:
        print(f"note: {note}")
    if args.output:
        out = Path(args.output)
        text = json.dumps(rep, indent=1) + "\n"
        out.mkdir(parents=True, exist_ok=True)
        write_texts_atomic({out / "analytic.json": text})
        print(f"wrote {out}: analytic.json")
    return 0


#: Images per batch of ``estimate --model`` when ``--images`` is not given.
DEFAULT_IMAGES = 4


def _rows_of(inputs) -> int:
    """How many inputs a ``--inputs`` file holds (``DEFAULT_IMAGES`` without one, or where it
    cannot be read: the energy runs then say what is wrong with it)."""
    if inputs is None:
        return DEFAULT_IMAGES
    try:
        import numpy as np

        shape = np.load(inputs, mmap_mode="r", allow_pickle=False).shape
        return max(int(shape[0]), 1) if shape else DEFAULT_IMAGES
    except (OSError, ValueError):
        return DEFAULT_IMAGES


# -- sweep ----------------------------------------------------------------------------------
def add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``shifthw sweep`` to ``parser``."""
    p = parser
    p.add_argument("--rows", default="2,4,8",
                   help="array rows, comma-separated (default 2,4,8)")
    p.add_argument("--cols", default="2,4,8",
                   help="array columns, comma-separated (default 2,4,8)")
    p.add_argument("--weight-bits", default="5",
                   help="shift weight bits, comma-separated (default 5)")
    p.add_argument("--guard-bits", default="0,P",
                   help="guard bits, comma-separated; P means G = P (exact) (default 0,P)")
    p.add_argument("--act-bits", default="8",
                   help="activation bits, comma-separated (default 8)")
    p.add_argument("--target", required=True, help=_TARGET_HELP)
    p.add_argument("--mult-weight-bits", default=None,
                   help="multiplier baseline weight bits, comma-separated (default 8)")
    p.add_argument("--no-baseline", action="store_true", help="shift designs only")
    _add_synthesis_options(p, "point", "")
    add_engine_extra(p)
    p.add_argument("--jobs", type=int, default=None,
                   help="points synthesised at once (default: one per core)")
    p.add_argument("--no-place", action="store_true", help="synthesis only (no Fmax)")
    p.add_argument("--freq", type=float, default=None, help="nextpnr clock target (MHz)")
    p.add_argument("--check-netlist", action="store_true",
                   help="also simulate every point's mapped netlist in Verilator on random "
                        "layer jobs against the golden model (minutes per 8 x 8 design); "
                        "exit code 1 if one differs")
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="folder for sweep.csv, sweep.json and the plots")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress messages")


def run_sweep(args: argparse.Namespace) -> int:
    """``shifthw sweep``: synthesise every point, write the CSV and plots, print the fits."""
    from .model import check_rows
    from .plots import sweep_plots
    from .sweep import (largest_fit, netlist_failures, parse_list, run_sweep_points,
                        sweep_grid, synthesis_faults, write_csv)

    target = get_target(args.target)
    if args.jobs is not None and args.jobs < 1:
        raise ValueError(f"--jobs must be a positive integer, not {args.jobs}")
    _check_freq(args)
    if args.freq is not None and (args.no_place or not target.is_fpga):
        why = ("--no-place runs no placement" if args.no_place else
               f"target {target.name!r} is not placed (gates, no Fmax)")
        raise ValueError(f"{why}, so --freq does not apply")
    if args.no_baseline and args.mult_weight_bits is not None:
        raise ValueError("--no-baseline synthesises no multiplier twin, so --mult-weight-bits "
                         "does not apply")
    if args.output:
        check_output(args.output, "-o", folder=True)
        from .flow import check_report_folder

        check_report_folder(args.output, "-o", ("sweep.json",),
                            ("sweep.csv", "sweep_lut_fmax.png", "sweep_largest_fit.png"))
    points, skipped = sweep_grid(
        parse_list(args.rows, "--rows"), parse_list(args.cols, "--cols"),
        parse_list(args.weight_bits, "--weight-bits"),
        parse_list(args.guard_bits, "--guard-bits", allow_p=True),
        parse_list(args.act_bits, "--act-bits"), target=target,
        mult_bits=parse_list(args.mult_weight_bits or "8", "--mult-weight-bits"),
        baseline=not args.no_baseline, engine=engine_extra(args),
        mult_booth=args.mult_booth)
    if not points:
        raise ValueError(f"no point to synthesise: every combination was skipped "
                         f"({'; '.join(skipped)})")
    say = _say(args, "sweep")
    if say:
        say(f"{len(points)} points on {target.name}"
            + (f" (skipped: {'; '.join(skipped)})" if skipped else ""))
    rows = run_sweep_points(points, target, jobs=args.jobs, place=not args.no_place,
                            freq_mhz=args.freq, progress=say,
                            wide_luts=not args.no_wide_luts, check_netlist=args.check_netlist)
    fits = largest_fit(rows) if target.is_fpga else {}
    if fits:
        print(f"{'design':<28} largest array that fits {target.name}")
    for key, f in sorted(fits.items()):
        what = (f"{f['rows']}x{f['cols']} ({f['pes']} PEs, {f['lut']} LUT"
                + (f", {f['dsp_blocks']} DSP" if f.get("dsp_blocks") else "")
                + (f", {f['fmax_mhz']:.1f} MHz" if f.get("fmax_mhz") else "") + ")"
                + (f"; also {', '.join(f['also'])}" if f["also"] else "")
                if f["pes"] else "none")
        if f["unmeasured"]:
            what += (f"; a lower bound: {', '.join(f['unmeasured'])} failed to run (errors "
                     f"below)")
        print(f"{key:<28} {what}")
    if fits and args.no_place:
        print("note: without placement 'fits' compares Yosys' counts with the device; a "
              "logic cell holds one LUT4 and one flip-flop, so nextpnr can need more cells "
              "than LUT4s: run without --no-place for the answer")
        cap = target.capacity["lut4"]
        for key, f in sorted(fits.items()):
            if (f.get("logic_cells_est") or 0) > cap:
                print(f"note: {key}: {f['rows']}x{f['cols']} will likely not place: about "
                      f"{f['logic_cells_est']} logic cells (from its LUTs and flip-flops, "
                      f"within about 5 %) of the device's {cap}")
    if target.name == "ice40-up5k" and any(k.startswith("mult") for k in fits):
        print("note: the iCE40UP5K has 8 DSP blocks (SB_MAC16), one per multiplier: a "
              "DSP-built multiplier array is bound to 8 PEs; a LUT-built one by its LUTs.")
    check = check_rows(rows, target, wide_luts=not args.no_wide_luts)
    if check:
        print(f"analytic area model vs these synthesis results ({check['metric']}): mean "
              f"error {check['mean_pct']:.1f} %, max {check['max_pct']:.1f} % "
              f"({check['n']} points"
              + (f"; outside its calibration: {', '.join(check['outside_calibration'])}"
                 if check["outside_calibration"] else "") + ")")
    errors = [r for r in rows if r["error"] and r["fits"] is None]
    for r in errors:
        print(f"error: {r['label']} {r['rows']}x{r['cols']}: {r['error']}")
    faults = synthesis_faults(rows)
    for r in faults:
        print(f"synthesis fault: {r['label']} {r['rows']}x{r['cols']} A={r['act_bits']}: "
              f"{r['error']}; its figures are of a wrong netlist")
    failed = netlist_failures(rows)
    if args.check_netlist:
        checked = [r for r in rows if r["netlist_check"] is not None]
        print(f"gate-level check: {len(checked) - len(failed)} of {len(checked)} mapped "
              f"netlists computed all their outputs as the golden model "
              f"({sum(r['netlist_outputs'] or 0 for r in checked)} outputs)")
        for r in failed:
            why = (f"{r['netlist_mismatches']} of {r['netlist_outputs']} outputs wrong"
                   if r["netlist_mismatches"] else r["error"])
            print(f"netlist check FAILED: {r['label']} {r['rows']}x{r['cols']} "
                  f"A={r['act_bits']}: {why}")
    if args.output:
        out = Path(args.output)
        out.mkdir(parents=True, exist_ok=True)
        write_csv(rows, out / "sweep.csv")
        (out / "sweep.json").write_text(json.dumps(
            {"format": "shifthw.sweep", "version": 1, "target": target.name,
             "wide_luts": not args.no_wide_luts, "skipped": skipped, "largest_fit": fits,
             "model_check": check, "rows": rows}, indent=1) + "\n")
        files = ["sweep.csv", "sweep.json", *sweep_plots(rows, out, target, fits)]
        print(f"wrote {out}: {', '.join(files)}")
    return 1 if errors or faults or failed else 0
