"""Sweep grids, rows and the largest array that fits."""

import pytest

from shifthw.estimate.model import check_rows, config_of_row
from shifthw.estimate.sweep import (CSV_FIELDS, SETTINGS, SweepPoint, largest_fit, parse_list,
                                    read_csv, settings_of, sweep_grid, write_csv)
from shifthw.rtl_gen.config import EngineConfig


def test_parse_list():
    assert parse_list("2, 4,8", "--rows") == [2, 4, 8]
    assert parse_list("0,P", "--guard-bits", allow_p=True) == [0, "P"]
    with pytest.raises(ValueError, match="--guard-bits must be .* integers \\(or P\\)"):
        parse_list("0,Q", "--guard-bits", allow_p=True)


def test_grid_skips_guard_bits_above_p_and_adds_twins():
    points, skipped = sweep_grid([2], [2], [3, 5], [0, 4, "P"], [8], target="ice40-up5k")
    labels = [p.label for p in points]
    assert labels == ["shift b=3 G=0", "shift b=3 G=2", "shift b=5 G=0", "shift b=5 G=4",
                      "shift b=5 G=14", "mult b=8 (LUT)", "mult b=8 (DSP)"]
    assert skipped == ["b=3 G=4: G above P=2"]
    points, _ = sweep_grid([2], [2], [5], [0], [8], target="ice40-hx8k")
    assert [p.label for p in points] == ["shift b=5 G=0", "mult b=8 (LUT)"]   # no DSPs
    points, _ = sweep_grid([2], [2], [5], [0], [8], target="ice40-up5k", mult_booth=True)
    assert [p.label for p in points] == ["shift b=5 G=0", "mult b=8 (LUT)", "mult b=8 (Booth)",
                                         "mult b=8 (DSP)"]
    assert [p.booth for p in points] == [False, False, True, False]
    with pytest.raises(ValueError, match="rows must be in"):
        sweep_grid([0], [2], [5], [0], [8], target="generic")


def test_largest_fit_and_csv(tmp_path):
    rows = []
    for r, c, fits in ((2, 2, True), (4, 4, True), (8, 8, False)):
        rows.append({"label": "shift b=5 G=0", "act_bits": 8, "rows": r, "cols": c,
                     "pes": r * c, "lut": 100 * r * c, "fits": fits, "pe": "shift"})
    best = largest_fit(rows)
    assert best["shift b=5 G=0 A=8"]["pes"] == 16
    assert best["shift b=5 G=0 A=8"]["unmeasured"] == [] and not best["shift b=5 G=0 A=8"]["placed"]
    # Ties are named; a larger point whose run failed (fits None) makes the answer a lower
    # bound, said so (it read as "does not fit").
    more = rows + [{**rows[1], "rows": 2, "cols": 8, "placed": True},
                   {**rows[1], "rows": 8, "cols": 4, "pes": 32, "fits": None}]
    b = largest_fit(more)["shift b=5 G=0 A=8"]
    assert (b["rows"], b["cols"], b["also"], b["unmeasured"]) == (4, 4, ["2x8"], ["8x4"])
    write_csv(rows, tmp_path / "s.csv")
    back = read_csv(tmp_path / "s.csv")
    assert back[2]["lut"] == 6400 and back[2]["fits"] is False and back[0]["error"] is None


def test_points_are_engines():
    p = SweepPoint(4, 2, 8, 8, "mult", dsp=True)
    cfg = p.config()
    assert (cfg.rows, cfg.cols, cfg.pe, cfg.weight_bits) == (4, 2, "mult", 8)
    assert p.label == "mult b=8 (DSP)"


def test_rows_record_the_settings_of_their_engine(tmp_path):
    # A row names the design it measured: the model's check of a sweep rebuilds each
    # row's engine from it, lanes, FIFO and stall included, also through the CSV.
    cfg = SweepPoint(4, 8, 8, 5, "shift", 0, False,
                     (("bias_lanes", 4), ("out_depth", 0), ("out_lanes", 1),
                      ("registered_stall", True))).config()
    row = {"label": "shift b=5 G=0", "pe": "shift", "dsp": False, "rows": 4, "cols": 8,
           "act_bits": 8, "weight_bits": 5, "guard_bits": 0,
           "pipeline_stages": cfg.pipeline_stages, **settings_of(cfg)}
    assert set(SETTINGS) <= set(CSV_FIELDS)
    assert config_of_row(row) == cfg
    write_csv([row], tmp_path / "s.csv")
    assert config_of_row(read_csv(tmp_path / "s.csv")[0]) == cfg
    # A row without them (an older sweep) is of the default settings.
    old = {k: v for k, v in row.items() if k not in SETTINGS}
    assert config_of_row(old) == EngineConfig(rows=4, cols=8, guard_bits=0)


def test_model_check_names_settings_outside_its_calibration():
    cfg = EngineConfig(rows=4, cols=4, guard_bits=0, count_bits=32)
    row = {"label": "shift b=5 G=0", "pe": "shift", "dsp": False, "rows": 4, "cols": 4,
           "act_bits": 8, "weight_bits": 5, "guard_bits": 0, "pipeline_stages": 2,
           **settings_of(cfg), "lut": 1000}
    check = check_rows([row], "ice40-up5k")
    assert check["n"] == 1 and check["outside_calibration"] == ["count_bits=32"]
    calibrated = {**row, "count_bits": 24}
    assert check_rows([calibrated], "ice40-up5k")["outside_calibration"] == []
