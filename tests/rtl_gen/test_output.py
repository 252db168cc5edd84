"""The output stage against numerics.requantize, every shift of the descriptor's range."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from shifthw import numerics as nx
from shifthw.rtl_gen.config import EngineConfig
from shifthw.rtl_gen.host import clamp_out_shift
from shifthw.rtl_gen.layouts import acc_word_layout, out_word_layout, pack, unpack
from shifthw.rtl_gen.output import OutputStage
from shifthw.rtl_gen.simutil import stream_get, stream_put


def _check(cfg, settings, accs, stall=0.0, seed=0):
    """Run every (shift, relu, round) of ``settings`` over ``accs`` through the stage."""
    dut = OutputStage(config=cfg)
    c = cfg.cols
    words = [accs[i:i + c] + [0] * (c - len(accs[i:i + c])) for i in range(0, len(accs), c)]
    results = {}

    async def bench(ctx):
        rng = random.Random(seed)
        for s, relu, rnd in settings:
            ctx.set(dut.out_shift, s)
            ctx.set(dut.relu, relu)
            ctx.set(dut.round_half_up, rnd)
            # The settings are registered inside the stage.
            await ctx.tick().repeat(dut.settings_lead)
            got = []
            # One word in, one word out (the stage may hold more), stalls on both sides.
            for w in words:
                await stream_put(ctx, dut.i, [pack(acc_word_layout(cfg), w)], rng=rng,
                                 stall=stall)
                got += await stream_get(ctx, dut.o, 1, rng=rng, stall=stall)
            results[(s, relu, rnd)] = [v for w in got[:len(words)]
                                       for v in unpack(out_word_layout(cfg), w)]

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    for (s, relu, rnd), got in results.items():
        want = nx.requantize(np.array(words).ravel(), s, cfg.act_bits, relu=bool(relu),
                             round_half_up=bool(rnd))
        assert list(want) == got, f"out_shift={s} relu={relu} round={rnd}"


@pytest.mark.parametrize("out_lanes, registered", [(4, False), (3, False), (1, False),
                                                    (4, True)])
def test_every_shift_exhaustive_small(out_lanes, registered):
    cfg = EngineConfig(rows=2, cols=4, act_bits=4, weight_bits=3, guard_bits=1, k_depth=2,
                       weight_depth=4, out_lanes=out_lanes, registered_stall=registered)
    w = cfg.acc_bits
    accs = list(range(-(1 << (w - 1)), 1 << (w - 1)))
    lo, hi = cfg.out_shift_range
    settings = [(s, relu, rnd) for s in range(lo, hi + 1) for relu in (0, 1) for rnd in (0, 1)]
    _check(cfg, settings, accs)


@pytest.mark.parametrize("out_lanes, registered", [(3, False), (2, False), (2, True)])
def test_wide_accumulator_random_with_stalls(out_lanes, registered, rng):
    cfg = EngineConfig(rows=2, cols=3, act_bits=8, guard_bits=14, k_depth=4, weight_depth=4,
                       out_lanes=out_lanes, registered_stall=registered)
    w = cfg.acc_bits
    accs = [int(v) for v in rng.integers(-(1 << (w - 1)), 1 << (w - 1), size=60)]
    accs += [-(1 << (w - 1)), (1 << (w - 1)) - 1, 0, -1, 1, 127, 128, -128, -129]
    lo, hi = cfg.out_shift_range
    shifts = sorted(set([lo, lo + 1, -1, 0, 1, 2, 7, 8, 9, hi - 1, hi]
                        + [int(v) for v in rng.integers(lo, hi + 1, size=6)]))
    settings = [(s, relu, rnd) for s in shifts for relu in (0, 1) for rnd in (0, 1)]
    _check(cfg, settings, accs, stall=0.3, seed=3)


@pytest.mark.parametrize("shift", [-40, -10, -9, 33, 40, 60])
def test_clamped_shift_is_equivalent(shift, rng):
    """The host clamps out_shift into the descriptor's range: same outputs (contract)."""
    cfg = EngineConfig(act_bits=8, guard_bits=4, k_depth=4, weight_depth=4)
    w = cfg.acc_bits
    acc = np.concatenate([rng.integers(-(1 << (w - 1)), 1 << (w - 1), size=200),
                          [-(1 << (w - 1)), (1 << (w - 1)) - 1, 0, -1, 1]])
    for relu in (False, True):
        for rnd in (False, True):
            want = nx.requantize(acc, shift, 8, relu=relu, round_half_up=rnd)
            got = nx.requantize(acc, clamp_out_shift(cfg, shift), 8, relu=relu,
                                round_half_up=rnd)
            assert np.array_equal(want, got)


@pytest.mark.parametrize("registered", [False, True])
@pytest.mark.parametrize("out_lanes", [4, 3, 2, 1])
def test_latency_rate_and_busy(out_lanes, registered):
    """Accepted to valid in ``latency`` cycles; one word per ``out_beats`` cycles; busy."""
    cfg = EngineConfig(rows=2, cols=4, act_bits=4, weight_bits=3, guard_bits=1, k_depth=2,
                       weight_depth=4, out_lanes=out_lanes, registered_stall=registered)
    dut = OutputStage(config=cfg)
    n_words = 5
    seen = {}

    async def bench(ctx):
        ctx.set(dut.out_shift, 1)
        ctx.set(dut.o.ready, 1)
        await ctx.tick().repeat(dut.settings_lead)
        ctx.set(dut.i.payload, [3, -3, 5, 0])
        ctx.set(dut.i.valid, 1)
        accepted, valid_at, cycle = [], [], 0
        while len(valid_at) < n_words:
            if len(accepted) > len(valid_at):
                assert ctx.get(dut.busy), f"busy low at cycle {cycle} with words inside"
            if ctx.get(dut.o.valid):
                valid_at.append(cycle)
            if ctx.get(dut.i.valid) and ctx.get(dut.i.ready):
                accepted.append(cycle)
            await ctx.tick()
            cycle += 1
            if len(accepted) == n_words:
                ctx.set(dut.i.valid, 0)
        assert not ctx.get(dut.busy)
        seen.update(accepted=accepted, valid_at=valid_at)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    beats = cfg.out_beats
    # A word is taken at once into the holding register, or (registered_stall) with its
    # last chunk, selected straight from the input.
    late = beats > 1 and registered
    assert dut.latency == (4 if beats == 1 else 5 if late else 4 + beats)
    start = beats - 1 if late else 0
    assert seen["accepted"] == [start + k * beats for k in range(n_words)]
    assert seen["valid_at"] == [start + k * beats + dut.latency for k in range(n_words)]


@pytest.mark.parametrize("registered", [False, True])
@pytest.mark.parametrize("out_lanes", [4, 3, 1])
def test_stream_with_stalls(out_lanes, registered, rng):
    """Many words in flight at once, random stalls on both sides: none lost or repeated."""
    cfg = EngineConfig(rows=2, cols=4, act_bits=4, weight_bits=3, guard_bits=1, k_depth=2,
                       weight_depth=4, out_lanes=out_lanes, registered_stall=registered)
    dut = OutputStage(config=cfg)
    w = cfg.acc_bits
    accs = [int(v) for v in rng.integers(-(1 << (w - 1)), 1 << (w - 1), size=4 * 60)]
    words = [accs[i:i + 4] for i in range(0, len(accs), 4)]
    shift, relu, rnd = 2, 1, 1
    got = []

    async def put(ctx):
        ctx.set(dut.out_shift, shift)
        ctx.set(dut.relu, relu)
        ctx.set(dut.round_half_up, rnd)
        await ctx.tick().repeat(dut.settings_lead)
        await stream_put(ctx, dut.i, [pack(acc_word_layout(cfg), v) for v in words],
                         rng=random.Random(1), stall=0.3)

    async def get(ctx):
        await ctx.tick()
        got.extend(await stream_get(ctx, dut.o, len(words), rng=random.Random(2),
                                    stall=0.5))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(put)
    sim.add_testbench(get)
    sim.run()
    want = nx.requantize(np.array(accs), shift, cfg.act_bits, relu=True, round_half_up=True)
    have = [v for word in got for v in unpack(out_word_layout(cfg), word)]
    assert list(want) == have


def test_le_const_is_exact():
    """The saturation mask's comparisons (plain logic, registered_stall) for every value and
    constant of a 5-bit field."""
    from amaranth.hdl import Module, Signal

    from shifthw.rtl_gen.output import _le_const
    v = Signal(5)
    outs = [(c, _le_const(v, c)) for c in range(-2, 34)]

    async def bench(ctx):
        for x in range(32):
            ctx.set(v, x)
            for c, e in outs:
                assert ctx.get(e) == (x <= c), (x, c)

    sim = Simulator(Module())
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("bits", [5, 6])
def test_le_const_split_is_exact(bits):
    """The saturation mask of registered_stall over two register stages: ``value <= c`` for
    every signed value and every constant in and around its range, two cycles later."""
    from amaranth.hdl import Module, Signal, signed

    from shifthw.rtl_gen.output import _le_const_split
    m = Module()
    v = Signal(signed(bits))
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    consts = list(range(lo - 2, hi + 3))
    out = Signal(len(consts))
    m.d.sync += out.eq(_le_const_split(m, v, consts, "t"))

    async def bench(ctx):
        for x in range(lo, hi + 1):
            ctx.set(v, x)
            await ctx.tick().repeat(2)
            got = ctx.get(out)
            for j, c in enumerate(consts):
                assert (got >> j) & 1 == (x <= c), (x, c)

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
