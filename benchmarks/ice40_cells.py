"""Logic cells of placed iCE40 designs against their LUT and flip-flop counts.

An iCE40 logic cell holds one LUT4 (with its carry) and one flip-flop, and a flip-flop
shares a cell only with a LUT it can be packed with, so a placement needs more logic cells
than Yosys counts LUT4s.  The analytic area model estimates the cells as LUT + k x FF
(``model.ice40_logic_cells``), with k fitted at load time from the placed points this script
writes to ``shifthw/estimate/ice40_cells.json``.

Runs two sweeps with placement (``shifthw sweep``, nextpnr's default seed): the UP5K with
its small settings (``--bias-lanes 4 --out-lanes 4 --out-depth 0``: R in {2, 4, 8}, C in {4,
8}, shift b = 5 with G in {0, 4, P} and the multiplier twins), and the HX8K with the
registered stall (R, C in {4, 8}).  A design that synthesis fits but the placement does not
still counts: nextpnr names the cells it needed ("Failed to expand region ... of N
ICESTORM_LCs").  Designs over the device by Yosys' counts are not placed and not used.

Usage: ``python benchmarks/ice40_cells.py [--from SWEEP_DIR ...]`` (``--from``: use sweep
folders already made with the same commands instead of running them; about 10 minutes each
on two cores).  Prints the fit and its error on every point.  Not a test.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shifthw.estimate import model  # noqa: E402

SWEEPS = {
    "up5k": ["--target", "ice40-up5k", "--rows", "2,4,8", "--cols", "4,8",
             "--guard-bits", "0,4,P", "--bias-lanes", "4", "--out-lanes", "4",
             "--out-depth", "0"],
    "hx8k": ["--target", "ice40-hx8k", "--rows", "4,8", "--cols", "4,8",
             "--guard-bits", "0,4,P", "--registered-stall"],
}
SETTINGS = ("pe", "dsp", "rows", "cols", "act_bits", "weight_bits", "guard_bits",
            "bias_lanes", "out_lanes", "out_depth", "registered_stall", "input_registers",
            "pipeline_stages")


def points(sweep_json: Path) -> list[dict]:
    data = json.loads(sweep_json.read_text())
    out = []
    for r in data["rows"]:
        cells = r.get("logic_cells")
        if cells is None:
            m = re.search(r"of (\d+) ICESTORM_LCs", r.get("error") or "")
            cells = int(m.group(1)) if m else None
        if cells is None:
            continue
        out.append({"label": r["label"], "target": data.get("target"),
                    **{k: r[k] for k in SETTINGS}, "lut": r["lut"], "ff": r["ff"],
                    "logic_cells": cells, "placed_fits": bool(r["fits"])})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from", dest="dirs", nargs="*", type=Path, default=None,
                    help="sweep folders already made (their sweep.json)")
    args = ap.parse_args()
    dirs = args.dirs
    if not dirs:
        work = Path(tempfile.mkdtemp(prefix="shifthw-cells-"))
        dirs = []
        for name, opts in SWEEPS.items():
            out = work / name
            print(f"sweep {name}: shifthw sweep {' '.join(opts)}", flush=True)
            subprocess.run([sys.executable, "-c", "import sys; from shifthw.cli import main; "
                            "sys.exit(main())", "sweep", *opts, "-q", "-o", str(out)],
                           check=True)
            dirs.append(out)
    pts = [p for d in dirs for p in points(Path(d) / "sweep.json")]
    if not pts:
        print("no placed points", file=sys.stderr)
        return 1
    data = {"format": "shifthw.ice40_cells", "date": date.today().isoformat(),
            "source": "benchmarks/ice40_cells.py: shifthw sweep with placement (nextpnr "
                      "seed 1); " + "; ".join(f"{k}: {' '.join(v)}"
                                              for k, v in SWEEPS.items()),
            "points": pts}
    path = ROOT / "shifthw" / "estimate" / model.ICE40_CELLS_FILE
    path.write_text(json.dumps(data, indent=1) + "\n")
    k, err = model.fit_ice40_cells(pts)
    print(f"wrote {path.relative_to(ROOT)}: {len(pts)} points; logic cells = LUT + {k:.3f} "
          f"x FF")
    for p in pts:
        est = model.ice40_logic_cells(p["lut"], p["ff"], k)
        print(f"  {p['target']:<11} {p['label']:<16} {p['rows']}x{p['cols']} LUT {p['lut']:>5} "
              f"FF {p['ff']:>5} cells {p['logic_cells']:>5} estimate {est:>7.0f} "
              f"({(est - p['logic_cells']) / p['logic_cells'] * 100:+.1f} %)")
    print(f"largest error {err:.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
