"""The golden model: exactly what the hardware computes, in numpy integers.

Every function follows the numeric contract (:mod:`shifthw.numerics`, ``docs/numerics.md``).
The hardware, the testbenches and the PyTorch model are all compared against
:func:`run_program`'s per-step integer outputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from . import numerics as nx
from .program import Flatten, MaxPool2d, Program, ShiftLayer

__all__ = ["shift_matmul", "im2col", "maxpool2d", "layer_forward", "quantize_input",
           "run_program", "GoldenRun"]


def _int_dtype(acc_bits: int):
    # Above 62 bits (very wide guard bits at weight_bits 7..8) fall back to Python ints.
    return np.int64 if acc_bits <= 62 else object


def shift_matmul(x, codes, bias_q, arith: nx.LayerArith, *, chunk: int | None = None):
    """Accumulators of a shift layer: ``acc[m, n] = bias_q[n] + sum_k term(x[m, k], codes[n, k])``.

    Parameters
    ----------
    x : (M, K) integer array of A-bit activations.
    codes : (N, K) integer array of weight codes.
    bias_q : (N,) biases at the accumulator scale (already saturated).
    arith : the layer's arithmetic; ``arith.acc_bits`` narrower than
        ``arith.natural_acc_bits`` makes the accumulator saturate.
    chunk : with a narrow accumulator, the order of saturation: bias first, then after every
        ``chunk`` terms (the hardware's rows R).  Ignored at the natural width, where no
        saturation can occur and the order does not matter.

    Returns
    -------
    (M, N) accumulator values.
    """
    dt = _int_dtype(max(arith.acc_bits, arith.natural_acc_bits))
    x = np.asarray(x).astype(dt)
    codes = np.asarray(codes)
    m, k = x.shape
    if codes.shape[1] != k:
        raise ValueError(f"codes have fan-in {codes.shape[1]}, activations {k}")
    lo, hi = nx.act_min(arith.act_bits), nx.act_max(arith.act_bits)
    if x.size and (x.min() < lo or x.max() > hi):
        raise ValueError(f"activations must be {arith.act_bits}-bit values ({lo}..{hi})")
    sign, shift = nx.decode_weight(codes, arith.weight_bits)
    shifted = x << arith.guard_bits
    narrow = arith.acc_bits < arith.natural_acc_bits
    step = k if not narrow else (chunk or 1)
    acc = np.broadcast_to(np.asarray(bias_q).astype(dt), (m, codes.shape[0])).copy()
    for k0 in range(0, k, step):
        part = np.zeros_like(acc)
        sl = slice(k0, k0 + step)
        for p in np.unique(shift[:, sl][sign[:, sl] != 0]):
            # Group the terms by shift: one exact integer matmul with the +-1/0 signs.
            mask = np.where(shift[:, sl] == p, sign[:, sl], 0).astype(dt)
            part = part + (shifted[:, sl] >> int(p)) @ mask.T
        acc = acc + part
        if narrow:
            acc = nx.saturate(acc, arith.acc_bits)
    return acc


def im2col(x, layer: ShiftLayer):
    """Patches of a (B, C, H, W) tensor as rows: (B*OH*OW, C*kh*kw), PyTorch weight order.

    Rows run over (batch, output row, output column); zero padding is the integer 0 (the
    real 0 at any F).  This is the order in which the host streams patches to the engine.
    """
    x = np.asarray(x)
    b, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = layer.kernel_size, layer.stride, layer.padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    cols = np.empty((b, oh, ow, c, kh, kw), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, :, :, i, j] = xp[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw] \
                .transpose(0, 2, 3, 1)
    return cols.reshape(b * oh * ow, c * kh * kw), (oh, ow)


def maxpool2d(x, step: MaxPool2d):
    """Max pooling of (B, C, H, W) integers (no padding, floor of the output size)."""
    x = np.asarray(x)
    (kh, kw), (sh, sw) = step.kernel_size, step.stride
    b, c, h, w = x.shape
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    out = None
    for i in range(kh):
        for j in range(kw):
            win = x[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw]
            out = win if out is None else np.maximum(out, win)
    return out


def layer_forward(layer: ShiftLayer, program: Program, x, *, guard_bits: int,
                  acc_bits: int | None = None, chunk: int | None = None):
    """One shift layer on a batch of integer inputs; returns (outputs, accumulators)."""
    arith = layer.arith(program, guard_bits, acc_bits)
    bias = layer.bias_q(program, guard_bits, acc_bits)
    x = np.asarray(x)
    if layer.kind == "linear":
        acc = shift_matmul(x, layer.codes, bias, arith, chunk=chunk)
    else:
        cols, (oh, ow) = im2col(x, layer)
        flat = shift_matmul(cols, layer.codes, bias, arith, chunk=chunk)
        acc = flat.reshape(x.shape[0], oh, ow, -1).transpose(0, 3, 1, 2)
    out = nx.requantize(acc, arith.out_shift, arith.act_bits, relu=arith.relu,
                        round_half_up=arith.round_half_up)
    return out, acc


def _input_batch(program: Program, x: np.ndarray) -> np.ndarray:
    """``x`` as (B, *program.input.shape): flat rows for an image input, or images for a
    flat input (an MLP on images), reshaped in the same element order; any other shape of
    the same size (channels last, say) would scramble the elements, so it is refused."""
    shape = tuple(program.input.shape)
    if x.shape[1:] == shape:
        return x
    flat = x.ndim == 2 or len(shape) == 1
    if flat and x.ndim >= 2 and int(np.prod(x.shape[1:])) == int(np.prod(shape)):
        return x.reshape((x.shape[0],) + shape)
    raise ValueError(f"input batch has shape {x.shape}, program expects (B,) + {shape} (or "
                     f"flat rows (B, {int(np.prod(shape))}))")


def quantize_input(program: Program, x):
    """Real-valued network input (already preprocessed) to A-bit integers."""
    x = _input_batch(program, np.asarray(x, dtype=np.float64))
    return nx.quantize_act(x, program.input.frac_bits, program.act_bits)


@dataclass
class GoldenRun:
    """Every step's integer output of one batch (``outputs[i]`` is after ``steps[i]``)."""

    input: np.ndarray
    outputs: list[np.ndarray]
    guard_bits: int

    @property
    def logits(self) -> np.ndarray:
        return self.outputs[-1]

    def predictions(self) -> np.ndarray:
        """Argmax of the last output (first index on ties)."""
        return np.asarray(self.logits).reshape(len(self.logits), -1).argmax(axis=1)


def run_program(program: Program, x, *, guard_bits: int | None = None, quantized: bool = False,
                acc_bits=None, chunk: int | None = None) -> GoldenRun:
    """Run a whole program on a batch.

    Parameters
    ----------
    x : real-valued inputs (B, *input.shape), or integers with ``quantized=True``.
    guard_bits : G; default P (exact accumulation).
    acc_bits, chunk : a narrower accumulator than the contract's natural width and the
        hardware rows that order its saturation (see :func:`shift_matmul`); ``acc_bits`` is
        one width for every layer, or a mapping of layer names to widths (None: the layer's
        natural width), as an engine gives them
        (:func:`shifthw.rtl_gen.host.golden_program`).
    """
    g = program.max_shift if guard_bits is None else nx.check_guard_bits(
        guard_bits, program.weight_bits)
    if quantized:
        q = _input_batch(program, np.asarray(x, dtype=np.int64))
    else:
        q = quantize_input(program, x)
    cur, outs = q, []
    for s in program.steps:
        if isinstance(s, ShiftLayer):
            acc = acc_bits.get(s.name) if isinstance(acc_bits, Mapping) else acc_bits
            cur, _ = layer_forward(s, program, cur, guard_bits=g, acc_bits=acc, chunk=chunk)
        elif isinstance(s, MaxPool2d):
            cur = maxpool2d(cur, s)
        elif isinstance(s, Flatten):
            cur = cur.reshape(cur.shape[0], -1)
        outs.append(cur)
    return GoldenRun(input=q, outputs=outs, guard_bits=g)
