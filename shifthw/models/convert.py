"""From float or DeepShift models to shifthw shift layers.

* :func:`fold_batchnorm` folds BatchNorm into the preceding Linear/Conv2d;
* :func:`convert_to_shift` replaces float Linear/Conv2d layers by shift layers;
* :func:`import_deepshift_checkpoint` loads weights trained with the original DeepShift
  code (PS ``shift``/``sign`` tensors or Q float weights) into our shift layers.
"""

from __future__ import annotations

import copy
import math
import os
import warnings
from collections.abc import Mapping

import torch
from torch import nn

from shifthw.models.layers import MODES, Conv2dShift, LinearShift, ShiftMixin
from shifthw.models.quant import _check_exponent, pow2_round, round_log2
from shifthw.numerics import check_weight_bits, max_shift

__all__ = ["fold_batchnorm", "convert_to_shift", "auto_exponent",
           "import_deepshift_checkpoint"]

#: The exponent names :func:`convert_to_shift` takes besides an integer.
AUTO_EXPONENTS = ("auto", "auto-headroom")

_BN = (nn.BatchNorm1d, nn.BatchNorm2d)
_FLOAT = (nn.Linear, nn.Conv2d)


def _path(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _out_features(layer: nn.Module) -> int:
    return layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels


@torch.no_grad()
def _fold_one(layer: nn.Module, bn: nn.Module, where: str) -> None:
    if type(bn) is nn.BatchNorm2d and type(layer) is not nn.Conv2d:
        raise ValueError(f"cannot fold BatchNorm2d {where!r}: it follows "
                         f"{type(layer).__name__}, not Conv2d")
    if bn.num_features != _out_features(layer):
        raise ValueError(f"cannot fold {type(bn).__name__} {where!r}: num_features="
                         f"{bn.num_features} but the layer before has "
                         f"{_out_features(layer)} outputs")
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError(f"cannot fold {type(bn).__name__} {where!r}: it has no running "
                         "statistics (track_running_stats=False)")
    w = layer.weight
    dt = torch.float64
    scale = (bn.running_var.to(dt) + bn.eps).rsqrt()
    shift = -bn.running_mean.to(dt) * scale
    if bn.affine:
        scale = scale * bn.weight.to(dt)
        shift = shift * bn.weight.to(dt) + bn.bias.to(dt)
    bias = layer.bias.to(dt) if layer.bias is not None else torch.zeros_like(scale)
    new_w = w.to(dt) * scale.reshape(-1, *([1] * (w.dim() - 1)))
    new_b = bias * scale + shift
    w.copy_(new_w.to(w.dtype))
    if layer.bias is None:
        layer.bias = nn.Parameter(new_b.to(w.dtype))
    else:
        layer.bias.copy_(new_b.to(layer.bias.dtype))


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every BatchNorm1d/2d that directly follows a Linear/Conv2d in an nn.Sequential.

    The layer's weight and bias absorb the BatchNorm's running statistics and affine
    parameters (its eval-mode behaviour) and the BatchNorm becomes :class:`nn.Identity`.
    Works in place, recursively through nested modules.

    Parameters
    ----------
    model : torch.nn.Module
        Model to fold (changed in place).

    Returns
    -------
    torch.nn.Module
        ``model``.

    Raises
    ------
    ValueError
        For a BatchNorm that cannot be folded (not directly after a float Linear/Conv2d in
        a Sequential, mismatched size, no running statistics), naming its module path.
    """
    if isinstance(model, _BN):
        raise ValueError("cannot fold a BatchNorm that is the whole model")
    folded: set[int] = set()
    for prefix, seq in list(model.named_modules()):
        if not isinstance(seq, nn.Sequential):
            continue
        names = list(seq._modules)
        for i, name in enumerate(names):
            bn = seq._modules[name]
            if not isinstance(bn, _BN):
                continue
            where = _path(prefix, name)
            prev = seq._modules[names[i - 1]] if i > 0 else None
            if type(prev) not in _FLOAT:
                what = type(prev).__name__ if prev is not None else "nothing"
                raise ValueError(f"cannot fold {type(bn).__name__} {where!r}: it follows "
                                 f"{what}, not a float Linear/Conv2d in the same Sequential")
            _fold_one(prev, bn, where)
            folded.add(id(bn))
            setattr(seq, name, nn.Identity())
    for name, m in model.named_modules():
        if isinstance(m, _BN) and id(m) not in folded:
            raise ValueError(f"cannot fold {type(m).__name__} {name!r}: it is not inside an "
                             "nn.Sequential directly after a Linear/Conv2d")
    return model


def auto_exponent(weight: torch.Tensor, *, headroom: bool = False,
                  weight_bits: int | None = None) -> int:
    """A layer exponent e from its largest weight (0 for all-zero), clamped to -32..32.

    By default ``round(log2(max|w|))`` in the log domain the weights are rounded in: the
    power of two the largest weight becomes, so every code is used (DeepShift rounds a
    weight to ``2**k`` up to ``2**(k + 1/2)``).  With ``headroom``, ``ceil(log2(max|w|))``:
    the smallest e with every ``|w| <= 2**e``, which leaves the top code unused when the
    largest weight is below ``2**(e - 1/2)`` but gives weights room to grow (training from
    a random initialisation).  Measured on the digits CNN converted from a float checkpoint
    and fine-tuned two epochs: b = 3 PS 0.853 with headroom, 0.956 without (Q 0.922 /
    0.978); b = 5 the same either way.  Trained from scratch five epochs, b = 5, headroom
    did better (MLP PS 0.828 / 0.797, CNN Q 0.872 / 0.800).  Exact (from the binary
    exponent).

    With ``weight_bits`` whose codes have one magnitude (b = 2: 0 or ``+-2**e``) and not
    ``headroom``, e is instead the least-squares one (the e at or below that rule whose
    rounded weights are nearest to ``weight``): the one level should sit at the typical
    weight, not at the largest, which rounds most weights to zero.  Measured on the digits
    CNN converted from a float checkpoint (0.969), b = 2, before / after two epochs'
    fine-tuning: Q 0.097 / 0.022 with the largest weight's rule, 0.683 / 0.914 least
    squares; PS 0.294 / 0.353 and 0.722 / 0.844.  (At b = 3 least squares measured a little
    worse, PS 0.942 against 0.964, so it is kept to one magnitude.)
    """
    peak = float(weight.detach().abs().max().item()) if weight.numel() else 0.0
    if not math.isfinite(peak):
        raise ValueError("auto_exponent: weights must be finite")
    if peak == 0.0:
        return 0
    m, ex = math.frexp(peak)  # peak = m * 2**ex, m in [0.5, 1)
    if headroom:
        e = ex - 1 if m == 0.5 else ex
    else:
        e = int(round_log2(torch.tensor(peak, dtype=torch.float64)))
        if weight_bits is not None and max_shift(check_weight_bits(weight_bits)) == 0:
            e = _least_squares_exponent(weight, weight_bits, e)
    return min(max(e, -32), 32)


def _least_squares_exponent(weight: torch.Tensor, weight_bits: int, top: int) -> int:
    """The e in ``top - 16 .. top`` whose rounded weights (:func:`pow2_round`) have the
    least squared error against ``weight``; of equal ones the largest."""
    w = weight.detach().to(torch.float64)
    best = None
    for e in range(top, top - 17, -1):
        sign, p = pow2_round(w, weight_bits, e)
        err = float(((w - sign * torch.exp2((e - p).to(torch.float64))) ** 2).sum())
        if best is None or err < best[0]:
            best = (err, e)
    return best[1]


def _set_module(model: nn.Module, path: str, new: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, name, new)


def convert_to_shift(model: nn.Module, *, mode: str = "ps", weight_bits: int = 5,
                     exponent: int | str = 0, last_n: int | None = None,
                     inplace: bool = False) -> nn.Module:
    """Replace float ``nn.Linear``/``nn.Conv2d`` layers by shift layers.

    BatchNorm is folded first (:func:`fold_batchnorm`).  Layers are found with
    ``named_modules()`` in any module (Sequential or not) and replaced in their parent;
    each new layer is initialised from the float weights and bias (PS: ``round(log2|w|)``
    and ``sign(w)`` via :func:`~shifthw.models.layers.ps_init`; Q: the weight is copied).

    Parameters
    ----------
    model : torch.nn.Module
        Float model.
    mode : {"ps", "q"}
        Mode of the new layers.
    weight_bits : int
        b of the new layers.
    exponent : int, "auto" or "auto-headroom"
        e of every new layer, or per layer from its largest weight (:func:`auto_exponent`):
        ``"auto"`` the power of two it rounds to (at b = 2, whose codes have one magnitude,
        the least-squares e instead), ``"auto-headroom"`` the smallest e with every
        ``|w| <= 2**e`` (room for weights to grow: training from scratch).
    last_n : int or None
        Convert only the last N float layers (``named_modules`` order), like DeepShift's
        shift depth; None (or N at least the layer count) converts all, 0 none.
    inplace : bool
        Change ``model`` itself instead of a deep copy.

    Returns
    -------
    torch.nn.Module
        The converted model (``model`` itself when ``inplace``, or when ``model`` is a
        single layer, the new layer).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    check_weight_bits(weight_bits)
    if exponent not in AUTO_EXPONENTS:
        _check_exponent(exponent)
    if last_n is not None and (isinstance(last_n, bool) or not isinstance(last_n, int)
                               or last_n < 0):
        raise ValueError(f"last_n must be None or a non-negative integer, not {last_n!r}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, not {type(model).__name__}")
    if not inplace:
        model = copy.deepcopy(model)
    fold_batchnorm(model)
    targets = [(name, m) for name, m in model.named_modules() if type(m) in _FLOAT]
    # Layers with weights that are not plain Linear / Conv2d stay float: say which.
    left = [f"{name or 'model'} ({type(m).__name__})" for name, m in model.named_modules()
            if type(m) not in _FLOAT and not isinstance(m, (LinearShift, Conv2dShift))
            and isinstance(getattr(m, "weight", None), torch.Tensor)]
    if left:
        warnings.warn(f"convert_to_shift converts nn.Linear and nn.Conv2d only; these layers "
                      f"stay float: {', '.join(left)}", stacklevel=2)
    if last_n is not None:
        targets = targets[len(targets) - min(last_n, len(targets)):]
    for name, layer in targets:
        e = (auto_exponent(layer.weight, headroom=exponent == "auto-headroom",
                           weight_bits=weight_bits)
             if exponent in AUTO_EXPONENTS else exponent)
        cls = LinearShift if isinstance(layer, nn.Linear) else Conv2dShift
        new = cls.from_float(layer, mode=mode, weight_bits=weight_bits, exponent=e)
        new.train(layer.training)
        if name == "":
            return new
        _set_module(model, name, new)
    return model


def _load_state(source) -> dict[str, torch.Tensor]:
    if isinstance(source, (str, os.PathLike)):
        try:
            state = torch.load(source, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise
        except Exception as exc:
            raise ValueError(f"cannot read a DeepShift checkpoint from {str(source)!r}: "
                             f"{exc}") from exc
        where = f"checkpoint {str(source)!r}"
    else:
        state = source
        where = "checkpoint"
    if isinstance(state, Mapping) and "state_dict" in state \
            and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise ValueError(f"{where} is not a state dict (a mapping of tensors)")
    keys = list(state)
    # DeepShift trains with nn.DataParallel, whose keys start with "module.".
    if keys and all(k.startswith("module.") for k in keys):
        state = {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def _tensor(state, key: str, shape, layer: str) -> torch.Tensor:
    t = state[key]
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"layer {layer!r}: {key!r} is not a tensor")
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"layer {layer!r}: {key!r} has shape {tuple(t.shape)}, the model "
                         f"expects {tuple(shape)}")
    t = t.detach().to(torch.float64)
    if not torch.isfinite(t).all():
        raise ValueError(f"layer {layer!r}: {key!r} holds NaN or inf")
    return t


@torch.no_grad()
def import_deepshift_checkpoint(state_dict_or_path, model: nn.Module, *,
                                weight_bits: int = 5) -> nn.Module:
    """Load a checkpoint trained with the original DeepShift code into ``model``.

    Every shift layer of ``model`` (LinearShift/Conv2dShift, any mode, exponent 0) must
    have a counterpart under the same name in the checkpoint:

    * DeepShift-PS: float ``<layer>.shift`` (values <= 0) and ``<layer>.sign``; our
      ``p = -round(shift)`` and sign = ``sign(round(sign))`` (ternary);
    * DeepShift-Q: float ``<layer>.weight``, rounded with
      :func:`~shifthw.models.quant.pow2_round` at e = 0 (so tiny weights become 0 where
      DeepShift would clamp them up to ``2**-P``);

    plus ``<layer>.bias`` when the layer has a bias.  Other model parameters and buffers
    found in the checkpoint under their names (e.g. of a BatchNorm) are copied too; keys
    that match nothing give a warning.  A ``{"state_dict": ...}`` wrapper and a
    ``module.`` prefix (DataParallel) are unwrapped.

    Parameters
    ----------
    state_dict_or_path : Mapping or str or os.PathLike
        The checkpoint's state dict, or a file saved by ``torch.save``.
    model : torch.nn.Module
        Our model with matching layer names (changed in place).
    weight_bits : int
        b that the checkpoint was trained with; shifts must lie in ``-P..0``.

    Returns
    -------
    torch.nn.Module
        ``model``.

    Raises
    ------
    ValueError
        Naming the layer and value, for what our layers cannot represent: a rounded
        shift below ``-P`` or above 0 (of a non-zero weight), a missing or mis-shaped
        tensor, a layer with a different ``weight_bits`` or a non-zero exponent.
    """
    big = max_shift(weight_bits)
    state = _load_state(state_dict_or_path)
    used: set[str] = set()
    shift_layers = [(n, m) for n, m in model.named_modules() if isinstance(m, ShiftMixin)]
    if not shift_layers:
        raise ValueError("model has no shift layers (LinearShift/Conv2dShift) to import into")
    for name, layer in shift_layers:
        if layer.weight_bits != weight_bits:
            raise ValueError(f"layer {name!r} has weight_bits={layer.weight_bits}, the "
                             f"checkpoint weight_bits={weight_bits}")
        if layer.exponent != 0:
            raise ValueError(f"layer {name!r} has exponent={layer.exponent}; DeepShift "
                             "weights need exponent 0")
        shape = layer.weight_shape
        k_shift, k_sign, k_w = f"{name}.shift", f"{name}.sign", f"{name}.weight"
        if k_shift in state or k_sign in state:
            for key in (k_shift, k_sign):
                if key not in state:
                    raise ValueError(f"layer {name!r}: checkpoint has no {key!r}")
            shift = torch.round(_tensor(state, k_shift, shape, name))
            sign = torch.sign(torch.round(_tensor(state, k_sign, shape, name)))
            live = sign != 0
            for bad, what in ((live & (shift > 0), "positive"),
                              (live & (shift < -big), f"below -{big}")):
                if bad.any():
                    value = shift[bad][0].item()
                    raise ValueError(f"layer {name!r}: shift {value:g} is {what}, not "
                                     f"representable with weight_bits={weight_bits} "
                                     f"(shifts must be in -{big}..0)")
            sign_i = sign.to(torch.int64)
            p = torch.where(live, -shift, 0).to(torch.int64)
            used.update((k_shift, k_sign))
        elif k_w in state:
            sign_i, p = pow2_round(_tensor(state, k_w, shape, name), weight_bits, 0)
            used.add(k_w)
        else:
            raise ValueError(f"layer {name!r}: checkpoint has neither {k_shift!r}/{k_sign!r} "
                             f"(DeepShift-PS) nor {k_w!r} (DeepShift-Q)")
        k_b = f"{name}.bias"
        if layer.bias is not None:
            if k_b not in state:
                raise ValueError(f"layer {name!r}: checkpoint has no {k_b!r}")
            bias = _tensor(state, k_b, layer.bias.shape, name)
            layer.bias.copy_(bias.to(layer.bias.dtype))
            used.add(k_b)
        elif k_b in state:
            raise ValueError(f"layer {name!r} has no bias but the checkpoint has {k_b!r}")
        layer.load_sign_and_shift(sign_i, p)
    shift_names = {n for n, _ in shift_layers}
    own = model.state_dict(keep_vars=True)
    for key, target in own.items():
        if key in used or key.rpartition(".")[0] in shift_names or key not in state:
            continue
        value = state[key]
        if not isinstance(value, torch.Tensor) or value.shape != target.shape:
            raise ValueError(f"checkpoint entry {key!r} does not match the model's "
                             f"shape {tuple(target.shape)}")
        target.data.copy_(value)
        used.add(key)
    unused = sorted(set(state) - used)
    if unused:
        warnings.warn(f"DeepShift checkpoint entries not used: {unused[:8]}"
                      + (" ..." if len(unused) > 8 else ""), stacklevel=2)
    return model
