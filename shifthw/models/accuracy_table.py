"""Benchmark: digits test accuracy of float / DeepShift-Q / DeepShift-PS by weight bits.

Trains every combination with :func:`shifthw.models.train.train` (default epochs and
learning rates, act_bits 8) and prints a Markdown table.  This is a benchmark, not a test;
it takes a few minutes on 2 cores::

    python -m shifthw.models.accuracy_table [--archs mlp cnn] [--bits 2 3 4 5]
        [--seed 0] [--exponent 0|auto] [--act-bits 8]
"""

from __future__ import annotations

import argparse
import time

from shifthw.models.train import train

__all__ = ["accuracy_table", "format_table", "main"]


def accuracy_table(archs=("mlp", "cnn"), bits=(2, 3, 4, 5), *, act_bits: int = 8,
                   seed: int = 0, exponent: int | str = 0, progress: bool = False
                   ) -> list[dict]:
    """Train float once per architecture and Q/PS for every weight width.

    Returns
    -------
    list of dict
        One row per run: ``arch``, ``mode``, ``weight_bits`` (None for float),
        ``test_accuracy``, ``wall_seconds``.
    """
    rows = []
    for arch in archs:
        runs = [("float", max(bits))] + [(m, b) for b in bits for m in ("q", "ps")]
        for mode, b in runs:
            _, met = train(arch, mode, b, act_bits, seed=seed, exponent=exponent,
                           progress=progress)
            rows.append({"arch": arch, "mode": mode,
                         "weight_bits": None if mode == "float" else b,
                         "test_accuracy": met["test_accuracy"],
                         "wall_seconds": met["wall_seconds"]})
    return rows


def format_table(rows: list[dict], bits) -> str:
    """A Markdown table: one line per (arch, mode), one column per weight width."""
    head = "| model | mode | " + " | ".join(f"w{b}" for b in bits) + " | s/run |"
    lines = [head, "|" + "---|" * (len(bits) + 3)]
    for arch in dict.fromkeys(r["arch"] for r in rows):
        for mode in ("float", "q", "ps"):
            sel = [r for r in rows if r["arch"] == arch and r["mode"] == mode]
            if not sel:
                continue
            if mode == "float":
                cells = [f"{100 * sel[0]['test_accuracy']:.2f}"] * len(bits)
            else:
                acc = {r["weight_bits"]: r["test_accuracy"] for r in sel}
                cells = [f"{100 * acc[b]:.2f}" if b in acc else "-" for b in bits]
            secs = sum(r["wall_seconds"] for r in sel) / len(sel)
            lines.append(f"| {arch} | {mode} | " + " | ".join(cells) + f" | {secs:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", nargs="+", default=["mlp", "cnn"])
    ap.add_argument("--bits", nargs="+", type=int, default=[2, 3, 4, 5])
    ap.add_argument("--act-bits", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--exponent", default="0",
                    help="layer exponent: an integer or 'auto' (default 0)")
    args = ap.parse_args(argv)
    exponent = args.exponent if args.exponent == "auto" else int(args.exponent)
    start = time.perf_counter()
    rows = accuracy_table(args.archs, args.bits, act_bits=args.act_bits, seed=args.seed,
                          exponent=exponent)
    print(f"digits test accuracy (%), act_bits {args.act_bits}, seed {args.seed}, "
          f"exponent {exponent} (float: no quantisation)")
    print(format_table(rows, args.bits))
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
