"""Every bit format on the engine's streams and in its buffers: one definition each.

The RTL uses these :mod:`amaranth.lib.data` layouts as signal shapes; the host driver
(:mod:`.host`), the testbenches and the manifest (:mod:`.generate`) pack and unpack words
with :func:`pack` / :func:`unpack`, which read field offsets from the very same layouts.

Streams of a :class:`~.engine.LayerEngine` (LSB first everywhere):

* ``desc``: one :func:`descriptor_layout` word per layer tile (or batch chunk);
* ``params``: unsigned ``param_word_bits`` words: the tile's bias buffer words
  (:func:`bias_entry_layout`) then its weight buffer entries (:func:`weight_entry_layout`),
  each entry cut into ``param_word_bits``-bit words (:func:`entry_words`, last one zero-padded);
* ``act``: :func:`act_word_layout`, R lanes of A-bit activations (one row-tile of a vector);
* ``out``: :func:`out_word_layout`, C lanes of A-bit outputs (one column-tile of a vector).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from amaranth.hdl import Shape, ShapeCastable, signed, unsigned
from amaranth.lib import data

from .. import numerics as nx
from .config import EngineConfig

__all__ = [
    "weight_layout", "weight_entry_layout", "bias_entry_layout", "bias_word_layout",
    "act_word_layout", "out_word_layout", "acc_word_layout", "array_in_layout",
    "descriptor_layout", "param_word_shape", "entry_words", "weight_entry_words",
    "bias_entry_words", "pack", "unpack", "split_words", "join_words", "pack_descriptor",
    "unpack_descriptor", "describe_layout",
]


def weight_layout(cfg: EngineConfig):
    """One weight: the contract's code layout (shift) or a signed b-bit integer (mult)."""
    if cfg.pe == "shift":
        return nx.weight_code_layout(cfg.weight_bits)
    return signed(cfg.weight_bits)


def weight_entry_layout(cfg: EngineConfig) -> data.ArrayLayout:
    """A weight buffer entry: ``entry[c][r]`` is the weight of column c, array row r."""
    return data.ArrayLayout(data.ArrayLayout(weight_layout(cfg), cfg.rows), cfg.cols)


def bias_entry_layout(cfg: EngineConfig) -> data.ArrayLayout:
    """A bias buffer word: ``bias_lanes`` biases of ``acc_bits - 1`` bits."""
    return data.ArrayLayout(signed(cfg.bias_bits), cfg.bias_lanes)


def bias_word_layout(cfg: EngineConfig) -> data.ArrayLayout:
    """The C biases of one column-tile, as the PE array takes them."""
    return data.ArrayLayout(signed(cfg.bias_bits), cfg.cols)


def act_word_layout(cfg: EngineConfig) -> data.ArrayLayout:
    """An activation stream word: R lanes of A bits (lane r is input k = tile * R + r)."""
    return data.ArrayLayout(signed(cfg.act_bits), cfg.rows)


def out_word_layout(cfg: EngineConfig) -> data.ArrayLayout:
    """An output stream word: C lanes of A bits (lane c is output n = tile * C + c)."""
    return data.ArrayLayout(signed(cfg.act_bits), cfg.cols)


def acc_word_layout(cfg: EngineConfig) -> data.ArrayLayout:
    """C accumulators, as the PE array delivers them."""
    return data.ArrayLayout(signed(cfg.acc_bits), cfg.cols)


def array_in_layout(cfg: EngineConfig) -> data.StructLayout:
    """One beat into the PE array: a row-tile of activations and its R x C weights."""
    return data.StructLayout({
        "act": act_word_layout(cfg),
        "w": weight_entry_layout(cfg),
        "first": unsigned(1),   # first row-tile of a column-tile: start from the bias
        "last": unsigned(1),    # last row-tile: the accumulators are a result
    })


def descriptor_layout(cfg: EngineConfig) -> data.StructLayout:
    """The layer descriptor word.

    ``reload``: bias and weight words for this descriptor follow on ``params`` (else the
    buffers are reused); ``relu``, ``round_half_up``: output stage flags; ``out_shift``:
    the contract's output shift (clamped to :attr:`EngineConfig.out_shift_range`);
    ``k_tiles`` = ceil(K / R) and ``n_tiles`` = ceil(N_tile / C) (at least 1 each);
    ``count``: input vectors M that follow on ``act`` (0: only load the buffers).
    """
    lo, hi = cfg.out_shift_range
    return data.StructLayout({
        "reload": unsigned(1),
        "relu": unsigned(1),
        "round_half_up": unsigned(1),
        "out_shift": Shape.cast(range(lo, hi + 1)),
        "k_tiles": Shape.cast(range(cfg.max_k_tiles + 1)),
        "n_tiles": Shape.cast(range(cfg.max_n_tiles + 1)),
        "count": unsigned(cfg.count_bits),
    })


def param_word_shape(cfg: EngineConfig) -> Shape:
    """The ``params`` stream word: ``param_word_bits`` raw bits of a buffer entry."""
    return unsigned(cfg.param_word_bits)


def entry_words(layout, cfg: EngineConfig) -> int:
    """Stream words per buffer entry of ``layout``."""
    return -(-Shape.cast(layout).width // cfg.param_word_bits)


def weight_entry_words(cfg: EngineConfig) -> int:
    """``params`` words per weight buffer entry."""
    return entry_words(weight_entry_layout(cfg), cfg)


def bias_entry_words(cfg: EngineConfig) -> int:
    """``params`` words per bias buffer word."""
    return entry_words(bias_entry_layout(cfg), cfg)


# -- software side: pack and unpack with the layouts' own offsets --------------------------
def _check_fits(value: int, shape: Shape, where: str) -> int:
    lo = -(1 << (shape.width - 1)) if shape.signed else 0
    hi = (1 << (shape.width - 1)) - 1 if shape.signed else (1 << shape.width) - 1
    if not lo <= value <= hi:
        raise ValueError(f"{where}: {value} does not fit {shape} ({lo}..{hi})")
    return value & ((1 << shape.width) - 1)


def pack(layout, value, *, where: str = "value") -> int:
    """Bits of ``value`` in ``layout`` (nested sequences / mappings of ints), range-checked.

    A field whose shape is itself a layout also takes an int: its raw bits (so weight
    codes, which are :func:`~shifthw.numerics.weight_code_layout` bits, pack as ints).
    """
    if isinstance(layout, data.Layout):
        if isinstance(value, (Mapping, Sequence)):
            keys = value.items() if isinstance(value, Mapping) else enumerate(value)
            if isinstance(layout, data.ArrayLayout) and len(value) > layout.length:
                raise ValueError(f"{where}: {len(value)} elements for {layout.length} lanes")
            bits = 0
            for key, v in keys:
                field = layout[key]
                bits |= pack(field.shape, v, where=f"{where}[{key!r}]") << field.offset
            return bits
        return _check_fits(int(value), unsigned(layout.size), where)
    if isinstance(layout, ShapeCastable):
        layout = Shape.cast(layout)
    return _check_fits(int(value), Shape.cast(layout), where)


def unpack(layout, bits: int):
    """Inverse of :func:`pack`: lists for arrays, dicts for structs, ints for leaves.

    Leaves of a signed shape come back signed.  Fields whose shape is a layout unpack
    recursively (a weight code comes back as ``{"shift": p, "sign": s}``).
    """
    if isinstance(layout, data.ArrayLayout):
        size = Shape.cast(layout.elem_shape).width
        mask = (1 << size) - 1
        return [unpack(layout.elem_shape, (bits >> (i * size)) & mask)
                for i in range(layout.length)]
    if isinstance(layout, data.Layout):
        out = {}
        for name, field in layout:
            width = Shape.cast(field.shape).width
            out[name] = unpack(field.shape, (bits >> field.offset) & ((1 << width) - 1))
        return out
    shape = Shape.cast(layout)
    bits &= (1 << shape.width) - 1
    if shape.signed and bits >> (shape.width - 1):
        bits -= 1 << shape.width
    return bits


def split_words(bits: int, total_bits: int, word_bits: int) -> list[int]:
    """Cut a ``total_bits`` value into ``word_bits`` words, LSB first (last one padded)."""
    count = -(-total_bits // word_bits)
    mask = (1 << word_bits) - 1
    return [(bits >> (i * word_bits)) & mask for i in range(count)]


def join_words(words: Sequence[int], word_bits: int) -> int:
    """Inverse of :func:`split_words`."""
    bits = 0
    for i, w in enumerate(words):
        bits |= int(w) << (i * word_bits)
    return bits


def pack_descriptor(cfg: EngineConfig, *, k_tiles: int, n_tiles: int, count: int,
                    out_shift: int, relu: bool, round_half_up: bool, reload: bool) -> int:
    """A descriptor word; every field range-checked (the host clamps out_shift first)."""
    if not 1 <= k_tiles <= cfg.max_k_tiles:
        raise ValueError(f"k_tiles must be in 1..{cfg.max_k_tiles}, not {k_tiles}")
    if not 1 <= n_tiles <= cfg.n_tiles_for(k_tiles):
        raise ValueError(f"n_tiles must be in 1..{cfg.n_tiles_for(k_tiles)} for "
                         f"k_tiles={k_tiles}, not {n_tiles}")
    lo, hi = cfg.out_shift_range
    if not lo <= out_shift <= hi:
        raise ValueError(f"out_shift must be in {lo}..{hi}, not {out_shift}")
    return pack(descriptor_layout(cfg), {
        "reload": int(bool(reload)), "relu": int(bool(relu)),
        "round_half_up": int(bool(round_half_up)), "out_shift": out_shift,
        "k_tiles": k_tiles, "n_tiles": n_tiles, "count": count}, where="descriptor")


def unpack_descriptor(cfg: EngineConfig, bits: int) -> dict:
    """The fields of a descriptor word."""
    return unpack(descriptor_layout(cfg), bits)


def describe_layout(layout) -> list[dict]:
    """Fields of a layout as records (for manifests), offsets in bits from the LSB.

    A leaf is ``{"field", "offset", "width", "signed"}``; an array is ``{"field", "offset",
    "count", "stride", "element": [records relative to the element]}``.
    """
    def walk(shape, name: str, offset: int) -> list[dict]:
        if isinstance(shape, data.ArrayLayout):
            return [{"field": name, "offset": offset, "count": shape.length,
                     "stride": Shape.cast(shape.elem_shape).width,
                     "element": walk(shape.elem_shape, "", 0)}]
        if isinstance(shape, data.Layout):
            recs = []
            for key, field in shape:
                sub = f"{name}.{key}" if name else str(key)
                recs += walk(field.shape, sub, offset + field.offset)
            return recs
        s = Shape.cast(shape)
        return [{"field": name or "value", "offset": offset, "width": s.width,
                 "signed": s.signed}]

    return walk(layout, "", 0)
