"""The host side of the layer engine, in plain Python (no simulator, no HDL objects).

It turns a layer and integer inputs into the words of the engine's four streams, splits a
layer bigger than the buffers into tiles, and reassembles the output words into an integer
array.  The amaranth.sim testbenches (:mod:`.simutil`), the cocotb testbenches and a future
board link all use it; every word is packed with the layouts of :mod:`.layouts`.

A :class:`LayerJob` is what one engine run needs: weights (shift codes or, for the
``pe="mult"`` baseline, signed integers), biases on the accumulator scale, and the output stage
settings.  :func:`layer_job` makes one from a program's :class:`~shifthw.program.ShiftLayer`;
a "mult program" is simply a :class:`LayerJob` with integer weights.

Tiling: a layer's ``k_tiles = ceil(K / R)`` must fit the buffers
(:attr:`~.config.EngineConfig.max_k_tiles`); its ``ceil(N / C)`` column-tiles are split into
tiles of at most :meth:`~.config.EngineConfig.n_tiles_for` column-tiles.  Each tile's biases
and weights are streamed once; every input vector is streamed once per tile.  A batch larger
than the descriptor's count field is split into several descriptors, of which only the first
reloads the buffers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import golden
from .. import numerics as nx
from ..golden import im2col, shift_matmul
from ..program import Program, ShiftLayer
from .config import EngineConfig
from .layouts import (act_word_layout, bias_entry_layout, out_word_layout, pack,
                      pack_descriptor, split_words, unpack, weight_entry_layout)

__all__ = [
    "LayerJob", "Segment", "EngineStreams", "effective_acc_bits", "check_program", "layer_job",
    "layer_rows", "mult_matmul", "golden_program", "golden_job", "clamp_out_shift", "plan_tiles",
    "encode_job", "decode_outputs", "zero_weight", "random_weights", "random_inputs", "random_job",
    "random_program",
]


@dataclass
class LayerJob:
    """One layer for the engine.

    Attributes
    ----------
    weights : (N, K) int array: weight codes (``pe="shift"``) or signed integers (``"mult"``).
    bias : (N,) int array: biases on the accumulator scale, within ``bias_limit``.
    out_shift, relu, round_half_up : the output stage (:func:`~shifthw.numerics.requantize`).
    name : for messages.
    """

    weights: np.ndarray
    bias: np.ndarray
    out_shift: int
    relu: bool = False
    round_half_up: bool = False
    name: str = "layer"

    def __post_init__(self):
        self.weights = np.asarray(self.weights, dtype=np.int64)
        # Biases of accumulators above 62 bits (wide G at weight_bits 7..8) stay Python ints.
        try:
            self.bias = np.asarray(self.bias, dtype=np.int64)
        except OverflowError:
            self.bias = np.asarray([int(v) for v in np.ravel(self.bias)], dtype=object)
        if self.weights.ndim != 2 or min(self.weights.shape) < 1:
            raise ValueError(f"{self.name}: weights must be a non-empty (N, K) array, not "
                             f"shape {self.weights.shape}")
        if self.bias.shape != (self.weights.shape[0],):
            raise ValueError(f"{self.name}: bias must have shape ({self.weights.shape[0]},), "
                             f"not {self.bias.shape}")

    @property
    def fan_in(self) -> int:
        return int(self.weights.shape[1])

    @property
    def out_features(self) -> int:
        return int(self.weights.shape[0])


@dataclass(frozen=True)
class Segment:
    """One descriptor: outputs ``n0:n1`` of vectors ``m0:m1``, ``n_tiles`` column-tiles."""

    n0: int
    n1: int
    m0: int
    m1: int
    n_tiles: int
    reload: bool


@dataclass
class EngineStreams:
    """The words of every stream for one job, and how to read the outputs back."""

    desc: list[int] = field(default_factory=list)
    params: list[int] = field(default_factory=list)
    act: list[int] = field(default_factory=list)
    out_words: int = 0
    segments: list[Segment] = field(default_factory=list)
    rows: int = 0            # input vectors M
    out_features: int = 0    # N


def zero_weight(cfg: EngineConfig) -> int:
    """The weight that contributes nothing (zero code, or integer 0): used for padding."""
    return nx.encode_weight(0, 0, cfg.weight_bits) if cfg.pe == "shift" else 0


def effective_acc_bits(cfg: EngineConfig, fan_in: int) -> int | None:
    """The accumulator width the golden model must use for this engine and fan-in.

    None (the layer's natural width, no saturation) when the engine's accumulator is at least
    that wide, else the engine's narrower width (saturating after every R terms).
    """
    return cfg.acc_bits if cfg.acc_bits < cfg.natural_acc_bits_for(fan_in) else None


def _check_layer_fits(cfg: EngineConfig, fan_in: int, name: str) -> int:
    k_tiles = -(-fan_in // cfg.rows)
    if k_tiles > cfg.max_k_tiles:
        raise ValueError(f"{name}: fan-in K={fan_in} needs {k_tiles} row-tiles of R={cfg.rows}, "
                         f"the buffers take at most {cfg.max_k_tiles} (K <= {cfg.max_k}; "
                         f"k_depth {cfg.k_depth}, weight_depth {cfg.weight_depth})")
    return k_tiles


def check_program(program: Program, cfg: EngineConfig) -> None:
    """A ``ValueError`` that names the layer if ``program`` cannot run on the engine ``cfg``
    (widths, PE kind, a fan-in larger than the buffers take), so that a run fails before
    anything is built or simulated."""
    for layer in program.layers:
        layer_job(program, layer, cfg)                # widths and PE kind
        _check_layer_fits(cfg, layer.fan_in, f"layer {layer.name}")


def layer_job(program: Program, layer: ShiftLayer, cfg: EngineConfig) -> LayerJob:
    """The job of a program's shift layer on an engine with ``cfg.pe == "shift"``.

    The bias is saturated for the width :func:`effective_acc_bits` gives, and the output shift
    is the contract's for the engine's G.
    """
    if cfg.pe != "shift":
        raise ValueError(f"layer {layer.name}: a shift program needs pe='shift', not {cfg.pe!r}")
    if program.weight_bits != cfg.weight_bits or program.act_bits != cfg.act_bits:
        raise ValueError(f"layer {layer.name}: program has A={program.act_bits}, "
                         f"b={program.weight_bits}; engine has A={cfg.act_bits}, "
                         f"b={cfg.weight_bits}")
    acc = effective_acc_bits(cfg, layer.fan_in)
    arith = layer.arith(program, cfg.guard_bits, acc)
    return LayerJob(weights=layer.codes, bias=layer.bias_q(program, cfg.guard_bits, acc),
                    out_shift=arith.out_shift, relu=layer.relu,
                    round_half_up=layer.round_half_up, name=layer.name)


def layer_rows(layer: ShiftLayer, x):
    """The engine's input vectors for a layer's input batch, and how to shape its output.

    Linear: ``x`` is (B, K).  Conv2d: ``x`` is (B, C, H, W) and the rows are im2col patches.
    Returns ``(rows, reshape)`` where ``reshape(out)`` turns the (M, N) engine output into
    the layer's output shape (PyTorch order).
    """
    x = np.asarray(x, dtype=np.int64)
    if layer.kind == "linear":
        return x.reshape(x.shape[0], -1), (lambda y: y)
    rows, (oh, ow) = im2col(x, layer)
    batch = x.shape[0]
    return rows, (lambda y: np.asarray(y).reshape(batch, oh, ow, -1).transpose(0, 3, 1, 2))


def mult_matmul(x, weights, bias, *, act_bits: int, weight_bits: int, acc_bits: int | None = None,
                chunk: int | None = None):
    """Golden accumulators of the multiplier baseline: ``bias + x @ weights.T``.

    Same order and saturation rule as :func:`shifthw.golden.shift_matmul`: with ``acc_bits``
    narrower than ``A + b + ceil(log2 K) + 2``, saturate after the bias and after every
    ``chunk`` products.
    """
    x = np.asarray(x, dtype=np.int64)
    w = np.asarray(weights, dtype=np.int64)
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[1]:
        raise ValueError(f"shapes do not match: x {x.shape}, weights {w.shape}")
    for name, v, bits in (("activations", x, act_bits), ("weights", w, weight_bits)):
        if v.size and (v.min() < -(1 << (bits - 1)) or v.max() >= 1 << (bits - 1)):
            raise ValueError(f"{name} must be {bits}-bit signed integers")
    k = x.shape[1]
    natural = act_bits + weight_bits + int(np.ceil(np.log2(k))) + 2
    narrow = acc_bits is not None and acc_bits < natural
    acc = np.broadcast_to(np.asarray(bias, dtype=np.int64), (x.shape[0], w.shape[0])).copy()
    step = (chunk or 1) if narrow else k
    for k0 in range(0, k, step):
        acc = acc + x[:, k0:k0 + step] @ w[:, k0:k0 + step].T
        if narrow:
            acc = nx.saturate(acc, acc_bits)
    return acc


def golden_program(program: Program, cfg: EngineConfig, xq) -> golden.GoldenRun:
    """The golden model of the whole ``program`` on integer inputs ``xq`` as the shift engine
    ``cfg`` computes it: its G, and each layer's accumulator as :func:`effective_acc_bits`
    gives it (saturating after every R terms where the engine's is narrower than the
    layer's natural width), so that a network's outputs are those of :func:`golden_job`
    layer after layer."""
    widths = {s.name: effective_acc_bits(cfg, s.fan_in) for s in program.layers}
    return golden.run_program(program, xq, quantized=True, guard_bits=cfg.guard_bits,
                              acc_bits=widths, chunk=cfg.rows)


def golden_job(cfg: EngineConfig, job: LayerJob, x):
    """What the engine must output for ``x`` (M, K): ``(outputs, accumulators)``."""
    x = np.asarray(x, dtype=np.int64)
    acc_bits = effective_acc_bits(cfg, job.fan_in)
    if cfg.pe == "shift":
        arith = nx.LayerArith(act_bits=cfg.act_bits, weight_bits=cfg.weight_bits,
                              guard_bits=cfg.guard_bits, exponent=0, frac_in=0, frac_out=0,
                              fan_in=job.fan_in, acc_bits=acc_bits)
        acc = shift_matmul(x, job.weights, job.bias, arith, chunk=cfg.rows)
    else:
        acc = mult_matmul(x, job.weights, job.bias, act_bits=cfg.act_bits,
                          weight_bits=cfg.weight_bits, acc_bits=acc_bits, chunk=cfg.rows)
    out = nx.requantize(acc, job.out_shift, cfg.act_bits, relu=job.relu,
                        round_half_up=job.round_half_up)
    return out, acc


def clamp_out_shift(cfg: EngineConfig, out_shift: int) -> int:
    """``out_shift`` clamped to the descriptor's range, which gives identical outputs.

    Right: an accumulator of ``acc_bits`` bits shifted by ``acc_bits`` or more floors to its
    sign (or rounds to 0), the same as at exactly ``acc_bits``.  Left: any non-zero value
    shifted by more than A saturates, the same as at ``A + 1``.
    """
    lo, hi = cfg.out_shift_range
    return max(lo, min(hi, int(out_shift)))


def plan_tiles(cfg: EngineConfig, job: LayerJob, rows: int) -> list[Segment]:
    """The descriptors of a job on ``rows`` input vectors (tiles over N, chunks over M)."""
    k_tiles = _check_layer_fits(cfg, job.fan_in, job.name)
    per_tile = cfg.n_tiles_for(k_tiles) * cfg.cols
    max_count = (1 << cfg.count_bits) - 1
    segs = []
    for n0 in range(0, job.out_features, per_tile):
        n1 = min(n0 + per_tile, job.out_features)
        n_tiles = -(-(n1 - n0) // cfg.cols)
        chunks = [(m0, min(m0 + max_count, rows)) for m0 in range(0, rows, max_count)]
        for idx, (m0, m1) in enumerate(chunks or [(0, 0)]):
            segs.append(Segment(n0=n0, n1=n1, m0=m0, m1=m1, n_tiles=n_tiles,
                                reload=idx == 0))
    return segs


def _bias_words(cfg: EngineConfig, bias: np.ndarray, n_tiles: int) -> list[int]:
    layout = bias_entry_layout(cfg)
    lim = nx.bias_limit(cfg.acc_bits)
    if bias.size and (bias.min() < -lim - 1 or bias.max() > lim):
        raise ValueError(f"bias must be within +-{lim} for acc_bits={cfg.acc_bits}")
    padded = np.zeros(n_tiles * cfg.cols, dtype=bias.dtype)
    padded[:bias.size] = bias
    q = cfg.bias_lanes
    words = []
    for j in range(n_tiles):
        for k in range(cfg.bias_beats):
            lanes = padded[j * cfg.cols + k * q: min(j * cfg.cols + (k + 1) * q,
                                                   (j + 1) * cfg.cols)]
            bits = pack(layout, [int(v) for v in lanes], where="bias")
            words += split_words(bits, layout.size, cfg.param_word_bits)
    return words


def _weight_words(cfg: EngineConfig, weights: np.ndarray, n_tiles: int, k_tiles: int):
    layout = weight_entry_layout(cfg)
    r, c = cfg.rows, cfg.cols
    padded = np.full((n_tiles * c, k_tiles * r), zero_weight(cfg), dtype=np.int64)
    padded[:weights.shape[0], :weights.shape[1]] = weights
    if cfg.pe == "mult":
        lo, hi = -(1 << (cfg.weight_bits - 1)), (1 << (cfg.weight_bits - 1)) - 1
    else:
        lo, hi = 0, (1 << cfg.weight_bits) - 1
    if padded.min() < lo or padded.max() > hi:
        raise ValueError(f"weights must be in {lo}..{hi} for pe={cfg.pe!r}, "
                         f"weight_bits={cfg.weight_bits}")
    if cfg.pe == "shift":
        # The PEs' shifters only cover the shifts that change a term (numerics.shifter_max).
        padded = nx.canonical_codes(padded, cfg.act_bits, cfg.weight_bits, cfg.guard_bits)
    words = []
    for j in range(n_tiles):
        for i in range(k_tiles):
            block = padded[j * c:(j + 1) * c, i * r:(i + 1) * r]
            bits = pack(layout, block.tolist(), where="weights")
            words += split_words(bits, layout.size, cfg.param_word_bits)
    return words


def encode_job(cfg: EngineConfig, job: LayerJob, x) -> EngineStreams:
    """Every stream word for running ``job`` on the input vectors ``x`` (M, K)."""
    x = np.asarray(x, dtype=np.int64)
    if x.ndim != 2 or x.shape[1] != job.fan_in:
        raise ValueError(f"{job.name}: inputs must have shape (M, {job.fan_in}), not {x.shape}")
    lo, hi = nx.act_min(cfg.act_bits), nx.act_max(cfg.act_bits)
    if x.size and (x.min() < lo or x.max() > hi):
        raise ValueError(f"{job.name}: activations must be {cfg.act_bits}-bit ({lo}..{hi})")
    k_tiles = _check_layer_fits(cfg, job.fan_in, job.name)
    act_layout = act_word_layout(cfg)
    xp = np.zeros((x.shape[0], k_tiles * cfg.rows), dtype=np.int64)
    xp[:, :job.fan_in] = x
    act_rows = [[pack(act_layout, xp[mm, i * cfg.rows:(i + 1) * cfg.rows].tolist(),
                      where="activations") for i in range(k_tiles)]
                for mm in range(x.shape[0])]
    streams = EngineStreams(rows=x.shape[0], out_features=job.out_features)
    shift = clamp_out_shift(cfg, job.out_shift)
    for seg in plan_tiles(cfg, job, x.shape[0]):
        streams.segments.append(seg)
        streams.desc.append(pack_descriptor(
            cfg, k_tiles=k_tiles, n_tiles=seg.n_tiles, count=seg.m1 - seg.m0,
            out_shift=shift, relu=job.relu, round_half_up=job.round_half_up,
            reload=seg.reload))
        if seg.reload:
            streams.params += _bias_words(cfg, job.bias[seg.n0:seg.n1], seg.n_tiles)
            streams.params += _weight_words(cfg, job.weights[seg.n0:seg.n1], seg.n_tiles,
                                            k_tiles)
        for mm in range(seg.m0, seg.m1):
            streams.act += act_rows[mm]
        streams.out_words += (seg.m1 - seg.m0) * seg.n_tiles
    return streams


def decode_outputs(cfg: EngineConfig, streams: EngineStreams, words) -> np.ndarray:
    """The (M, N) outputs from the ``out`` words, in the order the engine sends them."""
    words = list(words)
    if len(words) != streams.out_words:
        raise ValueError(f"expected {streams.out_words} output words, got {len(words)}")
    layout = out_word_layout(cfg)
    out = np.zeros((streams.rows, streams.out_features), dtype=np.int64)
    pos = 0
    for seg in streams.segments:
        for mm in range(seg.m0, seg.m1):
            for j in range(seg.n_tiles):
                lanes = unpack(layout, int(words[pos]))
                pos += 1
                n = seg.n0 + j * cfg.cols
                take = min(cfg.cols, seg.n1 - n)
                out[mm, n:n + take] = lanes[:take]
    return out


# -- random jobs and programs (tests, benchmarks, the cocotb testbenches) ------------------
def random_weights(cfg: EngineConfig, rng: np.random.Generator, n: int, k: int, *,
                   kind: str = "random") -> np.ndarray:
    """(N, K) weights for ``cfg.pe``: ``kind`` is "random", "zero" (all zero weights) or
    "extreme" (only the largest magnitudes: shift 0 codes / the most negative integer)."""
    b = cfg.weight_bits
    if kind == "zero":
        return np.full((n, k), zero_weight(cfg), dtype=np.int64)
    if cfg.pe == "shift":
        if kind == "extreme":
            return nx.encode_weight(rng.choice([-1, 1], size=(n, k)), np.zeros((n, k), int), b)
        return rng.integers(0, 1 << b, size=(n, k))
    lo, hi = -(1 << (b - 1)), (1 << (b - 1)) - 1
    if kind == "extreme":
        return rng.choice([lo, hi], size=(n, k))
    return rng.integers(lo, hi + 1, size=(n, k))


def random_inputs(cfg: EngineConfig, rng: np.random.Generator, m: int, k: int, *,
                  kind: str = "random") -> np.ndarray:
    """(M, K) A-bit activations; "extreme" draws only the two end values."""
    lo, hi = nx.act_min(cfg.act_bits), nx.act_max(cfg.act_bits)
    if kind == "extreme":
        return rng.choice([lo, hi], size=(m, k))
    return rng.integers(lo, hi + 1, size=(m, k))


def random_job(cfg: EngineConfig, rng: np.random.Generator, n: int, k: int, *,
               kind: str = "random") -> LayerJob:
    """A random job with every output-stage option drawn; biases within the contract."""
    acc = effective_acc_bits(cfg, k) or cfg.natural_acc_bits_for(k)
    lim = nx.bias_limit(acc)
    if kind == "extreme":
        bias = rng.choice([-lim - 1, lim], size=n)
    elif lim < 1 << 62:
        bias = rng.integers(-lim - 1, lim + 1, size=n) >> int(rng.integers(0, acc - 1))
    else:
        # Accumulators of 64 bits and more (b = 7, 8 with many guard bits): Python ints, as
        # the golden model holds them (rng.integers is int64 only).
        span, nbytes = 2 * lim + 2, (acc + 15) // 8
        drop = int(rng.integers(0, acc - 1))
        bias = np.array([(int.from_bytes(rng.bytes(nbytes), "little") % span - lim - 1) >> drop
                         for _ in range(n)], dtype=object)
    lo, hi = cfg.out_shift_range
    return LayerJob(weights=random_weights(cfg, rng, n, k, kind=kind), bias=bias,
                    out_shift=int(rng.integers(lo - 2, hi + 3)),
                    relu=bool(rng.integers(0, 2)), round_half_up=bool(rng.integers(0, 2)),
                    name=f"random {n}x{k} ({kind})")


def random_program(arch: str, *, seed: int = 0, act_bits: int = 8,
                   weight_bits: int = 5) -> Program:
    """A program of the model zoo's shapes with random codes (when the zoo is not built).

    ``"mlp"``: 64 -> 32 (ReLU) -> 10.  ``"cnn"``: 1x8x8 input, conv 1->8 3x3 pad 1 (ReLU),
    maxpool 2, conv 8->16 3x3 pad 1 (ReLU), maxpool 2, flatten, linear 64 -> 10.
    """
    from ..program import Flatten, InputSpec, MaxPool2d

    rng = np.random.default_rng(seed)
    big = nx.max_shift(weight_bits)
    frac = 4

    def layer(name, kind, n, k, relu, **conv):
        # Mostly small weights (large shifts), a few zeros: like a trained shift layer.
        sign = rng.choice([-1, 0, 1], size=(n, k), p=[0.45, 0.1, 0.45])
        shift = np.minimum(rng.geometric(0.35, size=(n, k)), big)
        codes = nx.encode_weight(sign, np.where(sign == 0, 0, shift), weight_bits)
        # Biases within +-2**(P + F) (drawn at 62 bits and shifted up where wider: b = 7, 8).
        scale = big + frac
        top = min(scale, 62)
        bias = [int(v) << (scale - top) for v in rng.integers(-(1 << top), 1 << top, n)]
        return ShiftLayer(name=name, kind=kind, codes=np.asarray(codes), bias_fine=bias,
                          exponent=0, frac_in=frac, frac_out=frac, relu=relu,
                          round_half_up=bool(rng.integers(0, 2)), **conv)

    if arch == "mlp":
        steps = [layer("fc1", "linear", 32, 64, True), layer("fc2", "linear", 10, 32, False)]
        spec = InputSpec(shape=(64,), frac_bits=frac)
    elif arch == "cnn":
        conv = dict(kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
        steps = [layer("conv1", "conv2d", 8, 9, True, in_channels=1, **conv),
                 MaxPool2d("pool1", (2, 2), (2, 2)),
                 layer("conv2", "conv2d", 16, 72, True, in_channels=8, **conv),
                 MaxPool2d("pool2", (2, 2), (2, 2)),
                 Flatten("flatten"),
                 layer("fc", "linear", 10, 64, False)]
        spec = InputSpec(shape=(1, 8, 8), frac_bits=frac)
    else:
        raise ValueError(f"arch must be 'mlp' or 'cnn', not {arch!r}")
    return Program(act_bits=act_bits, weight_bits=weight_bits, input=spec, steps=steps,
                   meta={"source": f"shifthw.rtl_gen.host.random_program({arch!r}, "
                                   f"seed={seed})"})
