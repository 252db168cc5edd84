"""amaranth.sim helpers: stream drivers with random stalls, and a whole-job engine runner.

:func:`stream_put` and :func:`stream_get` are the one handshake implementation every async
testbench uses.  :func:`simulate_job` runs a :class:`~.host.LayerJob` through a
:class:`~.engine.LayerEngine` (words from :mod:`.host`), with optional random stalls on every
stream, and counts cycles for the utilisation benchmark.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
from amaranth.hdl import Value
from amaranth.sim import Simulator

from .config import EngineConfig
from .engine import LayerEngine
from .host import EngineStreams, LayerJob, decode_outputs, encode_job

__all__ = ["stream_put", "stream_get", "SimStats", "simulate_streams", "simulate_job"]


async def stream_put(ctx, stream, words, *, rng: random.Random | None = None,
                     stall: float = 0.0) -> None:
    """Send ``words`` (raw ints) on ``stream``; before each, idle with probability ``stall``."""
    payload = Value.cast(stream.payload)
    for word in words:
        while rng is not None and stall and rng.random() < stall:
            ctx.set(stream.valid, 0)
            await ctx.tick()
        ctx.set(payload, int(word))
        ctx.set(stream.valid, 1)
        await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream, count: int, *, rng: random.Random | None = None,
                     stall: float = 0.0) -> list[int]:
    """Receive ``count`` raw payloads; every cycle ``ready`` is low with probability ``stall``."""
    payload = Value.cast(stream.payload)
    words: list[int] = []
    while len(words) < count:
        ready = not (rng is not None and stall and rng.random() < stall)
        ctx.set(stream.ready, int(ready))
        _, _, value, valid = await ctx.tick().sample(payload, stream.valid)
        if ready and valid:
            words.append(value)
    ctx.set(stream.ready, 0)
    return words


@dataclass
class SimStats:
    """What one simulation measured (cycles count clock edges from the start)."""

    out: list[int] = field(default_factory=list)
    cycles: int = 0              # until the last output word was taken
    beats: int = 0               # array beats (row-tiles issued)
    first_beat: int | None = None
    last_beat: int | None = None

    @property
    def run_cycles(self) -> int:
        """Cycles from the first array beat to the last one, both included."""
        if self.first_beat is None:
            return 0
        return self.last_beat - self.first_beat + 1


def simulate_streams(engine: LayerEngine, streams: EngineStreams, *, stall: float = 0.0,
                     seed: int = 0, vcd: str | None = None,
                     max_cycles: int | None = None) -> SimStats:
    """Drive the words of ``streams`` through ``engine`` in amaranth.sim; collect outputs.

    A run longer than ``max_cycles`` raises (a lost word must fail, not hang); by default the
    deadline is ten times the cycles the job could need with every stream stalling at
    ``stall``: its words plus its array beats plus a margin per descriptor.
    """
    if max_cycles is None:
        vectors = sum(seg.m1 - seg.m0 for seg in streams.segments)
        k_tiles = len(streams.act) // vectors if vectors else 0
        work = (len(streams.desc) + len(streams.params) + len(streams.act)
                + streams.out_words * (1 + k_tiles) + 64 * len(streams.segments) + 500)
        max_cycles = int(10 * work / max(0.05, 1.0 - stall))
    stats = SimStats()
    sim = Simulator(engine)
    sim.add_clock(1e-8)
    rngs = [random.Random(seed * 7919 + k) for k in range(4)]

    async def put_desc(ctx):
        await stream_put(ctx, engine.desc, streams.desc, rng=rngs[0], stall=stall)

    async def put_params(ctx):
        await stream_put(ctx, engine.params, streams.params, rng=rngs[1], stall=stall)

    async def put_act(ctx):
        await stream_put(ctx, engine.act, streams.act, rng=rngs[2], stall=stall)

    async def get_out(ctx):
        stats.out = await stream_get(ctx, engine.out, streams.out_words, rng=rngs[3],
                                     stall=stall)
        # The last descriptor must end too: the engine back in IDLE, ready for the next one
        # (a vectors-left count that misses its end would otherwise go unnoticed).
        out_done[0] = True
        await ctx.tick().until(engine.desc.ready)

    inputs = {"descriptor": (engine.desc, len(streams.desc)),
              "params": (engine.params, len(streams.params)),
              "activation": (engine.act, len(streams.act))}
    taken = dict.fromkeys(inputs, 0)
    out_done = [False]           # stats.cycles stops at the last output word

    async def monitor(ctx):
        arr = engine.array.i
        handshakes = [s for stream, _ in inputs.values() for s in (stream.valid, stream.ready)]
        cycle = 0
        async for _, _, valid, ready, *hs in ctx.tick().sample(arr.valid, arr.ready,
                                                               *handshakes):
            if valid and ready:
                stats.beats += 1
                if stats.first_beat is None:
                    stats.first_beat = cycle
                stats.last_beat = cycle
            for k, name in enumerate(inputs):
                taken[name] += hs[2 * k] & hs[2 * k + 1]
            cycle += 1
            if not out_done[0]:
                stats.cycles = cycle
            if cycle > max_cycles:
                words = ", ".join(f"{taken[name]} of {total} {name} words taken"
                                  for name, (_, total) in inputs.items())
                ended = ("; every output taken, but the engine did not return to IDLE"
                         if out_done[0] else "")
                raise RuntimeError(f"engine simulation exceeded {max_cycles} cycles ({words}; "
                                   f"{len(stats.out)} of {streams.out_words} outputs{ended})")

    for bench in (put_desc, put_params, put_act, get_out):
        sim.add_testbench(bench)
    sim.add_testbench(monitor, background=True)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return stats


def simulate_job(cfg: EngineConfig, job: LayerJob, x, *, stall: float = 0.0, seed: int = 0,
                 engine: LayerEngine | None = None, vcd: str | None = None):
    """Run ``job`` on inputs ``x`` (M, K) through a fresh engine; ``(outputs, stats)``."""
    engine = engine if engine is not None else LayerEngine(config=cfg)
    streams = encode_job(cfg, job, np.asarray(x))
    stats = simulate_streams(engine, streams, stall=stall, seed=seed, vcd=vcd)
    return decode_outputs(cfg, streams, stats.out), stats
