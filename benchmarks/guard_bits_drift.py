"""How far the integer model drifts from the float64 torch model as guard bits G shrink.

For each shipped digits model and G, over the whole test split: accuracy, prediction
agreement with torch, and the largest per-layer difference in output LSBs (each layer fed by
the previous layer at the same G, as the hardware runs). G = P must show zero difference.

    python benchmarks/guard_bits_drift.py
"""

import numpy as np

from shifthw import golden
from shifthw.models.checkpoint import export_checkpoint, load_model
from shifthw.models.data import load_digits_split
from shifthw.models.export import trace_integers
from shifthw.program import ShiftLayer


def main() -> None:
    _, _, x, y = load_digits_split()
    print(f"{'model':<5} {'G':>3} {'accuracy':>9} {'agree':>8}  max |int - torch| per layer (LSB)")
    for name in ("mlp", "cnn"):
        model, _ = load_model(name)
        prog = export_checkpoint(name)
        trace = trace_integers(model.double(), x.double())
        torch_pred = np.asarray(trace[-1]).reshape(len(x), -1).argmax(axis=1)
        for g in sorted({0, 2, 4, 8, prog.max_shift}):
            run = golden.run_program(prog, x.numpy(), guard_bits=g)
            diffs = [int(np.abs(a - b).max()) for s, a, b in zip(prog.steps, run.outputs, trace)
                     if isinstance(s, ShiftLayer)]
            print(f"{name:<5} {g:>3} {100 * (run.predictions() == y.numpy()).mean():>8.2f}% "
                  f"{100 * (run.predictions() == torch_pred).mean():>7.2f}%  {diffs}")


if __name__ == "__main__":
    main()
