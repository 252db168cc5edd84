"""The layer engine: random layers through stalling streams, bit-exact against the golden model."""

import numpy as np
import pytest

from shifthw.rtl_gen.config import EngineConfig
from shifthw.rtl_gen.engine import LayerEngine
from shifthw.rtl_gen.host import (LayerJob, decode_outputs, encode_job, golden_job,
                                  random_inputs, random_job, zero_weight)
from shifthw.rtl_gen.layouts import (bias_entry_words, pack_descriptor, unpack_descriptor,
                                      weight_entry_words)
from shifthw.rtl_gen.simutil import simulate_job, simulate_streams

# Small buffers, so that tiling over N happens; P = 14 for b = 5.
SMALL = dict(k_depth=4, weight_depth=6, bias_depth=3)

#: Stall modes: the array's and output stage's enables combinational or registered, and the
#: stall-free array (alone, and with the registered output stage as in the high-Fmax setting).
STALLS = [pytest.param({}, id="comb"), pytest.param({"registered_stall": True}, id="registered"),
          pytest.param({"stall_free": True}, id="free"),
          pytest.param({"registered_stall": True, "stall_free": True}, id="free-registered")]


def _check(cfg, job, x, *, stall=0.3, seed=0):
    got, stats = simulate_job(cfg, job, x, stall=stall, seed=seed)
    want, _ = golden_job(cfg, job, x)
    bad = np.argwhere(got != want)
    assert bad.size == 0, (f"{job.name}: {len(bad)} outputs differ, first at (m, n) = "
                           f"{tuple(bad[0])}: expected {want[tuple(bad[0])]}, "
                           f"got {got[tuple(bad[0])]}")
    return stats


@pytest.mark.parametrize("pe, guard", [("shift", 0), ("shift", 14), ("mult", None)])
@pytest.mark.parametrize("rows, cols", [(1, 1), (3, 2), (4, 4)])
def test_random_layers(pe, guard, rows, cols, rng):
    cfg = EngineConfig(rows=rows, cols=cols, pe=pe, guard_bits=guard, **SMALL)
    for n, k in [(cols + 1, rows * 2 + 1), (2 * cols + 1, 1)]:
        job = random_job(cfg, rng, n, min(k, cfg.max_k))
        x = random_inputs(cfg, rng, 3, job.fan_in)
        _check(cfg, job, x, seed=int(rng.integers(1 << 16)))


@pytest.mark.parametrize("stall_free", [False, True])
@pytest.mark.parametrize("pe, guard", [("shift", 4), ("mult", None)])
def test_high_fmax_setting_with_pe_register(pe, guard, stall_free, rng):
    cfg = EngineConfig(rows=3, cols=2, pe=pe, guard_bits=guard, registered_stall=True,
                       input_registers=2, pipeline_stages=3, pe_register=True,
                       stall_free=stall_free, **SMALL)
    for n, k in [(cfg.cols + 1, 7), (5, 1)]:
        job = random_job(cfg, rng, n, k)
        x = random_inputs(cfg, rng, 3, job.fan_in)
        _check(cfg, job, x, seed=int(rng.integers(1 << 16)))


@pytest.mark.parametrize("pe", ["shift", "mult"])
def test_extreme_values_saturate_narrow_accumulator(pe, rng):
    cfg = EngineConfig(rows=3, cols=2, pe=pe, act_bits=6, weight_bits=4,
                       guard_bits=None if pe == "mult" else 3, acc_bits=9, **SMALL)
    assert cfg.saturating
    job = random_job(cfg, rng, 5, 11, kind="extreme")
    x = random_inputs(cfg, rng, 4, 11, kind="extreme")
    _, acc = golden_job(cfg, job, x)
    assert (np.abs(acc) >= (1 << 8) - 1).any(), "should hit saturation"
    _check(cfg, job, x, seed=5)


@pytest.mark.parametrize("pe", ["shift", "mult"])
def test_extreme_values_natural_width(pe, rng):
    cfg = EngineConfig(rows=4, cols=3, pe=pe, **SMALL)
    job = random_job(cfg, rng, 7, 16, kind="extreme")
    x = random_inputs(cfg, rng, 3, 16, kind="extreme")
    _check(cfg, job, x, seed=6)


def test_all_zero_weights(rng):
    cfg = EngineConfig(rows=3, cols=2, **SMALL)
    job = random_job(cfg, rng, 4, 7, kind="zero")
    assert (job.weights == zero_weight(cfg)).all()
    _check(cfg, job, random_inputs(cfg, rng, 3, 7))


@pytest.mark.parametrize("stall", STALLS)
def test_gathered_biases_and_many_descriptors(stall, rng):
    """bias_lanes < C, a 2-bit count (batches split into descriptors that reuse the
    buffers) and N split into tiles, with stalls everywhere."""
    cfg = EngineConfig(rows=2, cols=5, bias_lanes=2, count_bits=2, out_depth=1,
                       **stall, **SMALL)
    job = random_job(cfg, rng, 17, 5)
    x = random_inputs(cfg, rng, 7, 5)
    streams = encode_job(cfg, job, x)
    assert sum(seg.reload for seg in streams.segments) > 1      # several tiles over N
    assert any(not seg.reload for seg in streams.segments)      # buffers reused
    _check(cfg, job, x, stall=0.4, seed=7)


@pytest.mark.parametrize("stall", STALLS)
@pytest.mark.parametrize("k_tiles", [1, 2, 3, 4])
def test_every_small_tile_and_vector_count(k_tiles, stall, rng):
    """1-4 row-tiles x 1-4 column-tiles x 1-3 vectors: the loader, issuer and bias reader
    keep "last" and "next is last" of each counter in flags (compared with the descriptor
    two steps ahead), whose special cases are one and two tiles or vectors."""
    cfg = EngineConfig(rows=2, cols=2, k_depth=4, weight_depth=16, bias_depth=4,
                       **stall)
    for n_tiles in (1, 2, 3, 4):
        for count in (1, 2, 3):
            job = random_job(cfg, rng, 2 * n_tiles - (n_tiles % 2), 2 * k_tiles - 1)
            x = random_inputs(cfg, rng, count, job.fan_in)
            streams = encode_job(cfg, job, x)
            d = unpack_descriptor(cfg, streams.desc[0])
            assert (d["k_tiles"], d["n_tiles"], d["count"]) == (k_tiles, n_tiles, count)
            _check(cfg, job, x, stall=0.3, seed=int(rng.integers(1 << 16)))


@pytest.mark.parametrize("stall", STALLS)
@pytest.mark.parametrize("stall_prob", [0.0, 0.3])
def test_vector_counts_back_to_back(stall_prob, stall, rng):
    """One row-tile and one column-tile: a vector ends every beat, so the vectors-left
    counters (with stall_free a cycle behind the handshakes, their "two left" from the
    compares with 2, 3 and 4 and the last two steps) step on consecutive cycles; every
    count of 1-6 vectors must end on its last vector."""
    cfg = EngineConfig(rows=2, cols=2, k_depth=4, weight_depth=16, bias_depth=4, **stall)
    for count in range(1, 7):
        job = random_job(cfg, rng, 2, 2)
        x = random_inputs(cfg, rng, count, job.fan_in)
        d = unpack_descriptor(cfg, encode_job(cfg, job, x).desc[0])
        assert (d["k_tiles"], d["n_tiles"], d["count"]) == (1, 1, count)
        _check(cfg, job, x, stall=stall_prob, seed=int(rng.integers(1 << 16)))


@pytest.mark.parametrize("stall", STALLS[1:])
@pytest.mark.parametrize("stall_prob", [0.0, 0.3])
def test_vector_counts_across_the_split_counter(stall_prob, stall, rng):
    """The high-Fmax modes cut the vectors-left counters' carry chains in two (6 bits: a
    low half of 3, the high half a cycle later on a registered borrow): counts that cross
    the halves' boundary (8, 16) once or twice, back to back, end on their last vector."""
    cfg = EngineConfig(rows=2, cols=2, k_depth=4, weight_depth=16, bias_depth=4,
                       count_bits=6, **stall)
    for count in (8, 9, 10, 17, 24, 63):
        job = random_job(cfg, rng, 2, 2)
        x = random_inputs(cfg, rng, count, job.fan_in)
        d = unpack_descriptor(cfg, encode_job(cfg, job, x).desc[0])
        assert (d["k_tiles"], d["n_tiles"], d["count"]) == (1, 1, count)
        _check(cfg, job, x, stall=stall_prob, seed=int(rng.integers(1 << 16)))


@pytest.mark.parametrize("stall", STALLS)
@pytest.mark.parametrize("cols, word", [(3, 7), (3, 14), (3, 16), (3, 28), (2, 24)])
def test_entries_over_several_params_words(cols, word, stall, rng):
    """Buffer entries wider than a params word: `beat` walks over 1-5 words per entry (a
    weight entry and a bias word taking as many, more or fewer), and the loads' "last word
    of the row / column / load" flags (flip-flops of their own with stall_free) meet every
    count of words, rows and columns, with reloads in between."""
    cfg = EngineConfig(rows=2, cols=cols, bias_lanes=1, out_lanes=1, k_depth=4,
                       weight_depth=16, bias_depth=4, param_word_bits=word, **stall)
    wpe, wpb = weight_entry_words(cfg), bias_entry_words(cfg)
    assert (wpe, wpb) == {7: (5, 4), 14: (3, 2), 16: (2, 2), 28: (2, 1), 24: (1, 2)}[word]
    for k_tiles, n_tiles in [(1, 1), (2, 3), (3, 2), (4, 1)]:
        job = random_job(cfg, rng, cols * n_tiles - 1, 2 * k_tiles - 1)
        x = random_inputs(cfg, rng, 2, job.fan_in)
        _check(cfg, job, x, stall=0.3, seed=int(rng.integers(1 << 16)))


@pytest.mark.parametrize("stall", STALLS)
@pytest.mark.parametrize("out_depth, out_lanes", [(0, 2), (1, 1), (3, 2), (0, 1)])
def test_output_fifo_depths_and_lanes(out_depth, out_lanes, stall, rng):
    cfg = EngineConfig(rows=2, cols=2, out_depth=out_depth, out_lanes=out_lanes,
                       **stall, **SMALL)
    job = random_job(cfg, rng, 5, 3)
    _check(cfg, job, random_inputs(cfg, rng, 4, 3), stall=0.5, seed=out_depth)


def test_load_only_then_reuse(rng):
    """A descriptor with count 0 only loads; the next one (reload = 0) reuses the buffers."""
    cfg = EngineConfig(rows=2, cols=2, **SMALL)
    job = random_job(cfg, rng, 3, 4)
    x = random_inputs(cfg, rng, 2, 4)
    load = encode_job(cfg, job, np.zeros((0, 4), dtype=np.int64))
    run = encode_job(cfg, job, x)
    assert load.out_words == 0 and len(load.desc) == 1
    d = unpack_descriptor(cfg, run.desc[0])
    reuse = pack_descriptor(cfg, k_tiles=d["k_tiles"], n_tiles=d["n_tiles"], count=2,
                            out_shift=d["out_shift"], relu=bool(d["relu"]),
                            round_half_up=bool(d["round_half_up"]), reload=False)
    run.desc = load.desc + [reuse]
    run.params = load.params
    stats = simulate_streams(LayerEngine(config=cfg), run, stall=0.2, seed=1)
    assert np.array_equal(decode_outputs(cfg, run, stats.out), golden_job(cfg, job, x)[0])


@pytest.mark.parametrize("stall", STALLS)
def test_steady_state_one_beat_per_cycle(stall, rng):
    """Without stalls the array takes a beat every cycle from the first to the last."""
    cfg = EngineConfig(rows=4, cols=4, **stall)
    for n, k in [(4, 4), (4, 9), (9, 16)]:           # k_tiles * n_tiles = 1, 3, 12
        job = random_job(cfg, rng, n, k)
        stats = _check(cfg, job, random_inputs(cfg, rng, 6, k), stall=0.0)
        assert stats.beats == 6 * -(-k // 4) * -(-n // 4)
        assert stats.run_cycles == stats.beats


@pytest.mark.parametrize("stall", STALLS)
def test_narrow_bias_and_output_lanes_keep_full_rate(stall, rng):
    """bias_lanes and out_lanes of C / 2: full rate as long as k_tiles >= 2."""
    cfg = EngineConfig(rows=2, cols=4, bias_lanes=2, out_lanes=2, out_depth=0,
                       **stall)
    job = random_job(cfg, rng, 9, 4)                                # k_tiles = 2
    stats = _check(cfg, job, random_inputs(cfg, rng, 5, 4), stall=0.0)
    assert stats.run_cycles == stats.beats == 5 * 2 * 3


@pytest.mark.parametrize("stall", STALLS)
def test_narrow_bias_lanes_with_one_row_tile(stall, rng):
    """k_tiles = 1 with two bias reads per word: a bias for every beat, exact under stalls
    (the bias reader's promise to a registered stall is tested hardest here), and without
    stalls a beat every second cycle (the rate of the bias reads)."""
    cfg = EngineConfig(rows=2, cols=4, bias_lanes=2, out_depth=0, k_depth=4, weight_depth=8,
                       bias_depth=4, **stall)
    for seed in range(3):
        job = random_job(cfg, rng, 9, 2)                            # k_tiles = 1
        _check(cfg, job, random_inputs(cfg, rng, 4, 2), stall=0.3, seed=seed)
    stats = _check(cfg, job, random_inputs(cfg, rng, 4, 2), stall=0.0)
    assert stats.beats == 4 * 3
    assert stats.run_cycles <= 2 * stats.beats


def test_layer_too_large_is_refused(rng):
    cfg = EngineConfig(rows=2, cols=2, **SMALL)
    job = LayerJob(weights=np.zeros((2, 9), dtype=np.int64), bias=np.zeros(2, dtype=np.int64),
                   out_shift=0)
    with pytest.raises(ValueError, match="K=9"):
        encode_job(cfg, job, np.zeros((1, 9), dtype=np.int64))
