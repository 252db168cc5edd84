"""cocotb + Verilator: the engine on random layers, both PE kinds, G in {0, P}, under stalls."""

import numpy as np
import pytest

from shifthw.rtl_gen.config import EngineConfig
from shifthw.rtl_gen.host import random_inputs, random_job
from shifthw.sim.verify import build_engine, simulate_jobs

# Small arrays keep the Verilator builds short; K and N are not multiples of R and C.
CONFIGS = {
    "shift-G0": dict(rows=3, cols=2, weight_bits=5, guard_bits=0),
    "shift-exact": dict(rows=3, cols=2, weight_bits=5),
    "shift-1x1": dict(rows=1, cols=1, weight_bits=4),
    "shift-narrow-acc": dict(rows=3, cols=2, weight_bits=5, guard_bits=2, acc_bits=11),
    "mult": dict(rows=3, cols=2, pe="mult", weight_bits=6),
    "shift-registered-stall": dict(rows=3, cols=2, weight_bits=5, guard_bits=0, bias_lanes=1,
                                   out_lanes=1, registered_stall=True),
    # The ECP5 high-Fmax setting: also one bias word and one output word per cycle.
    "shift-high-fmax": dict(rows=3, cols=2, weight_bits=5, guard_bits=0, registered_stall=True,
                            input_registers=2, pipeline_stages=3),
    # ... at G > 0, with the register inside the PEs and the stall-free array.
    "shift-high-fmax-pe-register": dict(rows=3, cols=2, weight_bits=5, guard_bits=4,
                                        registered_stall=True, input_registers=2,
                                        pipeline_stages=3, pe_register=True,
                                        stall_free=True),
}
SHAPES = [(5, 7, "random"), (2, 1, "random"), (4, 6, "extreme"), (3, 9, "zero"),
          (7, 11, "random"), (1, 13, "extreme")]


def random_jobs(cfg, seed):
    rng = np.random.default_rng(seed)
    items = []
    for n, k, kind in SHAPES:
        job = random_job(cfg, rng, n, k, kind=kind)
        x = random_inputs(cfg, rng, int(rng.integers(1, 6)), k,
                          kind="extreme" if kind == "extreme" else "random")
        items.append((job, x))
    return items


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_random_layers_bit_exact_under_stalls(name, tmp_path):
    cfg = EngineConfig(**CONFIGS[name])
    sim = build_engine(cfg)
    res = simulate_jobs(random_jobs(cfg, seed=len(name)), cfg, tmp_path, sim=sim,
                        stall_prob=0.3, seed=7)
    assert len(res["layers"]) == len(SHAPES)
    for lay in res["layers"]:
        assert lay["passed"], (lay["name"], lay["listed"])
        assert lay["source_blocked"] > 0 or lay["vectors"] * lay["fan_in"] < 8


@pytest.mark.parametrize("params", [
    dict(rows=1, cols=5, act_bits=3, weight_bits=3, guard_bits=0, bias_lanes=1, k_depth=1),
    dict(rows=3, cols=11, act_bits=8, weight_bits=5, guard_bits=0, bias_lanes=1, k_depth=4,
         stall_free=True, pe_register=True, input_registers=2)], ids=["plain", "stall-free"])
def test_bias_entries_of_more_beats_than_row_tiles(params, tmp_path):
    # A bias entry of C / bias_lanes beats, more than the buffers' row-tiles: the loader's
    # "rows before the last" register had the row-tile count's width, so the entry's load
    # ended early and the rest of the params stream was read as weights (found by fuzzing).
    cfg = EngineConfig(**params)
    assert cfg.bias_beats - 3 >= 2 ** len(format(cfg.max_k_tiles, "b"))
    rng = np.random.default_rng(1)
    items = []
    shapes = ((cfg.cols, cfg.rows * cfg.max_k_tiles, 2), (1, 1, 1), (cfg.cols + 1, cfg.rows, 3))
    for n, k, m in shapes:
        job = random_job(cfg, rng, n, k)
        items.append((job, random_inputs(cfg, rng, m, k)))
    res = simulate_jobs(items, cfg, tmp_path, sim=build_engine(cfg), stall_prob=0.3, seed=3)
    for lay in res["layers"]:
        assert lay["passed"], (lay["name"], lay["listed"][:4])
