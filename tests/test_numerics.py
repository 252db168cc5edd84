"""The numeric contract against plain-Python references (hypothesis) and worked examples."""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from shifthw import numerics as nx

A_BITS = st.integers(2, 16)
B_BITS = st.integers(2, 8)


def ref_floor_shift(v: int, p: int) -> int:
    """Arithmetic right shift written as exact rational floor."""
    return math.floor(Fraction(v, 2 ** p))


@st.composite
def code_and_bits(draw):
    b = draw(B_BITS)
    return draw(st.integers(0, 2 ** b - 1)), b


def test_worked_examples_from_docs():
    # b = 5: P = 14, zero field 15.
    assert nx.max_shift(5) == 14 and nx.zero_field(5) == 15
    assert nx.encode_weight(-1, 3, 5) == 0b10011
    assert nx.decode_weight(0b01111, 5) == (0, 0)
    # x = -5, w = +2^-1: G = 0 floors -2.5 to -3; G = 1 keeps -5 (scale 2^-1).
    assert nx.shift_term(-5, nx.encode_weight(1, 1, 5), 5, 0) == -3
    assert nx.shift_term(-5, nx.encode_weight(-1, 1, 5), 5, 0) == 3
    assert nx.shift_term(-5, nx.encode_weight(1, 1, 5), 5, 1) == -5
    assert nx.quantize_act(-0.3, 4, 8) == -5           # floor(-4.8)
    assert nx.quantize_act(100.0, 4, 8) == 127          # saturates
    assert nx.requantize(-6, 2, 8, relu=False) == -2    # floor(-1.5)
    assert nx.requantize(-6, 2, 8, relu=False, round_half_up=True) == -1
    assert nx.requantize(-6, 2, 8, relu=True) == 0
    assert nx.requantize(100, -2, 8, relu=False) == 127  # left shift saturates
    assert nx.acc_bits_for(8, 0, 64) == 16


@given(x=st.floats(-1e6, 1e6, allow_nan=False), f=st.integers(-8, 20), a=A_BITS)
@example(x=-5e-324, f=-1, a=2)   # the scaled input underflows: its floor is still -1
def test_quantize_act_matches_reference(x, f, a):
    ref = math.floor(Fraction(x) * Fraction(2) ** f)
    ref = min(max(ref, -(2 ** (a - 1))), 2 ** (a - 1) - 1)
    assert nx.quantize_act(x, f, a) == ref


@given(a=A_BITS)
def test_quantize_act_extremes(a):
    big = 2.0 ** 40
    assert nx.quantize_act(np.array([big, -big]), 0, a).tolist() == [2 ** (a - 1) - 1,
                                                                     -(2 ** (a - 1))]


@given(cb=code_and_bits())
def test_code_roundtrip(cb):
    code, b = cb
    sign, shift = nx.decode_weight(code, b)
    assert sign in (-1, 0, 1) and 0 <= shift <= nx.max_shift(b)
    if sign == 0:
        assert code & nx.zero_field(b) == nx.zero_field(b)
    else:
        assert nx.encode_weight(sign, shift, b) == code
    # The Amaranth layout and the integer packing agree.
    layout = nx.weight_code_layout(b)
    const = layout.const({"shift": code & nx.zero_field(b), "sign": code >> (b - 1)})
    assert const.as_value().value == code


@given(cb=code_and_bits(), x=st.integers(-(2 ** 15), 2 ** 15 - 1), data=st.data())
def test_shift_term_matches_reference(cb, x, data):
    code, b = cb
    g = data.draw(st.integers(0, nx.max_shift(b)))
    sign, p = nx.decode_weight(code, b)
    ref = 0 if sign == 0 else sign * ref_floor_shift(x * 2 ** g, p)
    assert nx.shift_term(x, code, b, g) == ref
    # G = P is exact: the term equals x * w * 2^G.
    if g == nx.max_shift(b) and sign != 0:
        assert Fraction(ref) == Fraction(x) * sign * Fraction(2) ** (g - p)
    # The term fits A+G+1 bits for A = 16.
    assert abs(ref) <= 2 ** (16 - 1 + g)


@given(m=st.floats(1e-6, 1e6), a=A_BITS)
def test_calibrate_frac_bits_is_tight(m, a):
    f = nx.calibrate_frac_bits(m, a)
    top = 2 ** (a - 1) - 1
    if nx.FRAC_BITS_RANGE[0] < f < nx.FRAC_BITS_RANGE[1]:
        assert Fraction(m) * Fraction(2) ** f <= top < Fraction(m) * Fraction(2) ** (f + 1)


def test_calibration_and_quantisation_at_the_float_range_ends():
    # A subnormal maximum used to overflow top / max_abs to infinity (OverflowError).
    assert nx.calibrate_frac_bits(1e-310, 8) == nx.FRAC_BITS_RANGE[1]
    assert nx.calibrate_frac_bits(1.7e308, 8) == nx.FRAC_BITS_RANGE[0]
    assert nx.calibrate_frac_bits(127.0, 8) == 0
    assert nx.calibrate_frac_bits(127.0 * (1 + 2 ** -52), 8) == -1
    # NaN has no fixed-point value (it was cast to -2**63 with a RuntimeWarning).
    with pytest.raises(ValueError, match="NaN"):
        nx.quantize_act(np.array([0.5, np.nan]), 4, 8)
    assert nx.quantize_act(np.array([np.inf, -np.inf]), 4, 8).tolist() == [127, -128]
    # Scaled past float64's range: saturated, without an overflow warning.
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert nx.quantize_act(np.array([1.7e308, -1.7e308]), 4, 8).tolist() == [127, -128]


def test_codes_and_saturation_take_whole_numbers_only():
    # int64 casting truncated a shift of 2.7 to 2 and a sign of 0.6 to 0, silently.
    with pytest.raises(ValueError, match="weight shift must be whole numbers"):
        nx.encode_weight(1, 2.7, 5)
    with pytest.raises(ValueError, match="weight sign must be whole numbers"):
        nx.encode_weight(np.array([0.6, 1.0]), np.array([2, 2]), 5)
    assert nx.encode_weight(np.array([-1.0, 1.0]), np.array([3.0, 2.0]), 5).tolist() == [19, 2]
    with pytest.raises(TypeError, match="saturate takes integers"):
        nx.saturate(np.array([1.5]), 8)
    # Python ints beyond int64 (object arrays) saturate exactly.
    got = nx.saturate(np.array([2 ** 70, -(2 ** 70), 3], dtype=object), 8)
    assert got.tolist() == [127, -128, 3]
    assert nx.saturate(2 ** 70, 100) == 2 ** 70


@given(acc=st.integers(-(2 ** 40), 2 ** 40), s=st.integers(-20, 30), a=A_BITS,
       relu=st.booleans(), rnd=st.booleans())
@settings(max_examples=300)
def test_requantize_matches_reference(acc, s, a, relu, rnd):
    v = Fraction(acc) / Fraction(2) ** s
    y = math.floor(v + (Fraction(1, 2) if rnd and s > 0 else 0))
    if relu:
        y = max(y, 0)
    y = min(max(y, -(2 ** (a - 1))), 2 ** (a - 1) - 1)
    assert nx.requantize(acc, s, a, relu=relu, round_half_up=rnd) == y


@given(b=st.floats(-1e3, 1e3, allow_nan=False), g=st.integers(0, 14), f=st.integers(-4, 10),
       e=st.integers(-3, 3))
@example(b=-5e-324, g=0, f=0, e=1)   # the scaled bias underflows: its floor is still -1
def test_bias_quantisation_floor_and_saturation(b, g, f, e):
    bits = 12
    q = int(nx.quantize_bias(b, exponent=e, guard_bits=g, frac_in=f, acc_bits=bits))
    ref = math.floor(Fraction(b) * Fraction(2) ** (g + f - e))
    lim = 2 ** (bits - 2) - 1
    assert q == min(max(ref, -lim - 1), lim)


def test_bad_parameters_name_themselves():
    with pytest.raises(ValueError, match="act_bits"):
        nx.check_act_bits(17)
    with pytest.raises(ValueError, match="weight_bits"):
        nx.max_shift(9)
    with pytest.raises(ValueError, match="guard_bits"):
        nx.check_guard_bits(15, 5)
    with pytest.raises(TypeError, match="act_bits"):
        nx.check_act_bits(8.0)
    with pytest.raises(ValueError, match="shift"):
        nx.encode_weight(1, 15, 5)
    with pytest.raises(ValueError, match="fan_in"):
        nx.LayerArith(act_bits=8, weight_bits=5, guard_bits=0, exponent=0, frac_in=0,
                      frac_out=0, fan_in=0)


def test_wide_shifts_do_not_overflow():
    # b = 8 allows G up to 126: accumulators and shifts beyond int64.
    assert nx.requantize(np.array([5]), 64, 8, relu=False, round_half_up=True).tolist() == [0]
    assert nx.requantize(np.array([-5]), 64, 8, relu=False).tolist() == [-1]
    big = 1 << 70
    assert nx.requantize(np.array([big], dtype=object), 64, 8, relu=False).tolist() == [64]
    a = nx.LayerArith(act_bits=8, weight_bits=8, guard_bits=100, exponent=0, frac_in=0,
                      frac_out=0, fan_in=4, acc_bits=80)
    assert a.acc_bits == 80 < a.natural_acc_bits
