"""The output stage: the contract's requantisation of C accumulators.

With ``out_lanes = C`` (default) all lanes are requantised at once into the output register
(one word per cycle).  With fewer ``out_lanes`` the word is copied into a holding register
and its lanes are requantised ``out_lanes`` per cycle, ``ceil(C / out_lanes)`` cycles per word:
less logic, full rate while the array needs at least that many cycles per column-tile.

Per lane, exactly :func:`shifthw.numerics.requantize`: an arithmetic shift right by
``out_shift`` (floor, or round half up: add ``2**(s-1)`` first), or a saturating shift left
when ``out_shift`` is negative, then ReLU, then saturation to A bits.  ``out_shift`` is taken
in the descriptor's range ``-(A+1)..acc_bits``; any other shift gives the same results as
its clamp into that range (the host clamps; see ``docs/hardware.md``).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .config import EngineConfig, resolve_config
from .layouts import acc_word_layout, out_word_layout

__all__ = ["OutputStage", "saturate", "window_shift"]


def window_shift(m: Module, value, amount, width: int, name: str = "window"):
    """Bits ``amount .. amount + width - 1`` of a signed ``value`` (sign-extended above).

    A logarithmic shifter built from the largest step down: after the step of ``2**k`` only
    ``width + 2**k - 1`` bits can still matter, so each stage is narrower than the last
    (about ``n * width + 2**n`` multiplexers for an n-bit amount, not ``n * len(value)``).
    Every stage is a named signal (added to ``m``), which also keeps simulation fast.
    """
    cur = value.as_signed()
    for k in reversed(range(len(amount))):
        step = 1 << k
        need = width + step - 1
        short = step + need - len(cur)
        src = Cat(cur, cur[-1].replicate(short)) if short > 0 else cur
        stage = Signal(signed(need), name=f"{name}_s{k}")
        m.d.comb += stage.eq(Mux(amount[k], src[step:step + need], src[:need]))
        cur = stage
    if len(cur) < width:
        cur = Cat(cur, cur[-1].replicate(width - len(cur))).as_signed()
    return cur[:width]


def saturate(value, bits: int):
    """``value`` clamped to the ``bits``-bit two's complement range (a Value expression)."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return Mux(value > hi, hi, Mux(value < lo, lo, value))


class OutputStage(wiring.Component):
    """Requantise a stream of accumulator words into a stream of A-bit output words.

    Parameters
    ----------
    config : EngineConfig
        (or the same parameters as keywords).

    Members
    -------
    i : In(stream.Signature(acc_word_layout))
    o : Out(stream.Signature(out_word_layout))
    out_shift : In(signed), relu : In(1), round_half_up : In(1)
        The layer's output-stage settings; hold them steady while words are in flight.
    busy : Out(1)
        A word is in the stage (holding or output register).
    """

    def __init__(self, *, config: EngineConfig | None = None, **params):
        cfg = resolve_config(config, params, owner=self)
        self._cfg = cfg
        lo, hi = cfg.out_shift_range
        super().__init__({
            "i": In(stream.Signature(acc_word_layout(cfg))),
            "o": Out(stream.Signature(out_word_layout(cfg))),
            "out_shift": In(Shape.cast(range(lo, hi + 1))),
            "relu": In(1),
            "round_half_up": In(1),
            "busy": Out(1),
        })

    @property
    def config(self) -> EngineConfig:
        return self._cfg

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        a, w = cfg.act_bits, cfg.acc_bits
        lo_out, hi_out = -(1 << (a - 1)), (1 << (a - 1)) - 1
        # One funnel shifter for both directions.  The accumulator is placed A+1 bits up,
        # with one more zero below for the rounding bit: wide = acc * 2**(A+2), and with
        # t = out_shift + A + 1 in 0..acc_bits+A+1, (wide >> t) holds the floor of the result
        # in bits 1..A and the bit just below it (acc's bit out_shift-1, the round half up
        # increment) in bit 0.  For left shifts that bit is one of the zeros, as it must be.
        t = Signal(range(w + a + 2))
        m.d.comb += t.eq(self.out_shift + (a + 1))
        # The result fits A bits iff every bit of acc * 2**(A+1) from position t + A - 1 up
        # equals the sign: this mask depends on the layer only, so all lanes share it.
        span = w + a + 1
        mask = Signal(span)
        m.d.comb += mask.eq(Cat(t <= p - a + 1 for p in range(span)))

        def requantize(acc, name):
            sign = acc[-1]
            scaled = Cat(Const(0, a + 1), acc)                       # acc * 2**(A+1)
            wide = Cat(Const(0, 1), scaled).as_signed()               # one more bit below
            window = Signal(signed(a + 1), name=f"window_{name}")
            m.d.comb += window.eq(window_shift(m, wide, t, a + 1, name=f"funnel_{name}"))
            floor_q = window[1:].as_signed()
            up = window[0] & self.round_half_up
            over = ((scaled ^ sign.replicate(span)) & mask).any()
            y = Mux(over, Mux(sign, lo_out, hi_out),
                    Mux(up & (floor_q == hi_out), hi_out, floor_q + up))
            lane = Signal(signed(a), name=f"out_{name}")
            m.d.comb += lane.eq(Mux(self.relu & (y < 0), 0, y))
            return lane

        free = ~self.o.valid | self.o.ready
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        q, chunks = cfg.out_lanes, cfg.out_beats
        if chunks == 1:
            # All C lanes at once: the input word goes straight through the requantisers.
            m.d.comb += [self.i.ready.eq(free), self.busy.eq(self.o.valid)]
            with m.If(free):
                m.d.sync += self.o.valid.eq(self.i.valid)
                for c in range(cfg.cols):
                    m.d.sync += self.o.payload[c].eq(requantize(self.i.payload[c], str(c)))
            return m

        # out_lanes requantisers, used ceil(C / out_lanes) times per word: the word is taken
        # into a holding register at once (so the array can go on), and its lanes are
        # requantised a chunk per cycle into the output register.
        hold = Signal(acc_word_layout(cfg), reset_less=True)
        h_valid = Signal()
        chunk = Signal(range(max(chunks, 2)))
        last = chunk == chunks - 1
        working = h_valid & free
        m.d.comb += [
            self.i.ready.eq(~h_valid | (working & last)),
            self.busy.eq(self.o.valid | h_valid),
        ]
        picked = [Signal(signed(w), name=f"pick_{lane}") for lane in range(q)]
        with m.Switch(chunk):
            for k in range(chunks):
                with m.Case(k):
                    for lane in range(q):
                        if k * q + lane < cfg.cols:
                            m.d.comb += picked[lane].eq(hold[k * q + lane])
        lanes = [requantize(picked[lane], str(lane)) for lane in range(q)]
        with m.If(working):
            m.d.sync += chunk.eq(chunk + 1)
            with m.Switch(chunk):
                for k in range(chunks):
                    with m.Case(k):
                        for lane in range(q):
                            if k * q + lane < cfg.cols:
                                m.d.sync += self.o.payload[k * q + lane].eq(lanes[lane])
            with m.If(last):
                m.d.sync += [chunk.eq(0), h_valid.eq(0), self.o.valid.eq(1)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [hold.eq(self.i.payload), h_valid.eq(1)]
        return m
