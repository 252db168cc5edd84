"""Board tops: every board's build plan, and a small design through Yosys and nextpnr."""

import pytest

from shifthw.rtl_gen.board import BOARDS, board_plan, synthesize_board
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


def test_generate_with_board(tmp_path):
    manifest = generate(TINY, tmp_path / "b", board="icebreaker")
    assert manifest["board"] == "icebreaker"
    assert (tmp_path / "b" / "board" / "top.ys").exists()
    assert (tmp_path / "b" / "board" / "shifthw_engine.v").read_text() == \
        (tmp_path / "b" / "shifthw_engine.v").read_text()


def test_unknown_board():
    with pytest.raises(ValueError, match="board must be one of"):
        board_plan(TINY, "nexys4")


@pytest.mark.slow
@pytest.mark.parametrize("board", ["icebreaker", "ulx3s-12f"])
def test_synthesise_and_place(board, tmp_path):
    result = synthesize_board(TINY, board, tmp_path / board, place=True)
    res = result["resources"]
    assert res["lut4"] > 100 and res["ff"] > 50          # the engine was not optimised away
    assert result["fits"]
    assert "error" not in result["placed"], result["placed"]
    assert result["placed"]["fmax"]
