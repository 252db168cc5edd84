"""``estimate()``: area, Fmax and energy of a shift engine beside its multiplier twin.

One call measures every design of the comparison on one target, in one run:

* ``shift``: the engine as configured (shift PEs);
* ``mult_lut``: the same array and engine with multiplier PEs (b-bit integer weights,
  default b = 8), multipliers built from LUTs;
* ``mult_dsp``: the same, multipliers in DSP blocks (targets that have them).

The generic target has one multiplier design, ``mult``.  Each is synthesised (totals and a
breakdown per component), placed and routed (FPGA targets; skipped, and reported as "does not
fit", when synthesis already exceeds the device), and, given a model, its energy per inference
is estimated from operation counts and from the switching activity of a Verilator run.
:mod:`.report` turns the result into the comparison table, Markdown and plots.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from .. import golden, toolchain
from .. import numerics as nx
from ..files import check_folder_path, make_folders, remove_created
from ..program import Program, is_program_file, load_program
from ..rtl_gen.config import EngineConfig
from ..rtl_gen.host import check_program
from ..sim.build import BuildError
from ..sim.runner import SimError
from . import activity as act
from . import area, energy, fit, netlist, report, timing
from .model import load_area_model
from .targets import get_target

__all__ = ["FORMAT", "VERSION", "BASELINES", "mult_config", "load_model", "model_inputs",
           "estimate", "estimate_energy", "estimate_analytic"]

FORMAT = "shifthw.estimate"
VERSION = 1
#: Baselines ``estimate`` can compare with.
BASELINES = ("mult", None)
_ZOO = Path(__file__).resolve().parent.parent / "zoo"


#: The report files of ``shifthw estimate`` (``--analytic`` writes the second alone).
ESTIMATE_REPORTS = ("estimate.json", "analytic.json")
#: Every file ``shifthw estimate`` may write into its folder (with ``work/``).
ESTIMATE_FILES = (*ESTIMATE_REPORTS, "estimate.md", "area_breakdown.png",
                  "energy_breakdown.png")


def check_report_folder(out, name: str, markers: tuple[str, ...],
                        files: tuple[str, ...] = ()) -> None:
    """Refuse an output folder ``out`` that is not empty and holds none of ``markers`` (the
    report files shifthw writes there): a report replaces files in it, and ``estimate``
    clears its ``work`` folders, so a folder of the user's own is never taken.  Also refuse
    one where a report file of ``files`` (or ``markers``) is there as other than a file, or
    ``work`` as other than a folder, before anything runs."""
    out = check_folder_path(out, name)
    if out.is_dir() and any(out.iterdir()) and not any(_is_report(out / m) for m in markers):
        raise FileExistsError(f"{name} {out}: not empty and holds no shifthw "
                              f"{' or '.join(markers)} (not a shifthw report folder): give a "
                              f"new or empty folder, as a report replaces files there")
    for f in (*markers, *files):
        if (out / f).exists() and not (out / f).is_file():
            raise FileExistsError(f"{name} {out}: its {f} is not a file, and the report "
                                  f"writes one there: move it or give another folder")
    if (out / "work").exists() and not (out / "work").is_dir():
        raise FileExistsError(f"{name} {out}: its work is not a folder, and the report keeps "
                              f"the tools' files there: move it or give another folder")


def _is_report(path: Path) -> bool:
    """Whether ``path`` is a JSON report shifthw wrote (its ``format`` is shifthw's)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and str(data.get("format", "")).startswith("shifthw.")


def mult_config(cfg: EngineConfig, weight_bits: int = 8) -> EngineConfig:
    """The multiplier twin of a shift engine: same array, buffers and pipeline, integer
    weights of ``weight_bits`` bits, the multiplier's natural accumulator width."""
    try:
        nx.check_weight_bits(weight_bits)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"mult_weight_bits (--mult-weight-bits): {exc}") from None
    params = cfg.to_dict()
    for key in ("pe", "weight_bits", "guard_bits", "acc_bits"):
        params.pop(key)
    return EngineConfig(pe="mult", weight_bits=weight_bits, **params)


def load_model(model) -> tuple[Program, str]:
    """A program and its name from a Program, a .shiftprog, a checkpoint or a zoo name."""
    if isinstance(model, Program):
        return model, str(model.meta.get("source", "program")) if model.meta else "program"
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model must be a Program, a .shiftprog or checkpoint path or a zoo "
                        f"name ('mlp', 'cnn'), not {type(model).__name__} (for a torch model "
                        f"or a HardwareModel, pass its .program: shifthw.compile(...).program)")
    name = os.fspath(model)
    if name in ("mlp", "cnn") and not Path(name).exists():
        return load_program(_ZOO / f"{name}.shiftprog"), name
    if is_program_file(name):
        if not Path(name).is_file():
            raise FileNotFoundError(f"model {name!r}: no such .shiftprog file")
        return load_program(name), name
    from ..sim.flow import load_source

    return load_source(name)[0], name


def model_inputs(program: Program, images: int, inputs=None) -> tuple[np.ndarray, str]:
    """``images`` integer inputs (and where they come from): the first of ``inputs`` (the
    model's own real-valued inputs, an array or a .npy file) when given, else digits test
    images when the model takes 8 x 8 images, else seeded random A-bit activations."""
    if inputs is not None:
        from ..sim.flow import user_inputs

        x, _, name = user_inputs(program, None, inputs)
        if images > len(x):
            raise ValueError(f"images (--images): {images} asked for, inputs {name} has "
                             f"{len(x)}")
        return golden.quantize_input(program, x[:images].numpy()), name
    if int(np.prod(program.input.shape)) == 64:
        from ..models.data import load_digits_split

        test = load_digits_split()[2]
        if images > len(test):
            raise ValueError(f"images (--images): {images} asked for, the digits test split has "
                             f"{len(test)}")
        x = test[:images].numpy().reshape(images, *program.input.shape)
        return golden.quantize_input(program, x), "digits test split"
    rng = np.random.default_rng(0)
    lo, hi = -(1 << (program.act_bits - 1)), (1 << (program.act_bits - 1)) - 1
    return rng.integers(lo, hi + 1, size=(images, *program.input.shape)), "random activations"


def _check_model(program: Program, cfg: EngineConfig, images: int, inputs=None,
                 needs_inputs: bool = True) -> None:
    if (program.act_bits, program.weight_bits) != (cfg.act_bits, cfg.weight_bits):
        raise ValueError(f"model has A={program.act_bits}, b={program.weight_bits}; the "
                         f"design has A={cfg.act_bits}, b={cfg.weight_bits}: generate the "
                         f"engine with the model's widths")
    check_program(program, cfg)            # every layer fits the buffers
    if needs_inputs or inputs is not None:
        model_inputs(program, images, inputs)  # there are that many (before any synthesis)


def _check_baseline(config: EngineConfig, baseline, mult_booth: bool = False) -> None:
    if baseline not in BASELINES:
        raise ValueError(f"baseline must be 'mult' or None, not {baseline!r}")
    if baseline == "mult" and config.pe != "shift":
        raise ValueError("the design to estimate has pe='mult'; compare a shift design with "
                         "its multiplier twin (or no baseline: baseline=None, "
                         "--baseline none)")
    if mult_booth and baseline is None and config.pe == "shift":
        raise ValueError("mult_booth needs the multiplier baseline (baseline='mult')")


def _designs(cfg: EngineConfig, target, baseline, mult_bits: int,
             mult_booth: bool = False) -> dict:
    """The designs of a run, ``{key: (config, multipliers in DSP blocks)}``; the key
    ``mult_booth`` is the LUT- (gate-) built twin with Booth multipliers."""
    if cfg.pe != "shift":                    # a multiplier design on its own
        designs = {"mult_lut" if target.is_fpga else "mult": (cfg, False)}
        if mult_booth:
            designs["mult_booth"] = (cfg, False)
        return designs
    designs = {"shift": (cfg, False)}
    if baseline == "mult":
        mcfg = mult_config(cfg, mult_bits)
        designs["mult_lut" if target.is_fpga else "mult"] = (mcfg, False)
        if mult_booth:
            designs["mult_booth"] = (mcfg, False)
        if target.is_fpga and target.dsp:
            designs["mult_dsp"] = (mcfg, True)
    return designs


def _analytic_beside(area_model, cfg: EngineConfig, tgt, dsp: bool, syn: dict,
                     booth: bool = False, wide_luts: bool = True) -> dict | None:
    """The area model's figures for a synthesised design, with their error against the
    synthesis (``error_pct``: (model - synthesis) / synthesis), so that every estimate also
    checks the model; None where the model has no calibration for the design."""
    try:
        pred = area_model.predict(cfg, tgt, dsp=dsp, booth=booth, wide_luts=wide_luts)
    except ValueError:
        return None
    if tgt.is_fpga:
        meas = {"lut": syn["resources"]["lut"], "ff": syn["resources"]["ff"]}
    else:
        meas = {"nand2_eq": syn["nand2_eq"], "ff": syn["flip_flops"]}
    pred["error_pct"] = {m: (pred[m] - v) / v * 100 if v else None for m, v in meas.items()}
    return pred


def estimate_analytic(config: EngineConfig, target, *, baseline: str | None = "mult",
                      mult_weight_bits: int = 8, mult_booth: bool = False,
                      wide_luts: bool = True) -> dict:
    """The analytic area model's estimate of ``config`` and its multiplier twin (the designs
    :func:`estimate` would synthesise), in milliseconds and without running a tool
    (``wide_luts=False``: of the ECP5 mapped to LUT4s alone, as :func:`estimate`'s).

    Returns ``{"format": "shifthw.estimate_analytic", "target", "designs": {kind:
    prediction}, "lut_ratio": {kind: twin / shift}, "fit", "notes"}``; each prediction is
    :meth:`.model.AreaModel.predict`'s (its ``*_error_pct`` the model's stated error bound,
    None for a design beyond its calibration, ``outside_calibration`` the settings beyond its
    sweeps' ranges; on the iCE40 also ``logic_cells``, what a placement needs).  ``fit``
    (FPGA targets; None on generic gates) is :func:`.fit.suggest`'s answer for the first
    design: whether it fits and, if not, settings the model says fit.
    """
    if not isinstance(config, EngineConfig):
        raise TypeError(f"config must be an EngineConfig, not {config!r}")
    tgt = get_target(target)
    _check_baseline(config, baseline, mult_booth)
    area.check_wide_luts(wide_luts, tgt)
    if not isinstance(mult_booth, bool):
        raise TypeError(f"mult_booth must be a bool, not {mult_booth!r}")
    am = load_area_model()
    pairs = _designs(config, tgt, baseline, mult_weight_bits, mult_booth)
    designs = {kind: am.predict(cfg, tgt, dsp=dsp, booth=kind == "mult_booth",
                                wide_luts=wide_luts)
               for kind, (cfg, dsp) in pairs.items()}
    metric = "lut" if tgt.is_fpga else "nand2_eq"
    ratio = {kind: d[metric] / designs["shift"][metric] for kind, d in designs.items()
             if kind != "shift" and "shift" in designs and designs["shift"][metric] > 0}
    notes = ["analytic area model (no synthesis): calibrated on Yosys sweeps, "
             f"{am.data['calibration'].get('date')}; each figure's stated error bounds the "
             "model's error on synthesis points it was not fitted on (a quarter of the "
             "sweeps and a grid of random combinations), within its calibration"]
    outside = sorted({s for d in designs.values() for s in d["outside_calibration"]})
    if outside:
        notes.append(f"outside the calibration: {', '.join(outside)} (settings beyond the "
                     f"ranges the sweeps held: the estimate extrapolates its features "
                     f"there, and no error bound is stated)")
    found = None
    if tgt.is_fpga:
        cfg, dsp = next(iter(pairs.values()))           # the run's own design
        found = fit.suggest(cfg, tgt, dsp=dsp, wide_luts=wide_luts, area_model=am)
        notes += fit.describe(found, tgt)
        found = fit.to_json(found)
    return {"format": "shifthw.estimate_analytic", "target": tgt.name,
            "design": config.to_dict(), "designs": designs, "lut_ratio": ratio,
            "fit": found, "notes": notes}


def _fit_section(results: dict, tgt, wide_luts: bool) -> dict | None:
    """Settings the analytic model says fit, when the run's own design (the first) was
    measured not to fit the device (:func:`.fit.suggest`); None otherwise."""
    if not tgt.is_fpga:
        return None
    d = next(iter(results.values()))
    placed = d["timing"]
    if placed is not None and placed.get("error") and timing.tool_failure(placed["error"]):
        return None                              # no verdict (nextpnr failed)
    if (placed["fits"] if placed is not None else d["area"]["fits"]):
        return None
    over = d["area"]["over"] or ["logic_cells"]  # Yosys' counts fit, the placement did not
    cfg = EngineConfig(**d["config"])
    return fit.to_json(fit.suggest(cfg, tgt, dsp=d["dsp"], wide_luts=wide_luts,
                                   measured_over=over))


def estimate(config: EngineConfig, target, *, model=None, baseline: str | None = "mult",
             out_dir: str | os.PathLike | None = None, progress=None,
             mult_weight_bits: int = 8, images: int = 4, activity: bool = True,
             place: bool = True, freq_mhz: float | None = None,
             energy_table: str | os.PathLike | None = None,
             plots: bool = True, placements: int = 1,
             timing_weight: int | None = None, jobs: int | None = None,
             opt_timing: bool = False, mult_booth: bool = False,
             wide_luts: bool = True, check_netlist: bool = False, inputs=None) -> dict:
    """Estimate area, Fmax and energy of ``config`` on ``target``, beside the multiplier twin.

    Parameters
    ----------
    config : the shift engine (``pe="shift"``; a ``pe="mult"`` design needs
        ``baseline=None``).
    target : a name of :data:`~.targets.TARGETS` (``ice40-up5k``, ``ice40-hx8k``,
        ``ecp5-25k``, ``ecp5-85k``, ``generic``).
    model : a zoo name (``mlp``, ``cnn``), a .shiftprog, a checkpoint or a
        :class:`~shifthw.program.Program`: energy per inference of that model; None skips
        the energy section.
    baseline : ``"mult"`` (default) or None.
    out_dir : write ``estimate.json``, ``estimate.md`` and the plots there (created); the
        tools' work folders go to ``out_dir/work``.  None: a temporary folder, removed.
    progress : callable taking one-line messages (the first Yosys run compiles itself for
        about 25 s; the steps of big designs take minutes).
    mult_weight_bits : integer weight bits of the baseline (default 8).
    images : images of the model per batch, and simulated for the switching activity.
    inputs : the model's own real-valued inputs (an array or a .npy file, (B, *input shape)
        or flat rows) for those runs; default: the digits test split for a model of 8 x 8
        inputs, else random activations.
    activity : run the Verilator simulations (the slow part of the energy section).
    place : run nextpnr (Fmax); False reports synthesis only.
    freq_mhz : the clock target given to nextpnr (default: the target's goal).
    energy_table : a replacement for the shipped energy table (JSON).
    plots : write PNG plots (with ``out_dir``).
    placements : place each design this many times (nextpnr seeds 1, 2, ...) and report the
        fastest placement, with every seed's Fmax (:func:`.timing.place_and_route`).
    timing_weight : nextpnr's placer timing weight for every design (None: nextpnr's
        default, 10), the same for the shift design and its twin.
    jobs : placements run at once (default: one per core, at most ``placements``).
    opt_timing : nextpnr-ice40's post-placement timing optimisation (``--opt-timing``) for
        every design (iCE40 targets only).
    mult_booth : also synthesise (and place) the LUT-built twin with radix-4 Booth
        multipliers (Yosys' opt-in ``booth`` pass), as design ``mult_booth``: a stronger
        baseline than Yosys' default multiplier mapping.  Needs ``baseline="mult"`` (or a
        multiplier design).
    wide_luts : ECP5 targets: False synthesises every design with ``synth_ecp5
        -nowidelut`` (LUT4s only, no LUT5..LUT7 of several LUT4s and PFU muxes; fewer LUTs,
        deeper logic).  The analytic area model has a calibration of its own for it.
    check_netlist : also simulate each design's mapped netlist (the bare engine, mapped
        with the same Yosys command; on ``generic`` the measured netlist itself) in
        Verilator on random layer jobs, and with ``model`` on the model's layers for
        ``images`` images, against the golden model
        (:func:`.netlist.check_netlist`): ``designs.<design>.netlist_check``.

    Returns
    -------
    dict
        The report (``docs/estimation.md`` lists every key).
    """
    if not isinstance(config, EngineConfig):
        raise TypeError(f"config must be an EngineConfig, not {config!r}")
    tgt = get_target(target)
    _check_baseline(config, baseline, mult_booth)
    timing.check_placement_options(placements, timing_weight, jobs, opt_timing, tgt)
    area.check_wide_luts(wide_luts, tgt)
    if freq_mhz is not None:
        from ..rtl_gen.board import check_freq

        check_freq(freq_mhz)
    if not isinstance(images, int) or images < 1:
        raise ValueError(f"images must be a positive integer, not {images!r}")
    for flag, value in (("check_netlist", check_netlist), ("activity", activity),
                        ("place", place), ("plots", plots), ("mult_booth", mult_booth)):
        if not isinstance(value, bool):
            raise TypeError(f"{flag} must be a bool, not {value!r}")
    say = progress or (lambda msg: None)
    start = time.perf_counter()
    energy.load_table(energy_table)  # a bad table fails before any synthesis
    program, model_name = (None, None)
    if inputs is not None and model is None:
        raise ValueError("inputs are the model's inputs for its energy runs; give model")
    if model is not None:
        if config.pe != "shift":
            raise ValueError("model needs a shift design (energy of a shift program)")
        program, model_name = load_model(model)
        _check_model(program, config, images, inputs, needs_inputs=activity or check_netlist)
    # Every design and input first: nothing is made on disk for a run that cannot start.
    designs = _designs(config, tgt, baseline, mult_weight_bits, mult_booth)
    check_images = (model_inputs(program, images, inputs)[0]
                    if check_netlist and program is not None else None)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        check_report_folder(out, "out_dir", ESTIMATE_REPORTS, ESTIMATE_FILES)
    made = make_folders(out) if out is not None else []
    scratch = (out / "work") if out is not None else Path(tempfile.mkdtemp(prefix="shifthw-est-"))
    area_model = load_area_model()
    results, steps = {}, {}
    try:
        for i, (key, (cfg, dsp)) in enumerate(designs.items(), 1):
            tag = f"[{i}/{len(designs)}] {key}"
            say(f"{tag}: synthesising {cfg.rows}x{cfg.cols} pe={cfg.pe} for {tgt.name}"
                + (" (multipliers in DSP blocks)" if dsp else ""))
            work = scratch / key
            if work.exists():
                shutil.rmtree(work)
            booth = key == "mult_booth"
            syn = area.synthesize(cfg, tgt, work, dsp=dsp, booth=booth, wide_luts=wide_luts,
                                  progress=say)
            syn["analytic"] = _analytic_beside(area_model, cfg, tgt, dsp, syn, booth,
                                               wide_luts)
            steps[f"{key}.synthesis"] = syn["seconds"]
            placed = None
            if tgt.is_fpga and place:
                if syn["fits"]:
                    say(f"{tag}: place and route (nextpnr-{tgt.family}, "
                        f"{freq_mhz or tgt.freq_mhz:g} MHz target"
                        + (f", best of {placements} placements)" if placements > 1 else ")"))
                    placed = timing.place_and_route(tgt, work, freq_mhz=freq_mhz,
                                                    progress=say, placements=placements,
                                                    timing_weight=timing_weight,
                                                    jobs=jobs, opt_timing=opt_timing)
                    steps[f"{key}.place"] = placed["seconds"]
                    cells, model_cells = (placed.get("logic_cells"),
                                          (syn["analytic"] or {}).get("logic_cells"))
                    if cells and model_cells is not None:
                        # the model's logic cells against the placement's
                        syn["analytic"]["error_pct"]["logic_cells"] = \
                            (model_cells - cells) / cells * 100
                else:
                    over = ", ".join(f"{k} {syn['resources'].get('lut' if k == 'lut4' else k)}"
                                     f" > {syn['capacity'][k]}" for k in syn["over"])
                    placed = {"fits": False, "fmax_mhz": None, "met": False,
                              "error": f"not placed: synthesis exceeds the device ({over})",
                              "target_mhz": float(freq_mhz or tgt.freq_mhz),
                              "utilisation": {}, "logic_cells": None, "critical_path": None,
                              "bram_output_registers": 0, "seed": None, "placements": [],
                              "timing_weight": timing_weight, "opt_timing": opt_timing}
            checked = None
            if check_netlist:
                say(f"{tag}: gate-level check of the mapped netlist")
                extra = (netlist.model_jobs(program, cfg, check_images, shift_cfg=config)
                         if program is not None else None)
                # generic: the measured netlist is the bare engine's; check it as it is.
                checked = netlist.check_netlist(cfg, tgt, work / "netlist", dsp=dsp,
                                                booth=booth, wide_luts=wide_luts,
                                                extra_jobs=extra, progress=say,
                                                area_run=None if tgt.is_fpga else (work, syn))
                steps[f"{key}.netlist_check"] = checked["seconds"]
            results[key] = {"config": cfg.to_dict(), "pe": cfg.pe, "dsp": dsp, "booth": booth,
                            "area": syn, "timing": placed, "netlist_check": checked}
        energy_section = None
        if program is not None:
            t0 = time.perf_counter()
            energy_section = estimate_energy(
                config, program, baseline=baseline, mult_weight_bits=mult_weight_bits,
                images=images, activity=activity, energy_table=energy_table,
                work_dir=scratch, progress=say, name=model_name, inputs=inputs)
            steps["energy"] = time.perf_counter() - t0
        rep = report.build(FORMAT, VERSION, tgt, config, baseline, mult_weight_bits, results,
                           energy_section, time.perf_counter() - start, steps,
                           fit=_fit_section(results, tgt, wide_luts))
        if out is not None:
            say(f"writing the reports into {out}")
            rep["files"] = report.write(rep, out, plots=plots)
    except BaseException as exc:
        # A report folder this run made goes with a failed or interrupted run, unless a
        # tool failed: then its logs in work/ are what the user needs.
        if not isinstance(exc, (toolchain.ToolError, BuildError, SimError)):
            remove_created(made, contents=True)
        raise
    finally:
        if out is None:
            shutil.rmtree(scratch, ignore_errors=True)
    return rep


def estimate_energy(config: EngineConfig, model, *, baseline: str | None = "mult",
                    mult_weight_bits: int = 8, images: int = 4, activity: bool = True,
                    energy_table: str | os.PathLike | None = None,
                    work_dir: str | os.PathLike | None = None, progress=None,
                    name: str | None = None, inputs=None) -> dict:
    """Energy per inference of ``model`` on ``config`` (and on its multiplier twin).

    ``name`` names the model in the report and the progress lines (default: the zoo name or
    path given, or a program's ``meta["source"]``); ``inputs`` as for :func:`estimate`.

    The ``energy`` section of :func:`estimate`'s report: per design (``shift``, ``mult``),
    ``op_count`` (operation counts times the table) and, with ``activity``, ``activity``
    (the switching activity of ``images`` images in Verilator).  It needs no synthesis.
    """
    if not isinstance(config, EngineConfig):
        raise TypeError(f"config must be an EngineConfig, not {config!r}")
    if baseline not in BASELINES:
        raise ValueError(f"baseline must be 'mult' or None, not {baseline!r}")
    if not isinstance(activity, bool):
        raise TypeError(f"activity must be a bool, not {activity!r}")
    if isinstance(images, bool) or not isinstance(images, int) or images < 1:
        raise ValueError(f"images must be a positive integer, not {images!r}")
    if config.pe != "shift":
        raise ValueError("energy needs the shift design: the model is a shift program (its "
                         "multiplier twin is the baseline)")
    say = progress or (lambda msg: None)
    table = energy.load_table(energy_table)
    program, model_name = load_model(model)
    model_name = model_name if name is None else str(name)
    _check_model(program, config, images, inputs, needs_inputs=activity)
    kinds = {"shift": config}
    if baseline == "mult":
        kinds["mult"] = mult_config(config, mult_weight_bits)
    section = {"model": model_name, "batch": images, "table": {
        "name": table.get("name"), "source": table.get("source"), "file": table.get("file")},
        "assumptions": {k: v["why"] for k, v in table["assumptions"].items()},
        "inputs": None, "designs": {}}
    xq = None
    if activity:
        xq, section["inputs"] = model_inputs(program, images, inputs)
    scratch = Path(work_dir) if work_dir else None
    for kind, c in kinds.items():
        counts = energy.program_ops(program, c, batch=images)
        priced = energy.price(counts, table)
        entry = {"config": c.to_dict(), "op_count": {**priced, **{
            k: counts[k] for k in ("beats", "macs", "pe_ops", "vectors", "output_words",
                                   "param_words", "stream_bits", "layers", "memories")}},
                 "activity": None}
        if activity:
            say(f"energy: simulating {images} images of {model_name} on the {kind} engine "
                f"(Verilator with a VCD trace; a design's first build takes a while)")
            meas = act.measure_activity(program, config, xq,
                                        mult_cfg=None if kind == "shift" else c,
                                        work_dir=scratch / f"activity_{kind}" if scratch
                                        else None)
            entry["activity"] = report.activity_energy(meas, counts, priced, table)
        section["designs"][kind] = entry
    return section
