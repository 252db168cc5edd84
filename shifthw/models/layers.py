"""Shift layers: :class:`LinearShift` and :class:`Conv2dShift` (DeepShift-PS and -Q).

A weight is ``sign * 2**(e - p)`` with sign in {-1, 0, +1}, p in ``0..P`` and
``P = 2**(b-1) - 2`` for ``b = weight_bits`` (see :mod:`shifthw.numerics`); e is the
layer's integer exponent (0 = DeepShift's ``|w| <= 1``).

* ``mode="ps"``: trainable float parameters ``shift`` (values <= 0, relative to e) and
  ``sign``; the forward weight is ``ternary(sign) * 2**(e + round(clamp(shift, -P, 0)))``
  with straight-through gradients.  There is no ``weight`` parameter; ``.weight`` returns
  the quantised weight.
* ``mode="q"``: a trainable float ``weight``; the forward uses
  :func:`~shifthw.models.quant.pow2_round` of it, with a straight-through gradient.

Both modes optionally floor the bias to a multiple of ``2**-bias_frac`` (``P + F_in - e``,
set from the ActQuant before the layer by every :class:`~shifthw.models.net.ShiftSequential`
forward, and by its ``link``) so that the float forward equals the integer golden model.
In float64 the forward is exact as long as a layer's terms and bias fit a 53-bit mantissa:
``A + P + ceil(log2 K) + 1 <= 53`` (A = act_bits, K = fan-in; 8-bit activations, 5-bit
weights and K up to 2**30 qualify; 7- and 8-bit weights, P = 62 and 126, do not).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from shifthw.models.quant import (
    _check_exponent, floor_ste, pow2_round, replace_ste, round_log2, round_ste,
    ternary_sign_ste,
)
from shifthw.numerics import check_weight_bits, max_shift

__all__ = ["MODES", "ShiftMixin", "LinearShift", "Conv2dShift", "ps_init"]

#: Training modes of the shift layers.
MODES = ("ps", "q")


def _check_mode(mode) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    return mode


def ps_init(w: torch.Tensor, weight_bits: int, exponent: int = 0
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """DeepShift-PS parameters for float weights ``w``: ``(shift, sign)`` float tensors.

    ``shift = clamp(round(log2|w|) - e, -P, 0)`` (log-domain rounding, as
    :func:`~shifthw.models.quant.round_log2`) and ``sign = sign(w)``, except that weights
    with ``|w| < 2**(e - P - 1)`` (nearer to 0 than to ``2**(e-P)``) get sign 0 and
    shift ``-P``.
    """
    big = max_shift(weight_bits)
    e = _check_exponent(exponent)
    w = w.detach()
    if not torch.isfinite(w).all():
        raise ValueError("ps_init: weights must be finite (found NaN or inf)")
    mag = w.abs().to(torch.float64)
    k = round_log2(mag)
    shift = (k - e).clamp(-big, 0)
    live = mag >= 2.0 ** (e - big - 1)
    sign = torch.where(live, torch.sign(w.to(torch.float64)), 0.0)
    shift = torch.where(live, shift, -big)
    return shift.to(w.dtype), sign.to(w.dtype)


class ShiftMixin:
    """What :class:`LinearShift` and :class:`Conv2dShift` share (not used on its own).

    Attributes
    ----------
    mode : str
        ``"ps"`` or ``"q"``.
    weight_bits : int
        b, the weight-code width.
    exponent : int
        e, the layer exponent.
    bias_frac : int or None
        When set, the forward floors the bias to a multiple of ``2**-bias_frac``.
    bias_limit : int or None
        When set (with ``bias_frac``), the floored bias saturates to
        ``-bias_limit - 1 .. bias_limit`` units of ``2**-bias_frac``, as the contract's
        accumulator takes it.
    """

    def _setup_shift(self, mode: str, weight_bits: int, exponent: int) -> None:
        # Called right after nn.Linear/nn.Conv2d.__init__, which made a float weight.
        self.mode = mode
        self.weight_bits = weight_bits
        self.exponent = exponent
        self.bias_frac: int | None = None
        self.bias_limit: int | None = None
        if mode == "ps":
            w = self._parameters.pop("weight")
            self.shift = nn.Parameter(torch.zeros_like(w))
            self.sign = nn.Parameter(torch.zeros_like(w))
        self.reset_parameters()

    def __getattr__(self, name: str):
        # In PS mode there is no weight parameter: ``.weight`` is the quantised weight.
        if name == "weight" and self.__dict__.get("mode") == "ps":
            return self.quantized_weight()
        return super().__getattr__(name)

    @property
    def max_shift(self) -> int:
        """P, the largest right shift of this layer's codes."""
        return max_shift(self.weight_bits)

    @property
    def weight_shape(self) -> torch.Size:
        """Shape of the weight tensor."""
        if self.mode == "ps":
            return self.shift.shape
        return self._parameters["weight"].shape

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Random initialisation (training from scratch).

        The weights are drawn like torch's (kaiming-uniform, bias too); PS mode converts
        them with :func:`ps_init`.  At low weight_bits the smallest power ``2**(e-P)``
        is larger than most of that draw (fan-in 64 gives ``|w| < 2**-3``; with
        ``P <= 2`` every weight would round to zero and the net start dead), so each
        ``|w| < 2**(e-P)`` is first rounded stochastically, without bias, to 0 or
        ``sign(w) * 2**(e-P)`` (probability ``|w| / 2**(e-P)``).  That keeps the
        expected layer output of torch's draw; at b >= 4 it touches only the few smallest
        weights.  (Scaling the draw up instead makes the initial logits huge and PS
        training collapses.)  Uses torch's global RNG, so ``torch.manual_seed`` fixes it.
        """
        if "mode" not in self.__dict__:
            # Called by the torch constructor, before _setup_shift.
            super().reset_parameters()
            return
        like = self.shift if self.mode == "ps" else self._parameters["weight"]
        w = torch.empty(self.weight_shape, dtype=like.dtype, device=like.device)
        nn.init.kaiming_uniform_(w, a=math.sqrt(5))
        self.load_float_weight(self.round_small_weights(w))
        if self.bias is not None:
            fan_in = w[0].numel()
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            nn.init.uniform_(self.bias, -bound, bound)

    @torch.no_grad()
    def round_small_weights(self, w: torch.Tensor) -> torch.Tensor:
        """``w`` with each ``|w| < 2**(e-P)`` rounded stochastically, without bias, to 0 or
        ``sign(w) * 2**(e-P)`` (probability ``|w| / 2**(e-P)``); the rest unchanged.

        The start of training from scratch (:meth:`reset_parameters`, and
        :func:`~shifthw.models.train.train` with ``exponent="auto"``, whose exponent comes
        from the float draw): without it a Q layer at low b rounds most of a fresh draw to
        zero and the net starts dead (at b = 2 the digits CNN's first layer had no live
        weight).  Uses torch's global RNG.
        """
        low = 2.0 ** (self.exponent - self.max_shift)
        keep = torch.rand_like(w) * low < w.abs()
        small = w.abs() < low
        return torch.where(small, torch.where(keep, torch.sign(w) * low, 0.0), w)

    @torch.no_grad()
    def load_float_weight(self, w: torch.Tensor) -> None:
        """Set the weights from float values (PS: :func:`ps_init`; Q: copy)."""
        if tuple(w.shape) != tuple(self.weight_shape):
            raise ValueError(f"weight shape {tuple(w.shape)} does not match the layer's "
                             f"{tuple(self.weight_shape)}")
        if self.mode == "ps":
            shift, sign = ps_init(w, self.weight_bits, self.exponent)
            self.shift.copy_(shift)
            self.sign.copy_(sign)
        else:
            self._parameters["weight"].copy_(w)

    def _copy_float(self, layer: nn.Module) -> None:
        """Take a float layer's weight (rounded per mode) and bias (from_float's common part)."""
        self.load_float_weight(layer.weight.detach())
        if layer.bias is not None:
            with torch.no_grad():
                self.bias.copy_(layer.bias)

    @torch.no_grad()
    def load_sign_and_shift(self, sign: torch.Tensor, shift: torch.Tensor) -> None:
        """Set the weights to exactly ``sign * 2**(e - p)`` (``shift`` is p)."""
        sign = torch.as_tensor(sign, dtype=torch.int64)
        p = torch.as_tensor(shift, dtype=torch.int64)
        if sign.shape != self.weight_shape or p.shape != self.weight_shape:
            raise ValueError(f"sign/shift shapes {tuple(sign.shape)}/{tuple(p.shape)} do not "
                             f"match the layer's {tuple(self.weight_shape)}")
        if ((sign != 0) & (sign != 1) & (sign != -1)).any():
            raise ValueError("sign must be -1, 0 or +1")
        live = sign != 0
        if (live & ((p < 0) | (p > self.max_shift))).any():
            bad = p[live & ((p < 0) | (p > self.max_shift))][0].item()
            raise ValueError(f"shift must be in 0..{self.max_shift} for "
                             f"weight_bits={self.weight_bits}, not {bad}")
        p = torch.where(live, p, 0)
        if self.mode == "ps":
            self.shift.copy_(torch.where(live, -p, -self.max_shift))
            self.sign.copy_(sign)
        else:
            w = self._parameters["weight"]
            w.copy_(sign.to(w.dtype) * torch.exp2((self.exponent - p).to(w.dtype)))

    @torch.no_grad()
    def constrain_(self) -> None:
        """Project PS parameters back into their useful ranges after an optimiser step.

        ``shift`` to ``[-P, 0]`` and ``sign`` to ``[-1, 1]``: values outside change nothing
        in the forward but would take many steps to come back.  No-op in Q mode.
        """
        if self.mode == "ps":
            self.shift.clamp_(-self.max_shift, 0)
            self.sign.clamp_(-1, 1)

    def sign_and_shift(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The integer weights: ``(sign, p)`` int64 tensors, sign in {-1, 0, 1}, p in
        ``0..P`` (0 where sign is 0); the weight is ``sign * 2**(e - p)``."""
        if self.mode == "q":
            return pow2_round(self._parameters["weight"], self.weight_bits, self.exponent)
        with torch.no_grad():
            sign = ternary_sign_ste(self.sign).to(torch.int64)
            p = -torch.round(self.shift.clamp(-self.max_shift, 0)).to(torch.int64)
        return sign, torch.where(sign != 0, p, 0)

    def quantized_weight(self) -> torch.Tensor:
        """The forward weight ``sign * 2**(e - p)``, differentiable (straight-through)."""
        if self.mode == "ps":
            k = round_ste(self.shift.clamp(-self.max_shift, 0))
            return ternary_sign_ste(self.sign) * torch.exp2(k + self.exponent)
        w = self._parameters["weight"]
        sign, p = pow2_round(w, self.weight_bits, self.exponent)
        value = sign.to(w.dtype) * torch.exp2((self.exponent - p).to(w.dtype))
        return replace_ste(w, value)

    def quantized_bias(self) -> torch.Tensor | None:
        """The forward bias: floored to ``2**-bias_frac`` when ``bias_frac`` is set, and
        saturated to ``bias_limit`` units when that is set too (straight-through gradients).

        The scaling is done in float64 (so that a large ``bias_frac`` cannot overflow
        float32) and exact there.
        """
        b = self.bias
        if b is None or self.bias_frac is None:
            return b
        scale = 2.0 ** self.bias_frac
        q = floor_ste(b.to(torch.float64) * scale)
        if self.bias_limit is not None:
            lim = float(self.bias_limit)
            q = replace_ste(q, q.clamp(-lim - 1.0, lim))
        return (q * (1.0 / scale)).to(b.dtype)

    def _shift_repr(self) -> str:
        s = f"mode={self.mode!r}, weight_bits={self.weight_bits}, exponent={self.exponent}"
        if self.bias_frac is not None:
            s += f", bias_frac={self.bias_frac}"
        return s


def _check_sizes(**sizes) -> None:
    for name, v in sizes.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, not {v!r}")


def _check_shift_args(mode, weight_bits, exponent) -> tuple[str, int, int]:
    return _check_mode(mode), check_weight_bits(weight_bits), _check_exponent(exponent)


class LinearShift(ShiftMixin, nn.Linear):
    """A fully connected layer with power-of-two weights (DeepShift ``LinearShift``).

    Parameters
    ----------
    in_features, out_features : int
        As :class:`torch.nn.Linear`.
    bias : bool
        Add a (float, optionally ``bias_frac``-floored) bias.
    mode : {"ps", "q"}
        Trainable parameters: ``shift``/``sign`` (PS) or a float ``weight`` (Q).
    weight_bits : int
        b in 2..8; shifts run 0..P with ``P = 2**(b-1) - 2``.
    exponent : int
        e in -32..32: weights are ``±2**(e - p)``.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 mode: str = "ps", weight_bits: int = 5, exponent: int = 0,
                 device=None, dtype=None):
        mode, weight_bits, exponent = _check_shift_args(mode, weight_bits, exponent)
        _check_sizes(in_features=in_features, out_features=out_features)
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self._setup_shift(mode, weight_bits, exponent)

    @classmethod
    def from_float(cls, layer: nn.Linear, *, mode: str = "ps", weight_bits: int = 5,
                   exponent: int = 0) -> LinearShift:
        """A shift layer initialised from a float :class:`torch.nn.Linear`."""
        w = layer.weight
        new = cls(layer.in_features, layer.out_features, bias=layer.bias is not None,
                  mode=mode, weight_bits=weight_bits, exponent=exponent,
                  device=w.device, dtype=w.dtype)
        new._copy_float(layer)
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.quantized_weight(), self.quantized_bias())

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, {self._shift_repr()}")


class Conv2dShift(ShiftMixin, nn.Conv2d):
    """A 2-D convolution with power-of-two weights (DeepShift ``Conv2dShift``).

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, \
padding_mode
        As :class:`torch.nn.Conv2d`.
    mode : {"ps", "q"}
        Trainable parameters: ``shift``/``sign`` (PS) or a float ``weight`` (Q).
    weight_bits : int
        b in 2..8; shifts run 0..P with ``P = 2**(b-1) - 2``.
    exponent : int
        e in -32..32: weights are ``±2**(e - p)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1,
                 padding=0, dilation=1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", *, mode: str = "ps", weight_bits: int = 5,
                 exponent: int = 0, device=None, dtype=None):
        mode, weight_bits, exponent = _check_shift_args(mode, weight_bits, exponent)
        _check_sizes(in_channels=in_channels, out_channels=out_channels)
        super().__init__(in_channels, out_channels, kernel_size, stride=stride,
                         padding=padding, dilation=dilation, groups=groups, bias=bias,
                         padding_mode=padding_mode, device=device, dtype=dtype)
        self._setup_shift(mode, weight_bits, exponent)

    @classmethod
    def from_float(cls, layer: nn.Conv2d, *, mode: str = "ps", weight_bits: int = 5,
                   exponent: int = 0) -> Conv2dShift:
        """A shift layer initialised from a float :class:`torch.nn.Conv2d`."""
        w = layer.weight
        new = cls(layer.in_channels, layer.out_channels, layer.kernel_size,
                  stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                  groups=layer.groups, bias=layer.bias is not None,
                  padding_mode=layer.padding_mode, mode=mode, weight_bits=weight_bits,
                  exponent=exponent, device=w.device, dtype=w.dtype)
        new._copy_float(layer)
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.quantized_weight(), self.quantized_bias())

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self._shift_repr()}"
