"""The integer program: what a trained shift network becomes before it meets hardware.

A :class:`Program` holds, per layer, everything the golden model and the hardware need:
weight codes (``weight_bits`` each, :func:`shifthw.numerics.weight_code_layout`), the bias,
the exponent ``e``, the fraction bits of input and output, ReLU and rounding flags, and the
pooling and flatten steps between layers.  It is independent of the guard bits G: G is a
property of the hardware (or golden run) that executes it; the bias is stored at the finest
scale (G = P) and each G derives its own (``docs/numerics.md``).

The file format (``.shiftprog``) is JSON, versioned, documented in ``docs/program.md``; the
weight codes are bit-packed (LSB first, ``weight_bits`` per code) and base64-encoded.
"""

from __future__ import annotations

import base64
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np

from . import numerics as nx
from .files import write_texts_atomic

__all__ = [
    "FORMAT", "VERSION", "ProgramError", "InputSpec", "ShiftLayer", "MaxPool2d", "Flatten",
    "Program", "pack_codes", "unpack_codes", "is_program_file", "load_program",
    "save_program",
]

FORMAT = "shifthw.shiftprog"
VERSION = 1


class ProgramError(ValueError):
    """A program (or .shiftprog file) that is malformed; the message names what is wrong."""


def pack_codes(codes: np.ndarray, weight_bits: int) -> bytes:
    """Pack codes LSB-first, ``weight_bits`` bits each, into bytes (last byte zero-padded)."""
    b = nx.check_weight_bits(weight_bits)
    flat = np.asarray(codes, dtype=np.int64).ravel()
    if flat.size and (flat.min() < 0 or flat.max() >= 1 << b):
        raise ProgramError(f"weight codes must be in 0..{(1 << b) - 1} for weight_bits={b}")
    bits = ((flat[:, None] >> np.arange(b)) & 1).astype(np.uint8).ravel()
    return np.packbits(bits, bitorder="little").tobytes()


def unpack_codes(blob: bytes, count: int, weight_bits: int) -> np.ndarray:
    """Inverse of :func:`pack_codes`: ``count`` codes as int64."""
    b = nx.check_weight_bits(weight_bits)
    need = math.ceil(count * b / 8)
    if len(blob) != need:
        raise ProgramError(f"packed weights hold {len(blob)} bytes, expected {need} "
                           f"for {count} codes of {b} bits")
    bits = np.unpackbits(np.frombuffer(blob, dtype=np.uint8), bitorder="little")
    if bits[count * b:].any():
        # The writer pads with zeros: set padding bits mean a corrupt or foreign blob.
        raise ProgramError(f"packed weights: the last byte's {len(bits) - count * b} padding "
                           f"bit(s) after {count} codes of {b} bits are not zero")
    bits = bits[: count * b].reshape(count, b).astype(np.int64)
    return (bits << np.arange(b)).sum(axis=1)


@dataclass(frozen=True)
class InputSpec:
    """The network input: its shape (C, H, W) or (K,), and its quantisation F."""

    shape: tuple[int, ...]
    frac_bits: int
    preprocess: str = ""


@dataclass
class ShiftLayer:
    """A Linear or Conv2d layer with shift weights.

    ``codes`` has shape (N, K): one row per output channel, K in PyTorch's flattening order
    (for Conv2d: in_channel, kernel row, kernel column).  ``bias_fine`` is the bias at the
    finest accumulator scale, ``floor(b * 2**(P + F_in - e))`` (Python ints, unsaturated).
    """

    name: str
    kind: str  # "linear" | "conv2d"
    codes: np.ndarray
    bias_fine: list[int]
    exponent: int
    frac_in: int
    frac_out: int
    relu: bool
    round_half_up: bool = False
    # conv2d only
    in_channels: int = 0
    kernel_size: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)

    @property
    def out_features(self) -> int:
        return int(self.codes.shape[0])

    @property
    def fan_in(self) -> int:
        return int(self.codes.shape[1])

    def arith(self, program: "Program", guard_bits: int, acc_bits: int | None = None):
        """This layer's :class:`~shifthw.numerics.LayerArith` for guard bits G."""
        return nx.LayerArith(act_bits=program.act_bits, weight_bits=program.weight_bits,
                             guard_bits=guard_bits, exponent=self.exponent,
                             frac_in=self.frac_in, frac_out=self.frac_out, fan_in=self.fan_in,
                             relu=self.relu, round_half_up=self.round_half_up,
                             acc_bits=acc_bits)

    def bias_q(self, program: "Program", guard_bits: int, acc_bits: int | None = None):
        """Bias at the accumulator scale of G: ``floor(b*2**(G+F_in-e))``, saturated."""
        a = self.arith(program, guard_bits, acc_bits)
        drop = nx.max_shift(program.weight_bits) - a.guard_bits
        lim = nx.bias_limit(a.acc_bits)
        # Above 62 bits (wide guard bits at weight_bits 7..8) Python ints, as the golden
        # model's accumulators.
        return np.array([min(max(v >> drop, -lim - 1), lim) for v in self.bias_fine],
                        dtype=np.int64 if a.acc_bits <= 62 else object)


@dataclass(frozen=True)
class MaxPool2d:
    """Max pooling on the integer grid (no padding)."""

    name: str
    kernel_size: tuple[int, int]
    stride: tuple[int, int]


@dataclass(frozen=True)
class Flatten:
    """Reorders (C, H, W) into C*H*W, PyTorch order; changes no value."""

    name: str


Step = Union[ShiftLayer, MaxPool2d, Flatten]


@dataclass
class Program:
    """A whole network as integers: input spec, ordered steps, widths and provenance."""

    act_bits: int
    weight_bits: int
    input: InputSpec
    steps: list[Step]
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.validate()

    @property
    def layers(self) -> list[ShiftLayer]:
        """The shift layers only, in order."""
        return [s for s in self.steps if isinstance(s, ShiftLayer)]

    @property
    def max_shift(self) -> int:
        return nx.max_shift(self.weight_bits)

    def shapes(self) -> list[tuple[int, ...]]:
        """The activation shape after every step (shape checks happen here)."""
        shape = tuple(self.input.shape)
        out = []
        for s in self.steps:
            shape = _step_shape(s, shape)
            out.append(shape)
        return out

    def validate(self) -> None:
        """Check every field; raise :class:`ProgramError` naming the step and field."""
        try:
            nx.check_act_bits(self.act_bits)
            nx.check_weight_bits(self.weight_bits)
        except (TypeError, ValueError) as exc:
            raise ProgramError(f"program: {exc}") from None
        if not self.input.shape or any(int(d) < 1 for d in self.input.shape):
            raise ProgramError(f"input: shape must be positive dimensions, not "
                               f"{self.input.shape!r}")
        if not self.layers:
            raise ProgramError("program has no shift layer")
        names = [s.name for s in self.steps]
        if len(set(names)) != len(names):
            raise ProgramError(f"step names must be unique, got {names}")
        frac = self.input.frac_bits
        for s in self.steps:
            if isinstance(s, ShiftLayer):
                _check_layer(s, self)
                if s.frac_in != frac:
                    raise ProgramError(f"layer {s.name}: frac_in={s.frac_in} but its input "
                                       f"has frac_bits={frac}")
                frac = s.frac_out
        self.shapes()

    # -- serialisation --------------------------------------------------------------------
    def to_json(self) -> dict:
        steps = []
        for s in self.steps:
            if isinstance(s, ShiftLayer):
                d = {"type": s.kind, "name": s.name,
                     "out_features": s.out_features, "fan_in": s.fan_in,
                     "weights": base64.b64encode(pack_codes(s.codes, self.weight_bits))
                     .decode("ascii"),
                     "bias_fine": [int(v) for v in s.bias_fine],
                     "exponent": s.exponent, "frac_in": s.frac_in, "frac_out": s.frac_out,
                     "out_shift_exact": nx.out_shift_for(
                         exponent=s.exponent, guard_bits=self.max_shift,
                         frac_in=s.frac_in, frac_out=s.frac_out),
                     "relu": s.relu, "round_half_up": s.round_half_up}
                if s.kind == "conv2d":
                    d.update(in_channels=s.in_channels, kernel_size=list(s.kernel_size),
                             stride=list(s.stride), padding=list(s.padding))
            elif isinstance(s, MaxPool2d):
                d = {"type": "maxpool2d", "name": s.name, "kernel_size": list(s.kernel_size),
                     "stride": list(s.stride)}
            else:
                d = {"type": "flatten", "name": s.name}
            steps.append(d)
        return {"format": FORMAT, "version": VERSION, "act_bits": self.act_bits,
                "weight_bits": self.weight_bits,
                "input": {"shape": list(self.input.shape), "frac_bits": self.input.frac_bits,
                          "preprocess": self.input.preprocess},
                "steps": steps, "meta": self.meta}

    @classmethod
    def from_json(cls, obj, *, source: str = "program") -> "Program":
        return _from_json(obj, source)


def _step_shape(s: Step, shape: tuple[int, ...]) -> tuple[int, ...]:
    if isinstance(s, Flatten):
        return (int(np.prod(shape)),)
    if isinstance(s, MaxPool2d):
        if len(shape) != 3:
            raise ProgramError(f"step {s.name}: maxpool2d needs a (C, H, W) input, got {shape}")
        c, h, w = shape
        (kh, kw), (sh, sw) = s.kernel_size, s.stride
        if min(kh, kw, sh, sw) < 1 or kh > h or kw > w:
            raise ProgramError(f"step {s.name}: kernel {s.kernel_size} / stride {s.stride} "
                               f"do not fit input {shape}")
        return (c, (h - kh) // sh + 1, (w - kw) // sw + 1)
    if s.kind == "linear":
        if len(shape) != 1 or shape[0] != s.fan_in:
            raise ProgramError(f"layer {s.name}: linear expects ({s.fan_in},) input, got {shape}")
        return (s.out_features,)
    if len(shape) != 3 or shape[0] != s.in_channels:
        raise ProgramError(f"layer {s.name}: conv2d expects ({s.in_channels}, H, W) input, "
                           f"got {shape}")
    c, h, w = shape
    (kh, kw), (sh, sw), (ph, pw) = s.kernel_size, s.stride, s.padding
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    if oh < 1 or ow < 1:
        raise ProgramError(f"layer {s.name}: kernel {s.kernel_size} does not fit input {shape}")
    return (s.out_features, oh, ow)


def _check_scales(s: ShiftLayer, where: str) -> None:
    """The layer's exponent and fraction bits: integers in their ranges."""
    for name in ("exponent", "frac_in", "frac_out"):
        v = getattr(s, name)
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ProgramError(f"{where}: {name} must be an integer, not {v!r}")
    lo, hi = nx.EXPONENT_RANGE
    if not lo <= s.exponent <= hi:
        raise ProgramError(f"{where}: exponent must be in {lo}..{hi}, not {s.exponent}")
    lo, hi = nx.FRAC_BITS_RANGE
    for name in ("frac_in", "frac_out"):
        v = getattr(s, name)
        if not lo <= v <= hi:
            raise ProgramError(f"{where}: {name} must be in {lo}..{hi}, not {v}")


def _check_layer(s: ShiftLayer, prog: Program) -> None:
    where = f"layer {s.name}"
    if s.kind not in ("linear", "conv2d"):
        raise ProgramError(f"{where}: type must be linear or conv2d, not {s.kind!r}")
    codes = np.asarray(s.codes)
    if codes.ndim != 2 or codes.shape[0] < 1 or codes.shape[1] < 1:
        raise ProgramError(f"{where}: codes must be a non-empty (N, K) array, got shape "
                           f"{codes.shape}")
    if not np.issubdtype(codes.dtype, np.integer):
        raise ProgramError(f"{where}: codes must be integers, not {codes.dtype}")
    if codes.min() < 0 or codes.max() >= 1 << prog.weight_bits:
        raise ProgramError(f"{where}: codes must be in 0..{(1 << prog.weight_bits) - 1}")
    if len(s.bias_fine) != codes.shape[0]:
        raise ProgramError(f"{where}: bias has {len(s.bias_fine)} entries, expected "
                           f"{codes.shape[0]}")
    _check_scales(s, where)
    if s.kind == "conv2d":
        kh, kw = s.kernel_size
        if s.in_channels < 1 or s.in_channels * kh * kw != codes.shape[1]:
            raise ProgramError(f"{where}: in_channels*kh*kw = {s.in_channels}*{kh}*{kw} "
                               f"does not match fan_in {codes.shape[1]}")
        if min(*s.kernel_size) < 1 or min(*s.stride) < 1 or min(*s.padding) < 0:
            raise ProgramError(f"{where}: kernel_size and stride must be >= 1 and padding "
                               f">= 0")


def _pair(v, where: str, name: str) -> tuple[int, int]:
    if (not isinstance(v, list) or len(v) != 2
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in v)):
        raise ProgramError(f"{where}: {name} must be a list of two integers, not {v!r}")
    return (v[0], v[1])


def _get(d: dict, key: str, types, where: str):
    if not isinstance(d, dict) or key not in d:
        raise ProgramError(f"{where}: missing field {key!r}")
    v = d[key]
    if not isinstance(v, types) or (isinstance(v, bool) and bool not in _as_tuple(types)):
        raise ProgramError(f"{where}: field {key!r} has the wrong type ({type(v).__name__})")
    return v


def _as_tuple(t):
    return t if isinstance(t, tuple) else (t,)


def _from_json(obj, source: str) -> Program:
    if not isinstance(obj, dict):
        raise ProgramError(f"{source}: not a shiftprog object")
    if obj.get("format") != FORMAT:
        raise ProgramError(f"{source}: format is {obj.get('format')!r}, expected {FORMAT!r}")
    version = obj.get("version")
    if version != VERSION:
        raise ProgramError(f"{source}: version {version!r} is not supported (this shifthw "
                           f"reads version {VERSION})")
    act_bits = _get(obj, "act_bits", int, source)
    weight_bits = _get(obj, "weight_bits", int, source)
    try:
        nx.check_weight_bits(weight_bits)
    except (TypeError, ValueError) as exc:
        raise ProgramError(f"{source}: {exc}") from None
    inp = _get(obj, "input", dict, source)
    shape = _get(inp, "shape", list, f"{source}: input")
    if not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise ProgramError(f"{source}: input: shape must be a list of integers, not {shape!r}")
    spec = InputSpec(shape=tuple(shape), frac_bits=_get(inp, "frac_bits", int, f"{source}: input"),
                     preprocess=str(inp.get("preprocess", "")))
    steps: list[Step] = []
    for i, d in enumerate(_get(obj, "steps", list, source)):
        where = f"{source}: step {i}"
        kind = _get(d, "type", str, where)
        name = _get(d, "name", str, where)
        where = f"{source}: step {i} ({name})"
        if kind == "flatten":
            steps.append(Flatten(name))
        elif kind == "maxpool2d":
            steps.append(MaxPool2d(name, _pair(_get(d, "kernel_size", list, where), where,
                                               "kernel_size"),
                                   _pair(_get(d, "stride", list, where), where, "stride")))
        elif kind in ("linear", "conv2d"):
            n = _get(d, "out_features", int, where)
            k = _get(d, "fan_in", int, where)
            if n < 1 or k < 1:
                raise ProgramError(f"{where}: out_features and fan_in must be >= 1")
            text = _get(d, "weights", str, where)
            try:
                blob = base64.b64decode(text, validate=True)
            except ValueError:
                raise ProgramError(f"{where}: weights are not valid base64") from None
            try:
                codes = unpack_codes(blob, n * k, weight_bits).reshape(n, k)
            except ProgramError as exc:
                raise ProgramError(f"{where}: {exc}") from None
            bias = _get(d, "bias_fine", list, where)
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in bias):
                raise ProgramError(f"{where}: bias_fine must be a list of integers")
            extra = {}
            if kind == "conv2d":
                extra = dict(in_channels=_get(d, "in_channels", int, where),
                             kernel_size=_pair(_get(d, "kernel_size", list, where), where,
                                               "kernel_size"),
                             stride=_pair(_get(d, "stride", list, where), where, "stride"),
                             padding=_pair(_get(d, "padding", list, where), where, "padding"))
            layer = ShiftLayer(name=name, kind=kind, codes=codes, bias_fine=list(bias),
                               exponent=_get(d, "exponent", int, where),
                               frac_in=_get(d, "frac_in", int, where),
                               frac_out=_get(d, "frac_out", int, where),
                               relu=_get(d, "relu", bool, where),
                               round_half_up=(_get(d, "round_half_up", bool, where)
                                              if "round_half_up" in d else False), **extra)
            if "out_shift_exact" in d:
                _check_scales(layer, where)      # (a field out of range is named first)
                want = nx.out_shift_for(exponent=layer.exponent,
                                        guard_bits=nx.max_shift(weight_bits),
                                        frac_in=layer.frac_in, frac_out=layer.frac_out)
                if d["out_shift_exact"] != want:
                    raise ProgramError(f"{where}: out_shift_exact={d['out_shift_exact']!r} "
                                       f"disagrees with e, F_in, F_out (expected {want})")
            steps.append(layer)
        else:
            raise ProgramError(f"{where}: unknown step type {kind!r}")
    meta = obj.get("meta", {})
    if not isinstance(meta, dict):
        raise ProgramError(f"{source}: meta must be an object")
    try:
        return Program(act_bits=act_bits, weight_bits=weight_bits, input=spec, steps=steps,
                       meta=meta)
    except ProgramError as exc:
        raise ProgramError(f"{source}: {exc}") from None


def save_program(program: Program, path: str | os.PathLike) -> Path:
    """Write a .shiftprog atomically (a temporary file renamed into place; a link is followed
    and its file replaced, anything else but a regular file is refused)."""
    path = Path(path)
    if path.is_symlink():
        path = path.resolve()
    if path.exists() and not path.is_file():
        raise ValueError(f"{os.fspath(path)}: exists and is not a regular file; not "
                         f"replacing it")
    text = json.dumps(program.to_json(), indent=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_texts_atomic({path: text + "\n"})
    return path


def is_program_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a program: a ``.shiftprog`` (any case), or an existing file that
    begins as a JSON object does (a program saved under another name; PyTorch checkpoints
    are zip or pickle files)."""
    path = Path(path)
    if path.suffix.lower() == ".shiftprog":
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
    except OSError:
        return False
    return head.lstrip().startswith(b"{")


def load_program(path: str | os.PathLike) -> Program:
    """Read and check a .shiftprog; any problem is one :class:`ProgramError` naming the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ProgramError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ProgramError(f"{path}: not a .shiftprog (a JSON text file): it holds bytes "
                           f"that are not UTF-8 text") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProgramError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    return Program.from_json(obj, source=str(path))
