"""ShiftSequential: the one form every exportable shifthw network takes.

The grammar (checked by :meth:`ShiftSequential.check_structure`)::

    net    := ActQuant (between group)* group
    group  := layer [ReLU] ActQuant
    layer  := LinearShift | Conv2dShift        (nn.Linear | nn.Conv2d in float mode)
    between:= MaxPool2d | Flatten               (any number, only between groups)

``nn.Identity`` and ``nn.Dropout`` may stand anywhere and are skipped (what
``fold_batchnorm`` leaves in a BatchNorm's place; dropout is the identity in eval mode, and
export leaves both out).

The first ActQuant quantises the network input; every group's ActQuant quantises that
layer's output, and the last one gives the logits.  A MaxPool2d must have integer kernel
and stride (or pairs of them), no padding, no dilation, no ceil mode.  Max-pooling and
flattening commute with the quantiser, so a layer's input F is that of the nearest ActQuant
before it.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from shifthw.models.layers import Conv2dShift, LinearShift, ShiftMixin
from shifthw.models.quant import ActQuant
from shifthw.numerics import acc_bits_for, bias_limit

__all__ = ["ShiftSequential", "link_bias"]

_SHIFT = (LinearShift, Conv2dShift)
_FLOAT = (nn.Linear, nn.Conv2d)
_SKIP = (nn.Identity, nn.Dropout)


def link_bias(layer: ShiftMixin, quant: ActQuant | None) -> None:
    """Set ``layer``'s bias grid and bound from the ActQuant ``quant`` before it, as the
    contract has them at G = P (docs/numerics.md §4): ``bias_frac = P + F_in - e`` and
    ``bias_limit = bias_limit(acc_bits_for(A, P, K))``.  Both None (a float bias) when no
    enabled quantiser is before the layer."""
    if quant is None or not quant.enabled:
        layer.bias_frac = layer.bias_limit = None
        return
    fan_in = int(torch.Size(layer.weight_shape[1:]).numel())
    layer.bias_frac = layer.max_shift + quant.frac - layer.exponent
    layer.bias_limit = bias_limit(acc_bits_for(quant.act_bits, layer.max_shift, fan_in))


def _describe(i: int, m: nn.Module) -> str:
    return f"module {i} ({type(m).__name__})"


def _ints(v) -> tuple | None:
    """``v`` as a (rows, columns) pair of ints (an int stands for both), or None."""
    pair = tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    if len(pair) != 2 or any(isinstance(x, bool) or not isinstance(x, int) for x in pair):
        return None
    return pair


def _check_pool(i: int, m: nn.MaxPool2d) -> None:
    for attr in ("kernel_size", "stride"):
        v = getattr(m, attr)
        pair = _ints(v)
        if pair is None or min(pair) < 1:
            raise ValueError(f"{_describe(i, m)}: {attr} must be a positive integer or a "
                             f"pair of them, not {v!r}")
    if _ints(m.padding) != (0, 0):
        raise ValueError(f"{_describe(i, m)}: padding must be 0, not {m.padding!r}")
    if _ints(m.dilation) != (1, 1):
        raise ValueError(f"{_describe(i, m)}: dilation must be 1, not {m.dilation!r}")
    if m.ceil_mode or m.return_indices:
        raise ValueError(f"{_describe(i, m)}: ceil_mode and return_indices must be False")


class ShiftSequential(nn.Sequential):
    """A sequential network in shifthw's exportable form (see the module docstring).

    Built like :class:`torch.nn.Sequential`.  In float mode (baselines) the layers are
    plain ``nn.Linear``/``nn.Conv2d`` and the ActQuants may be disabled.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Each shift layer's bias grid and bound follow the ActQuant before it as that
        # quantiser is now: its F moves during QAT, and load_state_dict brings new F
        # without a link().
        last: ActQuant | None = None
        for m in self:
            if isinstance(m, _SHIFT):
                link_bias(m, last)
            x = m(x)
            if isinstance(m, ActQuant):
                last = m
        return x

    def quantizers(self) -> list[ActQuant]:
        """The ActQuant modules, in order."""
        return [m for m in self if isinstance(m, ActQuant)]

    def layers(self) -> list[nn.Module]:
        """The weight layers (shift or float), in order."""
        return [m for m in self if isinstance(m, _FLOAT)]

    def shift_layers(self) -> list[ShiftMixin]:
        """The shift layers, in order."""
        return [m for m in self if isinstance(m, _SHIFT)]

    @property
    def is_float(self) -> bool:
        """True when no layer is a shift layer (a float baseline)."""
        return not self.shift_layers()

    def check_structure(self, *, allow_float: bool = False) -> None:
        """Raise ValueError, naming the module index and type, unless the net follows the
        grammar of the module docstring.

        Parameters
        ----------
        allow_float : bool
            Accept plain ``nn.Linear``/``nn.Conv2d`` and disabled ActQuants (float
            baselines).  By default (exportable form) every layer must be a shift layer,
            every ActQuant enabled, and all ActQuants must share one ``act_bits``.
        """
        # Identity and Dropout (what fold_batchnorm leaves, regularisation) change nothing
        # the program computes: skipped, as export skips them; indices stay the module's.
        mods = [(i, m) for i, m in enumerate(self) if not isinstance(m, _SKIP)]
        if not mods:
            raise ValueError("ShiftSequential is empty: it needs an input ActQuant and at "
                             "least one layer group")

        def describe(j: int) -> str:
            return _describe(*mods[j])

        if not isinstance(mods[0][1], ActQuant):
            raise ValueError(f"{describe(0)}: the first module must be an ActQuant "
                             "(the network input)")
        i, n, groups = 1, len(mods), 0
        while i < n:
            m = mods[i][1]
            if isinstance(m, nn.MaxPool2d):
                _check_pool(mods[i][0], m)
                i += 1
                continue
            if isinstance(m, nn.Flatten):
                i += 1
                continue
            if not isinstance(m, _FLOAT):
                raise ValueError(f"{describe(i)}: expected a LinearShift/Conv2dShift, "
                                 "MaxPool2d or Flatten here")
            if not allow_float and not isinstance(m, _SHIFT):
                raise ValueError(f"{describe(i)}: float layer in an exportable network "
                                 "(convert it with convert_to_shift)")
            i += 1
            if i < n and isinstance(mods[i][1], nn.ReLU):
                i += 1
            if i >= n or not isinstance(mods[i][1], ActQuant):
                got = describe(i) if i < n else "the end of the network"
                raise ValueError(f"{got}: expected an ActQuant after the layer "
                                 f"{describe(i - 1)}")
            i += 1
            groups += 1
        if groups == 0:
            raise ValueError("ShiftSequential has no layer group (layer, ReLU, ActQuant)")
        if not isinstance(mods[-1][1], ActQuant):
            raise ValueError(f"{describe(n - 1)}: the network must end with the "
                             "ActQuant of its last layer")
        if not allow_float:
            bits = mods[0][1].act_bits
            for j, m in mods:
                if isinstance(m, ActQuant):
                    if not m.enabled:
                        raise ValueError(f"{_describe(j, m)}: disabled in an exportable "
                                         "network")
                    if m.act_bits != bits:
                        raise ValueError(f"{_describe(j, m)}: act_bits={m.act_bits}, the "
                                         f"network input has act_bits={bits}")

    def reset_observers(self) -> None:
        """Reset ``max_abs`` of every ActQuant (start of a training epoch)."""
        for q in self.quantizers():
            q.reset()

    def constrain_(self) -> None:
        """Project PS parameters into their ranges (after an optimiser step)."""
        for m in self.shift_layers():
            m.constrain_()

    @torch.no_grad()
    def calibrate(self, batches: Iterable) -> list[int]:
        """Fix every ActQuant's F from data, in order, then :meth:`link`.

        Each ActQuant observes its input with every quantiser upstream of it already
        fixed and quantising (one pass that carries the quantised activations from stage
        to stage, equal to one full pass per ActQuant), and gets
        ``F = calibrate_frac_bits(max |x|, act_bits)``.  Runs in eval mode and restores
        the training flag.

        Parameters
        ----------
        batches : iterable of torch.Tensor or of (x, y) tuples
            Inputs of the network.

        Returns
        -------
        list of int
            The new F of every ActQuant, in order.
        """
        self.check_structure(allow_float=True)
        was_training = self.training
        self.eval()
        try:
            acts = [b[0] if isinstance(b, (tuple, list)) else b for b in batches]
            if not acts:
                raise ValueError("calibrate needs at least one batch")
            frac = []
            pos = 0
            for i, m in enumerate(self):
                if not isinstance(m, ActQuant):
                    continue
                stage = list(self)[pos:i]
                for mod in stage:
                    acts = [mod(a) for a in acts]
                m.reset()
                for a in acts:
                    m.record(a)
                frac.append(m.calibrate_from_max())
                acts = [m(a) for a in acts]
                pos = i + 1
            self.link()
        finally:
            self.train(was_training)
        return frac

    def link(self) -> None:
        """Set every shift layer's ``bias_frac = P + F_in - e`` from the ActQuant before
        it (None when that ActQuant is disabled)."""
        self.check_structure(allow_float=True)
        last: ActQuant | None = None
        for m in self:
            if isinstance(m, ActQuant):
                last = m
            elif isinstance(m, _SHIFT):
                link_bias(m, last)
