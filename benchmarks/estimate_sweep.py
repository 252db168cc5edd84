"""Calibration sweeps of the analytic area model, and the model's fit.

Synthesises (Yosys only, no place and route) six grids of shift designs and their
multiplier twins for each family (iCE40 through the ice40-up5k target, ECP5 through
ecp5-85k, the ECP5 again mapped to LUT4s alone with ``synth_ecp5 -nowidelut`` as
``ecp5_nowidelut``, and generic gates).  ``base``, at the generator's default buffer
settings:

* shift: R, C in {2, 4, 8}; A in {4, 8}; b in {3, 4, 5} with G in {0, P}, and G = 4 at b = 5;
* mult: R, C in {2, 4, 8}; A in {4, 8}; integer weights b in {4, 8}; LUT-built, LUT-built
  as Yosys' Booth multipliers (``booth``), and with DSP multipliers where the family has
  them.

``variants``, the settings small FPGAs use: R in {2, 4, 8}, C in {4, 8}, A = 8; shift b = 5
(G = 0, P) and b = 3 (G = 0), multipliers b = 8 (the same three kinds); each with half the
bias and output lanes and no output FIFO, with one output lane, with the registered stall,
and with both.

``fast``, the high-Fmax settings of ``docs/estimation.md``: the sizes and designs of
``variants``, with half the bias and output lanes, no output FIFO, the registered stall and
the deepest array pipeline up to 4 stages, each with no input register (the UP5K setting),
with two and the PE register (the ECP5 setting), and with those and ``stall_free``.

``settings``, the settings the other grids keep at their defaults, each changed alone from
the default engine (buffer depths, parameter word, count bits, output FIFO depth, array
pipeline depth, a saturating accumulator), on R x C in {2 x 4, 4 x 8, 8 x 4}, A = 8, shift
b = 5 (G = 0, P) and the multipliers b = 8; the ends of ``model.CALIBRATED_RANGES``.

``random``: 64 designs with every setting drawn at random within the calibrated ranges,
so that the fit sees the settings together.  ``check`` measures the model and is never
fitted: random combinations of every setting
within the calibrated ranges (sizes, widths and settings the other grids hold), and points
beyond them (16 x 8, 8 x 16, 16 x 16; A = 12, 16; 6-bit shift codes; one row or column).

The results go to ``shifthw/estimate/sweep_data.json``; then the model of
:mod:`shifthw.estimate.model` is fitted per family, PE kind and metric on three quarters of
the points of the other grids, its error measured on the quarter held out and on the
``check`` grid (the stated bound covers both), and everything written to
``shifthw/estimate/area_model.json``.  ``--fit-only`` refits from the stored sweep data;
``--grids``, ``--pe`` and ``--where`` (a boolean setting such as ``stall_free``) re-synthesise
only the chosen points and keep the stored rows of the others.

Usage: ``python benchmarks/estimate_sweep.py [--families ice40,ecp5,ecp5_nowidelut,generic]
[--pe shift,mult,booth] [--grids base,variants,fast,settings,random,check] [--fit-only]``;
``--pe shift``
re-synthesises the shift points only and keeps the stored multiplier rows (after a change
to the shift PE; ``--pe booth`` the Booth twins alone), ``--grids`` the same
for the grids.  About four and a half hours on two cores for everything (``random`` and
``check`` 9-16 minutes each per family).  Not a test.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

from shifthw import toolchain
from shifthw.estimate import model as am
from shifthw.estimate.sweep import SETTINGS, SweepPoint, run_sweep_points, settings_of
from shifthw.estimate.targets import get_target
from shifthw.rtl_gen.config import EngineConfig

DATA = Path(am.__file__).parent / am.DATA_FILE
MODEL = Path(am.__file__).parent / am.MODEL_FILE
TARGET = {"ice40": "ice40-up5k", "ecp5": "ecp5-85k", "generic": "generic",
          "ecp5_nowidelut": "ecp5-85k"}
#: Families synthesised with other than Yosys' default mapping (``wide_luts``).
WIDE_LUTS = {"ecp5_nowidelut": False}
SIZES = (2, 4, 8)


def base_grid(family: str) -> list[SweepPoint]:
    """The generator's default buffer settings and pipeline."""
    dsp = get_target(TARGET[family]).dsp
    points = []
    for a in (4, 8):
        for r in SIZES:
            for c in SIZES:
                for b in (3, 4, 5):
                    p = 2 ** (b - 1) - 2
                    for g in sorted({0, p} | ({4} if b == 5 else set())):
                        points.append(SweepPoint(r, c, a, b, "shift", g))
                for mb in (4, 8):
                    points.append(SweepPoint(r, c, a, mb, "mult"))
                    points.append(SweepPoint(r, c, a, mb, "mult", booth=True))
                    if dsp:
                        points.append(SweepPoint(r, c, a, mb, "mult", dsp=True))
    return points


def variant_settings(c: int) -> list[dict]:
    """The settings the variant grid varies, for C columns: half the bias and output lanes
    without the output FIFO (the UP5K settings of the 8 x 8 figures), one output lane, the
    registered stall, and the registered stall with the UP5K settings."""
    small = {"bias_lanes": max(c // 2, 1), "out_lanes": max(c // 2, 1), "out_depth": 0}
    return [small, {"out_lanes": 1}, {"registered_stall": True},
            {**small, "registered_stall": True}]


def variant_grid(family: str) -> list[SweepPoint]:
    """A = 8, R in {2, 4, 8}, C in {4, 8}: shift b = 5 (G = 0 and P) and b = 3 (G = 0),
    multipliers b = 8 (LUT-built, and DSP where the family has them), each with every
    setting of :func:`variant_settings`."""
    return _settings_grid(family, lambda r, c: variant_settings(c))


def _settings_grid(family: str, settings) -> list[SweepPoint]:
    """The designs of :func:`variant_grid`, each with every one of ``settings(R, C)``."""
    dsp = get_target(TARGET[family]).dsp
    points = []
    for r in SIZES:
        for c in (4, 8):
            for extra in settings(r, c):
                eng = tuple(sorted(extra.items()))
                for b, g in ((5, 0), (5, 14), (3, 0)):
                    points.append(SweepPoint(r, c, 8, b, "shift", g, False, eng))
                points.append(SweepPoint(r, c, 8, 8, "mult", None, False, eng))
                points.append(SweepPoint(r, c, 8, 8, "mult", None, False, eng, booth=True))
                if dsp:
                    points.append(SweepPoint(r, c, 8, 8, "mult", None, True, eng))
    return points


def fast_settings(r: int, c: int) -> list[dict]:
    """The high-Fmax settings of ``docs/estimation.md`` for R x C, with half the bias and
    output lanes and no output FIFO: the UP5K one (registered stall, no input register,
    the deepest array pipeline up to 4 stages), the ECP5 one (two input registers and the
    PE register instead), and the ECP5 one with ``stall_free``."""
    small = {"bias_lanes": max(c // 2, 1), "out_lanes": max(c // 2, 1), "out_depth": 0,
             "registered_stall": True,
             "pipeline_stages": min(4, max(r - 1, 0).bit_length() + 1)}
    ecp5 = {**small, "input_registers": 2, "pe_register": True}
    return [{**small, "input_registers": 0}, ecp5, {**ecp5, "stall_free": True}]


def fast_grid(family: str) -> list[SweepPoint]:
    """As :func:`variant_grid`, with every setting of :func:`fast_settings` instead."""
    return _settings_grid(family, fast_settings)


#: The settings the ``settings`` grid changes one at a time from the generator's defaults.
ONE_AT_A_TIME = ({"k_depth": 16}, {"k_depth": 512}, {"weight_depth": 64},
                 {"weight_depth": 2048}, {"bias_depth": 8}, {"bias_depth": 256},
                 {"param_word_bits": 16}, {"param_word_bits": 64}, {"count_bits": 8},
                 {"count_bits": 24}, {"out_depth": 1}, {"out_depth": 16})


def settings_grid(family: str) -> list[SweepPoint]:
    """R x C in {2 x 4, 4 x 8, 8 x 4}, A = 8; shift b = 5 (G = 0 and P), multipliers b = 8
    (LUT-built, Booth, and DSP where the family has them); each with one setting of the
    default engine changed: :data:`ONE_AT_A_TIME`, every array pipeline depth the other grids
    do not hold, and an accumulator ``model.CALIBRATED_NARROW_ACC`` bits narrower than the
    formula's (saturating)."""
    dsp = get_target(TARGET[family]).dsp
    points = []
    for r, c in ((2, 4), (4, 8), (8, 4)):
        levels = max(r - 1, 0).bit_length()
        stages = [{"pipeline_stages": s} for s in range(levels + 2)
                  if s not in (min(2, levels + 1), min(4, levels + 1))]
        designs = [SweepPoint(r, c, 8, 5, "shift", 0), SweepPoint(r, c, 8, 5, "shift", 14),
                   SweepPoint(r, c, 8, 8, "mult"), SweepPoint(r, c, 8, 8, "mult", booth=True)]
        if dsp:
            designs.append(SweepPoint(r, c, 8, 8, "mult", dsp=True))
        for d in designs:
            narrow = {"acc_bits": d.config().acc_bits - am.CALIBRATED_NARROW_ACC}
            for extra in (*ONE_AT_A_TIME, *stages, narrow):
                points.append(SweepPoint(d.rows, d.cols, d.act_bits, d.weight_bits, d.pe,
                                         d.guard_bits, d.dsp, tuple(sorted(extra.items())),
                                         d.booth))
    return points


#: Random combinations per family in the ``random`` grid (fitted) and the ``check`` grid
#: (never fitted), and the seeds that draw them.
RANDOM_COMBINATIONS = 64
RANDOM_SEED = 1905
CHECK_COMBINATIONS = 60
CHECK_SEED = 2026


def _random_point(rng: random.Random, dsp: bool) -> SweepPoint:
    """One design with every setting drawn within the calibrated ranges (sizes, widths,
    buffer depths, words, counts, lanes, pipelines, the high-Fmax settings, saturating
    accumulators), half of them shift designs, the rest the multiplier twins."""
    r, c = rng.choice((2, 3, 4, 6, 8)), rng.choice((2, 3, 4, 6, 8))
    a = rng.choice((4, 5, 6, 8))
    if rng.random() < 0.5:
        b = rng.choice((3, 4, 5))
        design = dict(weight_bits=b, pe="shift", guard_bits=rng.randint(0, 2 ** (b - 1) - 2))
        twin = {}
    else:
        design = dict(weight_bits=rng.choice((4, 5, 6, 8)), pe="mult", guard_bits=None)
        kind = rng.choice(("lut", "booth", "dsp"))
        kind = "lut" if kind == "dsp" and not dsp else kind
        twin = dict(dsp=kind == "dsp", booth=kind == "booth")
    lanes = lambda: rng.choice(sorted({1, max(c // 2, 1), c}))  # noqa: E731
    engine = {"k_depth": rng.choice((16, 64, 128, 512)),
              "weight_depth": rng.choice((64, 256, 1024, 2048)),
              "bias_depth": rng.choice((8, 32, 256)),
              "param_word_bits": rng.choice((16, 32, 64)),
              "count_bits": rng.choice((8, 16, 24)),
              "out_depth": rng.choice((0, 1, 4, 16)),
              "bias_lanes": lanes(), "out_lanes": lanes(),
              "registered_stall": rng.random() < 0.5,
              "input_registers": rng.choice((0, 1, 2)),
              "pe_register": rng.random() < 0.3,
              "pipeline_stages": rng.randint(0, max(r - 1, 0).bit_length() + 1),
              "stall_free": rng.random() < 0.25}
    point = SweepPoint(r, c, a, engine=tuple(sorted(engine.items())), **design, **twin)
    if not engine["stall_free"] and rng.random() < 0.3:
        narrow = point.config().acc_bits - rng.randint(1, am.CALIBRATED_NARROW_ACC)
        engine["acc_bits"] = narrow
        point = SweepPoint(r, c, a, engine=tuple(sorted(engine.items())), **design, **twin)
    return point


def random_grid(family: str) -> list[SweepPoint]:
    """:data:`RANDOM_COMBINATIONS` random combinations of settings within the calibrated
    ranges (seed :data:`RANDOM_SEED`; as the ``check`` grid's, with other draws), so that
    the fit sees the settings together, not only one at a time."""
    dsp = get_target(TARGET[family]).dsp
    rng = random.Random(RANDOM_SEED)
    return [_random_point(rng, dsp) for _ in range(RANDOM_COMBINATIONS)]


def check_grid(family: str) -> list[SweepPoint]:
    """Points that measure the model and are never fitted: :data:`CHECK_COMBINATIONS`
    random combinations of settings within the calibrated ranges (seed :data:`CHECK_SEED`;
    the same on every family, with LUT-built multipliers for DSP ones where there are
    none), and points beyond them: 16 x 8, 8 x 16 and 16 x 16 arrays, A = 12 and 16,
    6-bit shift codes, single rows and columns."""
    dsp = get_target(TARGET[family]).dsp
    rng = random.Random(CHECK_SEED)
    points = [_random_point(rng, dsp) for _ in range(CHECK_COMBINATIONS)]
    for r, c in ((16, 8), (8, 16)):
        points += [SweepPoint(r, c, 8, 5, "shift", 0), SweepPoint(r, c, 8, 5, "shift", 14),
                   SweepPoint(r, c, 8, 8, "mult")]
    points += [SweepPoint(16, 16, 8, 5, "shift", 0),
               SweepPoint(4, 4, 12, 5, "shift", 0), SweepPoint(4, 4, 12, 5, "shift", 14),
               SweepPoint(4, 4, 12, 8, "mult"), SweepPoint(4, 4, 16, 5, "shift", 0),
               SweepPoint(4, 4, 8, 6, "shift", 0), SweepPoint(4, 4, 8, 6, "shift", 4),
               SweepPoint(1, 8, 8, 5, "shift", 0), SweepPoint(8, 1, 8, 5, "shift", 0),
               SweepPoint(1, 8, 8, 8, "mult")]
    return points


GRIDS = {"base": base_grid, "variants": variant_grid, "fast": fast_grid,
         "settings": settings_grid, "random": random_grid, am.CHECK_GRID: check_grid}
#: The columns of a sweep row that sweep_data.json keeps.
KEEP = ("label", "pe", "dsp", "booth", "rows", "cols", "act_bits", "weight_bits", "guard_bits",
        "acc_bits", "pipeline_stages", *SETTINGS, "lut", "lut4", "carry", "ff", "bram",
        "dsp_blocks", "nand2_eq", "fits", "error")


def fit(data: dict) -> dict:
    out = {"format": "shifthw.area_model", "version": 1,
           "calibration": {
               "date": data.get("date"), "yosys": data.get("yosys"),
               "grid": "base: R, C in {2,4,8}; A in {4,8}; shift b in {3,4,5}, G in {0,P} "
                       "(+G=4 at b=5); mult b in {4,8}, LUT, Booth and DSP; default buffer "
                       "settings. "
                       "variants: R in {2,4,8}, C in {4,8}, A=8; shift b=5 G in {0,P}, b=3 "
                       "G=0; mult b=8, LUT, Booth and DSP; with bias/out lanes C/2 and no output "
                       "FIFO, one output lane, the registered stall, and both. "
                       "fast: as variants, with bias/out lanes C/2, no output FIFO, the "
                       "registered stall and the deepest pipeline up to 4 stages; with no "
                       "input register, with 2 and the PE register, and with those and "
                       "stall_free. settings: R x C in {2x4,4x8,8x4}, A=8, shift b=5 G in "
                       "{0,P}, mult b=8 (LUT, Booth, DSP); the default engine with one of: "
                       "k_depth 16/512, weight_depth 64/2048, bias_depth 8/256, "
                       "param_word_bits 16/64, count_bits 8/24, out_depth 1/16, the "
                       "pipeline depths the other grids lack, acc_bits 4 below the formula. "
                       "random: 64 designs with every setting drawn within the calibrated "
                       "ranges (seed 1905). check (never fitted): 60 more (seed 2026) and 16 "
                       "beyond the ranges. "
                       "ecp5_nowidelut: the ECP5's grids with synth_ecp5 -nowidelut. "
                       "On the ECP5 (both mappings) the points model.unmodelled names "
                       "(a saturating accumulator, one pipeline stage after R >= 4) are "
                       "left out of the fit",
               "heldout": "every fourth point of a stable order (model.split_heldout) is "
                          "left out of the fit; errors are |model - synthesis| / synthesis",
               "stated_error": "the largest error on the held-out quarter and on the check "
                               "grid's points within the calibration, rounded up to the "
                               "next 5 %",
               "check": "the check grid, never fitted: random combinations of settings "
                        "within the calibrated ranges (errors as held out), and points "
                        "beyond them (signed errors, with what they are outside of)"},
           "families": {}, "bram_rule": {}}
    for family, rows in data["families"].items():
        metrics = ("nand2_eq", "ff") if family == "generic" else ("lut", "ff")
        fam = {}
        for kind in ("shift", "mult_lut", "mult_dsp", "mult_booth"):
            sel = am.calibration_rows(rows, family, kind, metrics)
            if len(sel) < 8:
                continue
            fam[kind] = {m: am.fit_family(sel, m, kind, family) for m in metrics}
            for m in metrics:
                f = fam[kind][m]
                print(f"{family:<7} {kind:<8} {m:<8} n={len(sel):>3} fit mean "
                      f"{f['fit']['mean_pct']:5.1f} % max {f['fit']['max_pct']:5.1f} %; held "
                      f"out mean {f['heldout']['mean_pct']:5.1f} % max "
                      f"{f['heldout']['max_pct']:5.1f} % -> stated {f['stated_error_pct']:.0f} %")
        out["families"][family] = fam
        if family != "generic":
            diffs = np.array([am.bram_blocks(am.config_of_row(r), family) - r["bram"]
                              for r in rows if r.get("bram") is not None])
            out["bram_rule"][family] = {"n": int(len(diffs)),
                                        "exact": int((diffs == 0).sum()),
                                        "max_abs_error": int(np.abs(diffs).max())}
            print(f"{family:<7} bram rule: {out['bram_rule'][family]}")
    fitted = am.AreaModel(out)
    out["check"] = {}
    for family, rows in data["families"].items():
        chk = [r for r in rows if r.get("grid") == am.CHECK_GRID]
        if chk and family in out["families"]:
            out["check"][family] = am.check_errors(fitted, family, chk)
            _print_check(family, out["check"][family])
            # The check grid's points within the calibration are held out too: the stated
            # bound covers them.
            for kind, metrics in out["families"][family].items():
                within = out["check"][family].get(kind, {}).get("within", {})
                for m, f in metrics.items():
                    worst = (within.get(m) or {}).get("max_pct")
                    if worst is not None and "stated_error_pct" in f:
                        f["stated_error_pct"] = max(f["stated_error_pct"],
                                                    float(5 * math.ceil(worst / 5)))
    return out


def _print_check(family: str, check: dict) -> None:
    for kind, entry in check.items():
        w = entry["within"]
        metrics = list(w)
        print(f"{family:<7} {kind:<10} check: within n={w[metrics[0]]['n']}: " + "; ".join(
            f"{m} mean {w[m]['mean_pct'] or 0:.1f} max {w[m]['max_pct'] or 0:.1f} %"
            for m in metrics))
        for b in entry["beyond"]:
            print(f"{'':<18} beyond {b['design']} {b['rows']}x{b['cols']} A={b['act_bits']} "
                  f"({', '.join(b['outside'])}): " + ", ".join(
                      f"{m} {b[f'{m}_error_pct']:+.1f} %" for m in metrics))


def dump(data: dict) -> str:
    """The sweep data as JSON with one row per line (readable diffs)."""
    head = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in data.items() if k != "families"]
    fams = [f"{json.dumps(f)}: [\n" + ",\n".join(json.dumps(r, separators=(",", ":"))
                                                for r in rows) + "\n]"
            for f, rows in data["families"].items()]
    return "{\n" + ",\n".join(head + ['"families": {\n' + ",\n".join(fams) + "\n}"]) + "\n}\n"


#: The boolean engine settings ``--where`` may name.
FLAGS = tuple(k for k in SETTINGS
              if isinstance(getattr(EngineConfig(rows=2, cols=2), k), bool))


def has_setting(settings: dict, where: str | None) -> bool:
    """Whether a point's or row's ``settings`` have ``where`` on (every one without it)."""
    return where is None or bool(settings.get(where))


def _kind(pe: str, booth) -> str:
    """A point's or row's kind for ``--pe``: shift, mult or booth."""
    return "booth" if booth else pe


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", default=",".join(TARGET))
    ap.add_argument("--fit-only", action="store_true")
    ap.add_argument("--pe", default="shift,mult,booth",
                    help="PE kinds to re-synthesise (booth: the Booth twins); stored rows "
                         "of the others are kept")
    ap.add_argument("--jobs", type=int, default=None)
    ap.add_argument("--grids", default=",".join(GRIDS),
                    help="grids to re-synthesise; stored rows of the others are kept")
    ap.add_argument("--where", default=None, metavar="SETTING",
                    help="re-synthesise only the points with this boolean engine setting on "
                         "(e.g. stall_free, after a change to its logic); stored rows of the "
                         "others are kept")
    args = ap.parse_args(argv)
    if args.where is not None and args.where not in FLAGS:
        ap.error(f"--where must name one of {', '.join(FLAGS)}, not {args.where!r}")
    kinds = set(args.pe.split(","))
    if not kinds or kinds - {"shift", "mult", "booth"}:
        ap.error(f"--pe must name shift, mult and/or booth, not {args.pe!r}")
    grids = [g for g in args.grids.split(",") if g]
    if not grids or set(grids) - set(GRIDS):
        ap.error(f"--grids must name {' and/or '.join(GRIDS)}, not {args.grids!r}")
    data = json.loads(DATA.read_text()) if DATA.exists() else {"families": {}}
    if not args.fit_only:
        data["date"] = date.today().isoformat()
        data["yosys"] = toolchain.versions().get("yosys")
        for family in args.families.split(","):
            new = []
            t0 = time.time()
            for name in grids:
                points = [p for p in GRIDS[name](family) if _kind(p.pe, p.booth) in kinds
                          and has_setting(settings_of(p.config()), args.where)]
                print(f"{family} {name}: {len(points)} points", flush=True)
                rows = run_sweep_points(points, TARGET[family], jobs=args.jobs, place=False,
                                        wide_luts=WIDE_LUTS.get(family, True),
                                        progress=lambda m: print(m, flush=True))
                new += [{"grid": name, **{k: r[k] for k in KEEP}} for r in rows]
            # Rows of the grids, PE kinds and settings not re-synthesised are kept (a row
            # written before rows named their grid is of the base grid).
            kept = [r for r in data["families"].get(family, [])
                    if _kind(r["pe"], r.get("booth")) not in kinds
                    or r.get("grid", "base") not in grids
                    or not has_setting(r, args.where)]
            data["families"][family] = kept + new
            print(f"{family}: {time.time() - t0:.0f} s", flush=True)
            DATA.write_text(dump(data))
    MODEL.write_text(json.dumps(fit(data), indent=1) + "\n")
    print(f"wrote {MODEL}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
