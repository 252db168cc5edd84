"""``estimate()`` end to end on tiny arrays: iCE40 (with place and route), ECP5, generic."""

import json
import re
from pathlib import Path

import pytest

from shifthw.estimate import estimate
from shifthw.estimate.hierarchy import COMPONENTS
from shifthw.estimate.report import REPORT_KEYS, markdown
from shifthw.rtl_gen.config import EngineConfig
from shifthw.rtl_gen.generate import generate
from shifthw.rtl_gen.synth import cell_counts

from .conftest import TINY, linear_program

DOC = Path(__file__).resolve().parents[2] / "docs" / "estimation.md"


def _row(rep, metric):
    return next(r for r in rep["comparison"]["rows"] if r["metric"] == metric)


def test_ice40_estimate(tmp_path):
    # One run for every iCE40 check: a second run would double the time under pytest-xdist.
    rep = estimate(EngineConfig(**TINY), "ice40-up5k", model=linear_program(),
                   activity=False, out_dir=tmp_path)
    _check_ice40_area_and_timing(rep)
    _check_ice40_energy_and_files(rep, tmp_path)
    _check_documented_keys(json.loads((tmp_path / "estimate.json").read_text()))


def _check_ice40_area_and_timing(rep):
    assert list(rep["designs"]) == ["shift", "mult_lut", "mult_dsp"]
    lut = _row(rep, "lut")
    assert lut["ratio_mult_over_shift"]["mult_lut"] > 1.0
    assert _row(rep, "dsp")["values"] == {"shift": 0, "mult_lut": 0, "mult_dsp": 4}
    for key, d in rep["designs"].items():
        t = d["timing"]
        assert t["fits"] and t["fmax_mhz"] > 5, key
        assert t["critical_path"]["start"] and t["critical_path"]["end"]
        assert d["area"]["resources"]["bram"] >= 1
        assert set(COMPONENTS) <= set(d["area"]["breakdown"])
        # The logic cells a placement needs, from the synthesis alone, against the
        # placement's own count (the formula is within 5 % on 8 x 8 down to 2 x 4 designs;
        # tiny ones are further, all flip-flops and control).
        est = d["area"]["logic_cells_estimate"]
        assert abs(est - t["logic_cells"]) <= 0.15 * t["logic_cells"], (key, est, t)
        assert d["area"]["logic_cells_estimate_error_pct"] == 5
    assert rep["designs"]["shift"]["area"]["breakdown"]["pe_array"]["lut"] < \
        rep["designs"]["mult_lut"]["area"]["breakdown"]["pe_array"]["lut"]
    # Every synthesised design also checks the analytic area model.
    for key, d in rep["designs"].items():
        mod, res = d["area"]["analytic"], d["area"]["resources"]
        assert mod["kind"] == key   # shift, mult_lut, mult_dsp
        for m in ("lut", "ff"):
            assert mod["error_pct"][m] == pytest.approx((mod[m] - res[m]) / res[m] * 100)
            # (TINY's buffers are beyond the calibration: no stated bound)
            assert mod[f"{m}_error_pct"] is None and mod["outside_calibration"]


def _check_ice40_energy_and_files(rep, out):
    en = rep["energy"]
    assert set(en["designs"]) == {"shift", "mult"}
    assert en["designs"]["shift"]["op_count"]["total_pj"] > 0
    assert en["designs"]["shift"]["activity"] is None         # activity=False
    assert {"estimate.json", "estimate.md", "area_breakdown.png",
            "energy_breakdown.png"} <= set(rep["files"])
    for name in rep["files"]:
        assert (out / name).stat().st_size > 0
    assert json.loads((out / "estimate.json").read_text())["format"] == "shifthw.estimate"
    text = (out / "estimate.md").read_text()
    assert "## Shift vs multiplier" in text and "nextpnr: " not in text
    # The placer's settings, when given, are in the Markdown as in the JSON.
    for d in rep["designs"].values():
        d["timing"].update(timing_weight=30, opt_timing=True)
    assert "nextpnr: placer timing weight 30, post-placement timing optimisation " \
        "(--opt-timing)." in markdown(rep)
    assert not re.search(r";\s*\|", text)         # no empty part after a ';'
    for d in rep["designs"].values():
        d["timing"]["critical_path"]["source_lines"] = []
    assert not re.search(r";\s*\|", markdown(rep))


def test_ecp5():
    ecp5 = estimate(EngineConfig(**TINY, guard_bits=0), "ecp5-25k", place=False)
    assert list(ecp5["designs"]) == ["shift", "mult_lut", "mult_dsp"]
    assert _row(ecp5, "lut")["ratio_mult_over_shift"]["mult_lut"] > 1.0
    assert ecp5["designs"]["mult_dsp"]["area"]["resources"]["dsp"] >= 4
    assert ecp5["designs"]["shift"]["timing"] is None          # place=False
    assert ecp5["energy"] is None
    assert ecp5["designs"]["mult_dsp"]["area"]["synthesis"] == "synth_ecp5 -top top"
    assert ecp5["designs"]["mult_lut"]["area"]["synthesis"] == "synth_ecp5 -top top -nodsp"
    # The default mapping builds wide LUTs from the slices' PFU muxes; -nowidelut does not.
    assert ecp5["designs"]["mult_lut"]["area"]["cells"].get("PFUMX", 0) > 0
    narrow = estimate(EngineConfig(**TINY, guard_bits=0), "ecp5-25k", place=False,
                      wide_luts=False)
    for key, d in narrow["designs"].items():
        assert d["area"]["synthesis"].endswith(" -nowidelut"), key
        assert not {"PFUMX", "L6MUX21"} & set(d["area"]["cells"]), key
        # The analytic model's calibration for this mapping, not the default one's.
        default = ecp5["designs"][key]["area"]["analytic"]
        assert d["area"]["analytic"]["lut"] != pytest.approx(default["lut"]), key
    assert any("synth_ecp5 -nowidelut" in n for n in narrow["notes"])
    assert not any("nowidelut" in n for n in ecp5["notes"])


def test_ecp5_lutram_assertion_is_worked_around(tmp_path):
    """Yosys 0.70's synth_ecp5 hits an internal assertion on this engine's LUT RAMs (it
    stopped the area run): the run retries without LUT RAM and says so.  (A Yosys without
    the bug needs no workaround.)"""
    from shifthw.estimate.area import ECP5_LUTRAM_WORKAROUND, synthesize
    cfg = EngineConfig(rows=2, cols=2, act_bits=4, weight_bits=4, guard_bits=6)
    res = synthesize(cfg, "ecp5-85k", tmp_path, breakdown=False)
    assert res["resources"]["lut"] > 0 and res["fits"]
    assert res["workarounds"] in ([], [ECP5_LUTRAM_WORKAROUND])
    assert ("-nolutram" in (tmp_path / "flat.ys").read_text()) == bool(res["workarounds"])


def test_generic_gates(tmp_path):
    rep = estimate(EngineConfig(**TINY), "generic")
    assert list(rep["designs"]) == ["shift", "mult"]
    shift, mult = (rep["designs"][k]["area"] for k in ("shift", "mult"))
    assert 0 < shift["nand2_eq"] < mult["nand2_eq"]
    assert shift["memory_bits"] and shift["logic_depth"] > 5
    assert "ASSUMPTION" in shift["nand2_source"]
    assert shift["analytic"]["error_pct"]["nand2_eq"] == pytest.approx(
        (shift["analytic"]["nand2_eq"] - shift["nand2_eq"]) / shift["nand2_eq"] * 100)
    assert "## Analytic area model beside synthesis" in markdown(rep)
    # TINY's small buffers are beyond the model's calibration: no stated error bound.
    assert shift["analytic"]["outside_calibration"]
    assert shift["analytic"]["nand2_eq_error_pct"] is None
    text = markdown(rep)
    assert "| none (outside the calibration) |" in text and "(no bound)." in text


def test_booth_baseline(tmp_path):
    """mult_booth: the gate-built twin with Yosys' Booth multipliers, beside the default one
    (the same design, fewer gates), with the model's energy and the analytic model's
    figure for Booth multipliers."""
    from shifthw.estimate import estimate_analytic
    rep = estimate(EngineConfig(**TINY), "generic", mult_booth=True, model=linear_program(),
                   activity=False, out_dir=tmp_path)
    assert list(rep["designs"]) == ["shift", "mult", "mult_booth"]
    shift, mult, booth = (rep["designs"][k] for k in ("shift", "mult", "mult_booth"))
    assert [d["booth"] for d in (shift, mult, booth)] == [False, False, True]
    assert shift["area"]["nand2_eq"] < booth["area"]["nand2_eq"] < mult["area"]["nand2_eq"]
    assert booth["config"] == mult["config"]
    assert booth["area"]["analytic"]["kind"] == "mult_booth"
    # (within 11 % here, where TINY's buffer depths are outside the model's calibration)
    assert abs(booth["area"]["analytic"]["error_pct"]["nand2_eq"]) < 15
    assert "k_depth=8" in booth["area"]["analytic"]["outside_calibration"]
    assert "booth" in (tmp_path / "work" / "mult_booth" / "flat.ys").read_text()
    assert "booth" not in (tmp_path / "work" / "mult" / "flat.ys").read_text()
    assert booth["area"]["synthesis"].startswith("booth; synth -top shifthw_engine -flatten")
    assert f"- mult_booth: `{booth['area']['synthesis']}`" in markdown(rep)
    nj = _row(rep, "energy_op_count_nj")["values"]
    assert nj["mult_booth"] == nj["mult"] is not None and nj["shift"] is not None
    assert any(n.startswith("mult_booth: ") for n in rep["notes"])
    with pytest.raises(ValueError, match="mult_booth needs the multiplier baseline"):
        estimate(EngineConfig(**TINY), "generic", baseline=None, mult_booth=True)
    quick = estimate_analytic(EngineConfig(**TINY), "generic", mult_booth=True)
    assert list(quick["designs"]) == ["shift", "mult", "mult_booth"]
    assert quick["designs"]["mult_booth"]["nand2_eq"] == booth["area"]["analytic"]["nand2_eq"]
    assert quick["designs"]["mult_booth"]["kind"] == "mult_booth"
    with pytest.raises(ValueError, match="mult_booth needs the multiplier baseline"):
        estimate_analytic(EngineConfig(**TINY), "generic", baseline=None, mult_booth=True)


def test_shift_engine_has_no_multiplier(tmp_path):
    for pe, muls in (("shift", 0), ("mult", 4)):
        generate(EngineConfig(**TINY, pe=pe), tmp_path / pe)
        cells = cell_counts(tmp_path / pe / "shifthw_engine.v", "shifthw_engine")
        assert cells.get("$mul", 0) == muls, pe


def _documented_keys():
    """Dotted key paths from the report-key table of docs/estimation.md."""
    text = DOC.read_text()
    section = text[text.index("## The JSON report"):text.index("Generic target only")]
    return re.findall(r"^\| `([a-z_.*<>]+)` \|", section, re.M)


def _has(obj, path):
    head, _, rest = path.partition(".")
    if head in ("*", "<design>", "<component>", "<kind>"):
        return bool(obj) and all(_has(v, rest) if rest else True for v in obj.values())
    if not isinstance(obj, dict) or head not in obj:
        return False
    return _has(obj[head], rest) if rest and obj[head] is not None else True


def _check_documented_keys(rep):
    keys = _documented_keys()
    assert len(keys) > 30
    assert set(REPORT_KEYS) <= {k.split(".")[0] for k in keys}
    missing = [k for k in keys if not _has(rep, k)]
    assert not missing, missing


def test_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="target must be one of .*not 'ice40-up3k'"):
        estimate(EngineConfig(**TINY), "ice40-up3k")
    with pytest.raises(ValueError, match="baseline must be"):
        estimate(EngineConfig(**TINY), "generic", baseline="float")
    with pytest.raises(ValueError, match="model has A=8, b=4"):
        estimate(EngineConfig(**TINY), "generic", model=linear_program(weight_bits=4))
    # Only 360 digits test images: refused before synthesis (it failed after, on a reshape).
    with pytest.raises(ValueError, match=r"images \(--images\): 361 asked for, the digits "
                                         r"test split has 360"):
        estimate(EngineConfig(rows=2, cols=2), "generic", model="mlp", images=361)
    with pytest.raises(FileNotFoundError, match="no such .shiftprog"):
        estimate(EngineConfig(**TINY), "generic", model=str(tmp_path / "none.shiftprog"))
    for target in ("ice40-up5k", "generic"):
        with pytest.raises(ValueError, match=f"--no-wide-luts.* ECP5 option .*{target!r}"):
            estimate(EngineConfig(**TINY), target, wide_luts=False, out_dir=tmp_path / "r")
    with pytest.raises(TypeError, match="wide_luts must be a bool, not 'no'"):
        estimate(EngineConfig(**TINY), "ecp5-85k", wide_luts="no")
    assert not (tmp_path / "r").exists()


def test_a_failed_run_takes_away_the_report_folder_it_made(tmp_path, monkeypatch):
    """Interrupted or failed: the new report folder (and parents) it made are removed; a
    tool failure keeps them, with the tool's logs in work/; an existing folder is kept."""
    from shifthw import toolchain
    from shifthw.estimate import area

    def interrupted(cfg, target, work, **kw):
        Path(work).mkdir(parents=True)
        (Path(work) / "flat.log").write_text("half")
        raise KeyboardInterrupt

    def tool_failed(cfg, target, work, **kw):
        Path(work).mkdir(parents=True)
        raise toolchain.ToolError("yosys failed", tool="yosys")

    monkeypatch.setattr(area, "synthesize", interrupted)
    with pytest.raises(KeyboardInterrupt):
        estimate(EngineConfig(**TINY), "generic", out_dir=tmp_path / "a" / "b" / "rep")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "old").mkdir()
    with pytest.raises(KeyboardInterrupt):
        estimate(EngineConfig(**TINY), "generic", out_dir=tmp_path / "old")
    assert [p.name for p in tmp_path.iterdir()] == ["old"]
    monkeypatch.setattr(area, "synthesize", tool_failed)
    with pytest.raises(toolchain.ToolError):
        estimate(EngineConfig(**TINY), "generic", out_dir=tmp_path / "new")
    assert (tmp_path / "new" / "work" / "shift").is_dir()
    # A Verilator build that failed (the activity runs') keeps its logs the same way.
    from shifthw.sim.build import BuildError

    def build_failed(cfg, target, work, **kw):
        Path(work).mkdir(parents=True)
        raise BuildError("verilator failed")

    monkeypatch.setattr(area, "synthesize", build_failed)
    with pytest.raises(BuildError):
        estimate(EngineConfig(**TINY), "generic", out_dir=tmp_path / "new2")
    assert (tmp_path / "new2" / "work" / "shift").is_dir()


def test_energy_runs_on_the_model_s_own_inputs(tmp_path):
    # A model of 8 inputs got random activations for its energy runs; --inputs gives its own.
    import numpy as np

    from shifthw.estimate.flow import estimate_energy, model_inputs

    prog = linear_program()
    x = np.linspace(-3, 3, 5 * 8).reshape(5, 8)
    np.save(tmp_path / "x.npy", x)
    xq, name = model_inputs(prog, 3, tmp_path / "x.npy")
    assert name == str(tmp_path / "x.npy") and xq.shape == (3, 8)
    assert (xq == np.clip(np.floor(x[:3] * 16), -128, 127)).all()     # F = 4
    section = estimate_energy(EngineConfig(**TINY), prog, inputs=x, images=5, activity=False)
    assert section["designs"]["shift"]["op_count"]["total_pj"] > 0
    with pytest.raises(ValueError, match=r"images \(--images\): 6 asked for, inputs \(an "
                                         r"array\) has 5"):
        estimate_energy(EngineConfig(**TINY), prog, inputs=x, images=6, activity=False)
    with pytest.raises(ValueError, match=r"inputs .*x.npy: input batch has shape \(5, 4\)"):
        np.save(tmp_path / "x.npy", x[:, :4])
        estimate_energy(EngineConfig(**TINY), prog, inputs=tmp_path / "x.npy", activity=False)
    with pytest.raises(ValueError, match="inputs are the model's inputs .*give model"):
        estimate(EngineConfig(**TINY), "generic", inputs=x)


def test_without_baseline():
    rep = estimate(EngineConfig(**TINY), "generic", baseline=None)
    assert list(rep["designs"]) == ["shift"] and rep["baseline"] is None
    assert rep["comparison"]["columns"] == ["shift"]
    text = markdown(rep)
    assert "## Figures" in text and "## Shift vs multiplier" not in text


@pytest.mark.slow
def test_abc9_assertion_is_worked_around_with_splitnets(tmp_path):
    """Yosys 0.70's ABC9 reintegration hits an internal assertion in this engine's output
    stage in the per-component (hierarchical) iCE40 run: the run retries with splitnets and
    says so.  (A Yosys without the bug needs no workaround.)"""
    from shifthw.estimate.area import SPLITNETS_WORKAROUND, synthesize
    cfg = EngineConfig(guard_bits=0, bias_lanes=4, out_lanes=4, out_depth=0)
    res = synthesize(cfg, "ice40-up5k", tmp_path)
    assert res["workarounds"] in ([], [SPLITNETS_WORKAROUND])
    assert ("splitnets" in (tmp_path / "hier.ys").read_text()) == bool(res["workarounds"])
    assert res["breakdown"]["pe_array"]["lut"] > 0 and res["resources"]["lut"] > 0


@pytest.mark.parametrize("family, fixed_at", [("ecp5", None), ("ecp5", 1), ("ecp5", 2),
                                               ("ecp5", 3), ("ice40", 1), ("ice40", None)])
def test_yosys_assertion_retries(tmp_path, monkeypatch, family, fixed_at):
    """The retry logic without Yosys: each attempt's script is recorded, the assertion is
    written to the log until attempt ``fixed_at`` (None: never); then the workaround used is
    returned, or one clear error raised.  Any other failure is raised at once."""
    from shifthw import toolchain
    from shifthw.estimate import area
    from shifthw.estimate.targets import get_target
    target = get_target("ecp5-85k" if family == "ecp5" else "ice40-up5k")
    tried = []

    def fake_run(work, name, lines, progress, timeout):
        tried.append(list(lines))
        if fixed_at is not None and len(tried) - 1 >= fixed_at:
            return
        (work / f"{name}.log").write_text(
            "ERROR: Assert `count_id(wire->name) == 0' failed in /y/kernel/rtlil.cc:2872.\n")
        raise toolchain.ToolError("yosys failed", tool="yosys")

    monkeypatch.setattr(area, "_run", fake_run)
    synth = "synth_ecp5 -top top" if family == "ecp5" else "synth_ice40 -top top"
    lines = ["read_json ann.json", synth, "stat"]
    expected = ([[*lines], ["read_json ann.json", synth + " -nolutram", "stat"],
                 ["read_json ann.json", "splitnets", synth, "stat"],
                 ["read_json ann.json", "splitnets", synth + " -nolutram", "stat"]]
                if family == "ecp5" else
                [[*lines], ["read_json ann.json", "splitnets", synth, "stat"]])
    if fixed_at is None:
        with pytest.raises(toolchain.ToolError, match="internal assertion .a Yosys bug"):
            area._run_mapped(tmp_path, "flat", lines, target, None, 10)
        assert tried == expected
    else:
        used = area._run_mapped(tmp_path, "flat", lines, target, None, 10)
        assert tried == expected[:fixed_at + 1]
        assert ("-nolutram" in used) == ("-nolutram" in " ".join(tried[-1]))
        assert ("splitnets" in used) == ("splitnets" in tried[-1])

    def other_error(work, name, lines, progress, timeout):
        (work / f"{name}.log").write_text("ERROR: syntax error\n")
        raise toolchain.ToolError("yosys failed", tool="yosys")

    monkeypatch.setattr(area, "_run", other_error)
    with pytest.raises(toolchain.ToolError, match="yosys failed"):
        area._run_mapped(tmp_path, "flat", lines, target, None, 10)


#: Two products registered without an enable, then added: Yosys 0.70's ice40_dsp packs one
#: product's register and the adder into the other's SB_MAC16 and leaves the adder's input
#: undriven (the stall-free array's first tree level has this shape).
_PAIRED_PRODUCTS = """
module t(input clk, input signed [5:0] a1, input signed [5:0] a2, input signed [5:0] w1,
         input signed [5:0] w2, output reg signed [12:0] s);
  reg signed [11:0] p1, p2;
  always @(posedge clk) begin p1 <= a1 * w1; p2 <= a2 * w2; s <= p1 + p2; end
endmodule
"""


def _used_inputs(netlist: dict) -> set[str]:
    """The module's input ports of which some bit drives a cell."""
    mod = netlist["modules"]["t"]
    read = {b for cell in mod["cells"].values()
            for port, bits in cell["connections"].items()
            if cell["port_directions"].get(port) != "output" for b in bits}
    return {name for name, port in mod["ports"].items()
            if port["direction"] == "input" and read & set(port["bits"])}


def test_dropped_dsp_multiplier_is_found_and_worked_around(tmp_path):
    """An SB_MAC16 adder input left undriven (a multiplier dropped) is found exactly when
    the netlist lost an operand, and the workaround script (synth_ice40 -dsp without
    ice40_dsp's packing) keeps both products, each in a DSP block.  (A Yosys without the
    bug needs no workaround: the first check holds either way.)"""
    from shifthw import toolchain
    from shifthw.estimate.area import _without_ice40_dsp_packing, dropped_dsp_inputs
    (tmp_path / "t.v").write_text(_PAIRED_PRODUCTS)
    script = ["read_verilog t.v", "synth_ice40 -dsp -top t"]
    runs = {"plain": script, "fixed": _without_ice40_dsp_packing(script)}
    nets = {}
    for name, lines in runs.items():
        toolchain.run_yosys(["-q", "-p", "; ".join([*lines, f"write_json {name}.json"])],
                            cwd=tmp_path)
        nets[name] = json.loads((tmp_path / f"{name}.json").read_text())
    everything = {"clk", "a1", "a2", "w1", "w2"}
    lost = _used_inputs(nets["plain"]) != everything
    assert bool(dropped_dsp_inputs(nets["plain"])) == lost
    assert dropped_dsp_inputs(nets["fixed"]) == []
    assert _used_inputs(nets["fixed"]) == everything
    macs = [c for c in nets["fixed"]["modules"]["t"]["cells"].values()
            if c["type"] == "SB_MAC16"]
    assert len(macs) == 2
