"""Which component of the engine a module, a cell or a net belongs to.

One set of rules serves both measurements that break figures down by component: the area
breakdown (Yosys cells, :mod:`.area`) and the switching activity (VCD nets, :mod:`.activity`).

Components (:data:`COMPONENTS`):

* ``pe_array``: the R x C processing elements (modules ``<engine>.array.pe_r*_c*``);
* ``adder_trees``: the column adder trees and their pipeline registers (nets ``add_l*``,
  ``sum_l*``, ``carry_l*``, ``valid_l*``, ``first_l*``, ``last_l*`` of the array);
* ``accumulators``: the C accumulators with their bias multiplexer, adder and saturation
  (nets ``acc_*`` of the array and what feeds only them; with ``stall_free`` also the result
  FIFO, the bias adders and the result slots);
* ``output_stage``: requantisation (module ``<engine>.output``);
* ``buffers``: the weight, bias and activation memories and the output FIFO;
* ``control``: the descriptor, counters, state machine and handshakes;
* ``harness``: what is not the engine (the board top's stimulus, or the simulation harness);
  reported, never added to the engine's totals.

Inside the array module the adder trees and the accumulators share one Amaranth module, so
they are told apart by net names: a cell (or a net without a name of its own, such as
Amaranth's ``$12``) belongs to the component of the named nets it feeds.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict

__all__ = ["COMPONENTS", "ENGINE", "module_component", "net_rules", "classify_cells",
           "annotate_for_submod", "scope_component"]

#: Components in report order (``harness`` is never part of the engine's figures).
COMPONENTS = ("pe_array", "adder_trees", "accumulators", "output_stage", "buffers", "control")

#: The engine's Verilog module name in every measured design.
ENGINE = "shifthw_engine"

_ARRAY_RULES = [
    (re.compile(r"^(add_l|sum_l|carry_l|valid_l|first_l|last_l)\d"), "adder_trees"),
    (re.compile(r"^(acc|skid)_\d+$"), "accumulators"),
    # stall_free: the result slots and their biases (the result FIFO feeds only them).
    (re.compile(r"^(result_s\d+|result_bias)_\d+$"), "accumulators"),
    (re.compile(r"^in_(valid|beat)\b"), "pe_array"),
]
_ENGINE_RULES = [
    # Memory ports: Amaranth names the read ports a_rd/b_rd/w_rd and the write ports
    # $signature__* in the engine module.
    (re.compile(r"^(a_rd|b_rd|w_rd)__"), "buffers"),
    (re.compile(r"^\$signature__"), "buffers"),
    # The memories themselves, as placed cells are named (engine.weights.0.5).
    (re.compile(r"^(weights|biases|acts)\b"), "buffers"),
]


def _strip(name: str) -> str:
    return name[1:] if name.startswith("\\") else name


def module_component(module: str, engine: str = ENGINE) -> str:
    """The component of a (possibly ``submod``-split) module of a synthesised design."""
    m = _strip(module)
    if not m.startswith(engine):
        return "harness"
    rest = m[len(engine):]
    if rest.startswith(".array.pe_"):
        return "pe_array"
    table = {".array_adder_trees": "adder_trees", ".array_accumulators": "accumulators",
             ".output": "output_stage", ".fifo": "buffers", "_buffers": "buffers"}
    return table.get(rest, "control")


def net_rules(scope: str) -> list:
    """Name rules for the nets of ``scope``: ``"array"``, ``"engine"`` or anything else."""
    return {"array": _ARRAY_RULES, "engine": _ENGINE_RULES}.get(scope, [])


def _match(name: str, rules) -> str | None:
    for rx, comp in rules:
        if rx.match(name):
            return comp
    return None


def classify_cells(module: dict, rules, default: str) -> dict[str, str]:
    """Component of every primitive cell of a Yosys JSON module.

    A cell driving a net whose name matches a rule takes that rule's component; any other
    cell takes the component most of its readers have (repeated until nothing changes);
    cells left over take ``default``.
    """
    names = defaultdict(list)
    for net, info in module.get("netnames", {}).items():
        if info.get("hide_name"):
            continue
        for bit in info["bits"]:
            if isinstance(bit, int):
                names[bit].append(_strip(net))
    cells = {k: c for k, c in module.get("cells", {}).items() if c["type"].startswith("$")}
    outputs, readers = {}, defaultdict(list)
    for key, cell in cells.items():
        dirs = cell.get("port_directions", {})
        outputs[key] = [b for p, bits in cell["connections"].items()
                        if dirs.get(p) == "output" for b in bits if isinstance(b, int)]
        for p, bits in cell["connections"].items():
            if dirs.get(p) == "input":
                for b in bits:
                    if isinstance(b, int):
                        readers[b].append(key)
    comp = {}
    for key in cells:
        for bit in outputs[key]:
            found = next((c for n in names.get(bit, ()) if (c := _match(n, rules))), None)
            if found:
                comp[key] = found
                break
    changed = True
    while changed:
        changed = False
        for key in cells:
            if key in comp:
                continue
            votes = Counter(comp[r] for b in outputs[key] for r in readers.get(b, ())
                            if r in comp)
            if votes:
                comp[key] = votes.most_common(1)[0][0]
                changed = True
    return {key: comp.get(key, default) for key in cells}


def annotate_for_submod(netlist: dict, engine: str = ENGINE) -> dict[str, int]:
    """Mark cells of a Yosys JSON netlist (after ``proc; memory -nomap``) for ``submod``.

    The array module's cells get ``submod`` = adder_trees / accumulators / control, so that
    Yosys' ``submod`` moves each group into a module of its own (``<engine>.array_<comp>``);
    the engine's memories go to ``<engine>_buffers``.  Returns the cells marked per group.
    """
    mods = netlist["modules"]
    array, top = f"{engine}.array", engine
    if array not in mods or top not in mods:
        raise ValueError(f"netlist has no {top!r} / {array!r} module: not an engine design")
    counts = Counter()
    for key, comp in classify_cells(mods[array], _ARRAY_RULES, "control").items():
        mods[array]["cells"][key].setdefault("attributes", {})["submod"] = comp
        counts[comp] += 1
    for cell in mods[top]["cells"].values():
        if cell["type"] == "$mem_v2":
            cell.setdefault("attributes", {})["submod"] = "buffers"
            counts["buffers"] += 1
    return dict(counts)


def scope_component(scope: tuple[str, ...], name: str,
                    dataflow: dict[str, str] | None = None) -> str:
    """Component of a VCD net ``name`` declared in ``scope`` (path below the engine).

    ``scope`` is ``()`` for the engine module itself, ``("array",)``, ``("array",
    "pe_r0_c1")``, ``("output",)``...; ``dataflow`` gives the component of the array's
    unnamed (``$N``) nets, from :func:`shifthw.estimate.activity.verilog_dataflow`.
    """
    if not scope:
        return _match(name, _ENGINE_RULES) or "control"
    head = scope[0]
    if head == "array":
        if len(scope) > 1 and scope[1].startswith("pe_"):
            return "pe_array"
        if len(scope) > 1 and scope[1] == "results":
            return "accumulators"           # stall_free's result FIFO
        found = _match(name, _ARRAY_RULES)
        if found:
            return found
        if dataflow and name in dataflow:
            return dataflow[name]
        return "control"
    return {"output": "output_stage", "fifo": "buffers"}.get(head, "control")
