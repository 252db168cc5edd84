"""PE utilisation of the layer engine: measured cycles per layer vs the ideal.

For every shift layer of the default MLP and CNN (the zoo's ``.shiftprog`` files, or random
programs of the same shapes when they are missing), a batch of digits images runs through a
``LayerEngine`` in amaranth.sim, layer by layer, with no stalls on any stream.  Printed per
layer:

* ``ideal``: ceil(K/R) * ceil(N/C) array cycles per input vector (M vectors: conv layers
  stream one im2col patch per output pixel);
* ``run``: cycles from the first array beat to the last (the array's busy period), and
  ``util`` = ideal * M / run: the steady-state PE utilisation the issue targets (>= 95 %);
* ``total``: cycles from reset until the last output word has left, including the
  descriptor, the bias and weight load (``params`` words, one per cycle) and the pipeline
  fill and drain; ``util_total`` = ideal * M / total;
* ``mac``: the fraction of PE slots doing real work, K*N / (R*C*ceil(K/R)*ceil(N/C)) (padding
  of K and N up to the array size, which the ideal already counts as busy).

Usage: ``python benchmarks/utilisation.py [--images 8] [--rows 8 --cols 8] [--bias-lanes 4
--out-lanes 4 --out-depth 0]`` (the last three: the UP5K settings).  Not a test.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import shifthw
from shifthw.golden import quantize_input, run_program
from shifthw.program import ShiftLayer, load_program
from shifthw.rtl_gen.config import EngineConfig
from shifthw.rtl_gen.host import encode_job, golden_job, layer_job, layer_rows, random_program
from shifthw.rtl_gen.simutil import simulate_job

ZOO = Path(shifthw.__file__).parent / "zoo"


def programs():
    for arch in ("mlp", "cnn"):
        path = ZOO / f"{arch}.shiftprog"
        if path.exists():
            yield arch, str(path.relative_to(ZOO.parent.parent)), load_program(path)
        else:
            yield arch, "random codes (zoo missing)", random_program(arch)


def digits(count: int) -> np.ndarray:
    from sklearn.datasets import load_digits

    return (load_digits().images[:count].astype(np.float64) / 16.0).reshape(count, 1, 8, 8)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=8, help="batch size (digits images)")
    p.add_argument("--rows", type=int, default=8)
    p.add_argument("--cols", type=int, default=8)
    p.add_argument("--param-word-bits", type=int, default=32)
    p.add_argument("--bias-lanes", type=int, default=None)
    p.add_argument("--out-lanes", type=int, default=None)
    p.add_argument("--out-depth", type=int, default=4)
    args = p.parse_args(argv)
    header = (f"{'network':<5} {'layer':<9} {'K':>4} {'N':>4} {'M':>5} {'ideal':>5} "
              f"{'beats':>6} {'run':>6} {'util':>7} {'params':>6} {'total':>6} "
              f"{'util_total':>10} {'mac':>6}")
    print(f"engine {args.rows}x{args.cols} (bias_lanes {args.bias_lanes or args.cols}, "
          f"out_lanes {args.out_lanes or args.cols}, out_depth {args.out_depth}), batch of "
          f"{args.images} digits images, no stalls")
    for arch, source, prog in programs():
        cfg = EngineConfig(rows=args.rows, cols=args.cols, act_bits=prog.act_bits,
                           weight_bits=prog.weight_bits, param_word_bits=args.param_word_bits,
                           bias_lanes=args.bias_lanes, out_lanes=args.out_lanes,
                           out_depth=args.out_depth)
        print(f"\n{arch}: {source}")
        print(header)
        gold = run_program(prog, quantize_input(prog, digits(args.images)), quantized=True,
                           guard_bits=cfg.guard_bits)
        inputs = [gold.input] + gold.outputs[:-1]
        for step, x, want in zip(prog.steps, inputs, gold.outputs):
            if not isinstance(step, ShiftLayer):
                continue
            rows, reshape = layer_rows(step, x)
            job = layer_job(prog, step, cfg)
            t0 = time.time()
            out, st = simulate_job(cfg, job, rows)
            assert np.array_equal(reshape(out), want), f"{step.name}: mismatch"
            assert np.array_equal(out, golden_job(cfg, job, rows)[0])
            k, n, m = step.fan_in, step.out_features, rows.shape[0]
            kt, nt = -(-k // cfg.rows), -(-n // cfg.cols)
            ideal = kt * nt
            params = len(encode_job(cfg, job, rows[:0]).params)
            print(f"{arch:<5} {step.name:<9} {k:>4} {n:>4} {m:>5} {ideal:>5} {st.beats:>6} "
                  f"{st.run_cycles:>6} {100 * ideal * m / st.run_cycles:>6.1f}% {params:>6} "
                  f"{st.cycles:>6} {100 * ideal * m / st.cycles:>9.1f}% "
                  f"{100 * k * n / (cfg.rows * cfg.cols * ideal):>5.1f}%"
                  f"   ({time.time() - t0:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
