"""LUT4 / FF / BRAM / DSP of the board top for iCE40UP5K (iCEBreaker): shift vs multiplier.

Synthesises (Yosys ``synth_ice40``, through the amaranth-boards build plan) the board top of
an R x C engine (default 8 x 8, A = 8, b = 5) for shift PEs with G = 0, 4 and P, and for the
multiplier baseline (b-bit integer weights, same surroundings), and prints the resources and
whether Yosys' counts fit the UP5K (5280 LUT4, 5280 FF, 30 EBR, 4 SPRAM, 8 DSP).  With
``--place`` it also runs nextpnr, which decides for real: a logic cell holds one LUT4 and one
FF, so FFs that cannot share a cell with their LUT, and carry chains, need more cells than
LUT4s; it prints the logic cells used and the Fmax nextpnr reports.  ``dsp`` rows synthesise
the multiplier design with ``synth_ice40 -dsp`` (multipliers into SB_MAC16 blocks).

Two settings are measured: the generator's defaults, and ``up5k`` settings for the UP5K: the
bias buffer read and the output lanes requantised over two cycles (half the bias RAM width and
half the output stage; full rate still, for layers with ceil(K/R) >= 2) and no output FIFO.

Usage: ``python benchmarks/board_resources.py [--place] [--board icebreaker]``.  Not a test.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from shifthw import numerics as nx
from shifthw.rtl_gen.board import BOARDS, synthesize_board
from shifthw.rtl_gen.config import EngineConfig

#: Buffer settings that fit the UP5K's 30 EBRs at 8 x 8, A = 8, b = 5.
UP5K = dict(bias_lanes=4, out_lanes=4, out_depth=0)


def designs(weight_bits: int):
    """(name, EngineConfig keywords, extra synthesis options)."""
    p = nx.max_shift(weight_bits)
    for g in (0, 4, p):
        yield f"shift G={g}", dict(pe="shift", guard_bits=g, weight_bits=weight_bits), ""
    yield f"mult b={weight_bits}", dict(pe="mult", weight_bits=weight_bits), ""
    yield f"mult b={weight_bits} dsp", dict(pe="mult", weight_bits=weight_bits), "-dsp"
    if weight_bits != 8:
        yield "mult b=8", dict(pe="mult", weight_bits=8), ""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--board", default="icebreaker", choices=sorted(BOARDS))
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--cols", type=int, default=8)
    ap.add_argument("--act-bits", type=int, default=8)
    ap.add_argument("--weight-bits", type=int, default=5)
    ap.add_argument("--place", action="store_true", help="also place and route (nextpnr)")
    ap.add_argument("--settings", choices=["default", "up5k", "both"], default="both")
    args = ap.parse_args(argv)
    cap = BOARDS[args.board].capacity
    print(f"{args.board}: {args.rows}x{args.cols}, A={args.act_bits}; capacity "
          + ", ".join(f"{k} {v}" for k, v in cap.items()))
    print(f"{'settings':<8} {'design':<15} {'acc':>3} {'LUT4':>6} {'FF':>6} {'BRAM':>4} "
          f"{'DSP':>3} {'carry':>5} {'fits':>4}"
          + ("  nextpnr: logic cells / Fmax" if args.place else ""))
    settings = {"default": {}, "up5k": UP5K}
    chosen = list(settings) if args.settings == "both" else [args.settings]
    for label in chosen:
        for name, kw, opts in designs(args.weight_bits):
            cfg = EngineConfig(rows=args.rows, cols=args.cols, act_bits=args.act_bits,
                               **kw, **settings[label])
            t0 = time.time()
            with tempfile.TemporaryDirectory(prefix="shifthw-board-") as work:
                r = synthesize_board(cfg, args.board, work, place=args.place, synth_opts=opts)
                log = Path(work, "top.tim")
                tail = log.read_text().splitlines() if log.exists() else []
            res = r["resources"]
            over = [k for k, ok in r["fits_by_resource"].items() if not ok]
            line = (f"{label:<8} {name:<15} {cfg.acc_bits:>3} {res['lut4']:>6} {res['ff']:>6} "
                    f"{res['bram']:>4} {res['dsp']:>3} {res['carry']:>5} "
                    f"{'yes' if r['fits'] else 'no':>4}")
            if over:
                line += f" (over: {', '.join(over)})"
            if args.place:
                placed = r["placed"]
                if "error" in placed:
                    # nextpnr's own utilisation lines from its log: name every resource over.
                    over = []
                    for t in tail:
                        parts = t.replace("Info:", "").split()
                        if len(parts) == 4 and parts[0].endswith(":") and parts[3].endswith("%"):
                            used, avail = parts[1].rstrip("/"), parts[2]
                            if used.isdigit() and avail.isdigit() and int(used) > int(avail):
                                over.append(f"{parts[0][:-1]} {used}/{avail}")
                    line += f"  does not place: {', '.join(over) or 'see nextpnr log'}"
                else:
                    lc = placed["utilization"].get("ICESTORM_LC", {})
                    fmax = max(placed.get("fmax", {}).values(), key=lambda f: f["achieved"],
                               default=None)
                    line += (f"  {lc.get('used', '?')}/{lc.get('available', '?')}"
                             f" / {fmax['achieved']:.1f} MHz" if fmax else "")
            print(line + f"   ({time.time() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
