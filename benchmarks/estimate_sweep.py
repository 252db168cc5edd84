"""Calibration sweeps of the analytic area model, and the model's fit.

Synthesises (Yosys only, no place and route) a grid of shift designs and their multiplier
twins for each family (iCE40 through the ice40-up5k target, ECP5 through ecp5-85k, and
generic gates), at the generator's default buffer settings:

* shift: R, C in {2, 4, 8}; A in {4, 8}; b in {3, 4, 5} with G in {0, P}, and G = 4 at b = 5;
* mult: R, C in {2, 4, 8}; A in {4, 8}; integer weights b in {4, 8}; LUT-built, and with DSP
  multipliers where the family has them.

The results go to ``shifthw/estimate/sweep_data.json``; then the model of
:mod:`shifthw.estimate.model` is fitted per family, PE kind and metric on three quarters of
the points, its error measured on the quarter held out, and everything written to
``shifthw/estimate/area_model.json``.  ``--fit-only`` refits from the stored sweep data.

Usage: ``python benchmarks/estimate_sweep.py [--families ice40,ecp5,generic] [--pe shift,mult]
[--fit-only]``; ``--pe shift`` re-synthesises the shift points only and keeps the stored
multiplier rows (after a change to the shift PE).  About an hour on two cores for
everything.  Not a test.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

from shifthw import toolchain
from shifthw.estimate import model as am
from shifthw.estimate.sweep import SweepPoint, run_sweep_points
from shifthw.estimate.targets import get_target

DATA = Path(am.__file__).parent / am.DATA_FILE
MODEL = Path(am.__file__).parent / am.MODEL_FILE
TARGET = {"ice40": "ice40-up5k", "ecp5": "ecp5-85k", "generic": "generic"}
SIZES = (2, 4, 8)


def grid(family: str) -> list[SweepPoint]:
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
                    if dsp:
                        points.append(SweepPoint(r, c, a, mb, "mult", dsp=True))
    return points


def fit(data: dict) -> dict:
    out = {"format": "shifthw.area_model", "version": 1,
           "calibration": {
               "date": data.get("date"), "yosys": data.get("yosys"),
               "grid": "R, C in {2,4,8}; A in {4,8}; shift b in {3,4,5}, G in {0,P} (+G=4 at "
                       "b=5); mult b in {4,8}, LUT and DSP; default buffer settings",
               "heldout": "every fourth point of a stable order (model.split_heldout) is "
                          "left out of the fit; errors are |model - synthesis| / synthesis",
               "stated_error": "the largest held-out error, rounded up to the next 5 %"},
           "families": {}, "bram_rule": {}}
    for family, rows in data["families"].items():
        metrics = ("nand2_eq", "ff") if family == "generic" else ("lut", "ff")
        fam = {}
        for kind in ("shift", "mult_lut", "mult_dsp"):
            sel = am.calibration_rows(rows, family, kind, metrics)
            if len(sel) < 8:
                continue
            fam[kind] = {m: am.fit_family(sel, m, kind) for m in metrics}
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
    return out


def dump(data: dict) -> str:
    """The sweep data as JSON with one row per line (readable diffs)."""
    head = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in data.items() if k != "families"]
    fams = [f"{json.dumps(f)}: [\n" + ",\n".join(json.dumps(r, separators=(",", ":"))
                                                for r in rows) + "\n]"
            for f, rows in data["families"].items()]
    return "{\n" + ",\n".join(head + ['"families": {\n' + ",\n".join(fams) + "\n}"]) + "\n}\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", default="ice40,ecp5,generic")
    ap.add_argument("--fit-only", action="store_true")
    ap.add_argument("--pe", default="shift,mult",
                    help="PE kinds to re-synthesise; stored rows of the others are kept")
    ap.add_argument("--jobs", type=int, default=None)
    args = ap.parse_args(argv)
    kinds = set(args.pe.split(","))
    if not kinds or kinds - {"shift", "mult"}:
        ap.error(f"--pe must name shift and/or mult, not {args.pe!r}")
    data = json.loads(DATA.read_text()) if DATA.exists() else {"families": {}}
    if not args.fit_only:
        data["date"] = date.today().isoformat()
        data["yosys"] = toolchain.versions().get("yosys")
        for family in args.families.split(","):
            points = [p for p in grid(family) if p.pe in kinds]
            t0 = time.time()
            print(f"{family}: {len(points)} points", flush=True)
            rows = run_sweep_points(points, TARGET[family], jobs=args.jobs, place=False,
                                    progress=lambda m: print(m, flush=True))
            keep = ("label", "pe", "dsp", "rows", "cols", "act_bits", "weight_bits",
                    "guard_bits", "acc_bits", "pipeline_stages", "lut", "lut4", "carry",
                    "ff", "bram", "dsp_blocks", "nand2_eq", "fits", "error")
            kept = [r for r in data["families"].get(family, []) if r["pe"] not in kinds]
            data["families"][family] = kept + [{k: r[k] for k in keep} for r in rows]
            print(f"{family}: {time.time() - t0:.0f} s", flush=True)
            DATA.write_text(dump(data))
    MODEL.write_text(json.dumps(fit(data), indent=1) + "\n")
    print(f"wrote {MODEL}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
