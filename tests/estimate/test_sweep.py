"""Sweep grids, rows and the largest array that fits."""

import pytest

from shifthw.estimate.sweep import (SweepPoint, largest_fit, parse_list, read_csv, sweep_grid,
                                    write_csv)


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
    with pytest.raises(ValueError, match="rows must be in"):
        sweep_grid([0], [2], [5], [0], [8], target="generic")


def test_largest_fit_and_csv(tmp_path):
    rows = []
    for r, c, fits in ((2, 2, True), (4, 4, True), (8, 8, False)):
        rows.append({"label": "shift b=5 G=0", "act_bits": 8, "rows": r, "cols": c,
                     "pes": r * c, "lut": 100 * r * c, "fits": fits, "pe": "shift"})
    best = largest_fit(rows)
    assert best["shift b=5 G=0 A=8"]["pes"] == 16
    write_csv(rows, tmp_path / "s.csv")
    back = read_csv(tmp_path / "s.csv")
    assert back[2]["lut"] == 6400 and back[2]["fits"] is False and back[0]["error"] is None


def test_points_are_engines():
    p = SweepPoint(4, 2, 8, 8, "mult", dsp=True)
    cfg = p.config()
    assert (cfg.rows, cfg.cols, cfg.pe, cfg.weight_bits) == (4, 2, "mult", 8)
    assert p.label == "mult b=8 (DSP)"
