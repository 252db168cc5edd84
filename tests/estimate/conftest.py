"""Shared designs and programs of the estimation tests: tiny, so synthesis takes seconds."""

from __future__ import annotations

import numpy as np
import pytest

from shifthw.program import InputSpec, Program, ShiftLayer
from shifthw.rtl_gen.config import EngineConfig

#: A 2 x 2 engine with small buffers (a few seconds through Yosys).
TINY = dict(rows=2, cols=2, k_depth=8, weight_depth=16, bias_depth=4)


def linear_program(k: int = 8, n: int = 4, *, seed: int = 0, act_bits: int = 8,
                   weight_bits: int = 5) -> Program:
    """One Linear layer K -> N with random shift codes."""
    rng = np.random.default_rng(seed)
    layer = ShiftLayer(name="fc", kind="linear",
                       codes=rng.integers(0, 1 << weight_bits, size=(n, k)),
                       bias_fine=[int(v) for v in rng.integers(-100, 100, n)],
                       exponent=0, frac_in=4, frac_out=4, relu=True)
    return Program(act_bits=act_bits, weight_bits=weight_bits,
                   input=InputSpec(shape=(k,), frac_bits=4), steps=[layer])


@pytest.fixture
def tiny_cfg() -> EngineConfig:
    return EngineConfig(**TINY)
