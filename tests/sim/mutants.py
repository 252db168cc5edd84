"""Deliberately wrong variants of the RTL: the benches must report each one."""

from contextlib import contextmanager

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring

from shifthw import numerics as nx
from shifthw.rtl_gen import array
from shifthw.rtl_gen.engine import LayerEngine
from shifthw.rtl_gen.pe import ShiftPE


class OffByOneShift(ShiftPE):
    """Shifts one place too far: ``(x << G) >> (p + 1)``."""

    def elaborate(self, platform):
        m = Module()
        zero = self.w.shift == nx.zero_field(self.weight_bits)
        negative = self.w.sign & ~zero
        mag = self.x.as_signed().shift_left(self.guard_bits) >> (self.w.shift + 1)
        ones = mag ^ negative.replicate(len(mag)).as_signed()
        m.d.comb += [self.term.eq(Mux(zero, 0, ones)), self.carry.eq(negative)]
        return m


class DroppedNegation(ShiftPE):
    """Forgets the sign: every weight acts as positive."""

    def elaborate(self, platform):
        m = Module()
        zero = self.w.shift == nx.zero_field(self.weight_bits)
        mag = self.x.as_signed().shift_left(self.guard_bits) >> self.w.shift
        m.d.comb += [self.term.eq(Mux(zero, 0, mag)), self.carry.eq(0)]
        return m


@contextmanager
def pe_mutant(cls):
    """Build arrays with ``cls`` instead of the real shift PE while the block runs."""
    real = array.make_pe

    def make(cfg):
        return cls(act_bits=cfg.act_bits, weight_bits=cfg.weight_bits,
                   guard_bits=cfg.guard_bits)
    array.make_pe = make
    try:
        yield
    finally:
        array.make_pe = real


class LosesWords(wiring.Component):
    """The real engine, but its output stream sometimes hands a word over while the sink is
    not ready (a broken backpressure path): under sink stalls, words are lost."""

    def __init__(self, cfg):
        self._engine = LayerEngine(config=cfg)
        super().__init__(self._engine.signature)

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = eng = self._engine
        for name in ("desc", "params", "act"):
            wiring.connect(m, wiring.flipped(getattr(self, name)), getattr(eng, name))
        tick = Signal(3)
        m.d.sync += tick.eq(tick + 1)
        m.d.comb += [self.out.payload.eq(eng.out.payload), self.out.valid.eq(eng.out.valid),
                     eng.out.ready.eq(self.out.ready | tick[0]),
                     self.busy.eq(eng.busy)]
        return m
