"""Area and Fmax of the 8 x 8 engine (A = 8, b = 5) on iCE40UP5K and ECP5-85F, shift vs mult.

For each target: shift PEs with G = 0, 4 and P, and the multiplier baseline (8-bit integer
weights; also b = 5 with ``--mult5``) with LUT-built multipliers and with DSP multipliers.
Every design is synthesised (flat totals and the per-component breakdown of
:func:`shifthw.estimate.area.synthesize`) and, when it fits, placed and routed by nextpnr
(:func:`shifthw.estimate.timing.place_and_route`).  Settings fit the UP5K's 30 block RAMs
(bias buffer read over two cycles, four output lanes, no output FIFO), on both targets so that
the design is the same.

At the end, per target, the LUT ratio of the LUT-built b = 8 multiplier design to each shift
design, for the whole engine, for the PE array with its adder trees and accumulators, and for
the PEs alone (the per-component breakdown of the same synthesis runs).  Under each design,
the analytic area model's LUT and FF figures and their error against the synthesis.

Usage: ``python benchmarks/estimate_figures.py [--targets ice40-up5k,ecp5-85k]
[--pipeline-stages N] [--out-lanes N] [--input-registers N] [--registered-stall]
[--pe-register] [--stall-free] [--mult-booth] [--no-wide-luts] [--placements N]
[--timing-weight N] [--opt-timing] [--json out.json]``.  ``--opt-timing`` (nextpnr-ice40's
post-placement timing optimisation) applies to the iCE40 targets only, ``--no-wide-luts``
(``synth_ecp5 -nowidelut``, every design) to the ECP5 targets only.  Takes tens of
minutes.  Not a test.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

from shifthw import numerics as nx
from shifthw.estimate import area, load_area_model, timing
from shifthw.estimate.targets import get_target
from shifthw.rtl_gen.config import EngineConfig

#: Settings that fit the UP5K's 30 EBRs at 8 x 8, A = 8, b = 5 (as board_resources.py):
#: bias buffer read over two cycles, half the output stage's lanes, no output FIFO.
UP5K = dict(bias_lanes=4, out_lanes=4, out_depth=0)


def designs(b: int, mult5: bool, booth: bool):
    """(label, engine settings, multipliers in DSP blocks, Booth multipliers)"""
    p = nx.max_shift(b)
    for g in (0, 4, p):
        yield f"shift G={g}", dict(pe="shift", weight_bits=b, guard_bits=g), False, False
    for mb in ((8, b) if mult5 else (8,)):
        yield f"mult b={mb} LUT", dict(pe="mult", weight_bits=mb), False, False
        if booth:
            yield f"mult b={mb} Booth", dict(pe="mult", weight_bits=mb), False, True
        yield f"mult b={mb} DSP", dict(pe="mult", weight_bits=mb), True, False


#: Components summed for each ratio: the whole engine, the array (PEs, adder trees and
#: accumulators), the PEs alone.
SCOPES = {"engine": None, "array": ("pe_array", "adder_trees", "accumulators"),
          "PEs": ("pe_array",)}


def _luts(result: dict, parts) -> int:
    if parts is None:
        return result["area"]["resources"]["lut"]
    comps = result["area"]["breakdown"]
    return sum(comps[p]["lut"] for p in parts)


def ratios(results: list[dict], target: str) -> None:
    """Print mult (b = 8, LUT-built; and Booth-built if measured) LUTs / shift LUTs for
    each scope."""
    rows = [r for r in results if r["target"] == target]
    for design, what in (("mult b=8 LUT", "LUT-built"), ("mult b=8 Booth", "Booth")):
        base = next((r for r in rows if r["design"] == design), None)
        if base is None:
            continue
        print(f"LUT ratio, mult b=8 {what} / shift ({target}):", flush=True)
        for r in rows:
            if r["design"].startswith("shift"):
                print(f"  {r['design']:<10} " + "  ".join(
                    f"{scope} {_luts(base, parts) / _luts(r, parts):.2f}x"
                    for scope, parts in SCOPES.items()), flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", default="ice40-up5k,ecp5-85k")
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--cols", type=int, default=8)
    ap.add_argument("--act-bits", type=int, default=8)
    ap.add_argument("--weight-bits", type=int, default=5)
    ap.add_argument("--pipeline-stages", type=int, default=None)
    ap.add_argument("--out-lanes", type=int, default=None)
    ap.add_argument("--input-registers", type=int, default=1)
    ap.add_argument("--registered-stall", action="store_true")
    ap.add_argument("--pe-register", action="store_true")
    ap.add_argument("--stall-free", action="store_true")
    ap.add_argument("--mult5", action="store_true", help="also the b=5 multiplier")
    ap.add_argument("--mult-booth", action="store_true",
                    help="also the LUT-built multiplier twin with Yosys' Booth multipliers")
    ap.add_argument("--no-wide-luts", action="store_true",
                    help="ECP5 targets: synth_ecp5 -nowidelut for every design")
    ap.add_argument("--no-place", action="store_true")
    ap.add_argument("--placements", type=int, default=1,
                    help="place each design N times (seeds 1..N), report the fastest and "
                         "print every seed's Fmax")
    ap.add_argument("--timing-weight", type=int, default=None,
                    help="nextpnr placer timing weight (default nextpnr's, 10)")
    ap.add_argument("--opt-timing", action="store_true",
                    help="iCE40 targets: nextpnr's post-placement timing optimisation")
    ap.add_argument("--json", default=None, help="write every result here")
    args = ap.parse_args(argv)
    results = []
    model = load_area_model()
    settings = dict(UP5K, **({"out_lanes": args.out_lanes} if args.out_lanes else {}))
    for name in args.targets.split(","):
        tgt = get_target(name)
        print(f"\n{tgt.name} ({tgt.device}): capacity "
              + ", ".join(f"{k} {v}" for k, v in tgt.capacity.items()), flush=True)
        print(f"{'design':<14} {'acc':>3} {'LUT':>6} {'FF':>6} {'BRAM':>4} {'DSP':>4} "
              f"{'fits':>4} {'Fmax':>6}  critical path", flush=True)
        for label, kw, dsp, booth in designs(args.weight_bits, args.mult5, args.mult_booth):
            cfg = EngineConfig(rows=args.rows, cols=args.cols, act_bits=args.act_bits,
                               pipeline_stages=args.pipeline_stages,
                               input_registers=args.input_registers,
                               registered_stall=args.registered_stall,
                               pe_register=args.pe_register, stall_free=args.stall_free,
                               **kw, **settings)
            t0 = time.time()
            with tempfile.TemporaryDirectory(prefix="shifthw-fig-") as work:
                wide = not (args.no_wide_luts and tgt.family == "ecp5")
                syn = area.synthesize(cfg, tgt, work, dsp=dsp, booth=booth, wide_luts=wide)
                pr = None
                if syn["fits"] and not args.no_place:
                    pr = timing.place_and_route(tgt, work, placements=args.placements,
                                                timing_weight=args.timing_weight,
                                                opt_timing=args.opt_timing
                                                and tgt.family == "ice40")
            res = syn["resources"]
            # (the area model knows Yosys' default mapping only)
            pred = None if not wide else model.predict(cfg, tgt, dsp=dsp, booth=booth)
            fits = syn["fits"] and (pr is None or pr["fits"])
            cp = (pr or {}).get("critical_path") or {}
            fmax = (pr or {}).get("fmax_mhz")
            why = "" if syn["fits"] else " over: " + ",".join(syn["over"])
            print(f"{label:<14} {cfg.acc_bits:>3} {res['lut']:>6} {res['ff']:>6} "
                  f"{res['bram']:>4} {res['dsp']:>4} {'yes' if fits else 'no':>4} "
                  f"{fmax or 0:>6.1f}  {cp.get('start_signal', '')} -> "
                  f"{cp.get('end_signal', '')}{why}   ({time.time() - t0:.0f} s)", flush=True)
            if pred:
                print(f"{'':<14} analytic model: LUT {pred['lut']:.0f} "
                      f"({(pred['lut'] - res['lut']) / res['lut'] * 100:+.1f} %), FF "
                      f"{pred['ff']:.0f} ({(pred['ff'] - res['ff']) / res['ff'] * 100:+.1f} %)"
                      + (f"; outside its calibration: {', '.join(pred['outside_calibration'])}"
                         if pred["outside_calibration"] else ""), flush=True)
            if pr and len(pr.get("placements", [])) > 1:
                print(f"{'':<14} seeds: " + ", ".join(
                    f"{t['seed']}: {t['fmax_mhz'] or 0:.1f}" for t in pr["placements"]),
                    flush=True)
            results.append({"target": tgt.name, "design": label, "config": cfg.to_dict(),
                            "dsp": dsp, "booth": booth, "area": syn, "timing": pr, "fits": fits,
                            "analytic": pred})
        ratios(results, tgt.name)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
