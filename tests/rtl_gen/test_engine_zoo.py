"""The model zoo's MLP and CNN, layer by layer through the engine, against the golden model.

The trained programs (``shifthw/zoo/{mlp,cnn}.shiftprog``) are used when they exist; random
programs of the same shapes always run.  Inputs are real digits images (a few).
"""

from pathlib import Path

import numpy as np
import pytest

import shifthw
from shifthw.golden import quantize_input, run_program
from shifthw.program import ShiftLayer, load_program
from shifthw.rtl_gen.config import EngineConfig
from shifthw.rtl_gen.host import effective_acc_bits, layer_job, layer_rows, random_program
from shifthw.rtl_gen.simutil import simulate_job

ZOO = Path(shifthw.__file__).parent / "zoo"
IMAGES = 2


def _digits(count: int) -> np.ndarray:
    from sklearn.datasets import load_digits

    return (load_digits().images[:count].astype(np.float64) / 16.0).reshape(count, 1, 8, 8)


def _program(arch: str, source: str):
    if source == "random":
        return random_program(arch, seed=11)
    path = ZOO / f"{arch}.shiftprog"
    if not path.exists():
        pytest.skip(f"{path} is not built yet (random programs of its shapes still run)")
    return load_program(path)


@pytest.mark.parametrize("guard", ["P", 0])
@pytest.mark.parametrize("source", ["zoo", "random"])
@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_network_layer_by_layer(arch, source, guard, rng):
    prog = _program(arch, source)
    g = prog.max_shift if guard == "P" else guard
    cfg = EngineConfig(rows=8, cols=8, act_bits=prog.act_bits, weight_bits=prog.weight_bits,
                       guard_bits=g)
    x = quantize_input(prog, _digits(IMAGES))
    gold = run_program(prog, x, quantized=True, guard_bits=g)
    inputs = [gold.input] + gold.outputs[:-1]
    for step, layer_in, want in zip(prog.steps, inputs, gold.outputs):
        if not isinstance(step, ShiftLayer):
            continue                                  # maxpool and flatten stay on the host
        assert effective_acc_bits(cfg, step.fan_in) is None
        rows, reshape = layer_rows(step, layer_in)
        out, stats = simulate_job(cfg, layer_job(prog, step, cfg), rows, stall=0.1,
                                  seed=int(rng.integers(1 << 16)))
        got = reshape(out)
        bad = np.argwhere(got != want)
        assert bad.size == 0, (f"{arch} ({source}) layer {step.name}: {len(bad)} outputs "
                               f"differ, first at {tuple(bad[0])}: expected "
                               f"{want[tuple(bad[0])]}, got {got[tuple(bad[0])]}")
