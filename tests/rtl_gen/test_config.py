"""EngineConfig: defaults and parameter checks that name the parameter and the value."""

import pytest

from shifthw import numerics as nx
from shifthw.rtl_gen.config import EngineConfig


def test_defaults_shift_and_mult():
    cfg = EngineConfig()
    assert (cfg.rows, cfg.cols, cfg.act_bits, cfg.weight_bits) == (8, 8, 8, 5)
    assert cfg.guard_bits == nx.max_shift(5) == 14
    assert cfg.max_k == 8 * 64
    assert cfg.acc_bits == nx.acc_bits_for(8, 14, cfg.max_k)
    assert not cfg.saturating
    mult = EngineConfig(pe="mult")
    assert mult.weight_bits == 8 and mult.guard_bits == 0
    assert mult.acc_bits == 8 + 8 + 9 + 2
    assert EngineConfig(pe="mult", guard_bits=0).guard_bits == 0


def test_narrow_accumulator_saturates():
    cfg = EngineConfig(guard_bits=0, acc_bits=12)
    assert cfg.saturating and cfg.bias_bits == 11


@pytest.mark.parametrize("kw, exc, words", [
    (dict(rows=0), ValueError, "rows"),
    (dict(cols=-1), ValueError, "cols"),
    (dict(rows=2.0), TypeError, "rows"),
    (dict(act_bits=1), ValueError, "act_bits"),
    (dict(act_bits=17), ValueError, "act_bits"),
    (dict(weight_bits=9), ValueError, "weight_bits"),
    (dict(weight_bits=1), ValueError, "weight_bits"),
    (dict(guard_bits=15), ValueError, "guard_bits"),
    (dict(guard_bits=-1), ValueError, "guard_bits"),
    (dict(pe="adder"), ValueError, "pe"),
    (dict(pe="mult", guard_bits=3), ValueError, "guard_bits"),
    (dict(pipeline_stages=5), ValueError, "pipeline_stages"),
    (dict(pipeline_stages=-1), ValueError, "pipeline_stages"),
    (dict(input_registers=3), ValueError, "input_registers"),
    (dict(input_registers=True), TypeError, "input_registers"),
    (dict(registered_stall="yes"), TypeError, "registered_stall"),
    (dict(stall_free=1), TypeError, "stall_free"),
    (dict(pe_register=1), TypeError, "pe_register"),
    (dict(k_depth=0), ValueError, "k_depth"),
    (dict(weight_depth=0), ValueError, "weight_depth"),
    (dict(bias_depth=0), ValueError, "bias_depth"),
    (dict(bias_lanes=9), ValueError, "bias_lanes"),
    (dict(out_depth=2), ValueError, "out_depth"),
    (dict(acc_bits=1), ValueError, "acc_bits"),
    (dict(param_word_bits=0), ValueError, "param_word_bits"),
])
def test_bad_parameters_are_named(kw, exc, words):
    with pytest.raises(exc) as info:
        EngineConfig(**kw)
    message = str(info.value)
    assert words in message
    assert repr(next(iter(kw.values()))) in message


def test_keyword_only():
    with pytest.raises(TypeError):
        EngineConfig(8, 8)


def test_tiling_limits():
    cfg = EngineConfig(rows=4, cols=4, k_depth=8, weight_depth=10, bias_depth=3)
    assert cfg.max_k_tiles == 8 and cfg.max_k == 32
    assert cfg.n_tiles_for(1) == 3 and cfg.n_tiles_for(4) == 2 and cfg.n_tiles_for(8) == 1
    assert cfg.register_levels == [0, 1]


def test_numpy_integers_are_taken_as_ints():
    """Engine options from numpy (a sweep's arange, a loaded array) are integers too, and
    are kept as Python ints, so the config still goes to JSON."""
    import json

    import numpy as np

    cfg = EngineConfig(rows=np.int64(4), cols=np.int32(2), act_bits=np.int64(8),
                       weight_bits=np.int8(5), guard_bits=np.int64(0), k_depth=np.uint16(32))
    assert cfg == EngineConfig(rows=4, cols=2, guard_bits=0, k_depth=32)
    assert all(type(v) is int for v in (cfg.rows, cfg.cols, cfg.act_bits, cfg.weight_bits,
                                        cfg.guard_bits, cfg.k_depth))
    json.dumps(cfg.to_dict())
    for bad in (4.0, "4", True):
        with pytest.raises(TypeError, match="rows must be an integer"):
            EngineConfig(rows=bad)
