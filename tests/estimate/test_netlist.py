"""The gate-level check: mapped netlists simulated against the golden model."""

from __future__ import annotations

import argparse
import json

import pytest

from shifthw.estimate import cli, netlist
from shifthw.estimate.flow import estimate, mult_config
from shifthw.estimate.targets import get_target
from shifthw.estimate.report import markdown
from shifthw.rtl_gen.config import EngineConfig

from .conftest import TINY, linear_program
from .test_flow import _documented_keys


def test_ice40_dsp_fault_is_seen_in_simulation(tmp_path):
    """Yosys 0.70's ice40_dsp drops a product of the stall-free DSP twin: the netlist it
    makes computes wrong outputs in simulation; the repaired mapping computes every one."""
    cfg = mult_config(EngineConfig(**TINY, stall_free=True))
    bad = netlist.check_netlist(cfg, "ice40-up5k", tmp_path / "bad", dsp=True, repair=False)
    assert bad["dropped_dsp_inputs"] > 0 and bad["workarounds"] == []
    assert not bad["passed"] and bad["error"] is None
    assert 0 < bad["mismatches"] <= bad["outputs"] and bad["first_mismatches"]
    good = netlist.check_netlist(cfg, "ice40-up5k", tmp_path / "good", dsp=True)
    assert good["passed"], good["first_mismatches"]
    assert good["mismatches"] == 0 and good["dropped_dsp_inputs"] == 0
    assert good["workarounds"] == [netlist.area.ICE40_DSP_WORKAROUND]
    assert good["netlist_cells"]["SB_MAC16"] == cfg.rows * cfg.cols
    assert set(good) == set(netlist.CHECK_KEYS)
    assert good["outputs"] == sum(len(x) * j.out_features
                                  for j, x in netlist.netlist_jobs(cfg, 0))


def test_ecp5_netlists_with_dsp_blocks_and_block_ram(tmp_path):
    """The ECP5 twin's MULT18X18Ds (shifthw's model, LUT RAM buffers) and a shift design
    with a deep weight buffer in DP16KD block RAM (shifthw's model)."""
    cfg = EngineConfig(**TINY)
    mult = netlist.check_netlist(mult_config(cfg), "ecp5-25k", tmp_path / "mult", dsp=True)
    assert mult["passed"], mult["first_mismatches"]
    assert mult["netlist_cells"]["MULT18X18D"] == cfg.rows * cfg.cols
    assert mult["netlist_cells"]["TRELLIS_DPR16X4"] > 0
    assert any("MULT18X18D" in m for m in mult["cell_models"])
    deep = EngineConfig(**{**TINY, "weight_depth": 512})
    shift = netlist.check_netlist(deep, "ecp5-25k", tmp_path / "shift", stall_prob=0.1)
    assert shift["passed"], shift["first_mismatches"]
    assert shift["netlist_cells"]["DP16KD"] > 0 and "MULT18X18D" not in shift["netlist_cells"]
    assert shift["stall_prob"] == 0.1


def test_ecp5_name_clash_design_computes_right(tmp_path):
    """The one design of the random grid whose ECP5 netlist computed 26 of its 110 outputs
    wrongly: Yosys 0.70's LUT mapping joined two block RAM outputs into one net, through
    the wire names ``array.i__payload.w`` and ``array.i__payload.w[2]`` (docs/estimation.md;
    the Yosys fault alone: tests/rtl_gen/test_synth.py).  With those names hidden before
    synthesis (synth.HIDE_INDEXED_NAMES) its netlist has no shorted net and is right.  (Since
    the stall-free credits changed, its mapping no longer meets the clash without the step
    either; the ten-line design of test_synth.py is what watches Yosys.)"""
    cfg = EngineConfig(rows=2, cols=3, act_bits=6, weight_bits=5, guard_bits=14,
                       input_registers=1, stall_free=True, pipeline_stages=0, k_depth=16,
                       weight_depth=64, bias_depth=8, bias_lanes=1, out_lanes=1,
                       param_word_bits=16, out_depth=1)
    res = netlist.check_netlist(cfg, "ecp5-25k", tmp_path / "ecp5")
    assert res["passed"] and res["error"] is None, res["first_mismatches"]
    assert res["mismatches"] == 0 and res["outputs"] == 110
    assert res["shorted_nets"] == [] and res["netlist_cells"]["DP16KD"] > 0


def test_a_cell_model_that_stops_the_run_is_named(monkeypatch, tmp_path):
    """shifthw's DP16KD model stops on a mode it does not model (here initial contents,
    written into a real ECP5 netlist); the check says which model stopped it."""
    real = netlist.map_engine

    def with_contents(*args, **kw):
        mapped = real(*args, **kw)
        text = mapped["verilog"].read_text()
        assert ".INITVAL_00(320'h0000" in text
        mapped["verilog"].write_text(text.replace(".INITVAL_00(320'h0000",
                                                  ".INITVAL_00(320'h0001", 1))
        return mapped

    monkeypatch.setattr(netlist, "map_engine", with_contents)
    res = netlist.check_netlist(EngineConfig(**{**TINY, "weight_depth": 512}), "ecp5-25k",
                                tmp_path)
    assert res["error"] == ("a cell model stopped it: DP16KD model: initial contents are not "
                            "modelled (cell shifthw_harness.dut.weights.0.0)"), res["error"]
    assert not res["passed"] and res["cycles"] == 0


def test_shorted_nets_are_found():
    def net(*drivers, inputs=()):
        cells = {f"c{i}": {"type": "LUT4", "port_directions": {"Z": "output", "A": "input"},
                           "connections": {"Z": [b], "A": [9]}}
                 for i, b in enumerate(drivers)}
        return {"modules": {"m": {"ports": {"i": {"direction": "input", "bits": list(inputs)}},
                                  "cells": cells,
                                  "netnames": {"n": {"bits": [2, 3], "hide_name": 0}}}}}
    assert netlist.area.shorted_nets(net(2, 3)) == []
    assert netlist.area.shorted_nets(net(2, 2)) == ["m.n[0]: LUT4 c0.Z, LUT4 c1.Z"]
    assert netlist.area.shorted_nets(net(3, inputs=(3,))) == ["m.n[1]: input i, LUT4 c0.Z"]


def test_dp16kd_model_stops_on_modes_it_does_not_model():
    text = netlist.dp16kd_model()
    assert text.count("module DP16KD(") == 1
    for port in ("DIA17", "ADB13", "CLKA", "OCEB", "CSB2", "DOA0", "DOB17"):
        assert f" {port};" in text
    assert text.count("$fatal") == 4 and "INITVAL_3F != 0" in text
    models = netlist.cell_models("ecp5")
    assert sum(t.count("module DP16KD(") for t in models.values()) == 1
    assert "module DP16KD(" in models["ecp5_dp16kd.v"]


def test_estimate_generic_with_the_check(tmp_path):
    """With a model: its layer runs after the random jobs, on the twin with integer
    weights."""
    prog = linear_program(k=8, n=5, seed=4)
    rep = estimate(EngineConfig(**TINY), "generic", check_netlist=True, out_dir=tmp_path,
                   model=prog, images=3, activity=False)
    for key, d in rep["designs"].items():
        chk = d["netlist_check"]
        assert chk["passed"] and chk["cycles"] > 0, key
        assert chk["jobs"] == len(netlist.netlist_jobs(EngineConfig(**TINY))) + 1
        assert chk["model_jobs"] == 1
        random_outputs = sum(len(x) * j.out_features
                             for j, x in netlist.netlist_jobs(EngineConfig(**TINY), 0))
        assert chk["outputs"] == random_outputs + 3 * 5
        assert chk["cell_models"] == [] and chk["synthesis"] == d["area"]["synthesis"]
        # the measured netlist itself, not mapped again
        assert chk["netlist_cells"] == d["area"]["cells"]
        assert not (tmp_path / "work" / key / "netlist" / "netlist.json").exists()
        assert (tmp_path / "work" / key / "netlist" / "netlist.v").exists()
        assert rep["runtime"]["steps"][f"{key}.netlist_check"] == chk["seconds"]
        assert set(chk) == set(netlist.CHECK_KEYS)
    documented = [k.split(".netlist_check.")[1] for k in _documented_keys()
                  if ".netlist_check." in k]
    assert len(documented) > 10 and set(documented) <= set(netlist.CHECK_KEYS)
    text = markdown(rep)
    assert "## Gate-level check of the mapped netlists" in text
    assert not any("FAILED" in n for n in rep["notes"])
    plain = estimate(EngineConfig(**TINY), "generic", baseline=None, place=False)
    assert plain["designs"]["shift"]["netlist_check"] is None
    assert "Gate-level check" not in markdown(plain)


def test_jobs_reach_every_buffer_address_and_show_low_bits():
    cfg = EngineConfig(**TINY)
    jobs = netlist.netlist_jobs(cfg, 3)
    assert max(j.fan_in for j, _ in jobs) == cfg.max_k
    tiles = [(-(-j.fan_in // cfg.rows), -(-j.out_features // cfg.cols)) for j, _ in jobs]
    assert (cfg.weight_depth // cfg.bias_depth, cfg.bias_depth) in tiles
    assert max(kt * nt for kt, nt in tiles) == cfg.weight_depth
    assert [j.fan_in for j, _ in jobs] == [j.fan_in for j, _ in netlist.netlist_jobs(cfg, 3)]
    assert all(len(x) and x.shape[1] == j.fan_in for j, x in jobs)
    from shifthw.rtl_gen.host import golden_job

    job, x = jobs[0]
    out, _ = golden_job(cfg, job, x)
    assert len(set(out.ravel().tolist())) > 4       # not all saturated


def test_bad_input(tmp_path):
    cfg = EngineConfig(**TINY)
    with pytest.raises(ValueError, match="stall_prob must be in"):
        netlist.check_netlist(cfg, "generic", tmp_path / "a", stall_prob=1.0)
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        netlist.check_netlist(cfg, "generic", tmp_path / "b", seed=-1)
    with pytest.raises(ValueError, match="target must be one of"):
        netlist.check_netlist(cfg, "ice40-up3k", tmp_path / "c")
    with pytest.raises(TypeError, match="check_netlist must be a bool"):
        estimate(cfg, "generic", check_netlist="yes")
    with pytest.raises(ValueError, match="family must be"):
        netlist.cell_models("gowin")
    with pytest.raises(ValueError, match="area_run is for the generic target"):
        netlist.check_netlist(cfg, "ice40-up5k", tmp_path / "d", area_run=(tmp_path, {}))
    with pytest.raises(FileNotFoundError, match="has no flat.json"):
        netlist.check_netlist(cfg, "generic", tmp_path / "e", area_run=(tmp_path, {}))
    with pytest.raises(ValueError, match="needs shift_cfg"):
        netlist.model_jobs(linear_program(), mult_config(cfg), [[1] * 8])
    assert not any(tmp_path.iterdir())


def test_mult18x18d_model_refuses_other_modes():
    text = netlist.mult18x18d_model()
    assert text.count("module MULT18X18D(") == 1
    for port in ("A17", "B0", "P35", "SIGNEDA", "SIGNEDP", "SOURCEB"):
        assert f" {port};" in text
    assert 'REG_OUTPUT_CLK != "NONE"' in text and "$fatal" in text


def test_cli_exit_code_follows_the_check(monkeypatch, capsys):
    """``--check-netlist``: exit code 1 when a netlist differs (the check itself faked
    here; the tests above run it)."""
    parser = argparse.ArgumentParser()
    cli.add_estimate_arguments(parser)
    args = parser.parse_args(["--target", "generic", "--rows", "2", "--cols", "2",
                              "--k-depth", "8", "--weight-depth", "16", "--bias-depth", "4",
                              "--baseline", "none", "--check-netlist", "-q"])
    verdict = {}

    def fake_check(cfg, target, work, **kw):
        bad = 0 if verdict["passed"] else 3
        return {**dict.fromkeys(netlist.CHECK_KEYS), "passed": verdict["passed"], "jobs": 4,
                "model_jobs": 0,
                "outputs": 40, "mismatches": bad, "first_mismatches": [], "cycles": 99,
                "stall_prob": 0.25, "netlist_cells": {"$_AND_": 1}, "cell_models": [],
                "seconds": 1.0}

    monkeypatch.setattr(netlist, "check_netlist", fake_check)
    for passed, code in ((True, 0), (False, 1)):
        verdict["passed"] = passed
        assert cli.run_estimate(args) == code
        out = capsys.readouterr().out
        line = out.split("gate-level check of shift's mapped netlist: ")[1].splitlines()[0]
        assert line.startswith("passed (40 of 40" if passed else "FAILED (37 of 40")
        assert ("the gate-level check FAILED" in out) != passed
    with pytest.raises(ValueError, match="--analytic runs no tools, so --check-netlist"):
        cli.run_estimate(parser.parse_args(["--target", "generic", "--analytic",
                                            "--check-netlist"]))


def test_sweep_checks_every_point(tmp_path):
    """``shifthw sweep --check-netlist``: each point's measured generic netlist runs the
    random jobs; the columns go to the CSV."""
    from shifthw.estimate.sweep import read_csv, run_sweep_points, sweep_grid, write_csv

    extra = {k: v for k, v in TINY.items() if k not in ("rows", "cols")}
    points, _ = sweep_grid([2], [2], [5], [0], [8], target="generic", engine=extra)
    rows = run_sweep_points(points, "generic", place=False, check_netlist=True, jobs=2,
                            work_dir=tmp_path / "work")
    for row in rows:
        assert row["netlist_check"] is True and row["error"] is None, row
        assert row["netlist_mismatches"] == 0
        cfg = EngineConfig(**TINY) if row["pe"] == "shift" else mult_config(EngineConfig(**TINY))
        assert row["netlist_outputs"] == sum(len(x) * j.out_features
                                             for j, x in netlist.netlist_jobs(cfg, 0))
    write_csv(rows, tmp_path / "s.csv")
    back = read_csv(tmp_path / "s.csv")
    assert [r["netlist_check"] for r in back] == [True, True]
    plain = run_sweep_points(points[:1], "generic", place=False, jobs=1)
    assert plain[0]["netlist_check"] is None and plain[0]["netlist_outputs"] is None


def test_sweep_reports_a_failed_check(monkeypatch, tmp_path, capsys):
    """A wrong netlist, or a check that cannot run, marks the point and the exit code (the
    check faked here)."""
    from shifthw.estimate import sweep

    point = sweep.SweepPoint(2, 2, 8, 5, "shift", 0, False,
                             tuple(sorted((k, v) for k, v in TINY.items()
                                          if k not in ("rows", "cols"))))

    def wrong(*args, **kw):
        return {"passed": False, "outputs": 40, "mismatches": 7, "error": None}

    def broken(*args, **kw):
        raise netlist.area.toolchain.ToolError("yosys says no\nmore", tool="yosys")

    rows = []
    for fake in (wrong, broken):
        monkeypatch.setattr(netlist, "check_netlist", fake)
        rows.append(sweep.run_point(point, "generic", str(tmp_path), False, None,
                                    check_netlist=True))
    assert rows[0]["netlist_check"] is False and rows[0]["netlist_mismatches"] == 7
    assert rows[0]["nand2_eq"] > 0 and rows[0]["error"] is None
    assert rows[1]["netlist_check"] is False and rows[1]["nand2_eq"] > 0
    assert rows[1]["error"].startswith("netlist check: ToolError: ")
    assert "more" not in rows[1]["error"]
    assert sweep.netlist_failures(rows) == rows
    over = {"error": "over capacity: lut", "netlist_check": None}   # kept, not overwritten
    sweep._check_point(over, None, get_target("ice40-up5k"), point, tmp_path, {}, True)
    assert over["error"].startswith("over capacity: lut; netlist check: ToolError")
    assert not any(tmp_path.iterdir())       # the points' work folders are gone

    monkeypatch.setattr(sweep, "run_sweep_points", lambda *a, **kw: rows)
    parser = argparse.ArgumentParser()
    cli.add_sweep_arguments(parser)
    args = parser.parse_args(["--target", "generic", "--rows", "2", "--cols", "2",
                              "--no-baseline", "--guard-bits", "0", "--check-netlist", "-q"])
    assert cli.run_sweep(args) == 1
    out = capsys.readouterr().out
    assert "gate-level check: 0 of 2 mapped netlists" in out
    assert "7 of 40 outputs wrong" in out and "netlist check: ToolError" in out


def test_a_shorted_net_marks_the_row_the_report_and_the_exit_code(monkeypatch, tmp_path,
                                                                  capsys):
    """A measured netlist with a net of two drivers (faked onto a real synthesis: Yosys no
    longer makes one here) is named in the sweep row, the report's notes, and both exit
    codes."""
    from shifthw.estimate import area, sweep

    real = area.synthesize
    short = "shifthw_engine.x[0]: LUT4 a.Z, LUT4 b.Z"

    def shorted(*args, **kw):
        return {**real(*args, **kw), "shorted_nets": [short]}

    point = sweep.SweepPoint(2, 2, 8, 5, "shift", 0, False,
                             tuple(sorted((k, v) for k, v in TINY.items()
                                          if k not in ("rows", "cols"))))
    clean = sweep.run_point(point, "generic", str(tmp_path), False, None)
    assert clean["shorted_nets"] == 0 and clean["error"] is None
    monkeypatch.setattr(area, "synthesize", shorted)
    row = sweep.run_point(point, "generic", str(tmp_path), False, None)
    assert row["shorted_nets"] == 1 and row["nand2_eq"] > 0
    assert row["error"] == f"Yosys' netlist has 1 net(s) with two drivers (first: {short})"
    assert sweep.synthesis_faults([clean, row]) == [row]

    monkeypatch.setattr(sweep, "run_sweep_points", lambda *a, **kw: [clean, row])
    parser = argparse.ArgumentParser()
    cli.add_sweep_arguments(parser)
    args = parser.parse_args(["--target", "generic", "--rows", "2", "--cols", "2",
                              "--no-baseline", "--guard-bits", "0", "-q"])
    assert cli.run_sweep(args) == 1
    assert "synthesis fault: shift b=5 G=0 2x2 A=8: Yosys' netlist has 1 net" in \
        capsys.readouterr().out

    parser = argparse.ArgumentParser()
    cli.add_estimate_arguments(parser)
    args = parser.parse_args(["--target", "generic", "--rows", "2", "--cols", "2",
                              "--k-depth", "8", "--weight-depth", "16", "--bias-depth", "4",
                              "--baseline", "none", "-q", "-o", str(tmp_path / "rep")])
    assert cli.run_estimate(args) == 1
    note = (f"shift: Yosys' netlist has 1 net(s) with two drivers (first: {short}): a "
            f"synthesis fault; its area and Fmax are of a netlist that does not compute the "
            f"design.")
    assert f"note: {note}" in capsys.readouterr().out
    rep = json.loads((tmp_path / "rep" / "estimate.json").read_text())
    assert rep["designs"]["shift"]["area"]["shorted_nets"] == [short]
    assert note in rep["notes"] and f"- {note}" in (tmp_path / "rep" / "estimate.md").read_text()
