"""Packing block-RAM read registers into the ECP5 DP16KD output register."""

import copy

import pytest

from shifthw.estimate.bram_pack import pack_output_registers

CLK, CE, OTHER = 2, 5, 6


def _ff(di, q, *, clk=CLK, ce=CE, cemux="CE", lsr="0"):
    return {"type": "TRELLIS_FF",
            "parameters": {"CEMUX": cemux, "CLKMUX": "CLK", "LSRMUX": "LSR", "GSR": "DISABLED"},
            "port_directions": {"CLK": "input", "DI": "input", "CE": "input", "LSR": "input",
                                "Q": "output"},
            "connections": {"CLK": [clk], "DI": [di], "CE": [ce], "LSR": [lsr], "Q": [q]}}


def _netlist(**ff_overrides):
    ram = {"type": "DP16KD",
           "parameters": {"REGMODE_A": "NOREG", "REGMODE_B": "NOREG", "CLKAMUX": "CLKA",
                          "CLKBMUX": "CLKB"},
           "port_directions": {"CLKA": "input", "CLKB": "input", "CEB": "input",
                               "OCEA": "input", "OCEB": "input", "DOA0": "output",
                               "DOA1": "output", "DOB0": "output"},
           "connections": {"CLKA": [CLK], "CLKB": [CLK], "CEB": [7], "OCEA": ["0"],
                           "OCEB": ["1"], "DOA0": [10], "DOA1": [11], "DOB0": [12]}}
    lut = {"type": "LUT4", "port_directions": {"A": "input", "B": "input", "Z": "output"},
           "connections": {"A": [20], "B": [21], "Z": [30]}}
    cells = {"ram": ram, "ff0": _ff(10, 20), "ff1": _ff(11, 21, **ff_overrides), "lut": lut}
    return {"modules": {"top": {"attributes": {"top": "00000000000000000000000000000001"},
                                "ports": {"o": {"direction": "output", "bits": [30]}},
                                "cells": cells}}}


def test_read_registers_move_into_the_block_ram():
    net = _netlist()
    assert pack_output_registers(net) == 2
    cells = net["modules"]["top"]["cells"]
    ram = cells["ram"]
    assert ram["parameters"]["REGMODE_A"] == ram["parameters"]["REGMODE_B"] == "OUTREG"
    assert ram["connections"]["OCEA"] == ram["connections"]["OCEB"] == [CE]
    # The flip-flops are gone; the block RAM drives their outputs; the unused bit stays.
    assert "ff0" not in cells and "ff1" not in cells
    assert ram["connections"]["DOA0"] == [20] and ram["connections"]["DOA1"] == [21]
    assert ram["connections"]["DOB0"] == [12]
    # Packed once: a second pass finds nothing to do.
    assert pack_output_registers(net) == 0


def test_registers_without_an_enable_give_a_constant_output_enable():
    net = _netlist(cemux="1")
    net["modules"]["top"]["cells"]["ff0"]["parameters"]["CEMUX"] = "1"
    assert pack_output_registers(net) == 2
    assert net["modules"]["top"]["cells"]["ram"]["connections"]["OCEB"] == ["1"]


@pytest.mark.parametrize("change", [
    dict(clk=OTHER),          # another clock
    dict(ce=OTHER),           # another enable than its neighbour
    dict(cemux="INV"),        # an inverted enable
    dict(lsr=OTHER),          # a set/reset
])
def test_anything_but_a_plain_shared_register_is_left_alone(change):
    net = _netlist(**change)
    before = copy.deepcopy(net)
    assert pack_output_registers(net) == 0
    assert net == before


def test_read_data_used_elsewhere_is_left_alone():
    net = _netlist()
    net["modules"]["top"]["cells"]["lut"]["connections"]["B"] = [11]   # DOA1 feeds logic too
    before = copy.deepcopy(net)
    assert pack_output_registers(net) == 0
    assert net == before


def test_a_netlist_without_one_top_is_refused():
    with pytest.raises(ValueError, match="one top module"):
        pack_output_registers({"modules": {"a": {}, "b": {}}})
