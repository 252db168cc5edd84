"""Board tops: every board's build plan, and a small design through Yosys and nextpnr."""

import json
import re

import pytest

from shifthw.rtl_gen.board import (BOARDS, BoardTop, board_plan, set_clock_frequency,
                                   synthesize_board)
from shifthw.rtl_gen.config import EngineConfig
from shifthw.rtl_gen.generate import generate

TINY = EngineConfig(rows=2, cols=2, k_depth=4, weight_depth=8, bias_depth=4)


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_every_board_has_a_plan(board):
    plan = board_plan(TINY, board)
    assert "shifthw_engine.v" in plan.files and "top.il" in plan.files
    assert "tee -q -o top.stat.json stat -json" in plan.files["top.ys"]
    constraints = "top.pcf" if BOARDS[board].family == "ice40" else "top.lpf"
    assert constraints in plan.files


def test_the_up5k_is_synthesised_with_its_own_timing_model():
    # synth_ice40 maps with the HX model unless told the device.
    assert "synth_ice40 -device u -dsp -top top" in \
        board_plan(TINY, "icebreaker", synth_opts="-dsp").files["top.ys"]
    assert "-device" not in board_plan(TINY, "ulx3s-25f").files["top.ys"]


def test_generate_with_board(tmp_path):
    manifest = generate(TINY, tmp_path / "b", board="icebreaker")
    assert manifest["board"] == "icebreaker"
    assert (tmp_path / "b" / "board" / "top.ys").exists()
    assert (tmp_path / "b" / "board" / "shifthw_engine.v").read_text() == \
        (tmp_path / "b" / "shifthw_engine.v").read_text()


def test_unknown_board():
    with pytest.raises(ValueError, match="board must be one of"):
        board_plan(TINY, "nexys4")


def test_engine_name_must_be_a_verilog_name():
    with pytest.raises(ValueError, match="engine_name 'reg' is a Verilog / SystemVerilog"):
        BoardTop(config=TINY, engine_name="reg")
    with pytest.raises(ValueError, match="engine_name must be a Verilog identifier"):
        BoardTop(config=TINY, engine_name="a-b")


@pytest.mark.slow
@pytest.mark.parametrize("board, freq, target", [
    ("icebreaker", None, 12.0),
    ("icebreaker", 500, 500.0),          # missed: still placed, with its Fmax
    ("ulx3s-12f", 40, 40.0),
])
def test_synthesise_and_place(board, freq, target, tmp_path):
    result = synthesize_board(TINY, board, tmp_path / board, place=True, freq_mhz=freq)
    assert result["target_mhz"] == target
    res = result["resources"]
    assert res["lut4"] > 100 and res["ff"] > 50          # the engine was not optimised away
    assert result["fits"]
    assert "error" not in result["placed"], result["placed"]
    (clock,) = result["placed"]["fmax"].values()
    assert clock["achieved"] > 0 and clock["constraint"] == pytest.approx(target, rel=1e-4)


def test_clock_constraint_rewrite():
    pcf = "set_io clk12_0__io 35\nset_frequency clk12_0__io 12.0\n# set_frequency x 1\n"
    assert set_clock_frequency(pcf, "ice40", 48.5) == \
        "set_io clk12_0__io 35\nset_frequency clk12_0__io 48.5\n# set_frequency x 1\n"
    lpf = ('LOCATE COMP "clk25_0__io" SITE "G2";\n'
           'FREQUENCY PORT "clk25_0__io" 25000000.0 HZ;\n')
    assert set_clock_frequency(lpf, "ecp5", 120) == \
        'LOCATE COMP "clk25_0__io" SITE "G2";\nFREQUENCY PORT "clk25_0__io" 120000000.0 HZ;\n'


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_every_board_s_clock_is_rewritten(board):
    family = BOARDS[board].family
    ext = "pcf" if family == "ice40" else "lpf"
    text = board_plan(TINY, board).files[f"top.{ext}"]
    clock = (r"^set_frequency \S+ {}$" if family == "ice40"
             else r'^FREQUENCY PORT "\S+" {} HZ;$')
    assert re.search(clock.format(r"(12|25)\.0|25000000\.0"), text, re.M)
    new = set_clock_frequency(text, family, 77.0)
    assert re.search(clock.format("77" if family == "ice40" else r"77000000\.0"), new, re.M)
    assert len(new.splitlines()) == len(text.splitlines())


@pytest.mark.parametrize("freq, exc", [(0, ValueError), (-5.0, ValueError),
                                       (float("nan"), ValueError), (float("inf"), ValueError),
                                       ("100", TypeError), (True, TypeError)])
def test_bad_freq_mhz(freq, exc, tmp_path):
    with pytest.raises(exc, match=f"freq_mhz must be a .*, not {re.escape(repr(freq))}"):
        set_clock_frequency("set_frequency clk 12.0\n", "ice40", freq)
    with pytest.raises(exc, match="freq_mhz must be"):
        synthesize_board(TINY, "icebreaker", tmp_path, place=True, freq_mhz=freq)
    assert not any(tmp_path.iterdir())        # refused before any synthesis


def test_unknown_family():
    with pytest.raises(ValueError, match="family must be one of ice40, ecp5, not 'xilinx'"):
        set_clock_frequency("", "xilinx", 100.0)


def test_dropped_dsp_multiplier_is_refused(tmp_path):
    """With -dsp, Yosys 0.70's ice40_dsp drops one product of each pair the stall-free
    array adds first (an SB_MAC16 adder input undriven): the board synthesis says so
    instead of returning figures of a wrong netlist; the same engine with clock enables
    synthesises.  (A Yosys without the fault synthesises both.)"""
    from shifthw import toolchain
    free = EngineConfig(rows=2, cols=1, pe="mult", stall_free=True, k_depth=4, weight_depth=4,
                        bias_depth=2)
    try:
        synthesize_board(free, "icebreaker", tmp_path / "free", synth_opts="-dsp")
        refused = False
    except toolchain.ToolError as exc:
        assert "ice40_dsp dropped a multiplier" in str(exc)
        refused = True
    # Refused exactly when the netlist lost a product: two 8 x 8 products, two SB_MAC16s.
    net = json.loads((tmp_path / "free" / "top.json").read_text())
    macs = sum(c["type"] == "SB_MAC16" for m in net["modules"].values()
               for c in m["cells"].values())
    assert refused == (macs < 2)
    ok = synthesize_board(EngineConfig(rows=2, cols=1, pe="mult", k_depth=4, weight_depth=4,
                                       bias_depth=2), "icebreaker", tmp_path / "ok",
                          synth_opts="-dsp")
    assert ok["resources"]["dsp"] == 2
