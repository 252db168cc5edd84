"""The numeric contract of shifthw: one definition, used by the golden model, the RTL
generators, the testbenches and the PyTorch layers.

Everything here is plain integer arithmetic on Python ints and numpy int64 arrays; the
formulas and worked examples are in ``docs/numerics.md``.  In short:

* activation: ``q = clamp(floor(x * 2**F), -2**(A-1), 2**(A-1) - 1)`` (``A = act_bits``);
* weight code (``b = weight_bits``): a (b-1)-bit shift field ``p`` in the low bits and a sign
  bit on top; field value ``2**(b-1) - 1`` is the zero weight, otherwise the weight is
  ``(-1)**sign * 2**(e - p)`` with ``p`` in ``0..P``, ``P = 2**(b-1) - 2``;
* term with ``G = guard_bits``: ``(-1)**s * ((x << G) >> p)``, arithmetic (floor) shift first;
* accumulator: bias first, then every term, at scale ``2**(e - G - F_in)``, saturating at
  ``acc_bits`` (never wraps; at the formula's width it never saturates);
* output: arithmetic shift by ``out_shift = G + F_in - e - F_out`` (floor, or round half up),
  then ReLU, then saturation to ``A`` bits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from amaranth.hdl import unsigned
from amaranth.lib import data

__all__ = [
    "ACT_BITS_RANGE", "WEIGHT_BITS_RANGE", "FRAC_BITS_RANGE", "EXPONENT_RANGE",
    "check_act_bits", "check_weight_bits", "check_guard_bits", "max_shift", "zero_field",
    "shifter_max", "shifter_stages", "canonical_codes", "weight_code_layout",
    "encode_weight", "decode_weight", "weight_value",
    "act_min", "act_max", "saturate", "quantize_act", "calibrate_frac_bits",
    "shift_term", "acc_bits_for", "bias_limit", "quantize_bias", "out_shift_for", "requantize",
    "LayerArith",
]

#: Allowed activation widths A (inclusive).
ACT_BITS_RANGE = (2, 16)
#: Allowed weight-code widths b (inclusive).
WEIGHT_BITS_RANGE = (2, 8)
#: Allowed fraction-bit counts F of a tensor (inclusive); a wider F is never useful at A <= 16.
FRAC_BITS_RANGE = (-32, 48)
#: Allowed layer weight exponents e (inclusive): a weight is ``(-1)**s * 2**(e - p)``.
EXPONENT_RANGE = (-32, 32)


def _check_int(name: str, value, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in {lo}..{hi}, not {value!r}")
    return int(value)


def check_act_bits(act_bits) -> int:
    """Return ``act_bits`` as an int, or raise naming the parameter."""
    return _check_int("act_bits", act_bits, *ACT_BITS_RANGE)


def check_weight_bits(weight_bits) -> int:
    """Return ``weight_bits`` as an int, or raise naming the parameter."""
    return _check_int("weight_bits", weight_bits, *WEIGHT_BITS_RANGE)


def max_shift(weight_bits: int) -> int:
    """P, the largest right shift a ``weight_bits``-bit code holds (5 bits: 14)."""
    return (1 << (check_weight_bits(weight_bits) - 1)) - 2


def zero_field(weight_bits: int) -> int:
    """The shift-field value that encodes a zero weight (all ones)."""
    return (1 << (check_weight_bits(weight_bits) - 1)) - 1


def check_guard_bits(guard_bits, weight_bits: int) -> int:
    """Return ``guard_bits`` as an int in 0..P, or raise naming the parameter."""
    return _check_int("guard_bits", guard_bits, 0, max_shift(weight_bits))


def shifter_max(act_bits: int, weight_bits: int, guard_bits: int) -> int:
    """The largest right shift a term needs: ``min(P, A + G - 1)``.

    ``x << G`` is an (A+G)-bit signed value, and shifting it right by A + G - 1 places or more
    leaves only copies of its sign bit, so every larger ``p`` gives the term of
    ``p = A + G - 1``.  The RTL's shifter is built for this range only (8-bit activations,
    G = 0: three mux levels instead of four), and the host writes codes clamped into it
    (:func:`canonical_codes`).
    """
    g = check_guard_bits(guard_bits, weight_bits)
    return min(max_shift(weight_bits), check_act_bits(act_bits) + g - 1)


def shifter_stages(act_bits: int, weight_bits: int, guard_bits: int) -> int:
    """Mux levels of the PE's right shifter: the bits of :func:`shifter_max`."""
    return shifter_max(act_bits, weight_bits, guard_bits).bit_length()


def canonical_codes(code, act_bits: int, weight_bits: int, guard_bits: int):
    """Codes with every shift above :func:`shifter_max` lowered to it: the same terms
    (``shift_term``) for every activation, and the codes the hardware's PEs take."""
    b = check_weight_bits(weight_bits)
    top = shifter_max(act_bits, b, guard_bits)
    code = np.asarray(code, dtype=np.int64)
    if np.any((code < 0) | (code >= (1 << b))):
        raise ValueError(f"weight code out of range for weight_bits={b}")
    field = code & zero_field(b)
    clamp = (field != zero_field(b)) & (field > top)
    out = np.where(clamp, (code & ~zero_field(b)) | top, code)
    return int(out) if out.ndim == 0 else out


@lru_cache(maxsize=None)
def weight_code_layout(weight_bits: int) -> data.StructLayout:
    """The one definition of a weight code: ``shift`` (b-1 bits, LSBs) then ``sign`` (MSB).

    Software packs codes with ``layout.const({"shift": p, "sign": s}).as_value()``-equivalent
    integers (see :func:`encode_weight`); the RTL uses the same layout as a signal shape.
    """
    b = check_weight_bits(weight_bits)
    return data.StructLayout({"shift": unsigned(b - 1), "sign": unsigned(1)})


def encode_weight(sign, shift, weight_bits: int):
    """Pack (sign, shift) into codes.

    ``sign`` is -1/+1, or 0 for a zero weight (the zero code; its ``shift`` is ignored);
    ``shift`` is p in 0..P.  Works on ints and
    on numpy arrays.  The bit positions follow :func:`weight_code_layout`.
    """
    b = check_weight_bits(weight_bits)
    for name, v in (("sign", sign), ("shift", shift)):
        # int64 casting would truncate 2.7 to 2 silently: only whole numbers are codes.
        arr = np.asarray(v)
        whole = arr.dtype.kind == "f" and np.all(np.isfinite(arr) & (arr == np.round(arr)))
        if arr.dtype.kind not in "iub" and not whole:
            raise ValueError(f"weight {name} must be whole numbers, not {arr.ravel()[:4]!r}")
    sign = np.asarray(sign, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    big = max_shift(b)
    live = sign != 0
    if np.any(live & ((shift < 0) | (shift > big))):
        bad = shift[live & ((shift < 0) | (shift > big))].ravel()[0]
        raise ValueError(f"weight shift must be in 0..{big} for weight_bits={b}, not {bad}")
    if np.any((sign != 0) & (sign != 1) & (sign != -1)):
        raise ValueError("weight sign must be -1, 0 or +1")
    field = np.where(live, shift, zero_field(b))
    code = field | (np.where(sign < 0, 1, 0) << (b - 1))
    return int(code) if code.ndim == 0 else code


def decode_weight(code, weight_bits: int):
    """Unpack codes into ``(sign, shift)``; sign is -1/0/+1, shift is 0 for zero weights."""
    b = check_weight_bits(weight_bits)
    code = np.asarray(code, dtype=np.int64)
    if np.any((code < 0) | (code >= (1 << b))):
        raise ValueError(f"weight code out of range for weight_bits={b}")
    field = code & zero_field(b)
    neg = (code >> (b - 1)) & 1
    zero = field == zero_field(b)
    sign = np.where(zero, 0, np.where(neg == 1, -1, 1))
    shift = np.where(zero, 0, field)
    if code.ndim == 0:
        return int(sign), int(shift)
    return sign, shift


def weight_value(code, weight_bits: int, exponent: int = 0):
    """The real value ``(-1)**s * 2**(e - p)`` of codes (0.0 for the zero code)."""
    sign, shift = decode_weight(code, weight_bits)
    return np.asarray(sign, dtype=np.float64) * np.exp2(exponent - np.asarray(shift, np.float64))


def act_min(act_bits: int) -> int:
    """Smallest A-bit two's complement value."""
    return -(1 << (check_act_bits(act_bits) - 1))


def act_max(act_bits: int) -> int:
    """Largest A-bit two's complement value."""
    return (1 << (check_act_bits(act_bits) - 1)) - 1


def saturate(value, bits: int):
    """Clamp integers into the ``bits``-bit two's complement range (never wrap)."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if isinstance(value, (int, np.integer)):
        return int(min(max(int(value), lo), hi))
    arr = np.asarray(value)
    if arr.dtype == object:
        # Python ints (accumulators above 62 bits): exact at any width.
        return np.clip(arr, lo, hi)
    if arr.dtype.kind not in "iub":
        raise TypeError(f"saturate takes integers, not {arr.dtype} values")
    return np.clip(arr.astype(np.int64), lo, hi)


def _floor_ldexp(x, exp: int):
    """``floor(x * 2**exp)`` exactly, as float64.  ldexp is exact unless it underflows: a
    negative value scaled below the smallest subnormal becomes -0.0, whose floor is 0, where
    the exact floor is -1.  One that overflows becomes +-inf, as it should for the clamps that
    follow (no warning)."""
    with np.errstate(over="ignore"):
        y = np.ldexp(x, exp)
    return np.where((y == 0) & (x < 0), -1.0, np.floor(y))


def quantize_act(x, frac_bits: int, act_bits: int):
    """``clamp(floor(x * 2**F), -2**(A-1), 2**(A-1)-1)`` as int64 (exact in float64)."""
    check_act_bits(act_bits)
    _check_int("frac_bits", frac_bits, *FRAC_BITS_RANGE)
    x = np.asarray(x, dtype=np.float64)
    if np.isnan(x).any():
        raise ValueError("quantize_act: NaN has no fixed-point value (the input holds NaN)")
    scaled = _floor_ldexp(x, frac_bits)
    scaled = np.clip(scaled, act_min(act_bits), act_max(act_bits))
    return scaled.astype(np.int64)


def calibrate_frac_bits(max_abs: float, act_bits: int) -> int:
    """The largest F with ``max_abs * 2**F <= 2**(A-1) - 1`` (so the largest seen fits).

    A tensor that was never non-zero gets the largest F of the allowed range.
    """
    top = act_max(act_bits)
    if not math.isfinite(max_abs) or max_abs < 0:
        raise ValueError(f"max_abs must be a finite non-negative number, not {max_abs!r}")
    if max_abs == 0:
        return FRAC_BITS_RANGE[1]
    lo, hi = FRAC_BITS_RANGE
    # log2(top) - log2(max_abs), not log2(top / max_abs): the quotient overflows for a
    # subnormal max_abs.  log2 can be off by one near exact powers: exact checks fix that
    # (ldexp is exact, and within the clamped range it cannot overflow).
    f = min(max(math.floor(math.log2(top) - math.log2(max_abs)), lo), hi)
    while f < hi and math.ldexp(max_abs, f + 1) <= top:
        f += 1
    while f > lo and math.ldexp(max_abs, f) > top:
        f -= 1
    return f


def shift_term(x, code, weight_bits: int, guard_bits: int):
    """The contract's term ``(-1)**s * ((x << G) >> p)``; 0 for the zero code.

    ``>>`` is numpy's arithmetic shift (floor), applied before the sign, as DeepShift's
    CUDA kernel does.  Broadcasts ``x`` against ``code``.
    """
    g = check_guard_bits(guard_bits, weight_bits)
    sign, shift = decode_weight(code, weight_bits)
    # A <= 16 bits shifted left by G fits int64 up to G = 46; wider G uses Python ints.
    dt = np.int64 if g <= 46 else object
    x = np.asarray(x).astype(dt)
    mag = np.right_shift(np.left_shift(x, g), np.asarray(shift).astype(dt))
    out = np.asarray(sign).astype(dt) * mag
    return int(out) if np.ndim(out) == 0 else out


def acc_bits_for(act_bits: int, guard_bits: int, fan_in: int) -> int:
    """Accumulator width that cannot overflow: ``A + G + ceil(log2 K) + 2``.

    Every term is at most ``2**(A+G-1)`` in magnitude, so K terms stay within
    ``2**(A+G-1+ceil(log2 K))``; the bias is saturated to that same magnitude
    (:func:`quantize_bias`), so bias plus terms stays within ``2**(A+G+ceil(log2 K))``,
    which ``A + G + ceil(log2 K) + 2`` signed bits hold with one bit to spare.  The
    per-layer exponent e only moves the scale, not the integer range.
    """
    a = check_act_bits(act_bits)
    k = _check_int("fan_in", fan_in, 1, 1 << 30)
    return a + int(guard_bits) + math.ceil(math.log2(k)) + 2


def bias_limit(acc_bits: int) -> int:
    """Largest bias magnitude an ``acc_bits`` accumulator takes (``acc_bits - 1`` bits)."""
    return (1 << (acc_bits - 2)) - 1


def quantize_bias(bias, *, exponent: int, guard_bits: int, frac_in: int, acc_bits: int):
    """Bias on the accumulator's scale: ``floor(b * 2**(G + F_in - e))``, saturated.

    The bias saturates to ``acc_bits - 1`` signed bits so that bias plus all terms can never
    overflow an accumulator of :func:`acc_bits_for` bits.
    """
    b = np.asarray(bias, dtype=np.float64)
    scaled = _floor_ldexp(b, int(guard_bits) + int(frac_in) - int(exponent))
    lim = bias_limit(acc_bits)
    return np.clip(scaled, -lim - 1, lim).astype(np.int64)


def out_shift_for(*, exponent: int, guard_bits: int, frac_in: int, frac_out: int) -> int:
    """Right shift that moves the accumulator (scale ``2**(e-G-F_in)``) to ``F_out``.

    Negative means a left shift (with saturation).
    """
    return int(guard_bits) + int(frac_in) - int(exponent) - int(frac_out)


def requantize(acc, out_shift: int, act_bits: int, *, relu: bool, round_half_up: bool = False):
    """Output stage: arithmetic shift (floor or round half up), ReLU, saturate to A bits.

    A left shift (``out_shift < 0``) saturates instead of overflowing.
    """
    acc = np.asarray(acc)
    if acc.dtype != object:
        # Shifts past 62 bits (allowed at weight_bits 7..8) need Python ints.
        acc = acc.astype(object if abs(out_shift) > 62 else np.int64)
    if out_shift > 0:
        if round_half_up:
            acc = acc + (1 << (out_shift - 1))
        y = acc >> out_shift
    elif out_shift < 0:
        # Clamp before shifting left so nothing can wrap in int64: anything beyond
        # 2**A saturates anyway, and a non-zero value shifted by more than A does too.
        lim = 1 << check_act_bits(act_bits)
        if -out_shift > act_bits:
            y = np.sign(acc) * lim
        else:
            y = np.clip(acc, -lim, lim) << (-out_shift)
    else:
        y = acc
    if relu:
        y = np.maximum(y, 0)
    out = np.clip(y, act_min(act_bits), act_max(act_bits)).astype(np.int64)
    return int(out) if out.ndim == 0 else out


@dataclass(frozen=True)
class LayerArith:
    """The arithmetic parameters of one shift layer, checked once.

    Attributes mirror the contract's symbols: ``act_bits`` A, ``weight_bits`` b,
    ``guard_bits`` G, ``exponent`` e, ``frac_in``/``frac_out`` F, ``fan_in`` K.
    ``acc_bits`` defaults to :func:`acc_bits_for`; a narrower accumulator saturates
    after every chunk of ``chunk`` terms (the hardware's array rows), in order.
    """

    act_bits: int
    weight_bits: int
    guard_bits: int
    exponent: int
    frac_in: int
    frac_out: int
    fan_in: int
    relu: bool = False
    round_half_up: bool = False
    acc_bits: int | None = None

    def __post_init__(self):
        check_act_bits(self.act_bits)
        check_weight_bits(self.weight_bits)
        check_guard_bits(self.guard_bits, self.weight_bits)
        _check_int("exponent", self.exponent, *EXPONENT_RANGE)
        _check_int("frac_in", self.frac_in, *FRAC_BITS_RANGE)
        _check_int("frac_out", self.frac_out, *FRAC_BITS_RANGE)
        _check_int("fan_in", self.fan_in, 1, 1 << 30)
        if self.acc_bits is None:
            object.__setattr__(self, "acc_bits", self.natural_acc_bits)
        else:
            _check_int("acc_bits", self.acc_bits, 2, 1024)

    @property
    def natural_acc_bits(self) -> int:
        """The width that can never overflow for this layer."""
        return acc_bits_for(self.act_bits, self.guard_bits, self.fan_in)

    @property
    def out_shift(self) -> int:
        return out_shift_for(exponent=self.exponent, guard_bits=self.guard_bits,
                             frac_in=self.frac_in, frac_out=self.frac_out)

    def bias_q(self, bias):
        return quantize_bias(bias, exponent=self.exponent, guard_bits=self.guard_bits,
                             frac_in=self.frac_in, acc_bits=self.acc_bits)
