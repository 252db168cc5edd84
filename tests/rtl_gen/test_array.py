"""The PE array on its own: beats, biases and accumulators through three stalling streams."""

import random
import re

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from shifthw import numerics as nx
from shifthw.rtl_gen.array import SPLIT_ACC_BITS, PEArray
from shifthw.rtl_gen.config import EngineConfig
from shifthw.rtl_gen.host import random_inputs, random_weights
from shifthw.rtl_gen.layouts import (acc_word_layout, array_in_layout, bias_word_layout, pack,
                                     unpack)
from shifthw.rtl_gen.simutil import stream_get, stream_put

#: The array's three stall modes: combinational enable, registered enable, no enable.
STALLS = [pytest.param({}, id="comb"), pytest.param({"registered_stall": True}, id="registered"),
          pytest.param({"stall_free": True}, id="free")]


def _terms(cfg, x, w):
    if cfg.pe == "shift":
        return nx.shift_term(x, w, cfg.weight_bits, cfg.guard_bits)
    return x * w


def _run(cfg, rng, groups, *, kind="random", stall=0.3, out_stall=None, seed=0, timing=None):
    """``groups`` column-tiles of random length; returns (got, want) accumulator lists.

    ``timing`` (a dict), if given, receives the number of beats and the cycles until the
    last one was taken."""
    r, c = cfg.rows, cfg.cols
    beats, biases, want = [], [], []
    lim = nx.bias_limit(cfg.acc_bits)
    for _ in range(groups):
        t = int(rng.integers(1, min(cfg.max_k_tiles, 4) + 1))
        bias = (rng.choice([-lim - 1, lim], size=c) if kind == "extreme"
                else rng.integers(-lim - 1, lim + 1, size=c) >> int(rng.integers(0, 8)))
        biases.append(pack(bias_word_layout(cfg), [int(v) for v in bias]))
        acc = bias.astype(object)
        for i in range(t):
            x = random_inputs(cfg, rng, 1, r, kind=kind)[0]
            w = random_weights(cfg, rng, c, r, kind=kind)
            hw = (nx.canonical_codes(w, cfg.act_bits, cfg.weight_bits, cfg.guard_bits)
                  if cfg.pe == "shift" else w)
            beats.append(pack(array_in_layout(cfg), {
                "act": [int(v) for v in x], "w": hw.tolist(), "first": int(i == 0),
                "last": int(i == t - 1)}))
            acc = acc + np.array([int(v) for v in _terms(cfg, x[None, :], w).sum(axis=1)],
                                 dtype=object)
            if cfg.saturating:
                acc = np.array([nx.saturate(int(v), cfg.acc_bits) for v in acc], dtype=object)
        want.append([int(v) for v in acc])

    dut = PEArray(config=cfg)
    got = []
    clock = {"cycles": 0, "done": False}

    async def put_beats(ctx):
        await stream_put(ctx, dut.i, beats, rng=random.Random(seed), stall=stall)
        clock["done"] = True

    async def count(ctx):
        while not clock["done"]:
            await ctx.tick()
            clock["cycles"] += 1

    async def put_bias(ctx):
        await stream_put(ctx, dut.bias, biases, rng=random.Random(seed + 1), stall=stall)

    async def get_out(ctx):
        words = await stream_get(ctx, dut.o, groups, rng=random.Random(seed + 2),
                                 stall=stall if out_stall is None else out_stall)
        got.extend(unpack(acc_word_layout(cfg), w) for w in words)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for bench in (put_beats, put_bias, get_out, count):
        sim.add_testbench(bench)
    # A deadline far beyond any stall pattern: a lost result must fail, not hang.
    sim.run_until(1e-8 * 100 * (len(beats) + groups + 20))
    assert len(got) == groups, f"{len(got)} of {groups} results left the array"
    if timing is not None:
        timing.update(beats=len(beats), cycles=clock["cycles"])
    return got, want


@pytest.mark.parametrize("stall", STALLS)
@pytest.mark.parametrize("stages", [0, 1])
@pytest.mark.parametrize("input_registers", [1, 0, 2])
def test_one_by_one(stages, input_registers, stall, rng):
    cfg = EngineConfig(rows=1, cols=1, guard_bits=0, pipeline_stages=stages, k_depth=4,
                       weight_depth=4, input_registers=input_registers,
                       **stall)
    got, want = _run(cfg, rng, 12)
    assert got == want


@pytest.mark.parametrize("stall", STALLS)
@pytest.mark.parametrize("stages", [0, 1, 2, 3])
@pytest.mark.parametrize("input_registers", [1, 0, 2])
def test_every_pipeline_depth(stages, input_registers, stall, rng):
    cfg = EngineConfig(rows=3, cols=2, pipeline_stages=stages, k_depth=4, weight_depth=8,
                       input_registers=input_registers, **stall)
    assert cfg.array_latency == stages + 1 + input_registers
    got, want = _run(cfg, rng, 10)
    assert got == want


@pytest.mark.parametrize("pe, guard", [("shift", 0), ("shift", 4), ("shift", None),
                                       ("mult", None)])
@pytest.mark.parametrize("stall", STALLS)
def test_pe_register(pe, guard, stall, rng):
    cfg = EngineConfig(rows=3, cols=2, pe=pe, guard_bits=guard, pe_register=True,
                       k_depth=4, weight_depth=8, input_registers=2, pipeline_stages=3,
                       **stall)
    assert cfg.array_latency == 2 + 1 + 3 + 1
    got, want = _run(cfg, rng, 10)
    assert got == want


def test_mult_array(rng):
    cfg = EngineConfig(rows=4, cols=3, pe="mult", weight_bits=6, k_depth=4, weight_depth=8)
    got, want = _run(cfg, rng, 10)
    assert got == want


@pytest.mark.parametrize("pe", ["shift", "mult"])
def test_narrow_accumulator_saturates_per_row_tile(pe, rng):
    cfg = EngineConfig(rows=5, cols=2, pe=pe, act_bits=6, weight_bits=4, acc_bits=9,
                       guard_bits=None if pe == "mult" else 4, k_depth=4, weight_depth=8)
    assert cfg.saturating
    got, want = _run(cfg, rng, 12, kind="extreme")
    assert got == want
    hits = sum(v in (-(1 << 8), (1 << 8) - 1) for row in want for v in row)
    assert hits > 0, "the extreme values should reach saturation"


@pytest.mark.parametrize("stall", STALLS)
def test_no_stalls_takes_a_beat_every_cycle(stall, rng):
    cfg = EngineConfig(rows=2, cols=2, k_depth=4, weight_depth=8, **stall)
    timing = {}
    got, want = _run(cfg, rng, 8, stall=0.0, timing=timing)
    assert got == want
    if cfg.registered_stall:
        # bias_next is tied to 0 here, so a first beat may wait a cycle for its bias (the
        # engine's bias reader makes the promise; its steady-state test is in test_engine).
        assert timing["cycles"] <= timing["beats"] + 8
    else:
        assert timing["cycles"] == timing["beats"]


@pytest.mark.parametrize("input_registers, pe_register", [(0, False), (2, True)])
def test_stall_free_credits_hold_back_last_beats(input_registers, pe_register, rng):
    """One-beat column-tiles against a mostly stalled output: far more results than the result
    FIFO holds are under way, so the credits run out again and again (without them the FIFO
    would drop results)."""
    cfg = EngineConfig(rows=2, cols=2, k_depth=1, weight_depth=2, stall_free=True,
                       input_registers=input_registers, pe_register=pe_register)
    assert cfg.max_k_tiles == 1
    got, want = _run(cfg, rng, 60, stall=0.0, out_stall=0.9)
    assert got == want


def test_stall_free_needs_an_exact_accumulator():
    with pytest.raises(ValueError, match="stall_free .* acc_bits must be at least"):
        EngineConfig(rows=5, cols=2, act_bits=6, weight_bits=4, acc_bits=9, guard_bits=4,
                     stall_free=True)


@pytest.mark.parametrize("acc_bits", [SPLIT_ACC_BITS - 1, SPLIT_ACC_BITS, 23])
def test_stall_free_split_accumulators(acc_bits, rng):
    """With stall_free, accumulators of SPLIT_ACC_BITS bits or more are two carry chains, the
    high half a cycle behind with the low half's registered carry: extreme sums (every carry
    crossing the cut, both signs), back to back and stalled, match the contract."""
    from shifthw.rtl_gen.array import SPLIT_ACC_BITS as split
    cfg = EngineConfig(rows=2, cols=3, act_bits=6, weight_bits=4, guard_bits=4,
                       acc_bits=acc_bits, k_depth=4, weight_depth=8, stall_free=True)
    text = verilog.convert(PEArray(config=cfg), name="array")
    assert ("acc_hi_0" in text) == (acc_bits >= split)
    for kind, stall in (("extreme", 0.0), ("random", 0.0), ("extreme", 0.4)):
        got, want = _run(cfg, rng, 12, kind=kind, stall=stall)
        assert got == want, (kind, stall)


@pytest.mark.parametrize("pe", ["shift", "mult"])
def test_every_adder_tree_node_is_kept(pe):
    # Kept, each adder stays a carry chain: Yosys's alumacc otherwise merges a column's
    # unregistered levels (and the products) into one multi-operand sum built from gates
    # (docs/hardware.md: at 8 x 8 on the iCE40 2013 instead of 1325 LUTs at G = P).
    cfg = EngineConfig(rows=8, cols=2, pe=pe, guard_bits=14 if pe == "shift" else None,
                       weight_bits=5 if pe == "shift" else 8)
    lines = verilog.convert(PEArray(config=cfg), name="array").splitlines()
    kept = []
    for i, line in enumerate(lines):
        if re.fullmatch(r"\s*wire\s+(signed\s+)?\[[^\]]*\]\s*add_l\d+_c\d+_\d+\s*;", line):
            attrs = []                                  # the (* ... *) lines above it
            for above in reversed(lines[:i]):
                if not above.strip().startswith("(*"):
                    break
                attrs.append(above)
            kept.append(any("keep" in x for x in attrs))
    assert len(kept) == cfg.cols * (cfg.rows - 1)            # every adder of every tree
    assert all(kept)
