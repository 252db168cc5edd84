"""The estimation targets."""

import pytest

from shifthw.estimate.targets import TARGET_NAMES, TARGETS, get_target
from shifthw.rtl_gen.board import BOARDS


def test_the_issue_s_targets():
    assert TARGET_NAMES == ("ice40-up5k", "ice40-hx8k", "ecp5-25k", "ecp5-85k", "generic")
    for t in TARGETS.values():
        if t.is_fpga:
            assert {"lut4", "ff", "bram", "spram", "dsp"} <= set(t.capacity)
            assert t.nextpnr and t.platform and t.freq_mhz
    assert TARGETS["ice40-up5k"].capacity["dsp"] == 8
    assert TARGETS["ecp5-85k"].capacity["lut4"] == BOARDS["ulx3s-85f"].capacity["lut4"]
    assert not TARGETS["ice40-hx8k"].dsp and not TARGETS["generic"].is_fpga


def test_unknown_target():
    assert get_target("ecp5-25k") is TARGETS["ecp5-25k"]
    assert get_target(TARGETS["generic"]) is TARGETS["generic"]
    with pytest.raises(ValueError, match="target must be one of ice40-up5k, ice40-hx8k, "
                                         "ecp5-25k, ecp5-85k, generic, not 'up5k'"):
        get_target("up5k")
