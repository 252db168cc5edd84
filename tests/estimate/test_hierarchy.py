"""Components of modules, Yosys cells and VCD nets."""

import pytest

from shifthw.estimate.hierarchy import (COMPONENTS, annotate_for_submod, classify_cells,
                                        module_component, net_rules, scope_component)


@pytest.mark.parametrize("module, comp", [
    ("shifthw_engine.array.pe_r3_c1", "pe_array"),
    ("\\shifthw_engine.array_adder_trees", "adder_trees"),
    ("shifthw_engine.array_accumulators", "accumulators"),
    ("shifthw_engine.array_control", "control"),
    ("shifthw_engine.array", "control"),
    ("shifthw_engine", "control"),
    ("shifthw_engine.output", "output_stage"),
    ("shifthw_engine.fifo", "buffers"),
    ("shifthw_engine_buffers", "buffers"),
    ("top", "harness"),
    ("top.cd_sync", "harness"),
])
def test_module_component(module, comp):
    assert module_component(module) == comp


def _cell(kind, ins, outs):
    return {"type": kind, "port_directions": {"A": "input", "Y": "output"},
            "connections": {"A": ins, "Y": outs}}


def test_unnamed_cells_take_the_component_of_what_they_feed():
    # $a -> (unnamed net 2) -> $b -> acc_0 ; $c -> add_l1_c0_0 ; $d feeds nothing named
    module = {
        "netnames": {"acc_0": {"hide_name": 0, "bits": [3]},
                     "add_l1_c0_0": {"hide_name": 0, "bits": [5]},
                     "$tmp": {"hide_name": 1, "bits": [2]}},
        "cells": {"a": _cell("$add", [1], [2]), "b": _cell("$dff", [2], [3]),
                  "c": _cell("$add", [4], [5]), "d": _cell("$not", [6], [7]),
                  "pe": {"type": "shifthw_engine.array.pe_r0_c0", "connections": {}}},
    }
    comp = classify_cells(module, net_rules("array"), "control")
    assert comp == {"a": "accumulators", "b": "accumulators", "c": "adder_trees",
                    "d": "control"}


def test_annotate_marks_the_array_and_the_memories():
    netlist = {"modules": {
        "shifthw_engine": {"netnames": {}, "cells": {
            "m": {"type": "$mem_v2", "connections": {}, "port_directions": {}}}},
        "shifthw_engine.array": {"netnames": {"acc_1": {"hide_name": 0, "bits": [9]}},
                                 "cells": {"x": _cell("$add", [8], [9])}}}}
    assert annotate_for_submod(netlist) == {"accumulators": 1, "buffers": 1}
    mods = netlist["modules"]
    assert mods["shifthw_engine.array"]["cells"]["x"]["attributes"]["submod"] == "accumulators"
    assert mods["shifthw_engine"]["cells"]["m"]["attributes"]["submod"] == "buffers"
    with pytest.raises(ValueError, match="not an engine design"):
        annotate_for_submod({"modules": {"top": {}}})


@pytest.mark.parametrize("scope, name, comp", [
    ((), "w_rd__data", "buffers"),
    ((), "$signature__data$51", "buffers"),
    ((), "is_row", "control"),
    (("array",), "sum_l0_c1_0", "adder_trees"),
    (("array",), "acc_3", "accumulators"),
    (("array",), "result_s1_3", "accumulators"),
    (("array",), "result_bias_0", "accumulators"),
    (("array", "results"), "data[2]", "accumulators"),
    (("array",), "credits", "control"),
    (("array",), "en", "control"),
    (("array", "pe_r0_c0"), "term", "pe_array"),
    (("output",), "window_0", "output_stage"),
    (("fifo",), "storage[0]", "buffers"),
])
def test_scope_component(scope, name, comp):
    assert scope_component(scope, name) == comp
    assert comp in COMPONENTS


def test_scope_component_uses_the_dataflow_for_unnamed_array_nets():
    assert scope_component(("array",), "$14", {"$14": "accumulators"}) == "accumulators"
    assert scope_component(("array",), "$15", {}) == "control"
