"""A fast analytic area model, calibrated on sweeps of real synthesis results.

Users ask for resource estimates without running synthesis.  :class:`AreaModel` answers in
well under a millisecond: LUTs and flip-flops are linear in a few features that follow the
engine's structure (PE shifters or multipliers, adder-tree and accumulator bits, the output
stage, the weight buffer's width, the control's counter widths), with non-negative coefficients
fitted per FPGA family (or generic gates) and per PE kind (shift, LUT-built multiplier,
DSP multiplier, LUT-built Booth multiplier) by least squares on relative error.  Block RAMs
and DSP blocks come from rules (the buffers' shapes over the block RAM's aspect ratios; one
DSP per multiplier, or per partial product with the PE register).

``benchmarks/estimate_sweep.py`` synthesises the calibration sweeps (``sweep_data.json``),
fits the model and writes ``area_model.json`` with, per family, kind and metric, the error
on points held out of the fit (every fourth point) and a stated bound: the larger of that
error and the ``check`` grid's (combinations never fitted) within the calibration, rounded
up to the next 5 %.
"""

from __future__ import annotations

import functools
import json
import math
import os
from importlib import resources
from pathlib import Path

import numpy as np
from amaranth.utils import ceil_log2

from .. import numerics as nx
from ..rtl_gen.array import SPLIT_ACC_BITS
from ..rtl_gen.config import RESULT_FIFO_DEPTH, EngineConfig
from ..rtl_gen.layouts import (act_word_layout, array_in_layout, bias_entry_layout,
                               bias_entry_words, out_word_layout, weight_entry_layout,
                               weight_entry_words)
from ..rtl_gen.pe import partial_product_bits, pe_register_bits, shifter_muxes
from .energy import tree_widths
from .sweep import SETTINGS
from .targets import Target, get_target

__all__ = ["MODEL_FILE", "DATA_FILE", "DSP_MIN_PRODUCT_BITS", "MAPPINGS", "device_family",
           "model_family", "dsp_mapped", "dsp_blocks", "kind_of",
           "shifter_muxes",
           "calibration_rows", "features", "bram_blocks", "fit_family",
           "split_heldout", "AreaModel", "load_area_model", "check_rows", "config_of_row",
           "uncalibrated", "input_register_bits", "counted_ff", "CALIBRATED_RANGES",
           "CALIBRATED_SIZES", "CALIBRATED_WEIGHT_BITS", "CHECK_GRID",
           "CALIBRATED_NARROW_ACC", "CONTROL", "lut_ram_cells", "out_fifo_memory", "unmodelled",
           "ICE40_FIFO_FF_WORDS", "check_errors",
           "ice40_dsp_unpacked", "calibrated_ranges", "ICE40_CELLS_FILE", "fit_ice40_cells",
           "ice40_cells_fit", "ice40_logic_cells"]

MODEL_FILE = "area_model.json"
DATA_FILE = "sweep_data.json"
#: Placed iCE40 designs' logic cells beside their LUT and FF counts
#: (``benchmarks/ice40_cells.py``).
ICE40_CELLS_FILE = "ice40_cells.json"

#: The control's features: the widths its counters and descriptor fields follow.
CONTROL = ("count_bits", "kt_bits", "bank_bits", "nt_bits", "addr_bits", "param_lanes",
           "param_bits")

#: Features per metric (names; values from :func:`features`).
FEATURES = {
    "lut": ("pe_core", "pe_core_split", "pe_muxes", "pe_bits", "tree_bits", "acc_bits",
            "out_bits", "hold_bits", "gather_bits", "stall_bits", "stall", "fifo_bits", "sf_bits",
            "sf", "sf_tok_bits", "pe_split_bits", "weight_bits", "sat_bits", "pe_unreg_bits",
            "lut_ram",
            "fifo_mem", *CONTROL, "const"),
    "ff": ("pe_out_regs", "pipe_bits", "acc_bits", "out_regs", "fifo_regs", "fifo_mem",
           "lut_ram_bits", "lane_regs",
           "hold_bits", "gather_bits",
           "stall_bits", "stall", "sf_bits", "sf_split_bits", "sf", "sf_tok_bits",
           "dsp_in_reg_bits",
           "dsp_pe_reg_bits", "weight_bits", *CONTROL, "const"),
}
# Generic gates count flip-flops in NAND2 equivalents too: the pipeline registers as well.
FEATURES["nand2_eq"] = (*FEATURES["lut"][:-1], "pe_out_regs", "pipe_bits", "const")


#: Yosys maps a multiplier to a DSP block only if its product has at least this many bits
#: (``synth_ice40 -dsp``: DSP_Y_MINWIDTH=11; ECP5: every multiplier of the calibration sweep,
#: down to 4 x 4, went to a DSP block).
DSP_MIN_PRODUCT_BITS = {"ice40": 11, "ecp5": 2}


#: Calibrations of a family under a mapping other than Yosys' default, and their family.
MAPPINGS = {"ecp5_nowidelut": "ecp5"}


def device_family(family: str) -> str:
    """The FPGA family of a calibration's name (``ecp5_nowidelut``: ``ecp5``)."""
    return MAPPINGS.get(family, family)


def model_family(family: str, wide_luts: bool = True) -> str:
    """The calibration's name for a family and mapping (``wide_luts=False``: the ECP5
    mapped to LUT4s alone, ``synth_ecp5 -nowidelut``)."""
    return family if wide_luts else f"{family}_nowidelut"


def dsp_mapped(cfg: EngineConfig, family: str) -> bool:
    """Whether Yosys puts this engine's multipliers into DSP blocks when asked to."""
    family = device_family(family)
    return cfg.pe == "mult" and cfg.act_bits + cfg.weight_bits >= \
        DSP_MIN_PRODUCT_BITS.get(family, 1 << 30)


def dsp_blocks(cfg: EngineConfig, family: str) -> int:
    """DSP blocks of an engine whose multipliers go to DSPs: one per multiplier, and with
    ``pe_register`` one per partial product (``rtl_gen.pe.MultPE``) that is wide enough."""
    if cfg.pe != "mult":
        return 0
    family = device_family(family)
    if not cfg.pe_register:
        return cfg.rows * cfg.cols * dsp_mapped(cfg, family)
    least = DSP_MIN_PRODUCT_BITS.get(family, 1 << 30)
    return cfg.rows * cfg.cols * sum(
        p >= least for p in partial_product_bits(cfg.act_bits, cfg.weight_bits))


def ice40_dsp_unpacked(cfg: EngineConfig, family: str) -> bool:
    """Whether ``shifthw estimate`` synthesises this DSP engine on the iCE40 without
    ``ice40_dsp``'s register and adder packing, which drops a multiplier of the stall-free
    array's first tree level in Yosys 0.70 (:data:`~.area.ICE40_DSP_WORKAROUND`; the
    products are registered without an enable, and paired by the tree)."""
    return (device_family(family) == "ice40" and cfg.stall_free and cfg.rows >= 2
            and cfg.pipeline_stages > 0 and not cfg.pe_register)


def kind_of(pe: str, dsp: bool, cfg: EngineConfig | None = None,
            family: str | None = None, booth: bool = False) -> str:
    """``"shift"``, ``"mult_lut"``, ``"mult_booth"`` (LUT-built, as Yosys' Booth
    multipliers) or ``"mult_dsp"`` (a multiplier too small for the DSP blocks is built from
    LUTs even when DSPs are asked for; so is one whose partial products with
    ``pe_register`` are all too small)."""
    if pe == "shift":
        return "shift"
    if dsp and (cfg is None or family is None or dsp_blocks(cfg, family) > 0):
        return "mult_dsp"
    return "mult_booth" if booth else "mult_lut"


def features(cfg: EngineConfig, kind: str, family: str = "generic") -> dict[str, float]:
    """The model's features of an engine for a family's calibration (see the module
    docstring; the family decides where synthesis puts the small memories)."""
    r, c, a = cfg.rows, cfg.cols, cfg.act_bits
    adders, levels = tree_widths(cfg.term_bits, r)
    stages = max(cfg.acc_bits + a + 1, 2).bit_length()
    if kind == "shift":
        shifter = nx.shifter_stages(a, cfg.weight_bits, cfg.guard_bits)
        core = r * c * cfg.term_bits * max(shifter, 1)
        muxes = r * c * shifter_muxes(a, cfg.weight_bits, cfg.guard_bits)
    elif kind in ("mult_lut", "mult_booth"):
        core, muxes = r * c * a * cfg.weight_bits, 0.0
    else:
        # DSP multipliers; with pe_register a partial product too narrow for a DSP block is
        # built from LUTs (A times its part of the weight's bits).
        core = muxes = 0.0
        if cfg.pe_register:
            least = DSP_MIN_PRODUCT_BITS.get(device_family(family), 1 << 30)
            h = cfg.weight_bits // 2
            core = r * c * a * sum(w for w, bits in zip((h, cfg.weight_bits - h),
                                                        partial_product_bits(a, cfg.weight_bits))
                                   if bits < least)
    pipe = sum(sum(levels[lv]) for lv in cfg.register_levels if lv)
    # The PEs' outputs are registered with any pipeline stage (level 0 comes first).
    pe_out = sum(levels[0]) if cfg.pipeline_stages else 0
    fifo = out_fifo_memory(cfg, family)
    # With no register after the PEs, the iCE40's DSP blocks take in the trees' first level
    # (each SB_MAC16 adds two products: measured, every such adder bit).
    absorbed = sum(adders[:r // 2]) if (kind == "mult_dsp" and not cfg.pipeline_stages
                                        and device_family(family) == "ice40") else 0
    q = cfg.out_lanes
    stall = 1.0 if cfg.registered_stall else 0.0
    sf = 1.0 if cfg.stall_free else 0.0
    # With registered_stall the bias reader always gathers (a shift register, then an
    # output register next to the array); otherwise only with fewer lanes than columns.
    gathers = cfg.bias_lanes < c or cfg.registered_stall
    return {
        "pe_core": float(core) * (not cfg.pe_register),
        # The same with pe_register (the shifter or multiplier in two parts around it: on
        # the ECP5 two half-width multipliers map into fewer LUTs than one).
        "pe_core_split": float(core) * cfg.pe_register,
        # The shift PEs' multiplexers (the iCE40 and generic gates follow these; the ECP5's
        # wide-function multiplexers follow the stages).
        "pe_muxes": float(muxes),
        "pe_bits": float(r * c * cfg.term_bits),
        "tree_bits": float(c * (sum(adders) - absorbed)),
        "acc_bits": float(c * cfg.acc_bits),
        # The requantisers: out_lanes lanes of the funnel shifter and its tests.
        "out_bits": float(q * (a + 1) * stages),
        # With out_lanes < C, the holding register the lanes shift down through.
        "hold_bits": float(c * cfg.acc_bits) if q < c else 0.0,
        "gather_bits": float(c * cfg.bias_bits) if gathers else 0.0,
        # registered_stall: the array's skid register (C accumulator words; not with
        # stall_free) and its control (the engine's, with stall_free too).
        "stall_bits": stall * (1.0 - sf) * c * cfg.acc_bits,
        "stall": stall,
        # stall_free: the result FIFO, its read register, the bias adders and the two output
        # slots (C accumulator words each), the thermometer counts; with accumulators of
        # SPLIT_ACC_BITS or more, the split accumulators' delay registers.
        "sf_bits": sf * c * cfg.acc_bits,
        "sf_split_bits": sf * c * cfg.acc_bits * (cfg.acc_bits >= SPLIT_ACC_BITS),
        "sf": sf,
        # stall_free: the loader's and issuer's one-hot k-tile tokens (a bank's words each;
        # bits beyond the largest k_tiles stay 0 and go).
        "sf_tok_bits": sf * 2 * min(1 << ceil_log2(cfg.k_depth),
                                    1 << ceil_log2(cfg.max_k_tiles + 1)),
        # pe_register: the logic after each PE's register (the shift PE's lower shifter
        # levels; the multiplier PE's sum of its two partial products).
        "pe_split_bits": float(r * c * cfg.term_bits * cfg.pe_register),
        # DSP multipliers: the input and PE registers are fitted, not counted (the blocks
        # can take some of them in).
        "dsp_in_reg_bits": float(cfg.input_registers * input_register_bits(cfg))
        if kind == "mult_dsp" else 0.0,
        "dsp_pe_reg_bits": float(r * c * pe_register_bits(cfg) * cfg.pe_register)
        if kind == "mult_dsp" else 0.0,
        # The output FIFO's memory (out_depth >= 3): in flip-flops (the iCE40's small
        # ones), the multiplexer reading them (its registers are in out_regs); elsewhere
        # (block RAM, LUT RAM, a macro) its read side and pointers.  With out_depth = 1 the
        # FIFO is one register.
        "fifo_bits": float(c * a * (cfg.out_depth - 1)) if fifo == "ff" else 0.0,
        "fifo_mem": float(c * a) if fifo not in (None, "ff") else 0.0,
        "weight_bits": float(r * c * cfg.weight_bits),
        "pipe_bits": float(c * pipe),
        "pe_out_regs": float(c * pe_out),
        # No PE output register (pipeline_stages 0): synthesis merges the PEs into the
        # trees' first level.
        "pe_unreg_bits": float(r * c * cfg.term_bits) if not cfg.pipeline_stages else 0.0,
        # A saturating accumulator (acc_bits below the formula's): its saturation logic.
        "sat_bits": float(c * cfg.acc_bits) if cfg.saturating else 0.0,
        # The memories the family keeps in LUT RAM (the ECP5; none elsewhere): their cells,
        # and the flip-flops that register their reads (a block RAM has its own).
        "lut_ram": float(lut_ram_cells(cfg, family)),
        "lut_ram_bits": float(sum(w for w, _, _ in _lut_ram_memories(cfg, family))),
        # The control: the vectors-left counters and the descriptor's count; the k-tile,
        # bank-word and n-tile counters and fields; the buffers' address counters; the
        # loader's one-hot word of an entry and the write lanes it enables.
        "count_bits": float(cfg.count_bits),
        "kt_bits": float(ceil_log2(cfg.max_k_tiles + 1)),
        "bank_bits": float(ceil_log2(cfg.k_depth)),
        "nt_bits": float(ceil_log2(cfg.max_n_tiles + 1)),
        "addr_bits": float(ceil_log2(cfg.weight_depth) + ceil_log2(cfg.bias_depth
                                                                    * cfg.bias_beats)),
        "param_lanes": float(weight_entry_words(cfg) + bias_entry_words(cfg)),
        "param_bits": float(cfg.param_word_bits),
        # The output stage's register; the output FIFO's (its memory too where that is
        # flip-flops: out_depth words).
        "out_regs": float(c * a),
        "fifo_regs": float(c * a * (cfg.out_depth if fifo in (None, "ff") else 1)),
        # The requantisers' pipeline registers, about 3 A + 8 bits a lane.
        "lane_regs": float(q * (3 * a + 8)),
        "const": 1.0,
    }


def input_register_bits(cfg: EngineConfig) -> int:
    """Flip-flops of one level of the array's input registers: a beat (R activations, R x C
    weights, first and last) and its valid bit."""
    return array_in_layout(cfg).size + 1


def counted_ff(cfg: EngineConfig, kind: str) -> int:
    """Flip-flops the model counts rather than fits: input-register levels other than one
    (:func:`input_register_bits` each) and the PE registers; none for DSP multipliers (their
    blocks can take some of these in: fitted)."""
    if kind == "mult_dsp":
        return 0
    return ((cfg.input_registers - 1) * input_register_bits(cfg)
            + cfg.rows * cfg.cols * pe_register_bits(cfg) * cfg.pe_register)


#: The ranges of the settings the calibration sweeps hold (the ``settings`` grid changes each
#: from the default engine to both ends; ``out_depth`` 0 is of the other grids).
CALIBRATED_RANGES = {"k_depth": (16, 512), "weight_depth": (64, 2048), "bias_depth": (8, 256),
                     "param_word_bits": (16, 64), "count_bits": (8, 24), "out_depth": (0, 16),
                     "pipeline_stages": (0, 4)}
#: How many bits below the formula's width the calibration's saturating accumulators go.
CALIBRATED_NARROW_ACC = 4
#: The array sizes and widths the calibration sweeps hold (the ``base`` grid), and the
#: weight widths per PE kind.
CALIBRATED_SIZES = {"rows": (2, 8), "cols": (2, 8), "act_bits": (4, 8)}
CALIBRATED_WEIGHT_BITS = {"shift": (3, 5), "mult": (4, 8)}
#: The sweep grid whose points check the model and are never fitted (combinations of
#: settings, sizes and widths beyond the calibration: ``benchmarks/estimate_sweep.py``).
CHECK_GRID = "check"


def calibrated_ranges(pe: str) -> dict[str, tuple[int, int]]:
    """Every range the calibration sweeps held for a PE kind (``"shift"`` or ``"mult"``):
    sizes, widths and settings."""
    return {**CALIBRATED_SIZES, "weight_bits": CALIBRATED_WEIGHT_BITS[pe],
            **CALIBRATED_RANGES}


def uncalibrated(cfg: EngineConfig, family: str | None = None,
                 kind: str | None = None) -> list[str]:
    """The settings of ``cfg`` outside the model's calibration: sizes and widths beyond
    what the calibration sweeps held (:data:`CALIBRATED_SIZES`,
    :data:`CALIBRATED_WEIGHT_BITS`) and settings beyond their ranges
    (:data:`CALIBRATED_RANGES`; an accumulator more than :data:`CALIBRATED_NARROW_ACC`
    bits narrower than the formula's, or wider), where the model extrapolates; and, for a
    ``family`` (or mapping) given, the settings :func:`unmodelled` names for it and the
    design's ``kind``.  The
    sweeps changed the settings one at a time from the default engine, and the lanes,
    ``registered_stall``, ``input_registers``, ``pe_register`` and ``stall_free`` together;
    the ``check`` grid measures combinations, and points beyond these ranges
    (``docs/estimation.md``)."""
    out = []
    for name, (lo, hi) in calibrated_ranges(cfg.pe).items():
        value = getattr(cfg, name)
        if not lo <= value <= hi:
            out.append(f"{name}={value}")
    natural = cfg.natural_acc_bits
    if not natural - CALIBRATED_NARROW_ACC <= cfg.acc_bits <= natural:
        out.append(f"acc_bits={cfg.acc_bits}")
    if family is not None:
        out += [s for s in unmodelled(cfg, family, kind) if s not in out]
    return out


def unmodelled(cfg: EngineConfig, family: str, kind: str | None = None) -> list[str]:
    """Settings the sweeps held whose synthesis the model does not follow on a family, so
    their points are left out of its fit: on the ECP5 with Yosys' default mapping (not
    ``ecp5_nowidelut``), a saturating accumulator and a single pipeline stage after R >= 4
    PEs, which ``synth_ecp5`` maps into up to a third fewer LUTs than the default engine;
    on the iCE40, ``stall_free`` for the DSP twin (``kind`` ``"mult_dsp"``) when it is
    synthesised without ``ice40_dsp``'s packing (:func:`ice40_dsp_unpacked`), whose
    registers then stay in the fabric (``docs/estimation.md``)."""
    if kind == "mult_dsp" and ice40_dsp_unpacked(cfg, family):
        return ["stall_free=True"]
    if family != "ecp5":
        return []
    out = []
    if cfg.pipeline_stages == 1 and cfg.tree_levels >= 2:
        out.append("pipeline_stages=1")
    if cfg.saturating:
        out.append(f"acc_bits={cfg.acc_bits}")
    return out


#: Block RAM aspect ratios (width, depth) per family.
_BRAM_SHAPES = {
    "ice40": ((16, 256), (8, 512), (4, 1024), (2, 2048)),
    "ecp5": ((36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384)),
}


#: Memories Yosys keeps in LUT RAM instead (ECP5: at most this many bits, or this deep),
#: found on the calibration sweep.
_LUT_RAM = {"ecp5": (1024, 32)}


def _memories(cfg: EngineConfig) -> list[tuple[int, int, int | None]]:
    """The buffers as (width, depth, write lane bits or None)."""
    bank = 1 << max(cfg.k_depth - 1, 0).bit_length()
    word = cfg.param_word_bits
    mems = [(weight_entry_layout(cfg).size, cfg.weight_depth, word),
            (bias_entry_layout(cfg).size, cfg.bias_depth * cfg.bias_beats, word),
            (act_word_layout(cfg).size, 2 * bank, None)]
    if cfg.stall_free:
        mems.append((cfg.cols * cfg.acc_bits, RESULT_FIFO_DEPTH, None))
    return mems


def _in_lut_ram(width: int, depth: int, family: str) -> bool:
    if device_family(family) not in _LUT_RAM:
        return False
    max_bits, max_depth = _LUT_RAM[device_family(family)]
    return width * depth <= max_bits or depth <= max_depth


#: The iCE40 keeps an output FIFO memory of up to this many words in flip-flops, and puts a
#: deeper one in block RAM (measured: 4 and 5 words).
ICE40_FIFO_FF_WORDS = 4


def out_fifo_memory(cfg: EngineConfig, family: str) -> str | None:
    """Where synthesis puts the output FIFO's memory (``out_depth`` - 1 words of C x A bits,
    with ``out_depth`` >= 3; none with 0 or 1): ``"ff"`` (iCE40, up to
    :data:`ICE40_FIFO_FF_WORDS` words), ``"bram"``, ``"lut_ram"`` (ECP5, by the buffers'
    rule) or ``"macro"`` (generic gates keep memories as macros)."""
    words = cfg.out_depth - 1 if cfg.out_depth >= 3 else 0
    if not words:
        return None
    family = device_family(family)
    if family == "ice40":
        return "ff" if words <= ICE40_FIFO_FF_WORDS else "bram"
    if family in _BRAM_SHAPES:
        return "lut_ram" if _in_lut_ram(out_word_layout(cfg).size, words, family) else "bram"
    return "macro"


def _fifo(cfg: EngineConfig, family: str, place: str) -> list[tuple[int, int, None]]:
    """The output FIFO's memory as one of :func:`_memories` if it is in ``place``."""
    if out_fifo_memory(cfg, family) != place:
        return []
    return [(out_word_layout(cfg).size, cfg.out_depth - 1, None)]


def _lut_ram_memories(cfg: EngineConfig, family: str) -> list[tuple[int, int, int | None]]:
    """The buffers (:func:`_memories`) the family keeps in LUT RAM."""
    return [m for m in _memories(cfg) if _in_lut_ram(m[0], m[1], family)]


def lut_ram_cells(cfg: EngineConfig, family: str) -> int:
    """16 x 4-bit LUT RAM cells of the memories (buffers and output FIFO) that the family
    keeps in LUT RAM (the ECP5's rule; none on families without LUT RAM)."""
    return sum(math.ceil(w / 4) * math.ceil(d / 16)
               for w, d, _ in _lut_ram_memories(cfg, family) + _fifo(cfg, family, "lut_ram"))


def bram_blocks(cfg: EngineConfig, family: str) -> int:
    """Block RAMs of the three buffers, each in the cheapest aspect ratio of the family
    (small or shallow memories in LUT RAM where the family has it).  The weight and bias
    buffers are written ``param_word_bits`` at a time, and Yosys maps each such write lane
    (the last one as wide as the bits left) as a memory of its own."""
    family = device_family(family)
    if family not in _BRAM_SHAPES:
        return 0
    total = 0
    for w, d, lane in _memories(cfg) + _fifo(cfg, family, "bram"):
        if _in_lut_ram(w, d, family):
            continue
        widths = [min(lane, w - i) for i in range(0, w, lane)] if lane else [w]
        shapes = _BRAM_SHAPES[family]
        if family == "ice40" and d & (d - 1) and d > shapes[0][1]:
            # A depth that is not a power of two (bias buffers of 3 or 6 beats) goes into
            # blocks no deeper than it, the write lanes together (measured: 18 bits x 768
            # words in six 256 x 16 blocks, not five of 1024 x 4, with one write lane or
            # two; 22 bits x 1536 words in nine of 512 x 8).
            shapes = tuple(sh for sh in shapes if sh[1] <= d)
            widths = [w]
        blocks = sum(min(math.ceil(x / bw) * math.ceil(d / bd) for bw, bd in shapes)
                     for x in widths)
        if family == "ecp5" and lane and lane < 36:
            # The DP16KD's byte enables (four 9-bit bytes at 512 words, two at 1024) let
            # narrow write lanes share a block.
            nine = sum(math.ceil(x / 9) for x in widths)
            blocks = min(blocks, math.ceil(nine / 4) * math.ceil(d / 512),
                         math.ceil(nine / 2) * math.ceil(d / 1024))
        total += blocks
    return total


def config_of_row(row: dict) -> EngineConfig:
    """The engine of a sweep row: its engine parameters and recorded settings
    (:data:`shifthw.estimate.sweep.SETTINGS`; a setting a row lacks, as in sweeps written
    before rows recorded them, is the generator's default)."""
    extra = {k: row[k] for k in ("acc_bits", "pipeline_stages", *SETTINGS)
             if row.get(k) is not None}
    return EngineConfig(rows=row["rows"], cols=row["cols"], act_bits=row["act_bits"],
                        weight_bits=row["weight_bits"], pe=row["pe"],
                        guard_bits=row["guard_bits"] if row["pe"] == "shift" else None,
                        **extra)


def calibration_rows(rows: list[dict], family: str, kind: str,
                     metrics=("lut", "ff")) -> list[dict]:
    """The sweep rows of one kind that were synthesised (a design that does not fit the
    device still has its area) and have every metric, without the points of settings the
    model does not follow on the family (:func:`unmodelled`), nor those of the ``check``
    grid (:data:`CHECK_GRID`), which only measure the model."""
    return [r for r in rows
            if r.get("grid") != CHECK_GRID
            and (r.get("error") is None or str(r["error"]).startswith("over capacity"))
            and all(r.get(m) is not None for m in metrics)
            and kind_of(r["pe"], bool(r.get("dsp")), cfg := config_of_row(r), family,
                        bool(r.get("booth"))) == kind
            and not unmodelled(cfg, family, kind)]


def split_heldout(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """(fit, held out): every fourth row of a stable order is held out of the fit.  The order
    is by settings first (the pipeline depth and a saturating accumulator among them), so
    that every setting of the sweeps with four points or more has points held out."""
    order = sorted(rows, key=lambda r: (tuple(str(r.get(k)) for k in SETTINGS),
                                        str(r.get("pipeline_stages")),
                                        config_of_row(r).saturating,
                                        r["pe"], bool(r.get("dsp")), r["act_bits"],
                                        r["weight_bits"], r.get("guard_bits") or 0,
                                        r["rows"], r["cols"]))
    return ([r for i, r in enumerate(order) if i % 4 != 3],
            [r for i, r in enumerate(order) if i % 4 == 3])


def _matrix(rows, kind, metric, family):
    """Features, measured figures and the counted part of them (:func:`counted_ff`)."""
    names = FEATURES[metric]
    cfgs = [config_of_row(r) for r in rows]
    x = np.array([[features(cfg, kind, family)[n] for n in names] for cfg in cfgs])
    y = np.array([float(r[metric]) for r in rows])
    counted = np.array([float(counted_ff(cfg, kind)) if metric == "ff" else 0.0
                        for cfg in cfgs])
    return x, y, counted


def _errors(pred, y) -> dict:
    pct = np.abs(pred - y) / np.maximum(y, 1.0) * 100
    return {"n": int(len(y)), "mean_pct": float(pct.mean()) if len(y) else None,
            "max_pct": float(pct.max()) if len(y) else None}


def fit_family(rows: list[dict], metric: str, kind: str, family: str) -> dict:
    """Fit one metric of one kind of a family's calibration; coefficients and fit /
    held-out errors."""
    from scipy.optimize import nnls

    train, held = split_heldout(rows)
    x, y, counted = _matrix(train, kind, metric, family)
    keep = np.abs(x).sum(axis=0) > 0          # features that are zero for this kind
    w = 1.0 / np.maximum(y, 1.0)              # least squares on relative error
    coef = np.zeros(x.shape[1])
    coef[keep], _ = nnls(x[:, keep] * w[:, None], (y - counted) * w)
    out = {"features": list(FEATURES[metric]), "coef": coef.tolist(),
           "fit": _errors(x @ coef + counted, y)}
    if held:
        xh, yh, ch = _matrix(held, kind, metric, family)
        out["heldout"] = _errors(xh @ coef + ch, yh)
        # The stated bound: the held-out maximum rounded up to the next 5 % (the sweep
        # benchmark raises it to the check grid's maximum where that is larger).
        out["stated_error_pct"] = float(5 * math.ceil(max(out["heldout"]["max_pct"], 1) / 5))
    return out


def ice40_logic_cells(lut: float, ff: float, per_ff: float) -> float:
    """iCE40 logic cells of a design of ``lut`` LUT4s and ``ff`` flip-flops: a cell holds
    one LUT4 and one flip-flop, and ``per_ff`` of the flip-flops find no LUT to share a cell
    with (at least as many cells as LUTs and as flip-flops)."""
    return max(lut + per_ff * ff, lut, ff)


def fit_ice40_cells(points: list[dict]) -> tuple[float, float]:
    """``(per_ff, largest error in %)`` of :func:`ice40_logic_cells` fitted to placed
    points (``lut``, ``ff``, ``logic_cells``) by least squares on relative error."""
    lut = np.array([p["lut"] for p in points], float)
    ff = np.array([p["ff"] for p in points], float)
    cells = np.array([p["logic_cells"] for p in points], float)
    w = 1 / cells ** 2
    per_ff = float(np.sum(w * (cells - lut) * ff) / np.sum(w * ff * ff))
    est = np.maximum(np.maximum(lut + per_ff * ff, lut), ff)
    return per_ff, float(np.max(np.abs(est - cells) / cells) * 100)


@functools.lru_cache(maxsize=1)
def ice40_cells_fit() -> tuple[float, float]:
    """:func:`fit_ice40_cells` on the shipped placed points (``ice40_cells.json``):
    ``(cells per flip-flop beyond the LUTs, its stated error in %)``: the largest error on
    those points, rounded up to the next 5 %."""
    data = json.loads(resources.files(__package__).joinpath(ICE40_CELLS_FILE).read_text())
    per_ff, err = fit_ice40_cells(data["points"])
    return per_ff, 5 * math.ceil(err / 5)


class AreaModel:
    """LUT, FF, BRAM and DSP estimates of an engine on a target, in microseconds."""

    def __init__(self, data: dict):
        if data.get("format") != "shifthw.area_model":
            raise ValueError("not a shifthw area model (format != 'shifthw.area_model')")
        self.data = data

    @functools.cached_property
    def ice40_cells(self) -> tuple[float, float]:
        """The iCE40 logic-cell fit: ``(cells per flip-flop beyond the LUTs, its stated
        error in %)`` (:func:`ice40_cells_fit`)."""
        return ice40_cells_fit()

    def families(self) -> list[str]:
        return list(self.data["families"])

    def predict(self, cfg: EngineConfig, target, *, dsp: bool = False,
                booth: bool = False, wide_luts: bool = True) -> dict:
        """Estimated resources of ``cfg`` on ``target`` (``dsp``: multipliers in DSPs;
        ``booth``: LUT-built ones as Yosys' Booth multipliers; ``wide_luts=False``: the
        ECP5 mapped to LUT4s alone, ``synth_ecp5 -nowidelut``)."""
        if not isinstance(cfg, EngineConfig):
            raise TypeError(f"cfg must be an EngineConfig, not {cfg!r}")
        tgt: Target = get_target(target)
        name = model_family(tgt.family, wide_luts)
        fam = self.data["families"].get(name)
        kind = kind_of(cfg.pe, dsp, cfg, tgt.family, booth)
        if fam is None or kind not in fam:
            raise ValueError(f"the area model has no calibration for {kind} designs on "
                             f"{name} (families: {', '.join(self.families())})")
        feats = features(cfg, kind, name)
        outside = uncalibrated(cfg, name, kind)
        out = {"target": tgt.name, "kind": kind, "outside_calibration": outside}
        for metric, m in fam[kind].items():
            out[metric] = float(sum(c * feats[n] for n, c in zip(m["features"], m["coef"])))
            # The stated bound covers designs within the calibration only: beyond it the
            # model extrapolates (the check grid measured up to +53 % there), so no bound.
            out[f"{metric}_error_pct"] = None if outside else m.get("stated_error_pct")
        if "ff" in out:
            # Input and PE registers: counted, not fitted (the fit is of the rest; none for
            # DSP multipliers, whose fit has them as features).
            out["ff"] += counted_ff(cfg, kind)
        if tgt.family == "ice40" and "ff" in out:
            # A placement needs logic cells, more than the LUTs (placed points of
            # ice40_cells.json); the bound adds the cell fit's largest error to the LUT's
            # and FF's.
            per_ff, cells_err = self.ice40_cells
            out["logic_cells"] = ice40_logic_cells(out["lut"], out["ff"], per_ff)
            errs = (out["lut_error_pct"], out["ff_error_pct"])
            out["logic_cells_error_pct"] = None if None in errs else max(errs) + cells_err
        if tgt.is_fpga:
            out["bram"] = bram_blocks(cfg, tgt.family)
            out["dsp"] = dsp_blocks(cfg, tgt.family) if kind == "mult_dsp" else 0
            cap = tgt.capacity
            # The device's resources the estimate exceeds (the names of `Target.capacity`,
            # as synthesis reports them); fitting by count, not by packing into cells.
            out["over"] = [k for k, v in (("lut4", out["lut"]), ("ff", out["ff"]),
                                          ("bram", out["bram"]), ("dsp", out["dsp"]))
                           if v > cap[k]]
            if out.get("logic_cells", 0) > cap["lut4"] and "lut4" not in out["over"]:
                out["over"].append("logic_cells")
            out["fits"] = not out["over"]
        return out


def load_area_model(path: str | os.PathLike | None = None) -> AreaModel:
    """The shipped calibration (``area_model.json``) or a file of the same format."""
    if path is None:
        return AreaModel(json.loads(
            resources.files(__package__).joinpath(MODEL_FILE).read_text()))
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file path, not {type(path).__name__}")
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"area model {os.fspath(path)!r}: "
                                + ("a folder, not a file" if p.is_dir() else "no such file"))
    try:
        data = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"area model {os.fspath(path)!r}: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"area model {os.fspath(path)!r}: not a shifthw area model (a JSON "
                         f"object)")
    try:
        return AreaModel(data)
    except ValueError as exc:
        raise ValueError(f"area model {os.fspath(path)!r}: {exc}") from None


def check_rows(rows: list[dict], target, wide_luts: bool = True) -> dict | None:
    """The shipped model's error (LUT, or NAND2 equivalents on generic gates) against
    synthesised sweep rows: ``{metric, n, mean_pct, max_pct, outside_calibration}`` (the
    last: the rows' settings beyond the calibration's ranges), None without a calibration for
    the target's family (and mapping: ``wide_luts``)."""
    tgt = get_target(target)
    try:
        model = load_area_model()
    except (FileNotFoundError, ValueError, OSError):
        return None
    if model_family(tgt.family, wide_luts) not in model.families():
        return None
    pred, meas, outside = [], [], set()
    metric = "lut" if tgt.is_fpga else "nand2_eq"
    for r in rows:
        if r.get(metric) is None:
            continue
        try:
            p = model.predict(config_of_row(r), tgt, dsp=bool(r.get("dsp")),
                              booth=bool(r.get("booth")), wide_luts=wide_luts)
        except ValueError:
            continue
        if metric in p:
            pred.append(p[metric])
            meas.append(float(r[metric]))
            outside.update(p["outside_calibration"])
    if not meas:
        return None
    return {"metric": metric, **_errors(np.array(pred), np.array(meas)),
            "outside_calibration": sorted(outside)}


#: The target each calibration's family is checked on.
_FAMILY_TARGET = {"ice40": "ice40-up5k", "ecp5": "ecp5-85k", "generic": "generic"}


def check_errors(model: AreaModel, family: str, rows: list[dict]) -> dict:
    """A model against synthesised rows of a family's calibration (its ``check`` grid), per
    kind: the error on the rows within the calibration (nothing
    :func:`uncalibrated` names; mean and max of |model - synthesis| / synthesis per
    metric), and each row beyond it, with what it is outside of and its signed error."""
    metrics = ("nand2_eq", "ff") if family == "generic" else ("lut", "ff")
    out: dict = {}
    for r in rows:
        if ((r.get("error") is not None and not str(r["error"]).startswith("over capacity"))
                or any(r.get(m) is None for m in metrics)):
            continue
        p = model.predict(config_of_row(r), _FAMILY_TARGET[device_family(family)],
                          dsp=bool(r.get("dsp")), booth=bool(r.get("booth")),
                          wide_luts=family not in MAPPINGS)
        entry = out.setdefault(p["kind"], {"within": {m: [] for m in metrics}, "beyond": []})
        errs = {m: (p[m] - r[m]) / max(r[m], 1) * 100 for m in metrics}
        if p["outside_calibration"]:
            entry["beyond"].append({
                "design": r["label"], "rows": r["rows"], "cols": r["cols"],
                "act_bits": r["act_bits"], "outside": p["outside_calibration"],
                **{f"{m}_error_pct": round(e, 1) for m, e in errs.items()}})
        else:
            for m, e in errs.items():
                entry["within"][m].append(abs(e))
    for entry in out.values():
        entry["within"] = {m: {"n": len(e), "mean_pct": float(np.mean(e)) if e else None,
                               "max_pct": float(np.max(e)) if e else None}
                           for m, e in entry["within"].items()}
    return out
