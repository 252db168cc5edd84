"""nextpnr inputs and outputs: clock constraints, cell names, errors."""

import pytest

from shifthw.estimate.targets import get_target
from shifthw.estimate.timing import _constraints, cell_component, place_and_route


def test_the_clock_constraint_is_the_target_s(tmp_path):
    (tmp_path / "top.pcf").write_text("set_io led_0__io 11\nset_frequency clk12_0__io 12.0\n")
    assert _constraints(tmp_path, get_target("ice40-up5k"), 60.0) == ["--pcf", "place.pcf"]
    assert "set_frequency clk12_0__io 60\n" in (tmp_path / "place.pcf").read_text()
    (tmp_path / "top.lpf").write_text('FREQUENCY PORT "clk25_0__io" 25000000.0 HZ;\n')
    assert _constraints(tmp_path, get_target("ecp5-85k"), 200.0) == ["--lpf", "place.lpf"]
    assert '"clk25_0__io" 200000000.0 HZ;' in (tmp_path / "place.lpf").read_text()


@pytest.mark.parametrize("cell, comp", [
    ("engine.d_SB_DFFESR_Q_20_DFFLC", "control"),
    ("engine.array.pe_r0_c1.term_SB_LUT4_O", "pe_array"),
    ("engine.array.sum_l0_c4_5_TRELLIS_FF_Q", "adder_trees"),
    ("engine.array.acc_3_SB_LUT4_I2", "accumulators"),
    ("engine.output.t_SB_DFFSR_Q", "output_stage"),
    ("engine.weights.0.5", "buffers"),
    ("engine.fifo.w_data_SB_DFFESR_Q", "buffers"),
    ("seen_SB_DFFSR_Q_D_SB_LUT4_O_LC", "harness"),
])
def test_cell_component(cell, comp):
    assert cell_component(cell) == comp


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="no place and route"):
        place_and_route("generic", tmp_path)
    with pytest.raises(ValueError, match="placements must be a positive integer"):
        place_and_route("ice40-up5k", tmp_path, placements=0)
    with pytest.raises(FileNotFoundError, match="flat.json: synthesise first"):
        place_and_route("ice40-up5k", tmp_path)
    # Values nextpnr fails on (it exited with an error, reported as "does not fit").
    with pytest.raises(ValueError, match="timing_weight must be at most 1000"):
        place_and_route("ice40-up5k", tmp_path, timing_weight=99999999999)
    from shifthw.estimate import estimate
    from shifthw.rtl_gen.config import EngineConfig
    for freq in (float("inf"), 1e-300, 0.5):
        with pytest.raises(ValueError, match="freq_mhz must be a clock goal of 1 to 5000"):
            estimate(EngineConfig(rows=2, cols=2), "ice40-up5k", freq_mhz=freq,
                     out_dir=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_ecp5_read_registers_are_packed_into_the_block_rams(tmp_path):
    # A small engine whose act and weight buffers are block RAMs: the array's input register
    # becomes their output register; nextpnr places the packed netlist.
    from shifthw.estimate import area
    from shifthw.rtl_gen.config import EngineConfig
    cfg = EngineConfig(rows=2, cols=4, guard_bits=0, k_depth=256, weight_depth=512)
    syn = area.synthesize(cfg, get_target("ecp5-25k"), str(tmp_path))
    assert syn["resources"]["bram"] >= 2
    # The accumulators' per-column copies of `first` survive synthesis (synth.pre_synthesis).
    netlist = (tmp_path / "flat.json").read_text()
    assert all(f"first_acc_c{c}_TRELLIS_FF" in netlist for c in range(4))
    placed = place_and_route("ecp5-25k", tmp_path, placements=2)
    assert placed["fits"] and placed["fmax_mhz"] > 0
    # act (2 x 8 bits) and weight (2 x 4 codes of 5 bits) read data: 56 flip-flops.
    assert placed["bram_output_registers"] == 2 * 8 + 2 * 4 * 5
    assert "OUTREG" in (tmp_path / "flat.pnr.json").read_text()
    # Two placements (seeds 1 and 2): the fastest is reported, with its own log.
    tries = placed["placements"]
    assert [t["seed"] for t in tries] == [1, 2] and all(t["fmax_mhz"] for t in tries)
    assert placed["fmax_mhz"] == max(t["fmax_mhz"] for t in tries)
    best = placed["seed"]
    assert placed["fmax_mhz"] == next(t["fmax_mhz"] for t in tries if t["seed"] == best)
    assert (tmp_path / "place.log").read_bytes() == \
        (tmp_path / f"seed{best}.place.log").read_bytes()


def test_a_nextpnr_failure_is_not_called_does_not_fit(tmp_path, monkeypatch):
    """nextpnr's capacity errors say "does not fit"; any other failure (a crash, a bad
    argument) was reported the same way, and a sweep counted it in its largest fit."""
    from shifthw import toolchain
    from shifthw.estimate.timing import _place_once, capacity_error
    assert capacity_error("ERROR: Failed to expand region (0, 0) |_> (25, 31) of 5418 "
                          "ICESTORM_LCs")
    assert capacity_error("ERROR: Unable to place cell 'x', no BELs remaining to implement "
                          "cell type 'SB_MAC16'")
    assert capacity_error("ERROR: Unable to find legal placement for all cells, design is "
                          "probably at utilisation limit.")          # (an ECP5 at its limit)
    assert not capacity_error("ERROR: Invalid argument") and not capacity_error(None)
    for line, fits_text in (("ERROR: Failed to expand region (0, 0) of 5418 ICESTORM_LCs",
                             "the placement needs 5418 ICESTORM_LC cells, more than the "
                             "device's 5280 (a logic cell holds one LUT4 and one flip-flop) "
                             "(nextpnr: ERROR: Failed to expand"),
                            ("ERROR: Unable to find legal placement for all cells, design is "
                             "probably at utilisation limit.", "ERROR: Unable to find legal"),
                            ("ERROR: program crashed", "nextpnr failed (not a capacity error)")):
        def fail(family, args, cwd, line=line, **kw):
            (cwd / "place.log").write_text(f"Info: placing\n{line}\n")
            raise toolchain.ToolError("nextpnr-ice40 exited with code 1", tool="nextpnr-ice40")

        monkeypatch.setattr(toolchain, "run_nextpnr", fail)
        out = _place_once(get_target("ice40-up5k"), tmp_path, "flat.json", [], 60.0, 1,
                          lambda m: None, None)
        assert out["fits"] is False and out["error"].startswith(fits_text)


def test_the_timing_weight_and_opt_timing_reach_nextpnr(tmp_path, monkeypatch):
    from shifthw import toolchain
    from shifthw.estimate import area
    from shifthw.rtl_gen.config import EngineConfig
    with pytest.raises(ValueError, match="timing_weight must be a positive integer"):
        place_and_route("ice40-up5k", tmp_path, timing_weight=0)
    with pytest.raises(ValueError, match="opt_timing: .* target 'ecp5-25k' has no such pass"):
        place_and_route("ecp5-25k", tmp_path, opt_timing=True)
    with pytest.raises(TypeError, match="opt_timing must be a bool, not 'yes'"):
        place_and_route("ice40-up5k", tmp_path, opt_timing="yes")
    area.synthesize(EngineConfig(rows=2, cols=2, guard_bits=0), get_target("ice40-up5k"),
                    str(tmp_path), breakdown=False)
    assert "synth_ice40 -device u -top top" in (tmp_path / "flat.ys").read_text()
    calls = []
    real = toolchain.run_nextpnr

    def spy(family, args, **kw):
        calls.append(list(args))
        return real(family, args, **kw)

    monkeypatch.setattr(toolchain, "run_nextpnr", spy)
    placed = place_and_route("ice40-up5k", tmp_path, timing_weight=30)
    assert placed["fits"] and placed["fmax_mhz"] > 0 and placed["timing_weight"] == 30
    assert calls and all(a[a.index("--placer-heap-timingweight") + 1] == "30" for a in calls)
    assert all("--opt-timing" not in a for a in calls) and placed["opt_timing"] is False
    place_and_route("ice40-up5k", tmp_path)
    assert "--placer-heap-timingweight" not in calls[-1]
    placed = place_and_route("ice40-up5k", tmp_path, opt_timing=True)
    assert placed["fits"] and placed["fmax_mhz"] > 0 and placed["opt_timing"] is True
    assert "--opt-timing" in calls[-1]
    assert "timing-driven placement optimisation" in (tmp_path / "place.log").read_text()


def test_placements_run_side_by_side_with_the_same_result(tmp_path, monkeypatch):
    import threading

    from shifthw import toolchain
    from shifthw.estimate import area
    from shifthw.rtl_gen.config import EngineConfig
    with pytest.raises(ValueError, match="jobs must be a positive integer"):
        place_and_route("ice40-up5k", tmp_path, placements=2, jobs=0)
    area.synthesize(EngineConfig(rows=2, cols=2, guard_bits=0), get_target("ice40-up5k"),
                    str(tmp_path), breakdown=False)
    lock, active, most = threading.Lock(), [0], [0]
    real = toolchain.run_nextpnr

    def spy(family, args, **kw):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        try:
            return real(family, args, **kw)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(toolchain, "run_nextpnr", spy)
    together = place_and_route("ice40-up5k", tmp_path, placements=3, jobs=3)
    assert most[0] >= 2  # nextpnr ran more than once at a time
    assert (tmp_path / "place.log").read_bytes() == \
        (tmp_path / f"seed{together['seed']}.place.log").read_bytes()
    most[0] = 0
    alone = place_and_route("ice40-up5k", tmp_path, placements=3, jobs=1)
    assert most[0] == 1
    # Each seed's placement is the same whichever way they ran, so is the one kept.
    assert together["placements"] == alone["placements"]
    assert [t["seed"] for t in alone["placements"]] == [1, 2, 3]
    assert together["seed"] == alone["seed"] and together["fmax_mhz"] == alone["fmax_mhz"]
    assert (tmp_path / "place.log").read_bytes() == \
        (tmp_path / f"seed{alone['seed']}.place.log").read_bytes()
