"""Energy per inference from operation counts: the engine's real schedule times a table.

:func:`program_ops` counts what the engine does for one inference of a program: every array
beat (``ceil(K/R) * ceil(N/C)`` per input vector and tile, padding lanes included, because
they toggle too) runs R x C PE operations (a shift and a one's complement, or a multiply), the
column adder trees at their real widths, the pipeline registers and the accumulators; every
output word is requantised; every buffer is read and written at its real entry width; the
parameters of a layer are loaded once per batch.  :func:`price` multiplies the counts by an
energy table (:func:`load_table`; the shipped one is ``energy_45nm.json``, Horowitz ISSCC
2014), labelling every figure as a table row, an interpolation, an extrapolation or an
assumption.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from .. import golden
from .. import numerics as nx
from ..program import Program, ShiftLayer
from ..rtl_gen.config import RESULT_FIFO_DEPTH, EngineConfig
from ..rtl_gen.host import LayerJob, layer_rows, plan_tiles
from ..rtl_gen.layouts import bias_entry_words, weight_entry_words
from ..rtl_gen.output import pipeline_register_bits
from ..rtl_gen.array import SPLIT_ACC_BITS
from ..rtl_gen.pe import pe_register_bits, shifter_muxes
from .hierarchy import COMPONENTS

__all__ = ["DEFAULT_TABLE", "OpCount", "load_table", "add_energy", "mult_energy",
           "sram_energy", "assumed_energy", "tree_widths", "program_ops", "price", "layer_shapes"]

#: The shipped table (Horowitz, ISSCC 2014, 45 nm).
DEFAULT_TABLE = "energy_45nm.json"
TABLE_FORMAT, TABLE_VERSION = "shifthw.energy_table", 1


@dataclass(frozen=True)
class OpCount:
    """``count`` operations of one kind per inference.

    ``op`` is one of shift, negate, mult, add, mux, register, sram_read, sram_write;
    ``bits`` its width (for a shift: ``(bits, stages, multiplexers)``, see
    :func:`~shifthw.rtl_gen.pe.shifter_muxes`; for a multiply: ``(A, b)``; for a
    memory access: ``(access bits, memory bits)``), ``what`` says where it happens.
    """

    component: str
    op: str
    bits: tuple
    count: float
    what: str


def load_table(path: str | os.PathLike | None = None) -> dict:
    """An energy table: the shipped one, or a JSON file of the same format."""
    if path is None:
        text = resources.files(__package__).joinpath(DEFAULT_TABLE).read_text()
        table = json.loads(text)
        table["file"] = DEFAULT_TABLE
        return table
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"energy table {os.fspath(path)!r}: no such file")
    try:
        table = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"energy table {p}: not JSON ({exc})") from None
    check_table(table, f"energy table {p}")
    table["file"] = str(p)
    return table


#: Keys of ``assumptions`` the estimate reads (each ``{"value": number, ...}``).
ASSUMPTIONS = ("shifter_stage_bit", "mux_bit", "xor_bit", "register_bit",
               "activity_reference")


def _positive(v) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            and v > 0)


def check_table(table, where: str) -> None:
    """A ``ValueError`` naming the key for anything in an energy table that the estimate
    cannot use: checked when the table is loaded, before any synthesis."""
    if not isinstance(table, dict):
        raise ValueError(f"{where}: not a JSON object")
    if table.get("format", TABLE_FORMAT) != TABLE_FORMAT:
        raise ValueError(f"{where}: format is {table['format']!r}, expected {TABLE_FORMAT!r}")
    if table.get("version", TABLE_VERSION) != TABLE_VERSION:
        raise ValueError(f"{where}: version {table['version']!r} is not supported (this "
                         f"shifthw reads version {TABLE_VERSION})")
    if table.get("unit", "pJ") != "pJ":
        raise ValueError(f"{where}: unit is {table['unit']!r}; the estimate reads pJ "
                         f"(convert the figures)")
    for key in ("int_add", "int_mult", "sram_64bit_access"):
        if key not in table:
            raise ValueError(f"{where}: missing key {key!r}")
        rows = table[key]
        if (not isinstance(rows, list) or not rows
                or not all(isinstance(r, list) and len(r) == 2 and all(map(_positive, r))
                           for r in rows)):
            raise ValueError(f"{where}: {key} must be a non-empty list of [width, pJ] rows "
                             f"of positive numbers, not {rows!r}")
        widths = [r[0] for r in rows]
        if len(set(widths)) != len(widths):
            raise ValueError(f"{where}: {key} has two rows of one width ({rows!r})")
    dram = table.get("dram_64bit_access")
    if dram is not None and not (_positive(dram) or (
            isinstance(dram, list) and dram and all(map(_positive, dram)))):
        raise ValueError(f"{where}: dram_64bit_access must be a positive number or a list of "
                         f"them (low, high), not {dram!r}")
    ass = table.get("assumptions")
    if not isinstance(ass, dict):
        raise ValueError(f"{where}: missing key 'assumptions' (an object)")
    for key in ASSUMPTIONS:
        a = ass.get(key)
        if not isinstance(a, dict) or not _positive(a.get("value")):
            raise ValueError(f"{where}: assumptions.{key} must be an object with a positive "
                             f"'value', not {a!r}")


def _power_law(points, x: float) -> tuple[float, str]:
    """Piecewise power-law (log-log linear) interpolation through ``(x, y)`` points."""
    pts = sorted((float(a), float(b)) for a, b in points)
    for a, b in pts:
        if math.isclose(a, x):
            return b, "table"
    if len(pts) == 1:
        return pts[0][1] * x / pts[0][0], "extrapolated (proportional)"
    if x < pts[0][0]:
        (x0, y0), (x1, y1), label = pts[0], pts[1], "extrapolated"
    elif x > pts[-1][0]:
        (x0, y0), (x1, y1), label = pts[-2], pts[-1], "extrapolated"
    else:
        i = next(k for k in range(1, len(pts)) if x <= pts[k][0])
        (x0, y0), (x1, y1), label = pts[i - 1], pts[i], "interpolated"
    k = math.log(y1 / y0) / math.log(x1 / x0)
    return y0 * (x / x0) ** k, label


def add_energy(table: dict, bits: int) -> tuple[float, str]:
    """pJ of one ``bits``-bit integer add, and how the figure was obtained."""
    return _power_law(table["int_add"], bits)


def mult_energy(table: dict, a_bits: int, b_bits: int) -> tuple[float, str]:
    """pJ of one A x b integer multiply (the table's n x n rows at n = sqrt(A * b))."""
    return _power_law(table["int_mult"], math.sqrt(a_bits * b_bits))


def sram_energy(table: dict, access_bits: int, memory_bits: int) -> tuple[float, str]:
    """pJ of one access of ``access_bits`` to a memory of ``memory_bits`` (64-bit rows scaled)."""
    e64, label = _power_law(table["sram_64bit_access"], max(memory_bits, 8) / 8)
    return e64 * access_bits / 64, label


def _bit_unit(table: dict) -> float:
    # "one bit of an int add": the table's narrowest add row per bit.
    bits, pj = min(table["int_add"])
    return pj / bits


def assumed_energy(table: dict, key: str, bits: float) -> tuple[float, str]:
    """pJ of ``bits`` bits of an assumed operation (``shifter_stage_bit``, ``mux_bit``,
    ``xor_bit``, ``register_bit``: a fraction of one bit of the table's 8-bit add)."""
    a = table["assumptions"][key]
    return a["value"] * bits * _bit_unit(table), f"assumption: {key}"


def tree_widths(term_bits: int, rows: int) -> tuple[list[int], list[list[int]]]:
    """Adder widths of one column's tree, and the value widths after every level.

    The same pairing as :class:`~shifthw.rtl_gen.array.PEArray`: neighbours are added at
    ``max(width) + 1`` bits, an odd value out passes to the next level.
    """
    vals, adders, levels = [term_bits] * rows, [], [[term_bits] * rows]
    while len(vals) > 1:
        out = []
        for k in range(0, len(vals) - 1, 2):
            w = max(vals[k], vals[k + 1]) + 1
            adders.append(w)
            out.append(w)
        if len(vals) % 2:
            out.append(vals[-1])
        vals = out
        levels.append(list(vals))
    return adders, levels


def layer_shapes(program: Program) -> list[tuple[ShiftLayer, int]]:
    """``(layer, vectors per image)`` for every shift layer (conv: one per output pixel)."""
    x = np.zeros((1, *program.input.shape), dtype=np.int64)
    run = golden.run_program(program, x, quantized=True)
    inputs = [run.input] + run.outputs[:-1]
    return [(s, layer_rows(s, xin)[0].shape[0])
            for s, xin in zip(program.steps, inputs) if isinstance(s, ShiftLayer)]


def _memories(cfg: EngineConfig) -> dict[str, tuple[int, int]]:
    """(row bits, total bits) of every buffer."""
    word = cfg.param_word_bits
    w_row = weight_entry_words(cfg) * word
    b_row = bias_entry_words(cfg) * word
    a_row = cfg.rows * cfg.act_bits
    bank = 1 << max(cfg.k_depth - 1, 0).bit_length()
    o_row = cfg.cols * cfg.act_bits
    return {"weights": (w_row, w_row * cfg.weight_depth),
            "biases": (b_row, b_row * cfg.bias_depth * cfg.bias_beats),
            "activations": (a_row, a_row * 2 * bank),
            "output_fifo": (o_row, o_row * max(cfg.out_depth, 1))}


def program_ops(program: Program, cfg: EngineConfig, *, batch: int = 1) -> dict:
    """Operation counts of one inference of ``program`` on the engine ``cfg``.

    Parameters
    ----------
    program : the integer program (its layer shapes matter, not its weights).
    cfg : the engine (shift or mult PEs).
    batch : images per batch: each layer's weights and biases are loaded once per batch.

    Returns
    -------
    dict
        ``ops`` (list of :class:`OpCount` as dicts), ``beats`` (array cycles per inference),
        ``macs`` (useful multiply-accumulates K*N per vector), ``pe_ops`` (R*C per beat,
        padding included), ``output_words``, ``param_words`` and ``layers`` (per layer).
    """
    if not isinstance(cfg, EngineConfig):
        raise TypeError(f"cfg must be an EngineConfig, not {cfg!r}")
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive integer, not {batch!r}")
    r, c, a = cfg.rows, cfg.cols, cfg.act_bits
    term = cfg.term_bits
    adders, levels = tree_widths(term, r)
    # A shift column's PEs each give a carry; every tree adder takes one, and the carries
    # not yet taken are registered with a level's sums.  valid / first / last: once per
    # stage for the whole array.
    carries = [r]
    for lv in range(1, len(levels)):
        carries.append(max(carries[-1] - len(levels[lv - 1]) // 2, 0))
    regs = c * sum(sum(levels[lv]) + (carries[lv] if cfg.pe == "shift" else 0)
                   for lv in cfg.register_levels) + 3 * len(cfg.register_levels)
    mems = _memories(cfg)
    totals = {"beats": 0, "vectors": 0, "out_words": 0, "bias_reads": 0, "act_writes": 0,
              "bias_words": 0, "weight_words": 0, "macs": 0}
    layers = []
    for layer, per_image in layer_shapes(program):
        k, n = layer.fan_in, layer.out_features
        kt = -(-k // r)
        job = LayerJob(weights=np.zeros((n, k), dtype=np.int64), bias=np.zeros(n, np.int64),
                       out_shift=0, name=layer.name)
        lay = dict.fromkeys(totals, 0)
        for seg in plan_tiles(cfg, job, per_image * batch):
            v = seg.m1 - seg.m0
            lay["beats"] += v * kt * seg.n_tiles
            lay["vectors"] += v
            lay["out_words"] += v * seg.n_tiles
            lay["bias_reads"] += v * seg.n_tiles * cfg.bias_beats
            lay["act_writes"] += v * kt
            if seg.reload:
                lay["bias_words"] += seg.n_tiles * cfg.bias_beats * bias_entry_words(cfg)
                lay["weight_words"] += kt * seg.n_tiles * weight_entry_words(cfg)
        lay["macs"] = k * n * per_image * batch
        for key in totals:
            lay[key] /= batch
            totals[key] += lay[key]
        layers.append({"name": layer.name, "kind": layer.kind, "fan_in": k,
                       "out_features": n, "vectors_per_image": per_image, "k_tiles": kt,
                       **lay})
    beats, outs = totals["beats"], totals["out_words"]
    ops = []

    def op(component, kind, bits, count, what):
        if count:
            ops.append(OpCount(component, kind, tuple(bits), count, what))

    pes = r * c * beats
    if cfg.pe == "shift":
        stages = nx.shifter_stages(a, cfg.weight_bits, cfg.guard_bits)
        muxes = shifter_muxes(a, cfg.weight_bits, cfg.guard_bits)
        op("pe_array", "shift", (term, stages, muxes), pes,
           f"(x << G) >> p: {term}-bit arithmetic shifter, {stages} stages, {muxes} "
           f"multiplexers (where the candidates differ)")
        op("pe_array", "negate", (term,), pes, "one's complement of the term (sign)")
        if cfg.pe_register:
            op("pe_array", "register", (pe_register_bits(cfg) * r * c + 3,), beats,
               "PE registers (upper shifter levels' result, lower shift bits, zero, sign; "
               "valid/first/last)")
    else:
        op("pe_array", "mult", (a, cfg.weight_bits), pes, f"{a} x {cfg.weight_bits} multiply")
        if cfg.pe_register:
            op("pe_array", "add", (a + cfg.weight_bits,), pes, "sum of the partial products")
            op("pe_array", "register", (pe_register_bits(cfg) * r * c + 3,), beats,
               "PE registers (two partial products; valid/first/last)")
    for w in sorted(set(adders)):
        op("adder_trees", "add", (w,), c * adders.count(w) * beats, f"tree adder, {w} bits")
    op("adder_trees", "register", (regs,), beats,
       f"pipeline registers ({len(cfg.register_levels)} stages)")
    for k in range(cfg.input_registers):
        op("pe_array", "register", (r * a + r * c * cfg.weight_bits + 3,), beats,
           f"input register {k + 1} (activations, weights, valid/first/last)")
    op("accumulators", "mux", (cfg.acc_bits,), c * beats, "bias / accumulator select")
    op("accumulators", "add", (cfg.acc_bits,), c * beats, "accumulate")
    if cfg.saturating:
        op("accumulators", "add", (cfg.acc_bits,), 2 * c * beats, "saturation compares")
    op("accumulators", "register", (cfg.acc_bits * c,), beats, "accumulator registers")
    if cfg.stall_free:
        row = cfg.acc_bits * c
        op("accumulators", "sram_write", (row, row * RESULT_FIFO_DEPTH), outs,
           "result FIFO write")
        op("accumulators", "sram_read", (row, row * RESULT_FIFO_DEPTH), outs, "result FIFO read")
        op("accumulators", "add", (cfg.acc_bits,), c * outs, "bias add after the result FIFO")
        op("accumulators", "register", (row,), outs, "result register")
        if cfg.acc_bits >= SPLIT_ACC_BITS:
            op("accumulators", "register", ((cfg.acc_bits + 3) * c,), beats,
               "split accumulators (the high half's term, carry, first, valid; the low "
               "half's copy)")
    stages = max(cfg.acc_bits + a + 1, 2).bit_length()
    funnel = sum(a + (1 << s) for s in range(stages))
    op("output_stage", "mux", (funnel,), c * outs, "requantising funnel shifter")
    op("output_stage", "add", (cfg.acc_bits,), c * outs, "overflow check")
    op("output_stage", "add", (a,), c * outs, "round half up")
    op("output_stage", "register", (pipeline_register_bits(cfg) * c,), outs,
       "pipeline registers (stages 1-3)")
    op("output_stage", "register", (a * c,), outs, "output register")
    w_row, w_all = mems["weights"]
    b_row, b_all = mems["biases"]
    a_row, a_all = mems["activations"]
    o_row, o_all = mems["output_fifo"]
    word = cfg.param_word_bits
    op("buffers", "sram_read", (w_row, w_all), beats, "weight buffer entry per beat")
    op("buffers", "sram_read", (a_row, a_all), beats, "activation word per beat")
    op("buffers", "sram_read", (b_row, b_all), totals["bias_reads"], "bias words")
    op("buffers", "sram_write", (a_row, a_all), totals["act_writes"], "activation words in")
    op("buffers", "sram_write", (word, w_all), totals["weight_words"], "weight load")
    op("buffers", "sram_write", (word, b_all), totals["bias_words"], "bias load")
    if cfg.out_depth:
        op("buffers", "sram_write", (o_row, o_all), outs, "output FIFO write")
        op("buffers", "sram_read", (o_row, o_all), outs, "output FIFO read")
    stream_bits = (word * (totals["weight_words"] + totals["bias_words"])
                   + a_row * totals["act_writes"] + o_row * outs)
    return {"ops": [asdict(o) for o in ops], "beats": beats, "macs": totals["macs"],
            "pe_ops": pes, "vectors": totals["vectors"], "output_words": outs,
            "param_words": totals["weight_words"] + totals["bias_words"],
            "stream_bits": stream_bits, "batch": batch, "layers": layers,
            "memories": {k: {"row_bits": v[0], "bits": v[1]} for k, v in mems.items()}}


def price(counts: dict, table: dict) -> dict:
    """Energy of :func:`program_ops` counts with ``table``: per op, per component, total.

    Returns ``total_pj``, ``by_component`` (every component of
    :data:`~shifthw.estimate.hierarchy.COMPONENTS`; control logic has no op-count row),
    ``rows`` (each op with its pJ, count and basis label) and ``off_chip_pj`` (what
    streaming the engine's inputs and outputs from DRAM would add: low/high).
    """
    rows = []
    for o in counts["ops"]:
        kind, bits = o["op"], o["bits"]
        if kind == "add":
            pj, basis = add_energy(table, bits[0])
        elif kind == "mult":
            pj, basis = mult_energy(table, bits[0], bits[1])
        elif kind == "shift":
            pj, basis = assumed_energy(table, "shifter_stage_bit", bits[2])
        elif kind == "negate":
            pj, basis = assumed_energy(table, "xor_bit", bits[0])
        elif kind == "mux":
            pj, basis = assumed_energy(table, "mux_bit", bits[0])
        elif kind == "register":
            pj, basis = assumed_energy(table, "register_bit", bits[0])
        elif kind in ("sram_read", "sram_write"):
            pj, basis = sram_energy(table, bits[0], bits[1])
        else:  # pragma: no cover - program_ops makes only the kinds above
            raise ValueError(f"unknown operation {kind!r}")
        rows.append({**o, "pj_each": pj, "pj": pj * o["count"], "basis": basis})
    by_comp = dict.fromkeys(COMPONENTS, 0.0)
    for row in rows:
        by_comp[row["component"]] += row["pj"]
    dram = table.get("dram_64bit_access")
    off = None
    if dram:
        lo, hi = (min(dram), max(dram)) if isinstance(dram, list) else (dram, dram)
        words = counts["stream_bits"] / 64
        off = {"low_pj": lo * words, "high_pj": hi * words,
               "basis": "table (DRAM 64-bit access), every stream bit read from or written to "
                        "DRAM once"}
    return {"total_pj": sum(by_comp.values()), "by_component": by_comp, "rows": rows,
            "off_chip_pj": off}
