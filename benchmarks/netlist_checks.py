"""Gate-level checks of the analytic model's sweep grids: every point's mapped netlist
simulated against the golden model.

Takes the points of ``benchmarks/estimate_sweep.py``'s grids (``random`` by default: 64
designs per family with every setting drawn at random within the calibrated ranges) and runs
each through ``shifthw.estimate.sweep.run_sweep_points`` with ``check_netlist=True`` (no place
and route): synthesis as the sweep does it, then :func:`shifthw.estimate.netlist.check_netlist`
on the engine mapped by the same Yosys command (on ``generic``, the measured netlist), on five
random layer jobs with random stalls.

Prints, per family and grid, how many netlists computed every output as the golden model, how
many computed some wrongly, and how many could not be checked (a cell model that stops on a
mode it does not model, a failed build), each failure with its design; ``-o FILE`` writes the
rows as JSON.

Usage: ``python benchmarks/netlist_checks.py [--families ice40,ecp5,ecp5_nowidelut,generic]
[--grids random] [--pe shift,mult,booth] [--where SETTING] [--skip N] [--limit N]
[--jobs N] [-o FILE]``.  ``--skip N`` leaves out the first N points of each grid (to go on
with a run that was stopped: the points are drawn in the same order every time).  About a
minute per point on two cores (most of it the Verilator build of the netlist).  Not a test.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from estimate_sweep import FLAGS, GRIDS, TARGET, WIDE_LUTS, _kind, has_setting

from shifthw.estimate.sweep import run_sweep_points, settings_of


def _design(row: dict) -> str:
    return (f"{row['label']} {row['rows']}x{row['cols']} A={row['act_bits']} "
            f"(k_depth {row['k_depth']}, weight_depth {row['weight_depth']}, bias_depth "
            f"{row['bias_depth']}, out_depth {row['out_depth']}, lanes {row['bias_lanes']}/"
            f"{row['out_lanes']}, word {row['param_word_bits']}, stages "
            f"{row['pipeline_stages']}, input_registers {row['input_registers']}, "
            f"registered_stall {row['registered_stall']}, stall_free {row['stall_free']}, "
            f"pe_register {row['pe_register']}, acc_bits {row['acc_bits']})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", default="ice40,ecp5,generic")
    ap.add_argument("--grids", default="random")
    ap.add_argument("--pe", default="shift,mult,booth")
    ap.add_argument("--where", default=None, metavar="SETTING",
                    help="only the points with this boolean engine setting on (e.g. stall_free)")
    ap.add_argument("--skip", type=int, default=0,
                    help="leave out the first N points of each grid (after --pe / --where)")
    ap.add_argument("--limit", type=int, default=None,
                    help="the first N points of each grid (after --skip)")
    ap.add_argument("--jobs", type=int, default=None)
    ap.add_argument("-o", "--output", type=Path, default=None)
    args = ap.parse_args(argv)
    kinds = set(args.pe.split(","))
    grids = [g for g in args.grids.split(",") if g]
    families = [f for f in args.families.split(",") if f]
    if set(grids) - set(GRIDS):
        ap.error(f"--grids must name {' and/or '.join(GRIDS)}, not {args.grids!r}")
    if set(families) - set(TARGET):
        ap.error(f"--families must name {' and/or '.join(TARGET)}, not {args.families!r}")
    if not kinds or kinds - {"shift", "mult", "booth"}:
        ap.error(f"--pe must name shift, mult and/or booth, not {args.pe!r}")
    if args.skip < 0:
        ap.error(f"--skip must be 0 or more, not {args.skip}")
    if args.where is not None and args.where not in FLAGS:
        ap.error(f"--where must name one of {', '.join(FLAGS)}, not {args.where!r}")
    results, bad = [], 0
    for family in families:
        for name in grids:
            points = [p for p in GRIDS[name](family) if _kind(p.pe, p.booth) in kinds
                      and has_setting(settings_of(p.config()), args.where)]
            points = points[args.skip:]
            points = points[:args.limit] if args.limit else points
            print(f"{family} {name}: {len(points)} points", flush=True)
            t0 = time.time()
            rows = run_sweep_points(points, TARGET[family], jobs=args.jobs, place=False,
                                    wide_luts=WIDE_LUTS.get(family, True), check_netlist=True,
                                    progress=lambda m: print(m, flush=True))
            passed = [r for r in rows if r["netlist_check"] is True]
            wrong = [r for r in rows if r["netlist_mismatches"]]
            unchecked = [r for r in rows if r["netlist_check"] is not True
                         and not r["netlist_mismatches"]]
            print(f"{family} {name}: {len(passed)} of {len(rows)} netlists computed every "
                  f"output as the golden model ({sum(r['netlist_outputs'] or 0 for r in rows)} "
                  f"outputs); {len(wrong)} computed some wrongly; {len(unchecked)} not "
                  f"checked; {time.time() - t0:.0f} s", flush=True)
            for r in wrong:
                print(f"  WRONG {r['netlist_mismatches']} of {r['netlist_outputs']}: "
                      f"{_design(r)}")
            for r in unchecked:
                print(f"  NOT CHECKED ({r['error']}): {_design(r)}")
            bad += len(wrong) + len(unchecked)
            results += [{"family": family, "grid": name, **r} for r in rows]
            if args.output:
                args.output.write_text(json.dumps(results, indent=1) + "\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
