"""PNG plots of estimates and sweeps (matplotlib, no global pyplot state).

* ``area_breakdown.png``: LUTs (or NAND2 equivalents) per component, shift beside every
  multiplier design;
* ``energy_breakdown.png``: energy per inference per component, op-count and activity
  methods, shift beside mult;
* sweep plots (:func:`sweep_plots`): LUTs and Fmax against array size, and the largest array
  that fits the target, shift vs mult.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .hierarchy import COMPONENTS

__all__ = ["estimate_plots", "sweep_plots"]

_COLOURS = dict(zip((*COMPONENTS, "harness"),
                    ("#4c72b0", "#55a868", "#c44e52", "#8172b2", "#ccb974", "#64b5cd",
                     "#bbbbbb")))


def _save(fig: Figure, path: Path, *, legend: bool = False) -> str:
    FigureCanvasAgg(fig)
    if legend:
        # one legend for every panel, right of them
        handles = {}
        for ax in fig.axes:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(lab, h)
        fig.legend(handles.values(), handles.keys(), loc="center right", fontsize=8)
        fig.tight_layout(rect=(0, 0, 0.8, 1))
    else:
        fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path.name


def _stacked(ax, labels, series: dict[str, list[float]], ylabel: str) -> None:
    bottom = [0.0] * len(labels)
    for comp, vals in series.items():
        vals = [v or 0.0 for v in vals]
        if not any(vals):
            continue
        ax.bar(labels, vals, bottom=bottom, label=comp, color=_COLOURS.get(comp))
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_ylabel(ylabel)
    ax.tick_params(axis="x", labelsize=8)


def estimate_plots(rep: dict, out: Path) -> list[str]:
    """Write the plots of one estimate report; return their file names."""
    files = []
    t = rep["target"]
    fpga = t["family"] != "generic"
    keys = rep["comparison"]["columns"]
    unit = "lut" if fpga else "nand2_eq"
    fig = Figure(figsize=(8.4 if fpga else 5.6, 4.0))
    axes = [fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)] if fpga else \
        [fig.add_subplot(1, 1, 1)]
    for ax, metric in zip(axes, (unit, "ff")):
        series = {c: [rep["designs"][k]["area"].get("breakdown", {}).get(c, {}).get(metric)
                      for k in keys] for c in (*COMPONENTS, "harness")}
        _stacked(ax, keys, series, {"lut": "LUT4", "ff": "flip-flops",
                                    "nand2_eq": "NAND2 equivalents"}[metric])
    d = rep["design"]
    fig.suptitle(f"{d['rows']}x{d['cols']} engine on {t['name']}: area by component",
                 fontsize=10)
    files.append(_save(fig, out / "area_breakdown.png", legend=True))
    en = rep.get("energy")
    if en:
        labels, cols = [], []
        for kind, ent in en["designs"].items():
            for method in ("op_count", "activity"):
                if ent.get(method):
                    labels.append(f"{kind}\n{method.replace('_', '-')}")
                    cols.append(ent[method]["by_component"])
        fig = Figure(figsize=(7.6, 4.0))
        ax = fig.add_subplot(1, 1, 1)
        _stacked(ax, labels, {c: [col[c] / 1000 for col in cols] for c in COMPONENTS},
                 "nJ per inference")
        ax.set_title(f"{en['model']}: energy per inference (batch {en['batch']})",
                     fontsize=10)
        files.append(_save(fig, out / "energy_breakdown.png", legend=True))
    return files


def _means(pts):
    sums: dict = {}
    for x, y in pts:
        sums.setdefault(x, []).append(y)
    return [(x, sum(ys) / len(ys)) for x, ys in sorted(sums.items())]


def sweep_plots(rows: list[dict], out: Path, target, fits: dict) -> list[str]:
    """Plots of a sweep: LUT and Fmax against R*C per design family, and what fits."""
    files = []
    groups: dict[str, list[dict]] = {}
    several_a = len({r["act_bits"] for r in rows}) > 1
    for r in rows:
        key = r["label"] + (f" A={r['act_bits']}" if several_a else "")
        groups.setdefault(key, []).append(r)
    metric = "lut" if target.is_fpga else "nand2_eq"
    fig = Figure(figsize=(9.6, 4.0))
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for i, (label, rs) in enumerate(sorted(groups.items())):
        style = "--" if label.startswith("mult") else "-"
        colour = f"C{i % 10}"       # one colour per design family in both panels
        for ax, key in ((ax1, metric), (ax2, "fmax_mhz")):
            pts = sorted((r["rows"] * r["cols"], r[key]) for r in rs if r.get(key))
            if not pts:
                continue
            # every point as a marker (hollow: does not fit the target), the line through
            # the mean of each array size
            line = ax.plot(*zip(*_means(pts)), style, lw=1, label=label, color=colour)[0]
            for fit in (True, False):
                sel = sorted((r["rows"] * r["cols"], r[key]) for r in rs
                             if r.get(key) and bool(r.get("fits")) == fit)
                if sel:
                    ax.plot(*zip(*sel), "o", ms=3, color=line.get_color(),
                            mfc=None if fit else "none")
    cap = target.capacity.get("lut4")
    if cap:
        ax1.axhline(cap, color="k", lw=0.8, ls=":", label=f"{target.name}: {cap} LUT4")
    if ax1.lines:
        ax1.set_xscale("log", base=2)
        ax1.set_yscale("log")
        ax1.legend(fontsize=6)
    ax1.set_xlabel("PEs (R x C)")
    ax1.set_ylabel("LUT4" if target.is_fpga else "NAND2 equivalents")
    if ax2.lines:
        ax2.set_xscale("log", base=2)
    ax2.set_xlabel("PEs (R x C)")
    ax2.set_ylabel("Fmax (MHz)")
    if ax2.lines:
        ax2.legend(fontsize=6)
    fig.suptitle(f"sweep on {target.name}" + (" (hollow: does not fit)" if target.is_fpga
                                              else ""), fontsize=10)
    files.append(_save(fig, out / "sweep_lut_fmax.png"))
    if fits:
        fig = Figure(figsize=(6.4, 3.6))
        ax = fig.add_subplot(1, 1, 1)
        labels = sorted(fits)
        ax.barh(labels, [fits[k]["pes"] for k in labels],
                color=["#c44e52" if k.startswith("mult") else "#4c72b0" for k in labels])
        for i, k in enumerate(labels):
            f = fits[k]
            text = f"  {f['rows']}x{f['cols']}" if f["pes"] else "  none"
            if f.get("unmeasured"):
                text += f" (a lower bound: {', '.join(f['unmeasured'])} failed to run)"
            ax.text(f["pes"], i, text, va="center", fontsize=7)
        ax.set_xlabel(f"PEs of the largest array that fits {target.name}")
        ax.tick_params(axis="y", labelsize=7)
        files.append(_save(fig, out / "sweep_largest_fit.png"))
    return files
