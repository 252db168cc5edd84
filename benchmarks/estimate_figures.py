"""Area and Fmax of the 8 x 8 engine (A = 8, b = 5) on iCE40UP5K and ECP5-85F, shift vs mult.

For each target: shift PEs with G = 0, 4 and P, and the multiplier baseline (8-bit integer
weights; also b = 5 with ``--mult5``) with LUT-built multipliers and with DSP multipliers.
Every design is synthesised (flat totals and the per-component breakdown of
:func:`shifthw.estimate.area.synthesize`) and, when it fits, placed and routed by nextpnr
(:func:`shifthw.estimate.timing.place_and_route`).  Buffer settings fit the UP5K's 30 block
RAMs (bias buffer read over two cycles, no output FIFO), on both targets so that the design
is the same.

Usage: ``python benchmarks/estimate_figures.py [--targets ice40-up5k,ecp5-85k]
[--pipeline-stages N] [--json out.json]``.  Takes tens of minutes.  Not a test.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

from shifthw import numerics as nx
from shifthw.estimate import area, timing
from shifthw.estimate.targets import get_target
from shifthw.rtl_gen.config import EngineConfig

#: Buffer settings that fit the UP5K's 30 EBRs at 8 x 8, A = 8, b = 5.
UP5K = dict(bias_lanes=4, out_depth=0)


def designs(b: int, mult5: bool):
    p = nx.max_shift(b)
    for g in (0, 4, p):
        yield f"shift G={g}", dict(pe="shift", weight_bits=b, guard_bits=g), False
    for mb in ((8, b) if mult5 else (8,)):
        yield f"mult b={mb} LUT", dict(pe="mult", weight_bits=mb), False
        yield f"mult b={mb} DSP", dict(pe="mult", weight_bits=mb), True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", default="ice40-up5k,ecp5-85k")
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--cols", type=int, default=8)
    ap.add_argument("--act-bits", type=int, default=8)
    ap.add_argument("--weight-bits", type=int, default=5)
    ap.add_argument("--pipeline-stages", type=int, default=None)
    ap.add_argument("--mult5", action="store_true", help="also the b=5 multiplier")
    ap.add_argument("--no-place", action="store_true")
    ap.add_argument("--json", default=None, help="write every result here")
    args = ap.parse_args(argv)
    results = []
    for name in args.targets.split(","):
        tgt = get_target(name)
        print(f"\n{tgt.name} ({tgt.device}): capacity "
              + ", ".join(f"{k} {v}" for k, v in tgt.capacity.items()), flush=True)
        print(f"{'design':<14} {'acc':>3} {'LUT':>6} {'FF':>6} {'BRAM':>4} {'DSP':>4} "
              f"{'fits':>4} {'Fmax':>6}  critical path", flush=True)
        for label, kw, dsp in designs(args.weight_bits, args.mult5):
            cfg = EngineConfig(rows=args.rows, cols=args.cols, act_bits=args.act_bits,
                               pipeline_stages=args.pipeline_stages, **kw, **UP5K)
            t0 = time.time()
            with tempfile.TemporaryDirectory(prefix="shifthw-fig-") as work:
                syn = area.synthesize(cfg, tgt, work, dsp=dsp)
                pr = None
                if syn["fits"] and not args.no_place:
                    pr = timing.place_and_route(tgt, work)
            res = syn["resources"]
            fits = syn["fits"] and (pr is None or pr["fits"])
            cp = (pr or {}).get("critical_path") or {}
            fmax = (pr or {}).get("fmax_mhz")
            why = "" if syn["fits"] else " over: " + ",".join(syn["over"])
            print(f"{label:<14} {cfg.acc_bits:>3} {res['lut']:>6} {res['ff']:>6} "
                  f"{res['bram']:>4} {res['dsp']:>4} {'yes' if fits else 'no':>4} "
                  f"{fmax or 0:>6.1f}  {cp.get('start_signal', '')} -> "
                  f"{cp.get('end_signal', '')}{why}   ({time.time() - t0:.0f} s)", flush=True)
            results.append({"target": tgt.name, "design": label, "config": cfg.to_dict(),
                            "dsp": dsp, "area": syn, "timing": pr, "fits": fits})
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
