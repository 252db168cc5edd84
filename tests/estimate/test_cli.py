"""``shifthw estimate`` and ``shifthw sweep`` handlers: options, errors, output."""

import argparse
import csv
import json

import pytest

from shifthw.estimate.cli import (add_estimate_arguments, add_sweep_arguments,
                                  config_from_design_dir, run_estimate, run_sweep)
from shifthw.rtl_gen.config import EngineConfig
from shifthw.rtl_gen.generate import generate

from .conftest import TINY


def _parse(adder, argv):
    p = argparse.ArgumentParser()
    adder(p)
    return p.parse_args(argv)


def test_unknown_target_is_one_clear_error():
    args = _parse(add_estimate_arguments, ["--target", "ecp5-45k", "--rows", "2"])
    with pytest.raises(ValueError, match=r"target must be one of ice40-up5k, .* not 'ecp5-45k'"):
        run_estimate(args)


@pytest.mark.parametrize("flag", ["--placements", "--timing-weight", "--jobs"])
def test_bad_placement_option_is_one_clear_error(tmp_path, flag):
    args = _parse(add_estimate_arguments, ["--target", "ecp5-85k", "--rows", "2",
                                           flag, "0", "-o", str(tmp_path / "r")])
    with pytest.raises(ValueError, match=f"{flag} must be a(n integer of 1 to 1000| positive "
                                         f"integer).*, not 0"):
        run_estimate(args)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("target", ["ecp5-85k", "generic"])
def test_opt_timing_is_for_ice40_alone(tmp_path, target):
    args = _parse(add_estimate_arguments, ["--target", target, "--rows", "2", "--opt-timing",
                                           "-o", str(tmp_path / "r")])
    with pytest.raises(ValueError, match=f"--opt-timing is nextpnr-ice40's .* {target!r}"
                       if target != "generic" else "'generic' is not placed .* --opt-timing"):
        run_estimate(args)
    assert not (tmp_path / "r").exists()


def test_no_wide_luts_is_for_ecp5_alone(tmp_path, capsys):
    args = _parse(add_estimate_arguments, ["--target", "ice40-up5k", "--rows", "2",
                                           "--no-wide-luts", "-o", str(tmp_path / "r")])
    with pytest.raises(ValueError, match="--no-wide-luts.* ECP5 option .*'ice40-up5k'"):
        run_estimate(args)
    assert not (tmp_path / "r").exists()
    args = _parse(add_estimate_arguments, ["--target", "ice40-up5k", "--rows", "2",
                                           "--no-wide-luts", "--analytic"])
    with pytest.raises(ValueError, match="--no-wide-luts.* ECP5 option .*'ice40-up5k'"):
        run_estimate(args)
    # With --analytic: the model's calibration for LUT4s alone, fewer LUTs than the default.
    luts = {}
    for flag in ([], ["--no-wide-luts"]):
        args = _parse(add_estimate_arguments, ["--target", "ecp5-85k", "--analytic",
                                               "--guard-bits", "14", *flag])
        assert run_estimate(args) == 0
        out = capsys.readouterr().out
        luts[bool(flag)] = int(out.split("\nshift")[1].split()[0])
    assert luts[True] < luts[False]


def test_missing_design_folder_is_one_clear_error(tmp_path):
    args = _parse(add_estimate_arguments, [str(tmp_path / "build"), "--target", "generic"])
    with pytest.raises(FileNotFoundError, match="design folder .*build.*: no such folder"):
        run_estimate(args)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no manifest.json"):
        config_from_design_dir(tmp_path / "empty")


def test_design_folder_or_options_not_both(tmp_path):
    generate(EngineConfig(**TINY), tmp_path / "d", name="my_engine")
    assert config_from_design_dir(tmp_path / "d") == EngineConfig(**TINY)
    args = _parse(add_estimate_arguments, [str(tmp_path / "d"), "--target", "generic",
                                           "--rows", "4"])
    with pytest.raises(ValueError, match="either DESIGN .* or engine options .*--rows"):
        run_estimate(args)


def test_a_design_folder_whose_verilog_was_edited_is_refused(tmp_path):
    # verify / estimate build the engine from the manifest's parameters: a folder whose
    # Verilog is not that engine (edited; another version) was passed over silently.
    generate(EngineConfig(**TINY), tmp_path / "d")
    source = tmp_path / "d" / "shifthw_engine.v"
    # Where the generator's source lay (another install, other line numbers) is no change.
    text = source.read_text()
    source.write_text(text.replace('src = "/', 'src = "/elsewhere/'))
    assert config_from_design_dir(tmp_path / "d") == EngineConfig(**TINY)
    source.write_text(text.replace("endmodule", "endmodule // edited", 1))
    with pytest.raises(ValueError, match=r"shifthw_engine.v is not the Verilog its manifest's "
                                         r"parameters generate .*run `shifthw generate` again"):
        config_from_design_dir(tmp_path / "d")
    source.unlink()
    with pytest.raises(FileNotFoundError, match=r"shifthw_engine.v: missing"):
        config_from_design_dir(tmp_path / "d")


def test_estimate_a_generated_folder(tmp_path, capsys):
    generate(EngineConfig(**TINY, guard_bits=0), tmp_path / "d")
    args = _parse(add_estimate_arguments, [str(tmp_path / "d"), "--target", "generic",
                                           "-o", str(tmp_path / "rep"), "-q"])
    assert run_estimate(args) == 0
    text = capsys.readouterr().out
    assert "| nand2_eq (NAND2 eq.) |" in text and "mult / shift" in text
    assert (tmp_path / "rep" / "estimate.json").exists()


def test_sweep_lists(capsys):
    args = _parse(add_sweep_arguments, ["--target", "generic", "--rows", "2,x"])
    with pytest.raises(ValueError, match="--rows must be a comma-separated list"):
        run_sweep(args)
    args = _parse(add_sweep_arguments, ["--target", "nowhere"])
    with pytest.raises(ValueError, match="target must be one of"):
        run_sweep(args)


def test_sweep_options_are_checked_before_any_tool(tmp_path):
    args = _parse(add_sweep_arguments, ["--target", "generic", "--rows", "2", "--cols", "2",
                                        "--mult-booth", "--no-baseline"])
    with pytest.raises(ValueError, match="--mult-booth.* needs the baseline"):
        run_sweep(args)
    args = _parse(add_sweep_arguments, ["--target", "ice40-hx8k", "--rows", "2", "--cols",
                                        "2", "--no-wide-luts", "-o", str(tmp_path / "s")])
    with pytest.raises(ValueError, match="--no-wide-luts.* ECP5 option .*'ice40-hx8k'"):
        run_sweep(args)
    for freq in ("0", "-5", "nan", "inf", "1e-300", "1e9"):
        args = _parse(add_sweep_arguments, ["--target", "ice40-up5k", "--freq", freq])
        with pytest.raises(ValueError, match="--freq must be a clock goal of 1 to 5000 MHz"):
            run_sweep(args)
    # Options that do not apply, a list with a value twice, an impossible multiplier width
    # (named as the multiplier's), a folder of the user's own.
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    for argv, why in (
            (["--target", "generic", "--freq", "50"], "is not placed .* --freq does not"),
            (["--target", "ice40-up5k", "--no-place", "--freq", "50"], "--no-place runs no "),
            (["--target", "generic", "--no-baseline", "--mult-weight-bits", "5"],
             "--no-baseline synthesises no multiplier twin"),
            (["--target", "generic", "--no-baseline", "--mult-weight-bits", "8"],
             "--no-baseline synthesises no multiplier twin"),      # the default, given
            (["--target", "generic", "--rows", "2,4,2"], "--rows lists 2 more than once"),
            (["--target", "generic", "--mult-weight-bits", "0"],
             r"multiplier weight bits \(--mult-weight-bits\): weight_bits must be in 2..8"),
            (["--target", "generic", "-o", str(tmp_path / "mine")],
             "not empty and holds no shifthw sweep.json")):
        with pytest.raises((ValueError, FileExistsError), match=why):
            run_sweep(_parse(add_sweep_arguments, argv))
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]
    # Every combination skipped: an error, not an empty CSV and exit code 0.
    args = _parse(add_sweep_arguments, ["--target", "generic", "--rows", "2", "--cols", "2",
                                        "--weight-bits", "3", "--guard-bits", "5",
                                        "--no-baseline", "-o", str(tmp_path / "s")])
    with pytest.raises(ValueError, match=r"every combination was skipped \(b=3 G=5: G above"):
        run_sweep(args)
    assert not (tmp_path / "s").exists()


def test_sweep_writes_csv_and_plots(tmp_path, capsys):
    args = _parse(add_sweep_arguments, ["--target", "generic", "--rows", "2", "--cols", "2",
                                        "--weight-bits", "3", "--guard-bits", "0,P,4",
                                        "--k-depth", "8", "--weight-depth", "16",
                                        "--bias-depth", "4", "--mult-booth",
                                        "-o", str(tmp_path), "-q"])
    assert run_sweep(args) == 0
    with open(tmp_path / "sweep.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["label"] for r in rows] == ["shift b=3 G=0", "shift b=3 G=2", "mult b=8 (LUT)",
                                          "mult b=8 (Booth)"]
    assert [r["booth"] for r in rows] == ["False", "False", "False", "True"]
    assert float(rows[3]["nand2_eq"]) < float(rows[2]["nand2_eq"])
    # The analytic model's check takes in the Booth twin too.
    assert "(4 points" in capsys.readouterr().out
    # Every row records the engine's settings (the lanes resolved to C = 2).
    assert {(r["k_depth"], r["weight_depth"], r["bias_depth"], r["bias_lanes"],
             r["registered_stall"]) for r in rows} == {("8", "16", "4", "2", "False")}
    assert all(float(r["nand2_eq"]) > 0 for r in rows)
    assert (tmp_path / "sweep_lut_fmax.png").exists()


def test_analytic_estimate_runs_no_tool(tmp_path, capsys, monkeypatch):
    # --analytic answers from the area model alone: no Yosys, no nextpnr.
    from shifthw import toolchain

    def no_tools(*a, **k):
        raise AssertionError("a tool ran")

    for name in ("run_tool", "run_yosys", "run_nextpnr", "run_verilator"):
        monkeypatch.setattr(toolchain, name, no_tools)
    args = _parse(add_estimate_arguments, ["--target", "ice40-up5k", "--guard-bits", "0",
                                           "--bias-lanes", "4", "--out-lanes", "4",
                                           "--out-depth", "0", "--registered-stall",
                                           "--analytic", "-o", str(tmp_path / "r")])
    assert run_estimate(args) == 0
    out = capsys.readouterr().out
    for kind in ("shift", "mult_lut", "mult_dsp"):
        assert f"\n{kind} " in out
    assert "lut ratio mult_lut / shift" in out and "outside the calibration" not in out
    assert "dsp over)" in out.split("\nmult_dsp ")[1].splitlines()[0]
    import json
    rep = json.loads((tmp_path / "r" / "analytic.json").read_text())
    assert rep["format"] == "shifthw.estimate_analytic" and rep["target"] == "ice40-up5k"
    assert rep["designs"]["mult_dsp"]["dsp"] == 64 and not rep["designs"]["mult_dsp"]["fits"]
    assert rep["lut_ratio"]["mult_lut"] == pytest.approx(
        rep["designs"]["mult_lut"]["lut"] / rep["designs"]["shift"]["lut"])
    assert rep["design"]["registered_stall"] is True and rep["design"]["out_lanes"] == 4


def test_analytic_estimate_names_tool_options_and_uncalibrated_settings(tmp_path, capsys):
    args = _parse(add_estimate_arguments, ["--target", "ecp5-85k", "--rows", "2", "--analytic",
                                           "--placements", "3", "--model", "mlp",
                                           "-o", str(tmp_path / "r")])
    with pytest.raises(ValueError, match="--analytic runs no tools, so --model, --placements "
                                         "do not apply"):
        run_estimate(args)
    assert not (tmp_path / "r").exists()
    args = _parse(add_estimate_arguments, ["--target", "generic", "--rows", "8", "--analytic",
                                           "--k-depth", "1024"])
    assert run_estimate(args) == 0
    out = capsys.readouterr().out
    assert "nand2_eq ratio mult / shift" in out
    assert "outside the calibration: k_depth=1024" in out


def test_options_that_do_not_apply_or_are_out_of_range_name_the_option(tmp_path):
    for argv, match in (
            (["--no-place", "--placements", "3", "--freq", "90"],
             "--no-place runs no placement, so --freq, --placements do not apply"),
            (["--mult-weight-bits", "20"], "--mult-weight-bits: weight_bits must be in 2..8"),
            (["--images", "8"], "--images sets the images of --model's energy runs"),
            (["--no-activity"], "--no-activity leaves out --model's switching-activity"),
            (["--inputs", "x.npy"], "--inputs are --model's inputs for its energy runs"),
            (["--energy-table", "t.json"], "--energy-table prices --model's energy"),
            (["--baseline", "none", "--mult-weight-bits", "8"],
             "--baseline none synthesises no multiplier twin, so --mult-weight-bits"),
            (["--analytic", "--baseline", "none", "--mult-weight-bits", "6"],
             "--baseline none synthesises no multiplier twin"),
            (["--target", "generic", "--placements", "3"],
             "target 'generic' is not placed .gates, no Fmax., so --placements does not"),
            (["--freq", "inf"], "--freq must be a clock goal of 1 to 5000 MHz, not inf"),
            (["--timing-weight", "99999999999"], "--timing-weight must be an integer of 1 to "
                                                "1000"),
            (["--analytic", "--mult-weight-bits", "0"],
             r"mult_weight_bits \(--mult-weight-bits\): weight_bits must be in 2..8")):
        args = _parse(add_estimate_arguments, ["--target", "ice40-up5k", *argv])
        with pytest.raises(ValueError, match=match):
            run_estimate(args)
    # A report folder is new, empty or a report's: estimate clears its work folders, so a
    # folder of the user's own is refused (its files were deleted or replaced).
    mine = tmp_path / "mine"
    (mine / "work" / "shift").mkdir(parents=True)
    (mine / "work" / "shift" / "notes.txt").write_text("keep")
    for extra in ([], ["--analytic"]):
        args = _parse(add_estimate_arguments, ["--target", "ice40-up5k", "--rows", "2",
                                               "--cols", "2", "-o", str(mine), *extra])
        with pytest.raises(FileExistsError,
                           match="not empty and holds no shifthw estimate.json"):
            run_estimate(args)
    assert (mine / "work" / "shift" / "notes.txt").read_text() == "keep"
    # A file of that name that shifthw did not write is not a report's either; a report
    # folder whose estimate.md is a folder, or work a file, is refused before anything runs.
    (mine / "estimate.json").write_text('{"name": "my own"}')
    with pytest.raises(FileExistsError, match="holds no shifthw estimate.json"):
        run_estimate(_parse(add_estimate_arguments, ["--target", "ice40-up5k", "--analytic",
                                                     "-o", str(mine)]))
    rep = tmp_path / "rep"
    rep.mkdir()
    (rep / "analytic.json").write_text('{"format": "shifthw.estimate_analytic"}')
    (rep / "estimate.md").mkdir()
    for extra in ([], ["--analytic"]):
        with pytest.raises(FileExistsError, match="its estimate.md is not a file"):
            run_estimate(_parse(add_estimate_arguments, ["--target", "ice40-up5k", *extra,
                                                         "-o", str(rep)]))
    (rep / "estimate.md").rmdir()
    (rep / "work").write_text("")
    with pytest.raises(FileExistsError, match="its work is not a folder"):
        run_estimate(_parse(add_estimate_arguments, ["--target", "ice40-up5k",
                                                     "-o", str(rep)]))
    assert sorted(p.name for p in rep.iterdir()) == ["analytic.json", "work"]
    design = tmp_path / "d"
    generate(EngineConfig(**TINY), design)
    manifest = design / "manifest.json"
    obj = json.loads(manifest.read_text())
    obj["parameters"]["rows"] = 0
    manifest.write_text(json.dumps(obj))
    with pytest.raises(ValueError, match=r"manifest.json: rows must be"):
        config_from_design_dir(design)


def test_images_default_to_four_or_every_input_given(tmp_path, monkeypatch):
    """Without --images: 4 images, or all of --inputs if it has fewer (3 was refused as
    "4 asked for" although --images was never given)."""
    import numpy as np

    from shifthw.estimate import flow

    seen = []

    def fake_estimate(config, target, **kw):
        seen.append(kw["images"])
        raise KeyboardInterrupt          # (nothing else of the run is needed)

    monkeypatch.setattr(flow, "estimate", fake_estimate)
    np.save(tmp_path / "x.npy", np.zeros((3, 64)))
    for extra in ([], ["--inputs", str(tmp_path / "x.npy")],
                  ["--inputs", str(tmp_path / "x.npy"), "--images", "2"]):
        args = _parse(add_estimate_arguments, ["--target", "generic", "--model", "mlp",
                                               *extra])
        with pytest.raises(KeyboardInterrupt):
            run_estimate(args)
    assert seen == [4, 3, 2]
