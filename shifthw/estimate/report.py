"""The estimate report: JSON (stable keys), Markdown, and the shift-vs-mult comparison.

:func:`build` assembles what :func:`shifthw.estimate.estimate` measured into the report
dict; :func:`comparison` is its headline table (one row per metric: shift, each multiplier
design, and the ratio mult / shift); :func:`markdown` renders it; :func:`write` writes
``estimate.json``, ``estimate.md`` and the plots.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..files import write_texts_atomic
from .area import shorted_nets_message
from .energy import assumed_energy
from .fit import describe
from .hierarchy import COMPONENTS
from .timing import tool_failure

__all__ = ["build", "activity_energy", "comparison", "markdown", "write", "REPORT_KEYS"]

#: Top-level keys of every report (docs/estimation.md describes each).
REPORT_KEYS = ("format", "version", "target", "design", "baseline", "designs", "comparison",
               "energy", "fit", "notes", "runtime")


def activity_energy(meas: dict, counts: dict, priced: dict, table: dict) -> dict:
    """Energy per inference from measured switching activity.

    Logic components (PE array, adder trees, accumulators, output stage): their op-count
    energy times their activity factor over the table's reference activity, where the
    activity factor is toggles per net bit per use (array beats; output words for the
    output stage).  Buffers: the op-count energy unchanged (an SRAM access costs about the
    same whatever the data).  Control: toggles times the register-bit energy (it has no
    op-count row).
    """
    batch = meas["images"]
    ref = table["assumptions"]["activity_reference"]["value"]
    reg = assumed_energy(table, "register_bit", 1)[0]
    uses = {"pe_array": counts["beats"], "adder_trees": counts["beats"],
            "accumulators": counts["beats"], "output_stage": counts["output_words"]}
    per_inf = {k: v / batch for k, v in meas["toggles"].items()}
    alpha, pj, basis = {}, {}, {}
    for comp in COMPONENTS:
        bits = meas["net_bits"].get(comp, 0)
        if comp in uses:
            a = per_inf[comp] / (bits * uses[comp]) if bits and uses[comp] else 0.0
            alpha[comp] = a
            pj[comp] = priced["by_component"][comp] * a / ref
            basis[comp] = f"op-count energy x activity {a:.3f} / {ref}"
        elif comp == "buffers":
            alpha[comp] = None
            pj[comp] = priced["by_component"][comp]
            basis[comp] = "op-count energy (SRAM access energy taken as data-independent)"
        else:
            alpha[comp] = None
            pj[comp] = per_inf[comp] * reg
            basis[comp] = f"toggles x register-bit energy {reg:.5f} pJ (assumption)"
    return {"images": batch, "cycles_per_inference": meas["cycles"] / batch,
            "toggles_per_inference": {k: per_inf.get(k, 0.0) for k in COMPONENTS},
            "harness_toggles_per_inference": per_inf.get("harness", 0.0),
            "net_bits": {k: meas["net_bits"].get(k, 0) for k in COMPONENTS},
            "activity_factor": alpha, "by_component": pj, "total_pj": sum(pj.values()),
            "basis": basis, "mismatches": meas["mismatches"], "vcd_bytes": meas["vcd_bytes"],
            "sim_seconds": meas["sim_seconds"], "parse_seconds": meas["parse_seconds"]}


def _ratio(a, b):
    if a is None or b is None or isinstance(a, bool) or isinstance(b, bool):
        return None
    if b == 0:
        return None         # (JSON has no infinity; the values say it)
    return a / b


def comparison(designs: dict, energy: dict | None, target) -> dict:
    """The headline table: shift beside every multiplier design, and mult / shift."""
    keys = list(designs)
    rows = []

    def row(metric, unit, better, values):
        shift = values.get("shift")
        rows.append({"metric": metric, "unit": unit, "better": better, "values": values,
                     "ratio_mult_over_shift": {k: _ratio(values.get(k), shift)
                                               for k in keys if k != "shift"}})

    def per_design(fn):
        return {k: fn(d) for k, d in designs.items()}

    def ops(d):
        c = d["config"]
        return c["rows"] * c["cols"]

    if target.is_fpga:
        res = per_design(lambda d: d["area"]["resources"])
        fmax = per_design(lambda d: (d["timing"] or {}).get("fmax_mhz"))
        row("lut", "LUT4", "lower", {k: r["lut"] for k, r in res.items()})
        row("ff", "flip-flops", "lower", {k: r["ff"] for k, r in res.items()})
        row("dsp", "DSP blocks", "lower", {k: r["dsp"] for k, r in res.items()})
        row("bram", "block RAMs", "lower", {k: r["bram"] for k, r in res.items()})
        row("fmax_mhz", "MHz", "higher", fmax)
        row("fits", "", "yes", per_design(
            lambda d: bool(d["area"]["fits"] and (d["timing"] is None or d["timing"]["fits"]))))
    else:
        row("nand2_eq", "NAND2 eq.", "lower", per_design(lambda d: d["area"]["nand2_eq"]))
        row("gates", "gates", "lower", per_design(lambda d: d["area"]["gates"]))
        row("flip_flops", "flip-flops", "lower", per_design(lambda d: d["area"]["flip_flops"]))
        row("memory_bits", "bits", "lower",
            per_design(lambda d: sum(d["area"]["memory_bits"].values())))
        row("logic_depth", "gates", "lower", per_design(lambda d: d["area"]["logic_depth"]))
    if energy:
        def e(kind, method):
            ent = energy["designs"].get(kind)
            if not ent or not ent.get(method):
                return None
            return ent[method]["total_pj"] / 1000.0
        for method, name in (("op_count", "energy_op_count_nj"),
                             ("activity", "energy_activity_nj")):
            vals = {k: e("shift" if k == "shift" else "mult", method) for k in keys}
            if any(v is not None for v in vals.values()):
                row(name, "nJ / inference", "lower", vals)
    row("ops_per_cycle", "MAC / cycle", "higher", per_design(ops))
    if target.is_fpga:
        row("ops_per_second_per_lut", "MAC / s / LUT", "higher", per_design(
            lambda d: (ops(d) * d["timing"]["fmax_mhz"] * 1e6 / d["area"]["resources"]["lut"])
            if d["timing"] and d["timing"].get("fmax_mhz") else None))
    else:
        row("ops_per_cycle_per_kgate", "MAC / cycle / 1000 NAND2", "higher", per_design(
            lambda d: ops(d) * 1000 / d["area"]["nand2_eq"]))
    return {"columns": keys, "rows": rows}


def build(fmt, version, target, cfg, baseline, mult_bits, designs, energy, seconds,
          steps, fit: dict | None = None) -> dict:
    """The report dict (keys :data:`REPORT_KEYS`)."""
    notes = []
    if baseline == "mult":
        notes.append(f"Baseline: the same array and engine with multiplier PEs and "
                     f"{mult_bits}-bit integer weights (b={mult_bits}), same buffers, "
                     f"pipeline and target.")
    if target.is_fpga:
        notes.append("FPGA figures are of the board top (rtl_gen.board.BoardTop: the engine "
                     "with pseudo-random stimulus and its outputs folded into a signature "
                     "register on an LED); the harness part is listed apart in the breakdown.")
        notes.append("lut: iCE40 SB_LUT4; ECP5 LUT4 + 2 per CCU2C + 2 per TRELLIS_DPR16X4.")
        if "mult_dsp" in designs:
            notes.append("mult_lut builds its multipliers from LUTs; mult_dsp maps them to "
                         "DSP blocks (one per PE).")
    if "mult_booth" in designs:
        notes.append("mult_booth: the LUT- (gate-) built twin with radix-4 Booth multipliers "
                     "(Yosys' opt-in booth pass before the mapping), a stronger baseline "
                     "than Yosys' default multipliers.")
    if any("-nowidelut" in d["area"].get("synthesis", "") for d in designs.values()):
        notes.append("Synthesised with synth_ecp5 -nowidelut (every design): LUT4s only, no "
                     "LUT5..LUT7 built from LUT4s and PFU muxes, so fewer LUTs in more "
                     "levels; the analytic area model's figures are of its calibration for "
                     "this mapping.")
    if target.is_fpga and all(d.get("timing") is None for d in designs.values()):
        notes.append("Not placed (--no-place): 'fits' compares Yosys' cell counts with the "
                     "device; a logic cell holds one LUT4 and one flip-flop, so a placement "
                     "can need more cells than LUT4s and not fit.")
    for key, d in designs.items():
        t = d.get("timing") or {}
        if t.get("error"):
            notes.append(f"{key}: {t['error']}" if tool_failure(t["error"])
                         else f"{key}: does not fit: {t['error']}")
        elif d.get("timing") is None and d["area"].get("over"):
            notes.append(f"{key}: does not fit: {', '.join(d['area']['over'])} over the "
                         f"device (Yosys' counts)")
        elif (d.get("timing") is None and target.is_fpga
              and d["area"].get("logic_cells_estimate", 0) > target.capacity["lut4"]):
            a = d["area"]
            notes.append(f"{key}: fits by Yosys' counts, but a placement will likely not: "
                         f"about {a['logic_cells_estimate']} logic cells "
                         f"(±{a['logic_cells_estimate_error_pct']} %, from its LUTs and "
                         f"flip-flops) of the device's {target.capacity['lut4']}")
        for w in d["area"].get("workarounds", []):
            notes.append(f"{key}: synthesised with {w}.")
        shorts = d["area"].get("shorted_nets", [])
        if shorts:
            notes.append(f"{key}: {shorted_nets_message(shorts)}: a synthesis fault; "
                         f"its area and Fmax are of a netlist that does not compute the "
                         f"design.")
        chk = d.get("netlist_check")
        if chk and not chk["passed"]:
            notes.append(f"{key}: the gate-level check FAILED: the mapped netlist "
                         + (f"did not finish ({chk['error']})" if chk["error"] else
                            f"computed {chk['mismatches']} of {chk['outputs']} outputs "
                            f"unlike the golden model")
                         + "; its area and Fmax are of a wrong netlist.")
    if fit is not None:
        notes += describe(fit, target)
    return {"format": fmt, "version": version,
            "target": {"name": target.name, "family": target.family, "device": target.device,
                       "capacity": dict(target.capacity), "freq_mhz": target.freq_mhz},
            "design": cfg.to_dict(),
            "baseline": ({"kind": baseline, "weight_bits": mult_bits} if baseline else None),
            "designs": designs, "comparison": comparison(designs, energy, target),
            "energy": energy, "fit": fit, "notes": notes,
            "runtime": {"seconds": seconds, "steps": steps}}


def _fmt(v, digits=3):
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            return str(v)
        if abs(v) >= 1e6:
            return f"{v:.3g}"
        if abs(v) >= 100:
            return f"{v:.0f}"
        return f"{v:.{digits}g}"
    return str(v)


def _table(header, rows) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_fmt(c) if not isinstance(c, str) else c for c in r) + " |"
            for r in rows]
    return out


def markdown(rep: dict) -> str:
    """The report as Markdown (summary table first)."""
    t, d = rep["target"], rep["design"]
    lines = [f"# shifthw estimate: {d['rows']}x{d['cols']} {d['pe']} engine on {t['name']}",
             "", f"Device {t['device']}. Design: R={d['rows']}, C={d['cols']}, "
             f"A={d['act_bits']}, b={d['weight_bits']}, G={d['guard_bits']}, "
             f"acc_bits={d['acc_bits']}, pipeline_stages={d['pipeline_stages']}.", ""]
    cmp_ = rep["comparison"]
    cols = cmp_["columns"]
    header = ["metric"] + cols + [f"{k} / shift" for k in cols if k != "shift"]
    rows = []
    for r in cmp_["rows"]:
        name = r["metric"] + (f" ({r['unit']})" if r["unit"] else "")
        rows.append([name] + [r["values"].get(k) for k in cols]
                    + [r["ratio_mult_over_shift"].get(k) for k in cols if k != "shift"])
    lines += ["## Shift vs multiplier" if len(cols) > 1 else "## Figures", ""] \
        + _table(header, rows) + [""]
    fpga = t["family"] != "generic"
    lines += ["## Area by component", ""]
    unit = "lut" if fpga else "nand2_eq"
    comps = [*COMPONENTS, "harness"]
    header = ["component"] + [f"{k} {unit}" for k in cols] + (
        [f"{k} ff" for k in cols] if fpga else [])
    rows = []
    for comp in comps:
        vals = [rep["designs"][k]["area"].get("breakdown", {}).get(comp, {}).get(unit)
                for k in cols]
        if fpga:
            vals += [rep["designs"][k]["area"].get("breakdown", {}).get(comp, {}).get("ff")
                     for k in cols]
        rows.append([comp] + vals)
    def total(k, metric, flat):
        a = rep["designs"][k]["area"]
        if flat:
            return a["resources"][metric] if fpga else a.get("nand2_eq" if metric == unit
                                                              else "flip_flops")
        if "breakdown" not in a:
            return None
        return a["breakdown_total"].get(metric, 0) + a["breakdown"]["harness"].get(metric, 0)

    metrics = [unit, "ff"] if fpga else [unit]
    rows.append(["(breakdown run total)"] + [total(k, m, False) for m in metrics
                                             for k in cols])
    rows.append(["(flat synthesis total)"] + [total(k, m, True) for m in metrics
                                              for k in cols])
    lines += _table(header, rows)
    lines += ["", "The breakdown comes from a synthesis that keeps every component a module "
              "of its own (no optimisation across them), so its total differs from the flat "
              "synthesis, which gives every other figure (most on ECP5, where flattening lets "
              "Yosys merge products and sums into one multiply-accumulate).", ""]
    commands = [(k, rep["designs"][k]["area"].get("synthesis")) for k in cols]
    if any(c for _, c in commands):
        lines += ["Yosys mapping of the flat synthesis:", ""]
        lines += [f"- {k}: `{c}`" for k, c in commands if c] + [""]
    models = {k: rep["designs"][k]["area"].get("analytic") for k in cols}
    if any(models.values()):
        lines += ["## Analytic area model beside synthesis", ""]
        header = ["design", f"model {unit}", f"synthesis {unit}", "error", "stated",
                  "model ff", "synthesis ff", "error", "stated"]
        rows = []
        for k, mod in models.items():
            if not mod:
                continue
            r = [k]
            for m in (unit, "ff"):
                err = mod["error_pct"].get(m)
                r += [round(mod[m]), total(k, m, True),
                      None if err is None else f"{err:+.1f} %",
                      "none (outside the calibration)" if mod[f"{m}_error_pct"] is None
                      else f"±{mod[f'{m}_error_pct']:.0f} %"]
            rows.append(r)
        lines += _table(header, rows) + [""]
        outside = sorted({s for mod in models.values() if mod
                          for s in mod["outside_calibration"]})
        lines += ["The model (`shifthw estimate --analytic`) answers in milliseconds without "
                  "synthesis; its stated error bounds its error on synthesis points it was not "
                  "fitted on, within its calibration" + (
                      f". Outside its calibration here: {', '.join(outside)} (no bound)."
                      if outside else "."), ""]
    if fpga:
        lines += ["## Place and route", ""]
        header = ["design", "fits", "Fmax (MHz)", "target (MHz)", "logic cells",
                  "critical path"]
        rows = []
        for k in cols:
            tm = rep["designs"][k]["timing"] or {}
            cp = tm.get("critical_path") or {}
            path = "; ".join(part for part in (
                f"{cp.get('start_signal')} ({cp.get('start_component')}) -> "
                f"{cp.get('end_signal')} ({cp.get('end_component')}), through "
                f"{', '.join(cp.get('through', []))}",
                ", ".join(cp.get("source_lines", []))) if part) if cp else \
                (tm.get("error") or "-")
            rows.append([k, tm.get("fits"), tm.get("fmax_mhz"), tm.get("target_mhz"),
                         tm.get("logic_cells"), path])
        lines += _table(header, rows) + [""]
        tries = {k: (rep["designs"][k]["timing"] or {}).get("placements") or [] for k in cols}
        if any(len(t) > 1 for t in tries.values()):
            lines += ["Fmax is the fastest of several placements (nextpnr seeds), each a real "
                      "placement; every seed's Fmax (MHz):", ""]
            lines += [f"- {k}: " + ", ".join(
                f"seed {t['seed']} {t['fmax_mhz']:.1f}" if t["fmax_mhz"] else
                f"seed {t['seed']} not placed" for t in ts) for k, ts in tries.items() if ts]
            lines += [""]
        placer = {(tm.get("timing_weight"), tm.get("opt_timing"))
                  for tm in (rep["designs"][k]["timing"] or {} for k in cols) if tm}
        for weight, opt in sorted(placer, key=str):
            if weight is not None or opt:
                lines += ["nextpnr: " + ", ".join(
                    ([f"placer timing weight {weight}"] if weight is not None else [])
                    + (["post-placement timing optimisation (--opt-timing)"] if opt else []))
                    + ".", ""]
    checks = {k: rep["designs"][k].get("netlist_check") for k in cols}
    if any(checks.values()):
        lines += ["## Gate-level check of the mapped netlists", ""]
        header = ["design", "passed", "outputs", "mismatches", "jobs", "model layers",
                  "cycles", "stalls", "cells", "seconds"]
        rows = [[k, c["passed"], c["outputs"], c["mismatches"], c["jobs"], c["model_jobs"],
                 c["cycles"], c["stall_prob"], sum(c["netlist_cells"].values()),
                 round(c["seconds"])] for k, c in checks.items() if c]
        lines += _table(header, rows) + [""]
        lines += ["Each design's engine, mapped on its own by the same Yosys command, was "
                  "simulated in Verilator on random layer jobs and the model's layers, if "
                  "any (random stalls on every stream), and every output compared with the "
                  "golden model. Cell models: "
                  + "; ".join(sorted({m for c in checks.values() if c
                                      for m in c["cell_models"]}) or ["none (gates)"])
                  + "."]
        lines += [f"- {k}: {m['layer']}, vector {m['vector']}, output {m['output']}: "
                  f"expected {m['expected']}, got {m['got']}"
                  for k, c in checks.items() if c for m in c["first_mismatches"]]
        lines += [f"- {k}: did not finish: {c['error']}" for k, c in checks.items()
                  if c and c["error"]] + [""]
    en = rep.get("energy")
    if en:
        lines += [f"## Energy per inference: {en['model']} (batch {en['batch']})", "",
                  f"Table: {en['table']['source']} ({en['table']['file']}).", ""]
        kinds = list(en["designs"])
        header = ["component"] + [f"{k} op-count (pJ)" for k in kinds] + \
            [f"{k} activity (pJ)" for k in kinds] + [f"{k} toggles" for k in kinds]
        rows = []
        for comp in COMPONENTS:
            r = [comp]
            r += [en["designs"][k]["op_count"]["by_component"][comp] for k in kinds]
            r += [(en["designs"][k]["activity"] or {}).get("by_component", {}).get(comp)
                  for k in kinds]
            r += [(en["designs"][k]["activity"] or {}).get("toggles_per_inference", {})
                  .get(comp) for k in kinds]
            rows.append(r)
        rows.append(["total"] + [en["designs"][k]["op_count"]["total_pj"] for k in kinds]
                    + [(en["designs"][k]["activity"] or {}).get("total_pj") for k in kinds]
                    + [None] * len(kinds))
        lines += _table(header, rows) + [""]
        for k in kinds:
            oc = en["designs"][k]["op_count"]
            off = oc.get("off_chip_pj")
            lines.append(f"- {k}: {oc['macs']:.0f} MACs and {oc['beats']:.0f} array cycles "
                         f"per inference" + (f"; streaming every input and output word from "
                                             f"DRAM would add {off['low_pj'] / 1000:.0f}-"
                                             f"{off['high_pj'] / 1000:.0f} nJ" if off else ""))
        lines += ["", "Operations (per inference) and where each energy figure comes from:",
                  ""]
        header = ["design", "component", "op", "bits", "count", "pJ each", "pJ", "basis"]
        rows = []
        for k in kinds:
            for o in en["designs"][k]["op_count"]["rows"]:
                rows.append([k, o["component"], o["op"], "x".join(map(str, o["bits"])),
                             o["count"], o["pj_each"], o["pj"], o["basis"]])
        lines += _table(header, rows) + ["", "Assumptions:", ""]
        lines += [f"- {k}: {v}" for k, v in en["assumptions"].items()] + [""]
    if rep["notes"]:
        lines += ["## Notes", ""] + [f"- {n}" for n in rep["notes"]] + [""]
    lines.append(f"Run time {rep['runtime']['seconds']:.0f} s.")
    return "\n".join(lines) + "\n"


def write(rep: dict, out: Path, *, plots: bool = True) -> list[str]:
    """Write ``estimate.json``, ``estimate.md`` (and the plots) into ``out``; the two
    reports each whole or not at all (:func:`~shifthw.files.write_texts_atomic`)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = ["estimate.json", "estimate.md"]
    if plots:
        from .plots import estimate_plots

        files += estimate_plots(rep, out)
    rep["files"] = files
    write_texts_atomic({out / "estimate.json": json.dumps(rep, indent=1, default=str) + "\n",
                        out / "estimate.md": markdown(rep)})
    return files
