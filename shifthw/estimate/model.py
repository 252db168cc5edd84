"""A fast analytic area model, calibrated on sweeps of real synthesis results.

Users ask for resource estimates without running synthesis.  :class:`AreaModel` answers in
well under a millisecond: LUTs and flip-flops are linear in a few features that follow the
engine's structure (PE shifters or multipliers, adder-tree and accumulator bits, the output
stage, the weight buffer's width, a constant for control), with non-negative coefficients
fitted per FPGA family (or generic gates) and per PE kind (shift, LUT-built multiplier,
DSP multiplier, LUT-built Booth multiplier) by least squares on relative error.  Block RAMs
and DSP blocks come from rules (the buffers' shapes over the block RAM's aspect ratios; one
DSP per multiplier, or per partial product with the PE register).

``benchmarks/estimate_sweep.py`` synthesises the calibration sweeps (``sweep_data.json``),
fits the model and writes ``area_model.json`` with, per family, kind and metric, the error
on points held out of the fit (every fourth point) and a stated bound on that error.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from importlib import resources
from pathlib import Path

import numpy as np

from .. import numerics as nx
from ..rtl_gen.array import SPLIT_ACC_BITS
from ..rtl_gen.config import RESULT_FIFO_DEPTH, EngineConfig
from ..rtl_gen.layouts import (act_word_layout, array_in_layout, bias_entry_layout,
                               weight_entry_layout)
from ..rtl_gen.pe import partial_product_bits, pe_register_bits, shifter_muxes
from .energy import tree_widths
from .sweep import SETTINGS
from .targets import Target, get_target

__all__ = ["MODEL_FILE", "DATA_FILE", "DSP_MIN_PRODUCT_BITS", "MAPPINGS", "device_family",
           "model_family", "dsp_mapped", "dsp_blocks", "kind_of",
           "shifter_muxes",
           "calibration_rows", "features", "bram_blocks", "fit_family",
           "split_heldout", "AreaModel", "load_area_model", "check_rows", "config_of_row",
           "uncalibrated", "input_register_bits", "counted_ff"]

MODEL_FILE = "area_model.json"
DATA_FILE = "sweep_data.json"

#: Features per metric (names; values from :func:`features`).
FEATURES = {
    "lut": ("pe_core", "pe_core_split", "pe_muxes", "pe_bits", "tree_bits", "acc_bits",
            "out_bits", "hold_bits", "gather_bits", "stall_bits", "stall", "fifo_bits", "sf_bits",
            "sf", "pe_split_bits", "weight_bits", "const"),
    "ff": ("pipe_bits", "acc_bits", "out_regs", "lane_regs", "hold_bits", "gather_bits",
           "stall_bits", "stall", "sf_bits", "sf_split_bits", "sf", "dsp_in_reg_bits",
           "dsp_pe_reg_bits", "weight_bits", "const"),
}
FEATURES["nand2_eq"] = FEATURES["lut"]


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


def kind_of(pe: str, dsp: bool, cfg: EngineConfig | None = None,
            family: str | None = None, booth: bool = False) -> str:
    """``"shift"``, ``"mult_lut"``, ``"mult_booth"`` (LUT-built, as Yosys' Booth
    multipliers) or ``"mult_dsp"`` (a multiplier too small for the DSP blocks is built from
    LUTs even when DSPs are asked for)."""
    if pe == "shift":
        return "shift"
    if dsp and (cfg is None or family is None or dsp_mapped(cfg, family)):
        return "mult_dsp"
    return "mult_booth" if booth else "mult_lut"


def features(cfg: EngineConfig, kind: str) -> dict[str, float]:
    """The model's features of an engine (see the module docstring)."""
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
        core = muxes = 0.0
    pipe = sum(sum(levels[lv]) for lv in cfg.register_levels)
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
        "tree_bits": float(c * sum(adders)),
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
        # pe_register: the logic after each PE's register (the shift PE's lower shifter
        # levels; the multiplier PE's sum of its two partial products).
        "pe_split_bits": float(r * c * cfg.term_bits * cfg.pe_register),
        # DSP multipliers: the input and PE registers are fitted, not counted (the blocks
        # can take some of them in).
        "dsp_in_reg_bits": float(cfg.input_registers * input_register_bits(cfg))
        if kind == "mult_dsp" else 0.0,
        "dsp_pe_reg_bits": float(r * c * pe_register_bits(cfg) * cfg.pe_register)
        if kind == "mult_dsp" else 0.0,
        # The output FIFO's read side (LUT RAM on the ECP5, multiplexed registers on the
        # iCE40); its registers are in out_regs.
        "fifo_bits": float(c * a) if cfg.out_depth else 0.0,
        "weight_bits": float(r * c * cfg.weight_bits),
        "pipe_bits": float(c * pipe),
        "out_regs": float(c * a * (1 + cfg.out_depth)),
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


def uncalibrated(cfg: EngineConfig) -> list[str]:
    """The settings of ``cfg`` that the calibration sweeps did not vary (they ran the
    default buffer depths; the default pipeline or the deepest one up to 4 stages; the
    output FIFO of the default depth or none; the lanes, ``registered_stall``,
    ``input_registers``, ``pe_register`` and ``stall_free`` varied): the model does not see
    the logic these change (``docs/estimation.md``)."""
    out = []
    calibrated_stages = (min(2, cfg.tree_levels + 1), min(4, cfg.tree_levels + 1))
    if cfg.pipeline_stages not in calibrated_stages:
        out.append(f"pipeline_stages={cfg.pipeline_stages}")
    defaults = {f.name: f.default for f in dataclasses.fields(EngineConfig)}
    for name in ("k_depth", "weight_depth", "bias_depth", "param_word_bits", "count_bits"):
        if getattr(cfg, name) != defaults[name]:
            out.append(f"{name}={getattr(cfg, name)}")
    if cfg.out_depth not in (0, defaults["out_depth"]):
        out.append(f"out_depth={cfg.out_depth}")
    return out


#: Block RAM aspect ratios (width, depth) per family.
_BRAM_SHAPES = {
    "ice40": ((16, 256), (8, 512), (4, 1024), (2, 2048)),
    "ecp5": ((36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384)),
}


#: Memories Yosys keeps in LUT RAM instead (ECP5: at most this many bits, or this deep),
#: found on the calibration sweep.
_LUT_RAM = {"ecp5": (1024, 32)}


def bram_blocks(cfg: EngineConfig, family: str) -> int:
    """Block RAMs of the three buffers, each in the cheapest aspect ratio of the family
    (small or shallow memories in LUT RAM where the family has it).  The weight and bias
    buffers are written ``param_word_bits`` at a time, and Yosys maps each such write lane
    (the last one as wide as the bits left) as a memory of its own."""
    family = device_family(family)
    if family not in _BRAM_SHAPES:
        return 0
    bank = 1 << max(cfg.k_depth - 1, 0).bit_length()
    word = cfg.param_word_bits
    mems = [(weight_entry_layout(cfg).size, cfg.weight_depth, word),
            (bias_entry_layout(cfg).size, cfg.bias_depth * cfg.bias_beats, word),
            (act_word_layout(cfg).size, 2 * bank, None)]
    if cfg.stall_free:
        mems.append((cfg.cols * cfg.acc_bits, RESULT_FIFO_DEPTH, None))
    max_bits, max_depth = _LUT_RAM.get(family, (0, 0))
    total = 0
    for w, d, lane in mems:
        if w * d <= max_bits or d <= max_depth:
            continue
        widths = [min(lane, w - i) for i in range(0, w, lane)] if lane else [w]
        total += sum(min(math.ceil(x / bw) * math.ceil(d / bd)
                         for bw, bd in _BRAM_SHAPES[family]) for x in widths)
    return total


def config_of_row(row: dict) -> EngineConfig:
    """The engine of a sweep row: its engine parameters and recorded settings
    (:data:`shifthw.estimate.sweep.SETTINGS`; a setting a row lacks, as in sweeps written
    before rows recorded them, is the generator's default)."""
    extra = {k: row[k] for k in ("pipeline_stages", *SETTINGS) if row.get(k) is not None}
    return EngineConfig(rows=row["rows"], cols=row["cols"], act_bits=row["act_bits"],
                        weight_bits=row["weight_bits"], pe=row["pe"],
                        guard_bits=row["guard_bits"] if row["pe"] == "shift" else None,
                        **extra)


def calibration_rows(rows: list[dict], family: str, kind: str,
                     metrics=("lut", "ff")) -> list[dict]:
    """The sweep rows of one kind that were synthesised (a design that does not fit the
    device still has its area) and have every metric."""
    return [r for r in rows
            if (r.get("error") is None or str(r["error"]).startswith("over capacity"))
            and kind_of(r["pe"], bool(r.get("dsp")), config_of_row(r), family,
                        bool(r.get("booth"))) == kind
            and all(r.get(m) is not None for m in metrics)]


def split_heldout(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """(fit, held out): every fourth row of a stable order is held out of the fit.  The order
    is by settings first, so that every setting of the sweeps with four points or more has
    points held out."""
    order = sorted(rows, key=lambda r: (tuple(str(r.get(k)) for k in SETTINGS),
                                        r["pe"], bool(r.get("dsp")), r["act_bits"],
                                        r["weight_bits"], r.get("guard_bits") or 0,
                                        r["rows"], r["cols"]))
    return ([r for i, r in enumerate(order) if i % 4 != 3],
            [r for i, r in enumerate(order) if i % 4 == 3])


def _matrix(rows, kind, metric):
    """Features, measured figures and the counted part of them (:func:`counted_ff`)."""
    names = FEATURES[metric]
    cfgs = [config_of_row(r) for r in rows]
    x = np.array([[features(cfg, kind)[n] for n in names] for cfg in cfgs])
    y = np.array([float(r[metric]) for r in rows])
    counted = np.array([float(counted_ff(cfg, kind)) if metric == "ff" else 0.0
                        for cfg in cfgs])
    return x, y, counted


def _errors(pred, y) -> dict:
    pct = np.abs(pred - y) / np.maximum(y, 1.0) * 100
    return {"n": int(len(y)), "mean_pct": float(pct.mean()) if len(y) else None,
            "max_pct": float(pct.max()) if len(y) else None}


def fit_family(rows: list[dict], metric: str, kind: str) -> dict:
    """Fit one metric of one kind; coefficients and fit / held-out errors."""
    from scipy.optimize import nnls

    train, held = split_heldout(rows)
    x, y, counted = _matrix(train, kind, metric)
    keep = np.abs(x).sum(axis=0) > 0          # features that are zero for this kind
    w = 1.0 / np.maximum(y, 1.0)              # least squares on relative error
    coef = np.zeros(x.shape[1])
    coef[keep], _ = nnls(x[:, keep] * w[:, None], (y - counted) * w)
    out = {"features": list(FEATURES[metric]), "coef": coef.tolist(),
           "fit": _errors(x @ coef + counted, y)}
    if held:
        xh, yh, ch = _matrix(held, kind, metric)
        out["heldout"] = _errors(xh @ coef + ch, yh)
        # The stated bound: the held-out maximum rounded up to the next 5 %.
        out["stated_error_pct"] = float(5 * math.ceil(max(out["heldout"]["max_pct"], 1) / 5))
    return out


class AreaModel:
    """LUT, FF, BRAM and DSP estimates of an engine on a target, in microseconds."""

    def __init__(self, data: dict):
        if data.get("format") != "shifthw.area_model":
            raise ValueError("not a shifthw area model (format != 'shifthw.area_model')")
        self.data = data

    def families(self) -> list[str]:
        return list(self.data["families"])

    def predict(self, cfg: EngineConfig, target, *, dsp: bool = False,
                booth: bool = False, wide_luts: bool = True) -> dict:
        """Estimated resources of ``cfg`` on ``target`` (``dsp``: multipliers in DSPs;
        ``booth``: LUT-built ones as Yosys' Booth multipliers; ``wide_luts=False``: the
        ECP5 mapped to LUT4s alone, ``synth_ecp5 -nowidelut``)."""
        tgt: Target = get_target(target)
        name = model_family(tgt.family, wide_luts)
        fam = self.data["families"].get(name)
        kind = kind_of(cfg.pe, dsp, cfg, tgt.family, booth)
        if fam is None or kind not in fam:
            raise ValueError(f"the area model has no calibration for {kind} designs on "
                             f"{name} (families: {', '.join(self.families())})")
        feats = features(cfg, kind)
        out = {"target": tgt.name, "kind": kind, "outside_calibration": uncalibrated(cfg)}
        for metric, m in fam[kind].items():
            out[metric] = float(sum(c * feats[n] for n, c in zip(m["features"], m["coef"])))
            out[f"{metric}_error_pct"] = m.get("stated_error_pct")
        if "ff" in out:
            # Input and PE registers: counted, not fitted (the fit is of the rest; none for
            # DSP multipliers, whose fit has them as features).
            out["ff"] += counted_ff(cfg, kind)
        if tgt.is_fpga:
            out["bram"] = bram_blocks(cfg, tgt.family)
            out["dsp"] = dsp_blocks(cfg, tgt.family) if kind == "mult_dsp" else 0
            cap = tgt.capacity
            # The device's resources the estimate exceeds (the names of `Target.capacity`,
            # as synthesis reports them); fitting by count, not by packing into cells.
            out["over"] = [k for k, v in (("lut4", out["lut"]), ("ff", out["ff"]),
                                          ("bram", out["bram"]), ("dsp", out["dsp"]))
                           if v > cap[k]]
            out["fits"] = not out["over"]
        return out


def load_area_model(path: str | os.PathLike | None = None) -> AreaModel:
    """The shipped calibration (``area_model.json``) or a file of the same format."""
    if path is None:
        text = resources.files(__package__).joinpath(MODEL_FILE).read_text()
    else:
        if not Path(path).is_file():
            raise FileNotFoundError(f"area model {os.fspath(path)!r}: no such file")
        text = Path(path).read_text()
    return AreaModel(json.loads(text))


def check_rows(rows: list[dict], target, wide_luts: bool = True) -> dict | None:
    """The shipped model's error (LUT, or NAND2 equivalents on generic gates) against
    synthesised sweep rows: ``{metric, n, mean_pct, max_pct, outside_calibration}`` (the
    last: the rows' settings the calibration did not vary), None without a calibration for
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
