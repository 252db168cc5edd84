"""Op-count energy: the table, its interpolation labels, and counts from the real schedule."""

import json

import numpy as np
import pytest

from shifthw.estimate import energy
from shifthw.rtl_gen.array import SPLIT_ACC_BITS
from shifthw.program import load_program
from shifthw.rtl_gen.config import EngineConfig

from .conftest import TINY, linear_program


@pytest.fixture(scope="module")
def table():
    return energy.load_table()


def test_table_holds_the_horowitz_rows(table):
    assert "Horowitz" in table["source"] and "45 nm" in table["source"]
    assert energy.add_energy(table, 8) == (0.03, "table")
    assert energy.add_energy(table, 32) == (0.1, "table")
    assert energy.mult_energy(table, 8, 8) == (0.2, "table")
    assert energy.mult_energy(table, 32, 32) == (3.1, "table")
    assert energy.sram_energy(table, 64, 8 * 8192) == (10.0, "table")
    assert energy.sram_energy(table, 64, 8 * 1048576) == (100.0, "table")


def test_widths_between_rows_are_interpolated_and_labelled(table):
    e16, label = energy.add_energy(table, 16)
    assert 0.03 < e16 < 0.1 and label == "interpolated"
    e4, label = energy.add_energy(table, 4)
    assert e4 < 0.03 and label == "extrapolated"
    m, label = energy.mult_energy(table, 8, 5)
    assert 0.0 < m < 0.2 and label == "extrapolated"          # sqrt(8 * 5) < 8
    s, label = energy.sram_energy(table, 64, 8 * 16384)
    assert 10 < s < 20 and label == "interpolated"


def test_shifter_cost_is_labelled_an_assumption(table):
    counts = energy.program_ops(linear_program(), EngineConfig(**TINY))
    rows = energy.price(counts, table)["rows"]
    shift = [r for r in rows if r["op"] == "shift"]
    assert shift and all(r["basis"].startswith("assumption") for r in shift)
    assert "ASSUMPTION" in table["assumptions"]["shifter_stage_bit"]["why"]


def test_shifter_is_priced_by_its_multiplexers(table):
    """A shift costs its log shifter's multiplexers where the candidates differ (as the
    generated PE has them), not the full A + G bits times the stages."""
    from shifthw.rtl_gen.pe import shifter_muxes
    each = {}
    for g in (0, 4, 14):
        rows = energy.price(energy.program_ops(linear_program(), EngineConfig(**TINY,
                                                                        guard_bits=g)),
                            table)["rows"]
        (row,) = [r for r in rows if r["op"] == "shift"]
        bits, stages, muxes = row["bits"]
        assert muxes == shifter_muxes(8, 5, g) <= bits * stages
        each[g] = row["pj_each"]
    assert (shifter_muxes(8, 5, 0), shifter_muxes(8, 5, 14)) == (21, 53)
    assert each[14] / each[0] == pytest.approx(53 / 21)
    assert each[0] < each[4] < each[14]


def test_counts_follow_the_engine_schedule():
    cfg = EngineConfig(**TINY)
    counts = energy.program_ops(linear_program(k=8, n=4), cfg)
    # ceil(8/2) row-tiles x ceil(4/2) column-tiles per vector, one vector per image
    assert counts["beats"] == 4 * 2
    assert counts["pe_ops"] == 4 * counts["beats"]          # padding lanes included
    assert counts["macs"] == 8 * 4
    adds = [o for o in counts["ops"] if o["component"] == "adder_trees" and o["op"] == "add"]
    assert [o["bits"] for o in adds] == [(cfg.term_bits + 1,)]     # R - 1 = 1 adder, A+G+1


def test_stall_free_counts_its_result_fifo():
    plain = energy.program_ops(linear_program(k=8, n=4), EngineConfig(**TINY))
    free = energy.program_ops(linear_program(k=8, n=4), EngineConfig(**TINY, stall_free=True))
    extra = [o for o in free["ops"] if o not in plain["ops"]]
    split = [o for o in extra if o["what"].startswith("split accumulators")]
    assert sorted(o["what"] for o in extra if o not in split) == sorted([
        "result FIFO write", "result FIFO read", "bias add after the result FIFO",
        "result register"])
    assert all(o["count"] == free["output_words"] * (TINY["cols"] if o["op"] == "add" else 1)
               for o in extra if o not in split)
    # (TINY's exact accumulator is wider than SPLIT_ACC_BITS: its registers every beat)
    acc = EngineConfig(**TINY, stall_free=True).acc_bits
    assert acc >= SPLIT_ACC_BITS
    assert [(tuple(o["bits"]), o["count"]) for o in split] == [
        (((acc + 3) * TINY["cols"],), free["beats"])]


def test_weights_load_once_per_batch(table):
    cfg = EngineConfig(**TINY)
    one = energy.program_ops(linear_program(), cfg, batch=1)
    four = energy.program_ops(linear_program(), cfg, batch=4)
    assert four["param_words"] == pytest.approx(one["param_words"] / 4)
    assert four["beats"] == one["beats"]


@pytest.mark.parametrize("pe", ["shift", "mult"])
def test_energy_grows_linearly_with_layer_size(table, pe):
    cfg = EngineConfig(**TINY, pe=pe)
    for axis in ("n", "k"):
        sizes = (2, 4, 6, 8)
        e = [energy.price(energy.program_ops(linear_program(**{axis: s, "k" if axis == "n"
                                                                else "n": 4}), cfg), table)
             ["total_pj"] for s in sizes]
        steps = np.diff(e)
        assert (steps > 0).all()
        assert steps == pytest.approx([steps[0]] * len(steps), rel=1e-9)


def test_shift_pe_costs_less_than_the_multiplier(table):
    prog = load_program_zoo("mlp")
    shift = energy.price(energy.program_ops(prog, EngineConfig(guard_bits=0)), table)
    mult = energy.price(energy.program_ops(prog, EngineConfig(pe="mult")), table)
    assert shift["by_component"]["pe_array"] < mult["by_component"]["pe_array"]
    assert shift["total_pj"] < mult["total_pj"]


def load_program_zoo(name):
    from importlib import resources

    return load_program(resources.files("shifthw").joinpath(f"zoo/{name}.shiftprog"))


def test_a_replacement_table(tmp_path, table):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({**table, "int_add": [[8, 0.06], [32, 0.2]]}))
    other = energy.load_table(path)
    assert energy.add_energy(other, 8)[0] == 0.06
    with pytest.raises(FileNotFoundError, match="no such file"):
        energy.load_table(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="missing key 'int_add'"):
        energy.load_table(tmp_path / "bad.json")


def _edit(table, key, value):
    t = json.loads(json.dumps(table))
    if value is None:
        del t[key]
    else:
        t[key] = value
    return t


@pytest.mark.parametrize("edit, match", [
    (lambda t: _edit(t, "int_add", [[8, 0.03], [8, 0.05]]), "int_add has two rows of one width"),
    (lambda t: _edit(t, "int_add", [[8, 0]]), "int_add must be a non-empty list of .width, pJ."),
    (lambda t: _edit(t, "int_mult", [[8, -0.2]]), "int_mult must be"),
    (lambda t: _edit(t, "int_add", []), "int_add must be"),
    (lambda t: _edit(t, "sram_64bit_access", 10), "sram_64bit_access must be"),
    (lambda t: _edit(t, "int_add", [["8", 0.03]]), "int_add must be"),
    (lambda t: _edit(t, "dram_64bit_access", [[1, 2]]), "dram_64bit_access must be"),
    (lambda t: {**t, "assumptions": {k: v for k, v in t["assumptions"].items()
                                     if k != "mux_bit"}}, "assumptions.mux_bit must be"),
    (lambda t: {**t, "assumptions": {**t["assumptions"], "xor_bit": 0.5}},
     "assumptions.xor_bit must be an object"),
    (lambda t: _edit(t, "unit", "fJ"), "unit is 'fJ'; the estimate reads pJ"),
    (lambda t: _edit(t, "version", 99), "version 99 is not supported"),
    (lambda t: _edit(t, "format", "other"), "format is 'other'"),
])
def test_a_table_the_estimate_cannot_use_is_refused_when_loaded(tmp_path, table, edit, match):
    # Before: a ZeroDivisionError, a math domain error or a KeyError after all synthesis.
    raw = {k: v for k, v in table.items() if k != "file"}
    path = tmp_path / "t.json"
    path.write_text(json.dumps(edit(raw)))
    with pytest.raises(ValueError, match=f"energy table {path}: {match}"):
        energy.load_table(path)
    path.write_bytes(b"\xff binary")               # was a decode error naming no file
    with pytest.raises(ValueError, match=f"energy table {path}: not JSON"):
        energy.load_table(path)
    # The shipped table passes the same checks, and a table without DRAM rows is fine.
    path.write_text(json.dumps(_edit(raw, "dram_64bit_access", None)))
    energy.load_table(path)


@pytest.mark.parametrize("params", [
    dict(rows=8, cols=8), dict(rows=8, cols=8, pe="mult", weight_bits=8),
    dict(rows=5, cols=3, guard_bits=0, pipeline_stages=4),
    dict(rows=7, cols=2, pipeline_stages=3, pe_register=True)])
def test_tree_register_bits_are_the_generated_arrays(params):
    """The adder trees' pipeline registers priced per beat are the flip-flops the generator
    makes: every registered level's sums and untaken carries per column, valid / first /
    last once per stage (found counted per column, and the carries above level 0 left out)."""
    import re

    from amaranth.back import verilog

    from shifthw.rtl_gen.engine import LayerEngine
    cfg = EngineConfig(**params)
    text = verilog.convert(LayerEngine(config=cfg), name="top")
    made = re.findall(r"^\s*reg (?:\[(\d+):0\] )?(?:sum|carry|valid|first|last)_l\d+\w*",
                      text, re.M)
    assert made
    counts = energy.program_ops(linear_program(), cfg)
    (row,) = [o for o in counts["ops"]
              if o["component"] == "adder_trees" and o["op"] == "register"]
    assert row["bits"] == (sum(int(w) + 1 if w else 1 for w in made),)


def test_energy_arguments(tmp_path):
    from shifthw import compile as hw_compile
    from shifthw.estimate import estimate, estimate_energy
    cfg = EngineConfig(rows=8, cols=8)
    # The op-count alone needs no images: a batch beyond the digits test split is fine.
    assert estimate_energy(cfg, "cnn", images=400, activity=False)["batch"] == 400
    with pytest.raises(TypeError, match="model must be a Program, .* pass its .program"):
        estimate_energy(cfg, hw_compile("cnn"), activity=False)
    with pytest.raises(ValueError, match="images must be a positive integer, not True"):
        estimate_energy(cfg, "cnn", images=True, activity=False)
    # A bad baseline width is refused before the report folder is made.
    with pytest.raises(ValueError, match="mult_weight_bits"):
        estimate(cfg, "ice40-up5k", out_dir=tmp_path / "r", mult_weight_bits=99)
    assert not (tmp_path / "r").exists()
    with pytest.raises(TypeError, match="place must be a bool, not 'no'"):
        estimate(cfg, "ice40-up5k", place="no")
    with pytest.raises(TypeError, match="activity must be a bool"):
        estimate_energy(cfg, "cnn", activity="no")
