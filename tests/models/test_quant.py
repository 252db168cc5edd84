"""Tests of shifthw.models.quant: STE functions, pow2 rounding, ActQuant."""

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from shifthw.models.quant import (
    ActQuant, floor_ste, pow2_round, quantize_act_ste, replace_ste, round_log2, round_ste,
    ternary_sign_ste,
)
from shifthw.numerics import calibrate_frac_bits, max_shift, quantize_act

# Values whose x * 2**F underflows float64 (|x| near 1e-308 and below) are left out: there
# the contract's quantize_act (np.ldexp) and ours give 0 where exact floor gives -1 (see
# test_quantize_act_underflow_matches_contract).
finite = st.one_of(
    st.just(0.0),
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False,
              allow_subnormal=False).filter(lambda v: abs(v) > 1e-290))


def ref_quantize(x: float, frac_bits: int, act_bits: int) -> float:
    """Plain-Python activation quantiser: clamp(floor(x * 2**F)) * 2**-F."""
    lo, hi = -(2 ** (act_bits - 1)), 2 ** (act_bits - 1) - 1
    q = math.floor(Fraction(x) * 2 ** frac_bits) if frac_bits >= 0 else \
        math.floor(Fraction(x) / 2 ** -frac_bits)
    return float(Fraction(min(max(q, lo), hi)) / Fraction(2) ** frac_bits)


def ref_pow2(w: float, weight_bits: int, e: int) -> tuple[int, int]:
    """Plain-Python pow2_round with exact (Fraction) log-domain rounding."""
    if w == 0:
        return 0, 0
    mag = Fraction(abs(w))
    k = math.frexp(abs(w))[1] - 1          # floor(log2 |w|)
    if (mag / Fraction(2) ** k) ** 2 >= 2:  # |w| >= 2**(k + 1/2)
        k += 1
    k = min(k, e)
    if k < e - max_shift(weight_bits):
        return 0, 0
    return (1 if w > 0 else -1), e - k


@settings(max_examples=300, deadline=None)
@given(x=st.lists(finite, min_size=1, max_size=20), frac_bits=st.integers(-8, 24),
       act_bits=st.integers(2, 16))
def test_quantize_act_matches_reference(x, frac_bits, act_bits):
    got = quantize_act_ste(torch.tensor(x, dtype=torch.float64), frac_bits, act_bits)
    want = [ref_quantize(v, frac_bits, act_bits) for v in x]
    assert got.tolist() == want
    # and the numeric contract's integer quantiser
    ints = quantize_act(np.array(x), frac_bits, act_bits)
    assert (got * 2.0 ** frac_bits).to(torch.int64).tolist() == ints.tolist()


def test_quantize_act_underflow_matches_contract():
    # floor(x * 2**F) exactly: a negative x whose scaled value underflows still floors to -1.
    x = np.array([-5e-324, 5e-324])
    got = quantize_act_ste(torch.from_numpy(x), -1, 8)
    assert (got * 2.0 ** -1).tolist() == quantize_act(x, -1, 8).tolist() == [-1, 0]
    tiny = torch.tensor([-1e-45, 1e-45], dtype=torch.float32)   # float32 subnormals
    assert (quantize_act_ste(tiny, -1, 8) * 2.0 ** -1).tolist() == [-1, 0]


@pytest.mark.parametrize("act_bits", [2, 8, 16])
def test_quantize_act_saturates_both_ends_and_floors(act_bits):
    hi, lo = 2 ** (act_bits - 1) - 1, -(2 ** (act_bits - 1))
    x = torch.tensor([1e9, -1e9, hi + 0.75, lo - 0.25, lo + 0.5, -0.25, 0.25],
                     dtype=torch.float64)
    got = quantize_act_ste(x, 0, act_bits).tolist()
    assert got == [hi, lo, hi, lo, lo, -1.0, 0.0]


def test_quantize_act_gradient_passes_inside_only():
    x = torch.tensor([-3.0, -0.5, 0.0, 0.3, 0.49, 0.5, 2.0], requires_grad=True)
    y = quantize_act_ste(x, 3, 4)  # range -8..7 at 2**-3: [-1, 0.875]
    y.sum().backward()
    assert y.tolist() == [-1.0, -0.5, 0.0, 0.25, 0.375, 0.5, 0.875]
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]


def test_quantize_act_rejects_bad_arguments():
    with pytest.raises(ValueError, match="act_bits"):
        quantize_act_ste(torch.zeros(2), 0, 17)
    with pytest.raises(ValueError, match="frac_bits"):
        quantize_act_ste(torch.zeros(2), 99, 8)
    with pytest.raises(TypeError, match="frac_bits"):
        quantize_act_ste(torch.zeros(2), 1.5, 8)
    with pytest.raises(TypeError, match="floating-point"):
        quantize_act_ste(torch.zeros(2, dtype=torch.int64), 0, 8)


def test_ste_forward_values_and_gradients():
    x = torch.tensor([-1.6, -0.5, 0.5, 0.51, 1.5, 2.4], requires_grad=True)
    for fn, want in ((round_ste, [-2.0, -0.0, 0.0, 1.0, 2.0, 2.0]),
                     (floor_ste, [-2.0, -1.0, 0.0, 0.0, 1.0, 2.0]),
                     (ternary_sign_ste, [-1.0, 0.0, 0.0, 1.0, 1.0, 1.0])):
        x.grad = None
        y = fn(x)
        assert y.tolist() == want
        (y * torch.arange(6.0)).sum().backward()
        assert x.grad.tolist() == list(range(6))


def test_replace_ste_is_exact_and_passes_gradient():
    w = torch.tensor([0.3, 100.0, -1e-9], dtype=torch.float64, requires_grad=True)
    v = torch.tensor([0.25, 1.0, 0.0], dtype=torch.float64)
    y = replace_ste(w, v)
    assert torch.equal(y, v)
    y.sum().backward()
    assert w.grad.tolist() == [1.0, 1.0, 1.0]


@settings(max_examples=300, deadline=None)
@given(w=st.lists(st.one_of(st.floats(-8, 8), st.floats(-1e-6, 1e-6), st.just(0.0)),
                  min_size=1, max_size=16),
       weight_bits=st.integers(2, 8), e=st.integers(-4, 4))
def test_pow2_round_matches_reference(w, weight_bits, e):
    sign, shift = pow2_round(torch.tensor(w, dtype=torch.float64), weight_bits, e)
    want = [ref_pow2(v, weight_bits, e) for v in w]
    assert list(zip(sign.tolist(), shift.tolist(), strict=True)) == want
    assert sign.dtype == torch.int64 and shift.dtype == torch.int64


def test_pow2_round_switch_point_is_sqrt2():
    edge = math.sqrt(2.0) * 2.0 ** -3  # 2**-2.5: above it rounds to 2**-2
    below, above = math.nextafter(edge, 0), math.nextafter(edge, 1)
    w = torch.tensor([below, above, 1.45 * 2 ** -3, 1.40 * 2 ** -3], dtype=torch.float64)
    sign, shift = pow2_round(w, 5, 0)
    assert shift.tolist() == [3, 2, 2, 3]
    assert sign.tolist() == [1, 1, 1, 1]
    # float32 weights round the same way (exact comparison in float64)
    s32, p32 = pow2_round(w.float(), 5, 0)
    assert p32.tolist() == pow2_round(w.float().double(), 5, 0)[1].tolist()


def test_pow2_round_zero_rule_and_clamp():
    # 3 bits: P = 2, e = 0: powers 1, 1/2, 1/4; zero below 2**-2.5
    w = torch.tensor([5.0, -1.0, 0.0, 0.18, -0.178, 2 ** -2.5 * 0.999, -0.0])
    sign, shift = pow2_round(w, 3, 0)
    assert sign.tolist() == [1, -1, 0, 1, -1, 0, 0]
    assert shift.tolist() == [0, 0, 0, 2, 2, 0, 0]
    with pytest.raises(ValueError, match="finite"):
        pow2_round(torch.tensor([float("nan")]), 5, 0)
    with pytest.raises(ValueError, match="weight_bits"):
        pow2_round(w, 9, 0)
    with pytest.raises(TypeError, match="exponent"):
        pow2_round(w, 5, 0.5)


def test_round_log2_exact_on_powers_and_subnormals():
    k = torch.arange(-1074, 1000, dtype=torch.float64)
    assert torch.equal(round_log2(torch.exp2(k)), k.to(torch.int64))


def test_actquant_observe_records_and_passes_through():
    aq = ActQuant(8)
    x = torch.tensor([0.3, -2.7, 1.1])
    with aq.observe():
        assert torch.equal(aq(x), x)
        aq(torch.tensor([0.5]))
    assert not aq.observing
    assert aq.max_abs.item() == pytest.approx(2.7)
    assert aq.calibrate_from_max() == calibrate_frac_bits(2.7, 8) == 5
    aq.eval()
    assert aq(x).tolist() == [0.28125, -2.71875, 1.09375]


def test_actquant_training_policy_running_max():
    aq = ActQuant(8).train()
    aq(torch.tensor([0.9]))
    assert aq.frac == calibrate_frac_bits(0.9, 8)
    aq(torch.tensor([3.0]))  # a larger batch lowers F ...
    assert aq.frac == calibrate_frac_bits(3.0, 8)
    aq(torch.tensor([0.1]))  # ... and a smaller one does not raise it again
    assert aq.frac == calibrate_frac_bits(3.0, 8)
    aq.reset()
    aq(torch.tensor([0.1]))
    assert aq.frac == calibrate_frac_bits(0.1, 8)
    aq.eval()
    aq(torch.tensor([100.0]))  # eval never changes F
    assert aq.frac == calibrate_frac_bits(0.1, 8)


def test_actquant_state_dict_disabled_and_errors():
    aq = ActQuant(6)
    aq.set_frac_bits(3)
    state = aq.state_dict()
    assert state["frac_bits"].dtype == torch.int64 and int(state["frac_bits"]) == 3
    other = ActQuant(6)
    other.load_state_dict(state)
    assert other.frac == 3
    assert aq.double().frac_bits.dtype == torch.int64
    off = ActQuant(8, enabled=False)
    x = torch.tensor([0.123456])
    assert torch.equal(off(x), x)
    assert "enabled=False" in repr(off) and "frac_bits=3" in repr(aq)
    with pytest.raises(ValueError, match="act_bits"):
        ActQuant(1)
    with pytest.raises(ValueError, match="frac_bits"):
        aq.set_frac_bits(100)
    with pytest.raises(ValueError, match="not finite"):
        with aq.observe():
            aq(torch.tensor([float("inf")]))
