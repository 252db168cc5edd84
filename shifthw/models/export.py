"""Export a trained :class:`~shifthw.models.net.ShiftSequential` to an integer program.

The walk follows the network's structure: an input quantiser, then groups of
(shift layer, optional ReLU, activation quantiser), with MaxPool2d and Flatten between them.
Anything else is refused with an error that names the module.  :func:`trace_integers` runs the
same walk in torch and returns the integer value of every program step, so the torch model can be
compared with the golden model step by step.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from torch import nn

from .. import numerics as nx
from ..program import Flatten, InputSpec, MaxPool2d, Program, ShiftLayer
from .layers import Conv2dShift, LinearShift
from .net import link_bias
from .quant import ActQuant

__all__ = ["ExportError", "export_program", "trace_integers"]

_SKIP = (nn.Identity, nn.Dropout)


class ExportError(ValueError):
    """The model cannot become a program; the message names the module and the reason."""


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _groups(model: nn.Module):
    """Yield (kind, modules) groups of the network, checking its structure."""
    children = [(str(i), m) for i, m in model.named_children()]
    mods = [(n, m) for n, m in children if not isinstance(m, _SKIP)]
    if not mods or not isinstance(mods[0][1], ActQuant):
        raise ExportError("the network must start with an ActQuant (the input quantiser)")
    yield "input", [mods[0]]
    i = 1
    while i < len(mods):
        name, m = mods[i]
        if isinstance(m, (LinearShift, Conv2dShift)):
            group = [(name, m)]
            i += 1
            if i < len(mods) and isinstance(mods[i][1], nn.ReLU):
                group.append(mods[i])
                i += 1
            if i >= len(mods) or not isinstance(mods[i][1], ActQuant):
                raise ExportError(f"module {name} ({type(m).__name__}): a shift layer must be "
                                  f"followed by an ActQuant (after an optional ReLU)")
            group.append(mods[i])
            i += 1
            yield "shift", group
        elif isinstance(m, nn.MaxPool2d):
            if (_pair(m.padding) != (0, 0) or _pair(m.dilation) != (1, 1) or m.ceil_mode
                    or m.return_indices):
                raise ExportError(f"module {name} (MaxPool2d): only padding 0, dilation 1, "
                                  f"floor mode is supported")
            yield "maxpool", [mods[i]]
            i += 1
        elif isinstance(m, nn.Flatten):
            if m.start_dim != 1 or m.end_dim != -1:
                raise ExportError(f"module {name} (Flatten): only start_dim=1, end_dim=-1")
            yield "flatten", [mods[i]]
            i += 1
        else:
            raise ExportError(f"module {name} ({type(m).__name__}) cannot be exported: a "
                              f"network holds shift layers, ReLU, ActQuant, MaxPool2d, Flatten")


def _check_quant(name: str, q: ActQuant) -> None:
    """A quantiser the program can take its F from: enabled, and (warning) calibrated."""
    if not q.enabled:
        raise ExportError(f"module {name} (ActQuant): disabled (a float baseline's pass-through "
                          f"has no F); enable it and calibrate the model before exporting")
    lo, hi = nx.FRAC_BITS_RANGE
    if not lo <= int(q.frac_bits) <= hi:
        raise ExportError(f"module {name} (ActQuant): F = {int(q.frac_bits)} fraction bits, "
                          f"outside {lo}..{hi} (a corrupt or hand-edited frac_bits?)")
    if q.frac == 0 and float(q.max_abs.item()) == 0.0:
        warnings.warn(f"module {name} (ActQuant): F = 0 and no activation recorded: it looks "
                      f"never calibrated (train the model or call its calibrate(batches) "
                      f"before exporting)", stacklevel=3)


def _conv_padding(name: str, layer: Conv2dShift) -> tuple[int, int]:
    """The layer's zero padding as (rows, columns); ``"valid"`` is 0 and ``"same"`` (stride 1)
    is (k - 1) / 2 for odd kernels.  ``"same"`` with an even kernel pads one side more, which
    the program's symmetric padding cannot state."""
    if layer.padding_mode != "zeros":
        raise ExportError(f"module {name} (Conv2dShift): padding_mode {layer.padding_mode!r}; "
                          f"only zero padding")
    if layer.padding == "valid":
        return (0, 0)
    if layer.padding == "same":
        kernel = _pair(layer.kernel_size)
        if any(k % 2 == 0 for k in kernel):
            raise ExportError(f"module {name} (Conv2dShift): padding='same' with the even "
                              f"kernel {kernel} pads one side more than the other; only "
                              f"symmetric padding is supported (give a number)")
        return (kernel[0] // 2, kernel[1] // 2)
    return _pair(layer.padding)


def export_program(model: nn.Module, input_shape, *, preprocess: str = "",
                   meta: dict | None = None) -> Program:
    """Turn a calibrated shift network into a :class:`~shifthw.program.Program`.

    Parameters
    ----------
    model : a ShiftSequential (or any nn.Sequential of the same form), calibrated.
    input_shape : shape of one input without the batch, e.g. (1, 8, 8) or (64,).
    preprocess : how raw data becomes the real-valued input (documentation only).
    """
    act_bits = weight_bits = None
    steps = []
    frac_in = input_frac = None
    count = {"linear": 0, "conv2d": 0, "maxpool2d": 0, "flatten": 0}
    groups = list(_groups(model))        # the whole structure checked before any warning
    for _, group in groups:
        for name, m in group:
            if isinstance(m, ActQuant) and not m.enabled:
                _check_quant(name, m)
    for kind, group in groups:
        if kind == "input":
            q = group[0][1]
            _check_quant(group[0][0], q)
            act_bits, frac_in = int(q.act_bits), int(q.frac_bits)
            input_frac = frac_in
            continue
        if kind == "maxpool":
            m = group[0][1]
            count["maxpool2d"] += 1
            stride = m.stride if m.stride is not None else m.kernel_size
            steps.append(MaxPool2d(f"pool{count['maxpool2d']}", _pair(m.kernel_size),
                                   _pair(stride)))
            continue
        if kind == "flatten":
            count["flatten"] += 1
            steps.append(Flatten(f"flatten{count['flatten']}"))
            continue
        (name, layer), quant = group[0], group[-1][1]
        relu = any(isinstance(m, nn.ReLU) for _, m in group)
        _check_quant(group[-1][0], quant)
        if int(quant.act_bits) != act_bits:
            raise ExportError(f"module {group[-1][0]} (ActQuant): act_bits {quant.act_bits} "
                              f"differs from the network's {act_bits}")
        if weight_bits is None:
            weight_bits = int(layer.weight_bits)
        elif int(layer.weight_bits) != weight_bits:
            raise ExportError(f"module {name}: weight_bits {layer.weight_bits} differs from "
                              f"the network's {weight_bits}")
        sign, shift = layer.sign_and_shift()
        n = sign.shape[0]
        sign = sign.reshape(n, -1).cpu().numpy()
        shift = shift.reshape(n, -1).cpu().numpy()
        codes = nx.encode_weight(sign, shift, weight_bits)
        e = int(layer.exponent)
        lo, hi = nx.EXPONENT_RANGE
        if not lo <= e <= hi:
            raise ExportError(f"module {name}: exponent e = {e}, outside {lo}..{hi}")
        kind_name = "conv2d" if isinstance(layer, Conv2dShift) else "linear"
        count[kind_name] += 1
        extra = {}
        if kind_name == "conv2d":
            if _pair(layer.dilation) != (1, 1) or layer.groups != 1:
                raise ExportError(f"module {name} (Conv2dShift): dilation and groups must be 1")
            extra = dict(in_channels=int(layer.in_channels),
                         kernel_size=_pair(layer.kernel_size), stride=_pair(layer.stride),
                         padding=_conv_padding(name, layer))
        bias_shift = nx.max_shift(weight_bits) + frac_in - e
        if layer.bias is None:
            bias = [0] * n
        else:
            vals = layer.bias.detach().double().cpu().tolist()
            # ldexp by a power of two is exact, and so is the floor of the result.
            bias = [int(math.floor(math.ldexp(v, bias_shift))) for v in vals]
        frac_out = int(quant.frac_bits)
        steps.append(ShiftLayer(name=f"{kind_name}{count[kind_name]}", kind=kind_name,
                                codes=np.asarray(codes, dtype=np.int64), bias_fine=bias,
                                exponent=e, frac_in=frac_in, frac_out=frac_out, relu=relu,
                                **extra))
        frac_in = frac_out
    if weight_bits is None:
        raise ExportError("the network has no shift layer")
    program = Program(act_bits=act_bits, weight_bits=weight_bits,
                      input=InputSpec(tuple(int(d) for d in input_shape), input_frac,
                                      preprocess),
                      steps=steps, meta=dict(meta or {}))
    _warn_saturated_biases(program)
    return program


def _warn_saturated_biases(program: Program) -> None:
    """Warn where the contract saturates a bias (to what the accumulator holds, §4 of
    docs/numerics.md).  The shift layers' forward in a ShiftSequential saturates it the same
    way, so torch and the program agree; the warning is about the model: such a bias is far
    beyond every sum the layer's inputs can reach."""
    for s in program.layers:
        lim = nx.bias_limit(s.arith(program, program.max_shift).acc_bits)
        over = sum(1 for v in s.bias_fine if not -lim - 1 <= v <= lim)
        if over:
            warnings.warn(
                f"layer {s.name}: {over} of {s.out_features} biases exceed what its accumulator "
                f"holds (+-{lim} units of 2^-{program.max_shift + s.frac_in - s.exponent}) and "
                f"are saturated (as the torch shift layers do): such a bias is far beyond "
                f"every sum the layer's inputs can reach, often from an input calibrated on "
                f"near-zero activations (F_in={s.frac_in})", stacklevel=3)


@torch.no_grad()
def trace_integers(model: nn.Module, x: torch.Tensor) -> list[np.ndarray]:
    """Run the network in torch and return every program step's integer output.

    The values are the quantisers' outputs times 2^F (exact integers when the model runs in
    float64), in the order of :attr:`Program.steps`, so ``trace[i]`` compares with
    ``golden.run_program(...).outputs[i]``.
    """
    was_training = model.training
    model.eval()
    try:
        return _trace(model, x)
    finally:
        model.train(was_training)


def _trace(model: nn.Module, x: torch.Tensor) -> list[np.ndarray]:
    frac = None
    outs = []
    cur = x
    quant = None
    for kind, group in _groups(model):
        for _, m in group:
            if isinstance(m, (LinearShift, Conv2dShift)):
                link_bias(m, quant)     # the grid and bound export_program uses
            cur = m(cur)
            if isinstance(m, ActQuant):
                quant = m
        if kind == "input":
            frac = int(group[0][1].frac_bits)
            continue
        if kind == "shift":
            frac = int(group[-1][1].frac_bits)
        scaled = torch.ldexp(cur.double(), torch.tensor(frac, dtype=torch.float64))
        outs.append(torch.round(scaled).to(torch.int64).cpu().numpy())
    return outs
