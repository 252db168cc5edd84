"""Engine settings that fit a device, found with the analytic area model (no tools).

When an engine does not fit its target (or a board's FPGA), the user's next question is what
does.  :func:`suggest` answers in about a second: it searches settings around the given engine
with the analytic model (:meth:`.model.AreaModel.predict`, under a millisecond a design) and
returns, of each of three kinds of change, the candidate the model says fits with the most
throughput left:

``same results``
    The same array, numerics and largest layer: only the settings that cost block RAM and
    logic but change no result and no layer limit: fewer bias lanes (a narrower bias
    buffer), fewer output lanes (a smaller output stage) and no output FIFO
    (``out_depth`` 0, still at full rate).  Fewer lanes slow only the layers with
    ceil(K / R) < ceil(C / lanes) (``docs/hardware.md``).
``smaller array``
    A smaller R' x C' with the same numerics and the same largest fan-in K (the activation
    and weight buffers deepened to keep ``max_k``), with the lanes as above: the same results,
    fewer operations per cycle.  With a saturating accumulator (``acc_bits`` below the
    formula's) the rows stay, since the saturation order follows R.
``fewer guard bits``
    Shift engines: the largest G' < G that fits at the same array size (with the lanes as
    above) with the model's stated error to spare: **other results**, the terms truncated to
    A + G' bits (``docs/numerics.md``).

The model's figures are estimates with a stated error (about 10-25 %): a suggestion is a
starting point to confirm with ``shifthw estimate``, and each says how much of the device the
model expects it to use and whether the stated error reaches past the capacity.
"""

from __future__ import annotations

import dataclasses
import math

from amaranth.utils import ceil_log2

from ..rtl_gen.config import EngineConfig
from .model import AreaModel, load_area_model
from .targets import Target, get_target

__all__ = ["suggest", "describe", "to_json", "board_warnings", "KINDS", "flags_of"]

#: The kinds of change :func:`suggest` searches, in the order it reports them.
KINDS = ("same results", "smaller array", "fewer guard bits")

#: The capacity names of :meth:`AreaModel.predict`'s figures.
_RESOURCES = (("logic_cells", "lut4"), ("lut", "lut4"), ("ff", "ff"), ("bram", "bram"),
              ("dsp", "dsp"))


def _lanes(cols: int, now: int) -> list[int]:
    """Lane counts to try, most first: ``now`` and ceil(C / 2^i) below it, down to 1."""
    out = {now}
    d = 1
    while d <= cols:
        lanes = -(-cols // d)
        if lanes <= now:
            out.add(lanes)
        d *= 2
    return sorted(out, reverse=True)


def _powers_below(n: int) -> list[int]:
    """n and the powers of two below it, largest first."""
    out = {n}
    p = 1
    while p < n:
        out.add(p)
        p *= 2
    return sorted(out, reverse=True)


def _replace(cfg: EngineConfig, **changes) -> EngineConfig | None:
    """``cfg`` with ``changes``, or None if the engine refuses the combination."""
    try:
        return dataclasses.replace(cfg, **changes)
    except (TypeError, ValueError):
        return None


def _usage(pred: dict, tgt: Target) -> dict:
    """The predicted share of each capacity, and whether the model's stated error reaches
    past a capacity (``marginal``)."""
    share, marginal = {}, False
    for key, cap_key in _RESOURCES:
        if key not in pred:
            continue
        cap = tgt.capacity.get(cap_key, 0)
        value = pred[key]
        share[key] = value / cap if cap else (math.inf if value else 0.0)
        err = pred.get(f"{key}_error_pct")
        if err is None and key in ("lut", "ff", "logic_cells"):
            marginal = True          # beyond the calibration: no bound, no assurance
        elif err is not None and cap and value * (1 + err / 100) > cap:
            marginal = True
    return {"share": share, "marginal": marginal}


def flags_of(changes: dict) -> str:
    """Command-line options for ``changes`` (field name -> value)."""
    return " ".join(f"--{k.replace('_', '-')} {v}" for k, v in changes.items())


def _lane_variants(cfg: EngineConfig) -> list[EngineConfig]:
    """``cfg`` with fewer bias / output lanes and no output FIFO, in throughput order."""
    out = []
    depths = [cfg.out_depth] + ([0] if cfg.out_depth else [])
    for bl in _lanes(cfg.cols, cfg.bias_lanes):
        for ol in _lanes(cfg.cols, cfg.out_lanes):
            for od in depths:
                c = _replace(cfg, bias_lanes=bl, out_lanes=ol, out_depth=od)
                if c is not None:
                    out.append(c)
    # Most lanes first (the slower of the two first), then the output FIFO kept.
    out.sort(key=lambda c: (-min(c.bias_lanes, c.out_lanes), -(c.bias_lanes + c.out_lanes),
                            c.out_depth != cfg.out_depth))
    return out


def _smaller(cfg: EngineConfig) -> list[EngineConfig]:
    """Smaller arrays with the same numerics and largest fan-in, largest first.

    The buffers are deepened to keep ``max_k``; an exact accumulator stays exact (the
    formula's width for the new ``max_k``), so every result is the same.
    """
    out = []
    rows = [cfg.rows] if cfg.saturating else _powers_below(cfg.rows)
    for r in rows:
        for c in _powers_below(cfg.cols):
            if (r, c) == (cfg.rows, cfg.cols):
                continue
            k_tiles = -(-cfg.max_k // r)
            # The array's register stages: as many as before, at most the new tree's.
            stages = min(cfg.pipeline_stages, ceil_log2(r) + 1)
            base = _replace(
                cfg, rows=r, cols=c, k_depth=max(cfg.k_depth, k_tiles),
                weight_depth=max(cfg.weight_depth, k_tiles),
                bias_lanes=min(cfg.bias_lanes, c), out_lanes=min(cfg.out_lanes, c),
                pipeline_stages=stages, acc_bits=cfg.acc_bits if cfg.saturating else None)
            if base is not None:
                out.append(base)
    out.sort(key=lambda c: -(c.rows * c.cols))
    return out


def _fewer_guard_bits(cfg: EngineConfig) -> list[EngineConfig]:
    """The same array with G' = G-1 .. 0 (accumulator at the formula's width unless
    ``cfg``'s saturates), most guard bits first."""
    if cfg.pe != "shift":
        return []
    out = []
    for g in range(cfg.guard_bits - 1, -1, -1):
        c = _replace(cfg, guard_bits=g, acc_bits=cfg.acc_bits if cfg.saturating else None)
        if c is not None:
            out.append(c)
    return out


def suggest(config: EngineConfig, target, *, dsp: bool = False, wide_luts: bool = True,
            area_model: AreaModel | None = None, measured_over: list | None = None) -> dict:
    """Settings near ``config`` that the analytic model says fit ``target`` (an FPGA
    :class:`~.targets.Target` or its name; ``dsp``: multipliers in DSP blocks).

    Returns ``{"fits": whether config itself is predicted to fit, "over": the resources it
    exceeds, "suggestions": [...]}``: per kind of :data:`KINDS`, the candidate with the most
    throughput that fits and, if the stated error reaches past a capacity there, the first
    with that error to spare (for fewer guard bits only the latter; :data:`KINDS` order;
    none after a ``same results`` one with error to spare), each
    ``{"kind", "changes": {field: value} against config, "flags": the same as command-line
    options, "config": the EngineConfig, "prediction": the model's figures, "share": the
    predicted share of each capacity, "marginal": whether the stated error reaches past a
    capacity (or the design is beyond the calibration)}``.  Nothing is suggested for a
    design that fits.

    ``measured_over``: the resources synthesis measured ``config`` over (a run of
    :func:`.flow.estimate`).  Then the search runs even where the model puts ``config``
    within the device (its error is larger there than it says), and takes only candidates
    with the stated error to spare.
    """
    if not isinstance(config, EngineConfig):
        raise TypeError(f"config must be an EngineConfig, not {config!r}")
    tgt = get_target(target)
    if not tgt.is_fpga:
        raise ValueError(f"target {tgt.name!r} has no capacity to fit (gates, not a device)")
    am = area_model or load_area_model()

    def predict(c):
        return am.predict(c, tgt, dsp=dsp, wide_luts=wide_luts)

    now = predict(config)
    strict = bool(measured_over) and now["fits"]
    fits = now["fits"] and not measured_over
    out = {"fits": fits, "over": list(measured_over or now["over"]), "suggestions": []}
    if fits:
        return out
    # (Generators: a kind's candidates are built only if the search gets to them.)
    searches = {
        "same results": iter([_lane_variants(config)]),
        "smaller array": (_lane_variants(c) for c in _smaller(config)),
        "fewer guard bits": (_lane_variants(c) for c in _fewer_guard_bits(config)),
    }
    for kind in KINDS:
        # The first candidate in the search's order (most throughput, most guard bits) that
        # fits; if the model's stated error reaches past the capacity there, also the first
        # with that error to spare (only that one when synthesis has measured the model
        # short).
        found = spare = None
        for variants in searches[kind]:
            for c in variants:
                pred = predict(c)
                if not pred["fits"]:
                    continue
                use = _usage(pred, tgt)
                found = found or (c, pred, use)
                if not use["marginal"]:
                    spare = found if found[0] == c else (c, pred, use)
                    break
            if spare:
                break
        # (Other numerics are a step further: only with the error to spare.)
        picks = ([spare] if strict or found is spare or kind == "fewer guard bits"
                 else [found, spare])
        for c, pred, use in (p for p in picks if p is not None):
            changes = {f.name: getattr(c, f.name) for f in dataclasses.fields(c)
                       if getattr(c, f.name) != getattr(config, f.name)}
            if not c.saturating and not config.saturating:
                # An exact accumulator's width follows from the rest (the formula's): not
                # an option to give.
                changes.pop("acc_bits", None)
            out["suggestions"].append({"kind": kind, "changes": changes,
                                       "flags": flags_of(changes), "config": c,
                                       "prediction": pred, **use})
        if kind == "same results" and spare is not None:
            break                       # nothing else is needed
    return out


def describe(result: dict, target, *, name: str | None = None) -> list[str]:
    """Lines for a report: what :func:`suggest` found, or that nothing near fits
    (``name``: what to call the device, the target's name if None)."""
    tgt = get_target(target)
    name = name or tgt.name
    if result["fits"]:
        return []
    lines = []
    for s in result["suggestions"]:
        c = s["config"]
        c = c.to_dict() if isinstance(c, EngineConfig) else c        # (or to_json's)
        use = ", ".join(f"{k.replace('_', ' ')} {v * 100:.0f} %" for k, v in s["share"].items()
                        if k != "dsp" or s["prediction"].get("dsp"))
        what = {"same results": "same results and layer limits",
                "smaller array": f"same results, {_article(c['rows'])} {c['rows']} x {c['cols']} "
                                 f"array (fewer operations per cycle)",
                "fewer guard bits": f"OTHER results: G = {c['guard_bits']}, terms "
                                    f"truncated to A + {c['guard_bits']} bits"}[s["kind"]]
        lines.append(f"to fit {name}: {s['flags']} ({what}; the analytic model expects "
                     f"{use} of the device"
                     + ("; within its error of the capacity, so confirm with synthesis"
                        if s["marginal"] else "") + ")")
    if not lines:
        lines.append(f"the analytic model finds no setting near this engine that fits "
                     f"{name} (over: {', '.join(result['over'])}; searched: fewer lanes, "
                     f"smaller arrays with the same largest layer, fewer guard bits): try "
                     f"shallower buffers (--k-depth, --weight-depth: smaller layers) or a "
                     f"larger device")
    return lines


def to_json(result: dict) -> dict:
    """:func:`suggest`'s result for a JSON report (each config as its dict)."""
    return {**result, "suggestions": [{**s, "config": s["config"].to_dict()}
                                      for s in result["suggestions"]]}


def board_warnings(config: EngineConfig, board: str) -> list[str]:
    """Warnings for a board build of ``config`` (``generate(..., board=...)``): empty if the
    analytic model puts the board top within the board's FPGA; else that it does not, and
    :func:`describe`'s settings that do (the board build maps multipliers to LUTs)."""
    from .targets import board_target

    tgt = board_target(board)
    found = suggest(config, tgt)
    if found["fits"]:
        return []
    fpga = f"the {board}'s {tgt.device}"
    return [f"by the analytic area model this engine does not fit {fpga} "
            f"(over: {', '.join(found['over'])}); its board build would fail in synthesis or "
            f"placement", *describe(found, tgt, name=fpga)]


def _article(n: int) -> str:
    """"an" before a number said with a vowel (8, 11, 18, 80...), else "a"."""
    return "an" if str(n).startswith("8") or n in (11, 18) else "a"
