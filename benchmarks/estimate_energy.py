"""Energy per inference of the shipped digits MLP and CNN, shift vs multiplier, both methods.

For each model, on the 8 x 8 engine (A = 8, b = 5) with G = P (exact, the default) and
G = 0: :func:`shifthw.estimate.estimate_energy` counts operations on the engine's schedule
(priced by the Horowitz 45 nm table) and simulates a batch of digits test images in Verilator
for the switching activity, for the shift engine and for its multiplier twin (8-bit integer
weights).  Prints per-component energies, toggles and totals per inference.

Usage: ``python benchmarks/estimate_energy.py [--images 4] [--json out.json]``.  A few
minutes (Verilator builds of each 8 x 8 design with tracing, cached afterwards).  Not a test.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from shifthw import numerics as nx
from shifthw.estimate.flow import estimate_energy
from shifthw.estimate.hierarchy import COMPONENTS
from shifthw.rtl_gen.config import EngineConfig


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--models", default="mlp,cnn")
    ap.add_argument("--guards", default="P,0")
    ap.add_argument("--no-activity", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    out = []
    for model in args.models.split(","):
        for g in args.guards.split(","):
            guard = nx.max_shift(5) if g == "P" else int(g)
            cfg = EngineConfig(rows=8, cols=8, act_bits=8, weight_bits=5, guard_bits=guard)
            t0 = time.time()
            sec = estimate_energy(cfg, model, images=args.images,
                                  activity=not args.no_activity,
                                  progress=lambda m: print(f"  {m}", flush=True))
            print(f"\n{model}, 8x8, G={guard}, batch {args.images} "
                  f"({time.time() - t0:.0f} s)")
            print(f"{'component':<14}" + "".join(f"{k + ' ' + m:>16}" for k in sec["designs"]
                                                  for m in ("ops pJ", "act pJ", "toggles")))
            for comp in COMPONENTS:
                line = f"{comp:<14}"
                for ent in sec["designs"].values():
                    ac = ent["activity"] or {}
                    line += (f"{ent['op_count']['by_component'][comp]:>16.1f}"
                             f"{ac.get('by_component', {}).get(comp, 0):>16.1f}"
                             f"{ac.get('toggles_per_inference', {}).get(comp, 0):>16.0f}")
                print(line)
            tot = {k: (e["op_count"]["total_pj"], (e["activity"] or {}).get("total_pj"))
                   for k, e in sec["designs"].items()}
            print("total (nJ)    " + "".join(
                f"{o / 1000:>16.2f}{(a or 0) / 1000:>16.2f}{'':>16}" for o, a in tot.values()))
            s, m = tot["shift"], tot["mult"]
            print(f"mult / shift: op-count {m[0] / s[0]:.2f}"
                  + (f", activity {m[1] / s[1]:.2f}" if s[1] else ""))
            for k, e in sec["designs"].items():
                oc = e["op_count"]
                print(f"{k}: {oc['macs']:.0f} MACs, {oc['beats']:.0f} array cycles per "
                      f"inference; DRAM streaming would add {oc['off_chip_pj']['low_pj'] / 1e3:.0f}"
                      f"-{oc['off_chip_pj']['high_pj'] / 1e3:.0f} nJ; activity mismatches "
                      f"{(e['activity'] or {}).get('mismatches')}")
            out.append({"model": model, "guard_bits": guard, "energy": sec})
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
