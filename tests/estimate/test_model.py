"""The analytic area model: its stated error holds on sweep points held out of the fit."""

import json
import time
from importlib import resources

import pytest

from shifthw.estimate import model as am
from shifthw.estimate.targets import get_target
from shifthw.rtl_gen.config import EngineConfig
from shifthw.rtl_gen.pe import pe_register_bits

TARGET = {"ice40": "ice40-up5k", "ecp5": "ecp5-85k", "generic": "generic",
          "ecp5_nowidelut": "ecp5-85k"}


@pytest.fixture(scope="module")
def data():
    return json.loads(resources.files("shifthw.estimate").joinpath(am.DATA_FILE).read_text())


@pytest.fixture(scope="module")
def model():
    return am.load_area_model()


def _rows(data, family, kind, metrics):
    return am.calibration_rows(data["families"][family], family, kind, tuple(metrics))


def test_every_family_and_kind_is_calibrated(model):
    assert set(model.families()) == {"ice40", "ecp5", "generic", "ecp5_nowidelut"}
    assert set(model.data["families"]["ecp5_nowidelut"]) == {"shift", "mult_lut", "mult_dsp",
                                                              "mult_booth"}
    assert set(model.data["families"]["ice40"]) == {"shift", "mult_lut", "mult_dsp",
                                                     "mult_booth"}
    assert set(model.data["families"]["generic"]) == {"shift", "mult_lut", "mult_booth"}


def test_stated_error_holds_on_held_out_points(data, model):
    checked = 0
    for family, kinds in model.data["families"].items():
        for kind, metrics in kinds.items():
            _, held = am.split_heldout(_rows(data, family, kind, metrics))
            assert held, (family, kind)
            for r in held:
                pred = model.predict(am.config_of_row(r), TARGET[family],
                                     dsp=kind == "mult_dsp", booth=kind == "mult_booth",
                                     wide_luts=family != "ecp5_nowidelut")
                assert pred["kind"] == kind
                for metric, m in metrics.items():
                    err = abs(pred[metric] - r[metric]) / r[metric] * 100
                    assert err <= m["stated_error_pct"], (family, kind, metric, r, err)
                    checked += 1
    assert checked > 250


def test_refit_gives_the_shipped_model(data, model):
    for family, kinds in model.data["families"].items():
        for kind, metrics in kinds.items():
            for metric, m in metrics.items():
                refit = am.fit_family(_rows(data, family, kind, metrics), metric, kind,
                                      family)
                assert refit["coef"] == pytest.approx(m["coef"], rel=1e-6, abs=1e-9)
                assert refit["heldout"]["max_pct"] <= m["stated_error_pct"]


def test_dsp_rule_on_every_dsp_point(data):
    # One DSP block per multiplier, per partial product with the PE register (two per PE).
    checked = 0
    for family, rows in data["families"].items():
        for r in rows:
            if r.get("dsp") and r.get("dsp_blocks") is not None:
                assert am.dsp_blocks(am.config_of_row(r), family) == r["dsp_blocks"], r
                checked += 1
    assert checked > 200


def test_bram_rule_on_every_point(data):
    for family in ("ice40", "ecp5", "ecp5_nowidelut"):
        rows = [r for r in data["families"][family] if r.get("bram") is not None]
        assert len(rows) > 700
        for r in rows:
            assert am.bram_blocks(am.config_of_row(r), family) == r["bram"], (family, r)


def test_predictions_take_microseconds(model):
    cfg = EngineConfig(rows=8, cols=8, guard_bits=0)
    t0 = time.perf_counter()
    for _ in range(200):
        pred = model.predict(cfg, "ice40-up5k")
    assert (time.perf_counter() - t0) / 200 < 5e-3
    assert pred["lut"] > 0 and pred["ff"] > 0 and pred["bram"] > 0 and pred["dsp"] == 0
    assert "fits" in pred and pred["lut_error_pct"] > 0
    # Beyond the calibration the model extrapolates: no stated bound.
    far = model.predict(EngineConfig(rows=16, cols=8, weight_bits=6), "ice40-up5k")
    assert far["outside_calibration"] and far["lut"] > pred["lut"]
    assert far["lut_error_pct"] is None and far["ff_error_pct"] is None
    dsp = model.predict(EngineConfig(rows=8, cols=8, pe="mult"), get_target("ice40-up5k"),
                        dsp=True)
    assert dsp["dsp"] == 64 and not dsp["fits"]                # 8 DSP blocks on the UP5K
    assert "dsp" in dsp["over"] and "lut4" not in dsp["over"]
    lut = model.predict(EngineConfig(rows=8, cols=8, pe="mult"), "ice40-up5k")
    assert "lut4" in lut["over"] and "dsp" not in lut["over"] and not lut["fits"]


def test_settings_outside_the_calibration_are_named(model):
    assert model.predict(EngineConfig(rows=8, cols=8), "ice40-up5k")["outside_calibration"] == []
    small = EngineConfig(rows=8, cols=8, guard_bits=0, bias_lanes=4, out_lanes=4, out_depth=0,
                         registered_stall=True)
    assert model.predict(small, "ice40-up5k")["outside_calibration"] == []
    # The high-Fmax settings are calibrated (the sweeps' `fast` grid) ...
    for kw in (dict(input_registers=0), dict(input_registers=2, pe_register=True),
               dict(input_registers=2, pe_register=True, stall_free=True)):
        pred = model.predict(EngineConfig(rows=8, cols=8, registered_stall=True,
                                          pipeline_stages=4, **kw), "ecp5-85k")
        assert pred["outside_calibration"] == [], kw
    # ... and so are every pipeline up to 4 stages, the buffer depths, words and counts in
    # their ranges, and an accumulator up to 4 bits narrower than the formula's (the
    # `settings` grid) ...
    for kw in (dict(pipeline_stages=3), dict(pipeline_stages=0), dict(k_depth=512),
               dict(weight_depth=100), dict(bias_depth=8), dict(param_word_bits=64),
               dict(count_bits=24), dict(out_depth=16), dict(acc_bits=29),
               dict(pipeline_stages=1)):
        pred = model.predict(EngineConfig(rows=8, cols=8, **kw), "ice40-up5k")
        assert pred["outside_calibration"] == [], kw
        pred = model.predict(EngineConfig(rows=8, cols=8, **kw), "ecp5-85k", wide_luts=False)
        assert pred["outside_calibration"] == [], kw
        # (On the ECP5 with wide functions, the saturating accumulator and one stage after
        # 8 rows are named: synth_ecp5 maps them far smaller than the model, which leaves
        # them out.)
        pred = model.predict(EngineConfig(rows=8, cols=8, **kw), "ecp5-85k")
        assert pred["outside_calibration"] == [f"{k}={v}" for k, v in kw.items()
                                               if k in ("acc_bits", "pipeline_stages")
                                               and v in (29, 1)], kw
    # ... but not settings beyond those ranges.
    pred = model.predict(EngineConfig(rows=16, cols=4, pipeline_stages=5), "ecp5-85k")
    assert pred["outside_calibration"] == ["rows=16", "pipeline_stages=5"]
    # Sizes and widths beyond the sweeps' are named too; the weight width per PE kind.
    for kw, named in ((dict(rows=1), ["rows=1"]), (dict(cols=16), ["cols=16"]),
                      (dict(act_bits=12), ["act_bits=12"]), (dict(act_bits=3), ["act_bits=3"]),
                      (dict(weight_bits=6, guard_bits=0), ["weight_bits=6"]),
                      (dict(rows=3, cols=6, act_bits=5), []),
                      (dict(pe="mult", weight_bits=3), ["weight_bits=3"]),
                      (dict(pe="mult", weight_bits=6), [])):
        pred = model.predict(EngineConfig(**{"rows": 8, "cols": 8, **kw}), "ice40-up5k")
        assert pred["outside_calibration"] == named, kw
    pred = model.predict(EngineConfig(rows=8, cols=8, k_depth=8, weight_depth=4096,
                                      count_bits=32, acc_bits=25), "ice40-up5k")
    assert pred["outside_calibration"] == ["k_depth=8", "weight_depth=4096", "count_bits=32",
                                           "acc_bits=25"]


def test_the_sweeps_hold_the_calibrated_ranges(data):
    # Each end of every range the model calls calibrated (sizes and widths too) is a
    # synthesised point of the fitted grids, with a saturating accumulator as narrow as the
    # ranges say, on every family and kind.
    for family in TARGET:
        for kind in ("shift", "mult_lut", "mult_booth"):
            cfgs = [am.config_of_row(r) for r in data["families"][family]
                    if r.get("grid") != am.CHECK_GRID
                    and am.kind_of(r["pe"], bool(r.get("dsp")), am.config_of_row(r), family,
                                   bool(r.get("booth"))) == kind]
            pe = "shift" if kind == "shift" else "mult"
            for name, (lo, hi) in am.calibrated_ranges(pe).items():
                values = {getattr(c, name) for c in cfgs}
                assert {lo, hi} <= values, (family, kind, name)
            assert any(c.acc_bits == c.natural_acc_bits - am.CALIBRATED_NARROW_ACC
                       for c in cfgs), (family, kind)


def test_the_small_fpga_settings_are_calibrated_and_held_out(data):
    # The lanes, the FIFO, the registered stall, the high-Fmax settings and the `settings`
    # grid's buffer depths, pipelines and saturating accumulators are varied by the sweeps,
    # and some of those points are among the held-out ones the stated errors are measured
    # on: every setting with four points or more has some (the shift kind's settings have
    # six or more points each; the twins' three, so theirs are not checked one by one).
    for family in TARGET:
        rows = data["families"][family]
        _, held = am.split_heldout(_rows(data, family, "shift", ("ff",)))
        cfgs = [am.config_of_row(r) for r in held]
        assert any(c.registered_stall for c in cfgs), family
        assert any(c.out_lanes < c.cols and c.out_depth == 0 for c in cfgs), family
        assert any(c.out_lanes == 1 for c in cfgs), family
        assert any(c.input_registers == 0 for c in cfgs), family
        assert any(c.pe_register and not c.stall_free for c in cfgs), family
        assert any(c.stall_free for c in cfgs), family
        # (saturating ones are left out of the ECP5's default-mapping fit: model.unmodelled)
        assert any(c.saturating for c in cfgs) == (family != "ecp5"), family
        assert any(c.pipeline_stages < min(2, c.tree_levels + 1) for c in cfgs), family
        assert any(c.k_depth != 64 or c.weight_depth != 256 for c in cfgs), family
        assert any(c.out_depth > 4 for c in cfgs), family
        # The twins' held-out points hold the variant and settings grids too.
        for kind in ("mult_lut", "mult_booth"):
            _, held = am.split_heldout(_rows(data, family, kind, ("ff",)))
            assert {r.get("grid") for r in held} >= {"variants", "fast", "settings"}
        assert all(r.get("error") is None or str(r["error"]).startswith("over capacity")
                   for r in rows if r.get("grid") in ("variants", "fast", "settings")), family


def test_uncalibrated_target_is_a_clear_error(model, tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({**model.data, "families": {"ice40": {}}}))
    other = am.load_area_model(path)
    with pytest.raises(ValueError, match="no calibration for shift designs on ecp5"):
        other.predict(EngineConfig(rows=2, cols=2), "ecp5-25k")
    with pytest.raises(FileNotFoundError, match="no such file"):
        am.load_area_model(tmp_path / "none.json")


def test_shifter_muxes_count_the_log_shifter():
    # A = 8, b = 5: G = 0 shifts by 0..7 (three stages, the sign fills the top), G = 4 by
    # 0..11 and G = P = 14 by 0..14 (four stages, the zero guard bits and the sign narrow
    # them): 7 + 7 + 7 at G = 0, and never more than A + G a stage.
    assert am.shifter_muxes(8, 5, 0) == 21
    assert am.shifter_muxes(8, 5, 4) == 40
    assert am.shifter_muxes(8, 5, 14) == 53
    for a in (4, 8):
        for b in (3, 4, 5):
            p = 2 ** (b - 1) - 2
            counts = [am.shifter_muxes(a, b, g) for g in range(p + 1)]
            assert counts == sorted(counts)          # more guard bits, no fewer multiplexers
            for g, n in enumerate(counts):
                assert n <= (a + g) * max(am.nx.shifter_stages(a, b, g), 1)
    # No shift at all (A = 2, b = 2: P = 0): no multiplexer.
    assert am.shifter_muxes(2, 2, 0) == 0
    # The feature is the PEs' count of them.
    cfg = EngineConfig(rows=2, cols=4, act_bits=8, weight_bits=5, guard_bits=4)
    assert am.features(cfg, "shift")["pe_muxes"] == 8 * 40
    assert am.features(EngineConfig(rows=2, cols=4, pe="mult", weight_bits=8),
                       "mult_lut")["pe_muxes"] == 0


def test_input_and_pe_registers_are_counted(model, tmp_path):
    # Input registers and PE registers are counted, not fitted: each level other than one
    # a beat and its valid bit, each PE its register ...
    base = dict(rows=4, cols=4, guard_bits=6)
    one = model.predict(EngineConfig(**base), "generic")
    for kw, extra in ((dict(input_registers=0), -115), (dict(input_registers=2), 115),
                      (dict(pe_register=True), 16 * 18)):
        cfg = EngineConfig(**base, **kw)
        assert am.input_register_bits(cfg) == 4 * 8 + 16 * 5 + 2 + 1   # act, w, first, last
        assert pe_register_bits(EngineConfig(**base, pe_register=True)) == 8 + 6 + 2 + 2
        assert model.predict(cfg, "generic")["ff"] - one["ff"] == pytest.approx(extra)
        if not cfg.pe_register:         # (the PE register also moves the PE's logic)
            assert model.predict(cfg, "generic")["nand2_eq"] == one["nand2_eq"]
    # ... but fitted for DSP multipliers, whose blocks can take some of them in.
    mult = EngineConfig(rows=4, cols=4, pe="mult", weight_bits=8, input_registers=2,
                        pe_register=True)
    assert am.counted_ff(mult, "mult_dsp") == 0
    assert am.counted_ff(mult, "mult_lut") == am.input_register_bits(mult) + 16 * 25
    feats = am.features(mult, "mult_dsp")
    assert feats["dsp_in_reg_bits"] == 2 * am.input_register_bits(mult)
    assert feats["dsp_pe_reg_bits"] == 16 * 25   # 13- and 12-bit partial products
    assert am.features(mult, "mult_lut")["dsp_in_reg_bits"] == 0
    # Against synthesis: without input registers and with PE registers, within the stated
    # flip-flop error.
    from shifthw.estimate.area import synthesize
    cfg = EngineConfig(**base, input_registers=0, pe_register=True)
    pred = model.predict(cfg, "generic")
    assert pred["outside_calibration"] == []
    ff = synthesize(cfg, "generic", tmp_path, breakdown=False)["flip_flops"]
    assert abs(pred["ff"] - ff) / ff * 100 <= pred["ff_error_pct"]
    assert abs(model.predict(EngineConfig(**base), "generic")["ff"] - ff) / ff * 100 > 10


def test_small_memories_follow_the_family(data):
    # The output FIFO's memory (out_depth - 1 words): flip-flops on the iCE40 up to 4 words,
    # block RAM beyond; LUT RAM on the ECP5; a macro on generic gates; none at depth 0 or 1.
    cfg = {d: EngineConfig(rows=2, cols=4, guard_bits=0, out_depth=d) for d in (0, 1, 5, 6)}
    assert [am.out_fifo_memory(cfg[d], "ice40") for d in (0, 1, 5, 6)] == \
        [None, None, "ff", "bram"]
    assert am.out_fifo_memory(cfg[6], "ecp5_nowidelut") == "lut_ram"
    assert am.out_fifo_memory(cfg[6], "generic") == "macro"
    # Block RAM on the iCE40: the 32-bit FIFO word in two 16-bit blocks.
    assert am.bram_blocks(cfg[6], "ice40") - am.bram_blocks(cfg[5], "ice40") == 2
    assert am.bram_blocks(cfg[6], "ecp5") == am.bram_blocks(cfg[5], "ecp5")
    # LUT RAM on the ECP5: 5 words of 32 bits in eight 16 x 4 cells; nothing elsewhere.
    assert am.lut_ram_cells(cfg[6], "ecp5") - am.lut_ram_cells(cfg[1], "ecp5") == 8
    assert am.lut_ram_cells(cfg[6], "ice40") == am.lut_ram_cells(cfg[6], "generic") == 0
    ff = {d: am.features(cfg[d], "shift", "ice40") for d in (1, 5, 6)}
    assert ff[5]["fifo_regs"] == 5 * 32 and ff[5]["fifo_bits"] == 4 * 32
    assert ff[6]["fifo_regs"] == 32 and ff[6]["fifo_mem"] == 32 and ff[6]["fifo_bits"] == 0
    assert ff[1]["fifo_regs"] == 32 and ff[1]["fifo_bits"] == ff[1]["fifo_mem"] == 0
    # The iCE40's DSP blocks take in the trees' first level when no register follows the
    # PEs: the model drops those adders.
    mult = dict(rows=4, cols=8, pe="mult", weight_bits=8)
    tree = {(s, f): am.features(EngineConfig(**mult, pipeline_stages=s), "mult_dsp",
                                f)["tree_bits"] for s in (0, 1) for f in ("ice40", "ecp5")}
    assert tree[1, "ice40"] - tree[0, "ice40"] == 8 * 2 * 17
    assert tree[0, "ecp5"] == tree[1, "ecp5"] == tree[1, "ice40"]
    # Both rules on every calibration point of the iCE40.
    rows = [r for r in data["families"]["ice40"] if r.get("grid") == "settings"]
    assert rows and all(am.bram_blocks(am.config_of_row(r), "ice40") == r["bram"]
                        for r in rows)


def test_the_check_grid_is_never_fitted_and_gives_the_shipped_errors(data, model):
    # The `check` grid (random combinations of settings, and points beyond the calibrated
    # ranges) only measures the model: none of its rows is fitted, and the errors shipped
    # in area_model.json are those of the shipped model on its rows.
    for family in TARGET:
        rows = [r for r in data["families"][family] if r.get("grid") == am.CHECK_GRID]
        assert len(rows) >= 70, family
        assert all(r.get("grid") != am.CHECK_GRID
                   for kind in model.data["families"][family]
                   for r in _rows(data, family, kind, ("ff",)))
        got = am.check_errors(model, family, rows)
        shipped = model.data["check"][family]
        assert set(got) == set(shipped), family
        for kind, entry in got.items():
            for metric, err in entry["within"].items():
                ref = shipped[kind]["within"][metric]
                assert err["n"] == ref["n"] and err["n"] > 0, (family, kind, metric)
                # The stated bound covers these held-out points too.
                stated = model.data["families"][family][kind][metric]["stated_error_pct"]
                assert err["max_pct"] <= stated, (family, kind, metric)
                assert err["max_pct"] == pytest.approx(ref["max_pct"], abs=1e-6)
                assert err["mean_pct"] == pytest.approx(ref["mean_pct"], abs=1e-6)
            assert entry["beyond"] == shipped[kind]["beyond"], (family, kind)
        # Every point beyond the calibration is named as such.
        assert sum(len(e["beyond"]) for e in got.values()) >= 13, family


def test_a_bad_area_model_file_or_config_is_one_clear_error(tmp_path, model):
    from shifthw.estimate import estimate_analytic, load_area_model
    bad = tmp_path / "m.json"
    for text, match in (("not json", "not JSON"), ("[1, 2]", "not a shifthw area model"),
                        ('{"format": "x"}', "not a shifthw area model")):
        bad.write_text(text)
        with pytest.raises(ValueError, match=f"area model '{bad}': {match}"):
            load_area_model(bad)
    with pytest.raises(FileNotFoundError, match="a folder, not a file"):
        load_area_model(tmp_path)
    cfg = EngineConfig(rows=2, cols=2)
    with pytest.raises(TypeError, match="must be an EngineConfig"):
        model.predict(cfg.to_dict(), "ice40-up5k")
    with pytest.raises(TypeError, match="config must be an EngineConfig"):
        estimate_analytic(cfg.to_dict(), "ice40-up5k")
