"""The host driver: tiling, golden functions, stream words (no simulator needed)."""

import numpy as np
import pytest

from shifthw import numerics as nx
from shifthw.golden import layer_forward, maxpool2d, run_program
from shifthw.program import MaxPool2d, ShiftLayer
from shifthw.rtl_gen.config import EngineConfig
from shifthw.rtl_gen.host import (LayerJob, check_program, decode_outputs, effective_acc_bits,
                                  encode_job, golden_job, golden_program, layer_job, layer_rows,
                                  mult_matmul, plan_tiles, random_inputs, random_job,
                                  random_program)
from shifthw.rtl_gen.layouts import unpack_descriptor


def test_plan_tiles_splits_n_and_m():
    cfg = EngineConfig(rows=2, cols=2, k_depth=4, weight_depth=6, bias_depth=8, count_bits=2)
    job = LayerJob(weights=np.zeros((9, 5), dtype=np.int64), bias=np.zeros(9, dtype=np.int64),
                   out_shift=0)
    segs = plan_tiles(cfg, job, 4)
    # k_tiles = 3, so 6 // 3 = 2 column-tiles (4 outputs) per tile: 3 tiles over N = 9;
    # at most 3 vectors per descriptor: chunks of 3 + 1.
    assert [(s.n0, s.n1) for s in segs if s.reload] == [(0, 4), (4, 8), (8, 9)]
    assert [(s.m0, s.m1, s.reload) for s in segs[:2]] == [(0, 3, True), (3, 4, False)]
    assert all(s.n_tiles == (2 if s.n1 - s.n0 == 4 else 1) for s in segs)


def test_encode_decode_round_trip_shapes(rng):
    cfg = EngineConfig(rows=3, cols=2, k_depth=4, weight_depth=6, bias_depth=3)
    job = random_job(cfg, rng, 7, 8)
    x = random_inputs(cfg, rng, 5, 8)
    s = encode_job(cfg, job, x)
    kt = 3
    assert len(s.act) == sum((seg.m1 - seg.m0) * kt for seg in s.segments)
    assert s.out_words == sum((seg.m1 - seg.m0) * seg.n_tiles for seg in s.segments)
    d = unpack_descriptor(cfg, s.desc[0])
    assert d["k_tiles"] == kt and d["reload"] == 1 and d["count"] == 5
    # Decoding words that hold the golden outputs gives the golden outputs back.
    want, _ = golden_job(cfg, job, x)
    from shifthw.rtl_gen.layouts import out_word_layout, pack
    words = []
    for seg in s.segments:
        for m in range(seg.m0, seg.m1):
            for j in range(seg.n_tiles):
                n = seg.n0 + j * cfg.cols
                lanes = list(want[m, n:min(n + cfg.cols, seg.n1)])
                words.append(pack(out_word_layout(cfg), [int(v) for v in lanes]))
    assert np.array_equal(decode_outputs(cfg, s, words), want)
    with pytest.raises(ValueError, match="output words"):
        decode_outputs(cfg, s, words[:-1])


def test_encode_checks_inputs(rng):
    cfg = EngineConfig(rows=2, cols=2, k_depth=4, weight_depth=6)
    job = random_job(cfg, rng, 3, 4)
    with pytest.raises(ValueError, match="8-bit"):
        encode_job(cfg, job, np.full((1, 4), 200))
    with pytest.raises(ValueError, match="shape"):
        encode_job(cfg, job, np.zeros((1, 5), dtype=np.int64))
    bad = LayerJob(weights=np.full((3, 4), 40), bias=np.zeros(3, dtype=np.int64), out_shift=0)
    with pytest.raises(ValueError, match="weights"):
        encode_job(cfg, bad, np.zeros((1, 4), dtype=np.int64))


def test_mult_matmul_matches_plain_integers(rng):
    x = rng.integers(-128, 128, size=(4, 13))
    w = rng.integers(-16, 16, size=(5, 13))
    b = rng.integers(-1000, 1000, size=5)
    assert np.array_equal(mult_matmul(x, w, b, act_bits=8, weight_bits=5), x @ w.T + b)
    # A narrow accumulator saturates after the bias and after every chunk, in order.
    acc = mult_matmul(x, w, b, act_bits=8, weight_bits=5, acc_bits=12, chunk=4)
    ref = np.broadcast_to(b, (4, 5)).copy()
    for k0 in range(0, 13, 4):
        ref = nx.saturate(ref + x[:, k0:k0 + 4] @ w[:, k0:k0 + 4].T, 12)
    assert np.array_equal(acc, ref)


@pytest.mark.parametrize("guard", [0, 14])
def test_layer_job_matches_layer_forward(guard, rng):
    prog = random_program("cnn", seed=3)
    cfg = EngineConfig(guard_bits=guard)
    layer = prog.layers[1]
    x = rng.integers(-20, 100, size=(2, 8, 4, 4))
    rows, reshape = layer_rows(layer, x)
    job = layer_job(prog, layer, cfg)
    got, _ = golden_job(cfg, job, rows)
    want, _ = layer_forward(layer, prog, x, guard_bits=guard,
                            acc_bits=effective_acc_bits(cfg, layer.fan_in), chunk=cfg.rows)
    assert np.array_equal(reshape(got), want)


def test_narrow_engine_uses_its_width(rng):
    prog = random_program("mlp", seed=1)
    cfg = EngineConfig(guard_bits=0, acc_bits=12)
    layer = prog.layers[0]
    assert effective_acc_bits(cfg, layer.fan_in) == 12
    job = layer_job(prog, layer, cfg)
    assert np.abs(job.bias).max() <= nx.bias_limit(12)


def test_layer_job_checks_the_engine():
    prog = random_program("mlp")
    with pytest.raises(ValueError, match="pe='shift'"):
        layer_job(prog, prog.layers[0], EngineConfig(pe="mult"))
    with pytest.raises(ValueError, match="b=5"):
        layer_job(prog, prog.layers[0], EngineConfig(weight_bits=4))


@pytest.mark.parametrize("acc_bits", [None, 10])
def test_golden_program_is_the_layers_golden_jobs_chained(acc_bits, rng):
    # The whole network's golden model as an engine computes it: with a narrow (saturating)
    # accumulator too, layer after layer what golden_job gives, which the hardware matches.
    prog = random_program("cnn", seed=5)
    cfg = EngineConfig(rows=4, cols=4, guard_bits=2, acc_bits=acc_bits)
    assert (acc_bits is not None) == any(effective_acc_bits(cfg, s.fan_in) for s in prog.layers)
    xq = rng.integers(0, 128, size=(6, *prog.input.shape))
    run = golden_program(prog, cfg, xq)
    wide = run_program(prog, xq, quantized=True, guard_bits=2)
    # 10 bits saturate (the layers' natural widths are 16-19): not the wide model's outputs.
    assert np.array_equal(run.logits, wide.logits) == (acc_bits is None)
    cur = run.input
    for step, want in zip(prog.steps, run.outputs):
        if isinstance(step, ShiftLayer):
            rows, reshape = layer_rows(step, cur)
            cur = reshape(golden_job(cfg, layer_job(prog, step, cfg), rows)[0])
        elif isinstance(step, MaxPool2d):
            cur = maxpool2d(cur, step)
        else:
            cur = cur.reshape(len(cur), -1)
        assert np.array_equal(cur, want), step.name


def test_check_program_names_the_layer_that_does_not_fit():
    prog = random_program("cnn", seed=5)
    check_program(prog, EngineConfig())
    big = max(prog.layers, key=lambda s: s.fan_in)
    small = EngineConfig(k_depth=-(-big.fan_in // 8) - 1)
    with pytest.raises(ValueError, match=f"layer {big.name}: fan-in K={big.fan_in} needs"):
        check_program(prog, small)
    with pytest.raises(ValueError, match="b=5"):
        check_program(prog, EngineConfig(weight_bits=4))


def test_accumulators_wider_than_int64(rng):
    # b = 8, A = 16, G = P = 126: 151-bit accumulators, whose biases numpy's int64 cannot
    # hold (an OverflowError before): Python ints through the golden model and the streams.
    prog = random_program("mlp", seed=2, act_bits=16, weight_bits=8)
    cfg = EngineConfig(rows=2, cols=2, act_bits=16, weight_bits=8)
    assert cfg.acc_bits > 62
    xq = rng.integers(-2**15, 2**15, size=(3, *prog.input.shape))
    run = golden_program(prog, cfg, xq)
    job = layer_job(prog, prog.layers[0], cfg)
    assert max(abs(int(b)) for b in job.bias) >= 2**63
    rows, reshape = layer_rows(prog.layers[0], run.input)
    assert np.array_equal(reshape(golden_job(cfg, job, rows)[0]), run.outputs[0])
    assert encode_job(cfg, job, rows).params



def test_random_jobs_for_accumulators_beyond_int64():
    # b = 8 at G = P: a 151-bit accumulator.  random_job drew its biases with rng.integers,
    # which is int64 only (an error for every kind but "extreme").
    cfg = EngineConfig(rows=2, cols=3, weight_bits=8)
    rng = np.random.default_rng(0)
    lim = nx.bias_limit(effective_acc_bits(cfg, 5) or cfg.natural_acc_bits_for(5))
    assert lim >= 2 ** 63
    wide = 0
    for kind in ("random", "zero", "extreme"):
        for _ in range(4):
            job = random_job(cfg, rng, 3, 5, kind=kind)
            assert all(-lim - 1 <= int(b) <= lim for b in job.bias)
            wide += any(abs(int(b)) >= 2 ** 63 for b in job.bias)
            x = random_inputs(cfg, rng, 2, 5)
            assert golden_job(cfg, job, x)[0].shape == (2, 3)
            encode_job(cfg, job, x)
    assert wide                             # some draws really are beyond int64
