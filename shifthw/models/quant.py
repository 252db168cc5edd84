"""Quantisers of the PyTorch side: small straight-through functions and :class:`ActQuant`.

Every forward value here is the arithmetic of :mod:`shifthw.numerics` (the numeric
contract), written with torch ops so that it trains; the backward passes are
straight-through estimators (STE).  In float64 every forward value is exact.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from torch import nn

from shifthw.numerics import (
    EXPONENT_RANGE, FRAC_BITS_RANGE, act_max, act_min, calibrate_frac_bits, check_act_bits,
    max_shift,
)

__all__ = [
    "round_ste", "floor_ste", "ternary_sign_ste", "quantize_act_ste", "replace_ste",
    "round_log2", "pow2_round", "ActQuant",
]

# float64 nearest to sqrt(2); it lies above the true sqrt(2), so for any float64 m,
# ``m >= _SQRT2`` is exactly ``m >= sqrt(2)``.
_SQRT2 = math.sqrt(2.0)
assert _SQRT2 * _SQRT2 > 2.0


class _RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


class _FloorSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.floor(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


class _TernarySignSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, s):
        return torch.where(s.abs() > 0.5, torch.sign(s), torch.zeros_like(s))

    @staticmethod
    def backward(ctx, grad):
        return grad


class _ReplaceSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, value):
        return value.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad, None


class _QuantizeActSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, frac_bits: int, act_bits: int):
        scale = 2.0 ** frac_bits
        y = x * scale
        # Exact floor, as numerics.quantize_act: a negative x whose scaled value underflows
        # to -0.0 floors to -1, not 0.
        scaled = torch.where((y == 0) & (x < 0), -1.0, torch.floor(y))
        lo, hi = act_min(act_bits), act_max(act_bits)
        ctx.save_for_backward((scaled >= lo) & (scaled <= hi))
        return scaled.clamp(lo, hi) * (1.0 / scale)

    @staticmethod
    def backward(ctx, grad):
        (inside,) = ctx.saved_tensors
        return grad * inside.to(grad.dtype), None, None


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """``torch.round(x)`` (half to even) forward; identity gradient."""
    return _RoundSTE.apply(x)


def floor_ste(x: torch.Tensor) -> torch.Tensor:
    """``torch.floor(x)`` forward; identity gradient."""
    return _FloorSTE.apply(x)


def ternary_sign_ste(s: torch.Tensor) -> torch.Tensor:
    """DeepShift-PS sign: 0 where ``|s| <= 0.5``, else ``sign(s)``; identity gradient.

    This equals DeepShift's ``sign(round(s))`` (``round`` half to even).
    """
    return _TernarySignSTE.apply(s)


def replace_ste(x: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Forward ``value`` exactly, pass the gradient to ``x`` unchanged.

    Unlike the ``x + (value - x).detach()`` trick the forward value is bit-exact.
    """
    return _ReplaceSTE.apply(x, value.detach())


def _check_frac_bits(frac_bits) -> int:
    if isinstance(frac_bits, torch.Tensor):
        frac_bits = frac_bits.item()
    if isinstance(frac_bits, bool) or not isinstance(frac_bits, int):
        raise TypeError(f"frac_bits must be an integer, not {frac_bits!r}")
    lo, hi = FRAC_BITS_RANGE
    if not lo <= frac_bits <= hi:
        raise ValueError(f"frac_bits must be in {lo}..{hi}, not {frac_bits!r}")
    return frac_bits


def quantize_act_ste(x: torch.Tensor, frac_bits: int, act_bits: int) -> torch.Tensor:
    """The contract's activation quantiser, dequantised: ``q * 2**-F``.

    ``q = clamp(floor(x * 2**F), -2**(A-1), 2**(A-1) - 1)`` as in
    :func:`shifthw.numerics.quantize_act`.  The gradient passes unchanged where the
    clamp did not act (``floor(x * 2**F)`` inside the A-bit range) and is zero where it
    saturated.

    Parameters
    ----------
    x : torch.Tensor
        Floating-point input.
    frac_bits : int
        F, the number of fraction bits (``FRAC_BITS_RANGE``).
    act_bits : int
        A, the signed width (``ACT_BITS_RANGE``).

    Returns
    -------
    torch.Tensor
        Same shape and dtype as ``x``; every value is a multiple of ``2**-F``.
    """
    a = check_act_bits(act_bits)
    f = _check_frac_bits(frac_bits)
    if not x.is_floating_point():
        raise TypeError(f"quantize_act_ste needs a floating-point tensor, not {x.dtype}")
    return _QuantizeActSTE.apply(x, f, a)


def round_log2(mag: torch.Tensor) -> torch.Tensor:
    """``round(log2(mag))`` for positive magnitudes, exactly, as int64.

    The switch point between ``2**k`` and ``2**(k+1)`` is ``2**(k + 1/2)`` (DeepShift's
    log-domain rounding).  Computed from the binary exponent and a comparison of the
    mantissa with sqrt(2) in float64, so no ``log2`` rounding error can move a weight.
    Entries that are not positive give meaningless values; callers mask them.
    """
    m, ex = torch.frexp(mag.detach().to(torch.float64))  # mag = m * 2**ex, m in [0.5, 1)
    k = ex.to(torch.int64) - 1  # floor(log2 mag)
    return k + (2.0 * m >= _SQRT2).to(torch.int64)


def _check_exponent(exponent) -> int:
    if isinstance(exponent, bool) or not isinstance(exponent, int):
        raise TypeError(f"exponent must be an integer, not {exponent!r}")
    lo, hi = EXPONENT_RANGE
    if not lo <= exponent <= hi:
        raise ValueError(f"exponent must be in {lo}..{hi}, not {exponent!r}")
    return exponent


def pow2_round(w: torch.Tensor, weight_bits: int, exponent: int = 0
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Round weights to the nearest signed power of two a weight code holds (DeepShift-Q).

    ``k = round(log2|w|)`` in the log domain (switch point ``2**(k+1/2)``, as DeepShift),
    then ``k`` is clamped to at most ``e`` (larger weights become ``2**e``).  A weight
    whose ``k < e - P`` becomes **zero**: our weight code has a zero value, whereas
    DeepShift clamps such weights up to the smallest power ``2**(e-P)``.  So the zero
    threshold is ``|w| < 2**(e - P - 1/2)``.  Exact zeros stay zero.

    Parameters
    ----------
    w : torch.Tensor
        Float weights (not differentiated).
    weight_bits : int
        b, the weight-code width; ``P = 2**(b-1) - 2``.
    exponent : int
        e, the layer exponent.

    Returns
    -------
    sign, shift : torch.Tensor
        int64 tensors shaped like ``w``: sign in {-1, 0, +1} and p in ``0..P`` (0 where
        sign is 0); the weight is ``sign * 2**(e - p)``.
    """
    big = max_shift(weight_bits)
    e = _check_exponent(exponent)
    w = w.detach()
    if not torch.isfinite(w).all():
        raise ValueError("pow2_round: weights must be finite (found NaN or inf)")
    k = round_log2(w.abs()).clamp(max=e)
    live = (w != 0) & (k >= e - big)
    sign = torch.where(live, torch.sign(w).to(torch.int64), 0)
    shift = torch.where(live, e - k, 0)
    return sign, shift


class ActQuant(nn.Module):
    """Per-tensor activation quantiser with a calibrated fraction-bit count F.

    Forward (enabled, not observing): :func:`quantize_act_ste` with the ``frac_bits``
    buffer, i.e. the dequantised value ``q * 2**-F``.

    Training policy (QAT): in training mode every forward first raises the ``max_abs``
    buffer to the largest ``|x|`` of the batch (a running maximum), then sets
    ``frac_bits = calibrate_frac_bits(max_abs, act_bits)`` and quantises the batch with
    that F.  The trainer calls :meth:`reset` at the start of every epoch, so ``max_abs``
    is the running maximum over the epoch so far and F follows the activations as the
    weights change; F can only fall within an epoch, so nothing seen saturates.  After
    training, :meth:`shifthw.models.net.ShiftSequential.calibrate` fixes F for good.
    In eval mode F is never changed.

    Observing (``with aq.observe():`` or ``aq.observing = True``): forward records
    ``max_abs`` and returns ``x`` unquantised.  ``enabled=False`` makes the forward the
    identity in every mode except observing (float baselines).

    Parameters
    ----------
    act_bits : int
        A, the signed activation width (``ACT_BITS_RANGE``).
    enabled : bool
        Quantise (True) or pass through (False).

    Attributes
    ----------
    frac_bits : torch.Tensor
        int64 scalar buffer (persistent), F.  Starts at 0 until trained or calibrated.
    max_abs : torch.Tensor
        Float scalar buffer, the largest ``|x|`` seen since the last :meth:`reset`.
    """

    def __init__(self, act_bits: int = 8, *, enabled: bool = True):
        a = check_act_bits(act_bits)
        if not isinstance(enabled, bool):
            raise TypeError(f"enabled must be a bool, not {enabled!r}")
        super().__init__()
        self.act_bits = a
        self.enabled = enabled
        self.observing = False
        self.register_buffer("frac_bits", torch.tensor(0, dtype=torch.int64))
        self.register_buffer("max_abs", torch.tensor(0.0))

    @property
    def frac(self) -> int:
        """F as a Python int."""
        return int(self.frac_bits.item())

    def set_frac_bits(self, frac_bits: int) -> None:
        """Fix F (checked against ``FRAC_BITS_RANGE``)."""
        self.frac_bits.fill_(_check_frac_bits(frac_bits))

    def reset(self) -> None:
        """Forget the recorded maximum (``max_abs = 0``)."""
        self.max_abs.zero_()

    def record(self, x: torch.Tensor) -> None:
        """Raise ``max_abs`` to the largest ``|x|`` (no gradient)."""
        if x.numel():
            peak = x.detach().abs().max().to(self.max_abs.dtype)
            if not torch.isfinite(peak):
                raise ValueError("ActQuant: activations are not finite (NaN or inf)")
            torch.maximum(self.max_abs, peak, out=self.max_abs)

    def calibrate_from_max(self) -> int:
        """Set F from ``max_abs`` with :func:`~shifthw.numerics.calibrate_frac_bits`."""
        f = calibrate_frac_bits(float(self.max_abs.item()), self.act_bits)
        self.frac_bits.fill_(f)
        return f

    @contextlib.contextmanager
    def observe(self) -> Iterator[ActQuant]:
        """Context in which forward records ``max_abs`` and passes ``x`` through."""
        old = self.observing
        self.observing = True
        try:
            yield self
        finally:
            self.observing = old

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.observing:
            self.record(x)
            return x
        if not self.enabled:
            return x
        if self.training:
            self.record(x)
            self.calibrate_from_max()
        return quantize_act_ste(x, self.frac, self.act_bits)

    def extra_repr(self) -> str:
        state = f"frac_bits={self.frac}" if self.enabled else "enabled=False"
        return f"act_bits={self.act_bits}, {state}"
