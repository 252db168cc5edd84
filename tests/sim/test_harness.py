"""The free-running harness on a tiny stream design: words in = words out, under stalls."""

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from shifthw.sim.build import build
from shifthw.sim.harness import HARNESS_TOP, StreamPort, harness_verilog
from shifthw.sim.runner import run_cocotb


class PlusOne(wiring.Component):
    """A one-stage stream pipeline that adds ``inc`` (a buggy variant can drop words)."""

    i: In(stream.Signature(unsigned(16)))
    o: Out(stream.Signature(unsigned(16)))

    def __init__(self, inc=1):
        self._inc = inc
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        full = Signal()
        m.d.comb += self.i.ready.eq(~full | self.o.ready)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [self.o.payload.eq(self.i.payload + self._inc), full.eq(1)]
        with m.Elif(self.o.ready):
            m.d.sync += full.eq(0)
        m.d.comb += self.o.valid.eq(full)
        return m


def _files(inc):
    text = verilog.convert(PlusOne(inc), name="plus_one")
    ports = [StreamPort("i", 16, True), StreamPort("o", 16, False)]
    return {"plus_one.v": text, "harness.sv": harness_verilog("plus_one", ports)}


@pytest.mark.parametrize("stall", [0.0, 0.5])
def test_harness_passes_words_under_stalls(tmp_path, stall):
    sim = build(_files(1), HARNESS_TOP)
    words = np.random.default_rng(0).integers(0, 2 ** 16 - 1, 500).tolist()
    res = run_cocotb(sim, "shifthw.sim.harness_bench", tmp_path,
                     job={"plan": "shifthw.sim.plans:echo_plan", "args": {"words": words,
                                                                           "runs": 2},
                          "source_stall": stall, "sink_stall": stall, "seed": 3})
    assert res[0]["words"] == [(w + 1) & 0xFFFF for w in words]
    assert res[1]["words"] == res[0]["words"]
    if stall == 0.0:
        assert res[0]["cycles"] <= len(words) + 4
    else:
        # Half the cycles stall on each side: far more cycles, and real backpressure.
        assert res[0]["cycles"] > 2 * len(words) and res[0]["source_blocked"] > 0


def test_harness_sees_a_wrong_design(tmp_path):
    sim = build(_files(2), HARNESS_TOP)
    res = run_cocotb(sim, "shifthw.sim.harness_bench", tmp_path,
                     job={"plan": "shifthw.sim.plans:echo_plan", "args": {"words": [1, 2, 3]}})
    assert res[0]["words"] == [3, 4, 5]  # +2: the bench reports what the design did


def test_a_new_build_drops_the_least_recently_used_one(tmp_path, monkeypatch):
    from shifthw.sim.build import _size

    a = build(_files(1), HARNESS_TOP, root=tmp_path)
    b = build(_files(2), HARNESS_TOP, root=tmp_path)
    # Room for two and a half such builds: the third drops one, the least recently used.
    room = 2.5 * max(_size(tmp_path / a.key), _size(tmp_path / b.key))
    monkeypatch.setenv("SHIFTHW_CACHE_MAX_GB", str(room / 1e9))
    assert build(_files(1), HARNESS_TOP, root=tmp_path).reused      # a is used again
    c = build(_files(3), HARNESS_TOP, root=tmp_path)
    assert [(tmp_path / k.key).exists() for k in (a, b, c)] == [True, False, True]
    res = run_cocotb(a, "shifthw.sim.harness_bench", tmp_path / "run",
                     job={"plan": "shifthw.sim.plans:echo_plan", "args": {"words": [1]}})
    assert res[0]["words"] == [2]
