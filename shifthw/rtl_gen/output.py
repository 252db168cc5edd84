"""The output stage: the contract's requantisation of C accumulators, in four register stages.

Per lane, exactly :func:`shifthw.numerics.requantize`: an arithmetic shift right by
``out_shift`` (floor, or round half up: add ``2**(s-1)`` first), or a saturating shift left
when ``out_shift`` is negative, then ReLU, then saturation to A bits.  ``out_shift`` is taken
in the descriptor's range ``-(A+1)..acc_bits``; any other shift gives the same results as
its clamp into that range (the host clamps; see ``docs/hardware.md``).

One funnel shifter serves both directions; it and the rest of the requantiser are split over
four register stages, so that no path has more than a few LUT levels:

1. the upper half of the funnel shifter's levels, and the saturation test in groups
   (the per-group ORs are registered, not the accumulator);
2. the lower half of the funnel's levels, giving the A-bit floor of the result and the
   rounding bit, and the end of the saturation test;
3. round half up (an A-bit increment, registered one bit wider);
4. saturation and ReLU, into the output register.

All stages advance together whenever the output register is free (empty, or taken this
cycle), so a stall on ``o`` holds every word where it is.  With ``registered_stall`` that
enable is a register decided a cycle ahead, with a one-word skid register after the output
register (as the PE array's stall), so ``o.ready`` reaches no clock enable in the cycle it
changes.  The layer settings are
registered too (the shift amount, the saturation mask, ``relu``, ``round_half_up``), so
they must be steady from :attr:`~OutputStage.settings_lead` cycles before a word is
accepted until it leaves on ``o``: 1, or 3 with ``registered_stall`` (the engine's high-Fmax
setting), where ``out_shift`` is registered first, then the funnel's shift amount (a copy per
lane) and, over two register stages, the saturation mask, so that no layer-setting path sets
the clock on the ECP5 (on the UP5K an extra register here made placement 5 % slower).  The engine
changes them only while idle, with the stage empty (``busy`` low), at least that many cycles
before the first word arrives.

With ``out_lanes = C`` (default) all lanes are requantised at once, one word per cycle, and
a word accepted on ``i`` is valid on ``o`` :attr:`~OutputStage.latency` = 4 cycles later.
With fewer ``out_lanes`` the word is copied into a holding register, which shifts its lanes
down ``out_lanes`` per cycle into the requantisers: ``ceil(C / out_lanes)`` cycles per word
and a latency of ``4 + ceil(C / out_lanes)``; less logic, full rate while the array needs
at least that many cycles per column-tile.  With ``registered_stall`` there is no holding
register: each chunk is selected straight from ``i`` (the array's skid register lets the
array go on meanwhile) into a register of ``out_lanes`` lanes, the word is taken with its
last chunk and is valid on ``o`` 5 cycles after that.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .config import EngineConfig, resolve_config
from .layouts import acc_word_layout, out_word_layout
from .synth import KEEP

__all__ = ["OutputStage", "pipeline_register_bits", "saturate", "window_shift"]


def window_shift(m: Module, value, amount, width: int, name: str = "window", *,
                 unit: int = 1):
    """Bits ``amount * unit`` up (``width`` of them) of a signed ``value``, sign-extended.

    A logarithmic shifter built from the largest step down: after the step of
    ``unit * 2**k`` only ``width + unit * (2**k - 1)`` bits can still matter, so each stage
    is narrower than the last (about ``n * width + 2**n`` multiplexers for an n-bit amount,
    not ``n * len(value)``).  A ``unit`` above 1 applies the upper bits of a longer amount,
    so that a shifter can be split over register stages.  Every stage is a named signal
    (added to ``m``), which also keeps simulation fast.
    """
    cur = value.as_signed()
    for k in reversed(range(len(amount))):
        step = unit << k
        need = width + step - unit
        short = step + need - len(cur)
        src = Cat(cur, cur[-1].replicate(short)) if short > 0 else cur
        stage = Signal(signed(need), name=f"{name}_s{k}")
        m.d.comb += stage.eq(Mux(amount[k], src[step:step + need], src[:need]))
        cur = stage
    if len(cur) < width:
        cur = Cat(cur, cur[-1].replicate(width - len(cur))).as_signed()
    return cur[:width]


def _le_const(value, const: int):
    """``value <= const`` for an unsigned ``value`` as plain logic: built from the least
    significant bit up, so the most significant bit decides outermost (Yosys makes a
    comparison a carry chain, and a table a block RAM ROM)."""
    if const < 0:
        return Const(0, 1)
    if const >= (1 << len(value)) - 1:
        return Const(1, 1)
    result = Const(1, 1)                  # equal so far: <=
    for i in range(len(value)):           # from the least significant bit up
        if (const >> i) & 1:
            result = ~value[i] | result
        else:
            result = ~value[i] & result
    return result


def _le_const_split(m: Module, value, consts: list[int], name: str):
    """``value <= c`` for every ``c`` of ``consts``, a signed ``value``, over two register
    stages: the comparison of the upper and of the lower half of its bits (offset to
    unsigned) is registered (``lt``, ``eq``, ``le``), and ``lt | eq & le`` returned, to be
    registered by the caller: one small LUT level per stage."""
    n = len(value)
    u = (value.as_unsigned() ^ (1 << (n - 1)))[:n]  # + 2**(n-1): signed order as unsigned
    h = n // 2
    hi, lo = u[h:], u[:h]
    out = []
    for j, c in enumerate(consts):
        c += 1 << (n - 1)
        if c < 0:
            out.append(Const(0, 1))
            continue
        if c >= (1 << n) - 1:
            out.append(Const(1, 1))
            continue
        lt, eq, le = (Signal(name=f"{name}_{j}_{x}", reset_less=True) for x in ("lt", "eq", "le"))
        m.d.sync += [lt.eq(_le_const(hi, (c >> h) - 1)), eq.eq(hi == (c >> h)),
                     le.eq(_le_const(lo, c & ((1 << h) - 1)))]
        out.append(lt | (eq & le))
    return Cat(*out)


def saturate(value, bits: int):
    """``value`` clamped to the ``bits``-bit two's complement range (a Value expression)."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return Mux(value > hi, hi, Mux(value < lo, lo, value))


# Saturation-test terms ORed in stage 1 per group (registered), the groups ORed in stage 2.
_OVER_GROUP = 4


def _funnel_split(cfg: EngineConfig) -> tuple[int, int]:
    """(shift-amount bits applied in stage 2, saturation groups of stage 1)."""
    amount_bits = (cfg.acc_bits + cfg.act_bits + 1).bit_length()   # t in 0..acc+A+1
    return amount_bits // 2, -(-cfg.acc_bits // _OVER_GROUP)


def pipeline_register_bits(cfg: EngineConfig) -> int:
    """Flip-flops one lane's word passes through between the stages (1->2, 2->3, 3->4),
    without the output register: for the energy estimate."""
    lo_bits, groups = _funnel_split(cfg)
    a = cfg.act_bits
    return (a + (1 << lo_bits) + groups + 1) + (a + 3) + (a + 3)


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
        The layer's output-stage settings (registered inside): hold them steady from
        :attr:`settings_lead` cycles before a word is accepted on ``i`` until it has left on
        ``o``.
    busy : Out(1)
        A word is in the stage (holding, pipeline or output register).
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

    @property
    def settings_lead(self) -> int:
        """Cycles the settings must be steady before a word is accepted."""
        return 3 if self._cfg.registered_stall else 1

    @property
    def latency(self) -> int:
        """Cycles from a word accepted on ``i`` to it being valid on ``o``, without stalls."""
        chunks = self._cfg.out_beats
        if chunks == 1:
            return 4
        # With registered_stall the word is taken with its last chunk.
        return 5 if self._cfg.registered_stall else 4 + chunks

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        a, w = cfg.act_bits, cfg.acc_bits
        lo_out, hi_out = -(1 << (a - 1)), (1 << (a - 1)) - 1
        q, chunks = cfg.out_lanes, cfg.out_beats

        # -- layer settings, registered every cycle --------------------------------------
        # The funnel shifter: the accumulator is placed A+1 bits up, with one more zero
        # below for the rounding bit: wide = acc * 2**(A+2), and with t = out_shift + A + 1
        # in 0..acc_bits+A+1, (wide >> t) holds the floor of the result in bits 1..A and
        # the bit just below it (acc's bit out_shift-1, the round half up increment) in
        # bit 0.  For left shifts that bit is one of the zeros, as it must be.
        t = Signal(range(w + a + 2), reset_less=True)
        # The result fits A bits iff every bit of acc * 2**(A+1) from position
        # out_shift + 2A up equals the sign.  hot[j + 1]: acc's bit j is tested; hot[0]:
        # the zeros below acc are (then a negative acc overflows).  Layer-only, so all
        # lanes share it.
        hot = Signal(w, reset_less=True)
        relu, round_up = Signal(reset_less=True), Signal(reset_less=True)
        if cfg.registered_stall:
            # out_shift registered first, then t; the saturation mask (hot[k]: out_shift <=
            # k - A) in two steps from the registered shift, a split comparison whose
            # halves are registered (one LUT level each; from t in one step it was a chain
            # of four LUTs, the ECP5 limit at G = 4).
            shift = Signal.like(self.out_shift, name="out_shift_r", reset_less=True)
            m.d.sync += shift.eq(self.out_shift)
            m.d.sync += hot.eq(_le_const_split(m, shift, [k - a for k in range(w)], "hot"))
        else:
            shift = self.out_shift
            m.d.sync += hot.eq(Cat(shift <= k - a for k in range(w)))
            m.d.sync += t.eq(shift + (a + 1))    # (with registered_stall: one per lane)
        m.d.sync += [
            relu.eq(self.relu),
            round_up.eq(self.round_half_up),
        ]
        lo_bits, n_groups = _funnel_split(cfg)  # funnel levels in stage 2, the rest in 1

        # -- the pipeline: all stages move on one enable -------------------------------------
        v1, v2, v3 = Signal(), Signal(), Signal()
        if cfg.registered_stall:
            adv = Signal(init=1, name="adv")
            # A copy for the chunk control and the handshake, and one for the output
            # register's control (write, skid moves), so that they do not share the
            # pipeline's enable net (no reset, or Yosys merges them with adv; kept apart
            # from each other by their keep attributes, synth.KEEP).
            adv_chunk = Signal(init=1, name="adv_chunk", reset_less=True, attrs=KEEP)
            adv_ctl = Signal(init=1, name="adv_ctl", reset_less=True, attrs=KEEP)
        else:
            adv = Signal(name="adv")
            m.d.comb += adv.eq(~self.o.valid | self.o.ready)
            adv_chunk = adv_ctl = adv

        def lane_t(name):
            """The funnel's shift amount for one lane: with registered_stall a copy of ``t``
            per lane (kept apart by synth.KEEP), so that no decoding of ``t`` is shared
            between lanes and the saturation mask (a route across the stage at G = 4)."""
            if not cfg.registered_stall:
                return t
            t_lane = Signal.like(t, name=f"t_{name}", reset_less=True, attrs=KEEP)
            m.d.sync += t_lane.eq(shift + (a + 1))
            return t_lane

        def stage1(acc, name):
            """Upper funnel levels and per-group saturation tests, into registers."""
            t = lane_t(name)
            sign = acc[-1]
            wide = Cat(Const(0, a + 2), acc).as_signed()
            part = Signal(signed(a + (1 << lo_bits)), name=f"part_{name}", reset_less=True)
            groups = Signal(n_groups, name=f"over_groups_{name}", reset_less=True)
            sign1 = Signal(name=f"sign1_{name}", reset_less=True)
            shifted = window_shift(m, wide, t[lo_bits:], len(part), name=f"funnel_{name}",
                                   unit=1 << lo_bits)
            bits = (Cat(Const(0, 1), acc[:-1]) ^ sign.replicate(w)) & hot
            g = _OVER_GROUP
            with m.If(adv):
                m.d.sync += [
                    part.eq(shifted),
                    groups.eq(Cat(bits[k:k + g].any() for k in range(0, w, g))),
                    sign1.eq(sign),
                ]
            return part, groups, sign1, t

        def stage2(part, groups, sign1, t, name):
            """Lower funnel levels: the floor, the rounding bit, saturation and sign."""
            floor_q = Signal(signed(a), name=f"floor_{name}", reset_less=True)
            up, over, sign2 = (Signal(name=f"{n}_{name}", reset_less=True)
                               for n in ("up", "over", "sign2"))
            window = window_shift(m, part, t[:lo_bits], a + 1, name=f"funnel_lo_{name}")
            with m.If(adv):
                m.d.sync += [
                    floor_q.eq(window[1:]),
                    up.eq(window[0] & round_up),
                    over.eq(groups.any()),
                    sign2.eq(sign1),
                ]
            return floor_q, up, over, sign2

        def stage3(floor_q, up, over, sign2, name):
            """Round half up: the A-bit increment, kept one bit wider (no overflow)."""
            rounded = Signal(signed(a + 1), name=f"rounded_{name}", reset_less=True)
            over3, sign3 = (Signal(name=f"{n}_{name}", reset_less=True)
                            for n in ("over3", "sign3"))
            with m.If(adv):
                m.d.sync += [rounded.eq(floor_q + up), over3.eq(over), sign3.eq(sign2)]
            return rounded, over3, sign3

        def stage4(rounded, over, sign, name):
            """Saturate and ReLU: the lane's value for the output register."""
            # Rounding up can only leave the range at the top (rounded == hi + 1).
            sat_hi = Mux(over, ~sign, rounded[-1] != rounded[-2])
            sat_lo = over & sign
            # ReLU zeroes a negative result (an in-range rounded value, or a low overflow).
            zero = relu & Mux(over, sign, rounded[-1])
            lane = Signal(signed(a), name=f"out_{name}")
            m.d.comb += lane.eq(Mux(zero, 0, Mux(sat_hi, hi_out, Mux(sat_lo, lo_out,
                                                                        rounded[:a]))))
            return lane

        def requantize(acc, name):
            return stage4(*stage3(*stage2(*stage1(acc, name), name), name), name)

        with m.If(adv):
            m.d.sync += [v2.eq(v1), v3.eq(v2)]

        # The output register: lanes are written into ``out`` (a chunk at a time with fewer
        # lanes), which is the word on ``o`` unless the skid register holds an older one.
        out = [Signal(signed(a), name=f"out_word_{c}", reset_less=True)
               for c in range(cfg.cols)]
        o_full = Signal(name="out_full")        # ``out`` holds a complete, untaken word
        k3 = Signal(range(max(chunks, 2)), name="chunk3", reset_less=True)
        write = Signal(name="out_write")        # a chunk of lanes enters ``out`` this cycle
        m.d.comb += write.eq(adv_ctl & v3)
        if cfg.registered_stall and chunks > 1:
            # "Stage 3 holds a word's first / last chunk" as flip-flops of their own, which
            # move with the stage like v3 and k3, so that the advance's next value compares
            # no chunk number (on the UP5K v3 -> adv_ctl through k3's compare was a limit:
            # 4 LUT levels, 17.6 ns).
            first3, last3 = Signal(name="first_chunk3"), Signal(name="last_chunk3")
            first_chunk, complete = adv_ctl & first3, adv_ctl & last3
        else:
            first_chunk = write & (k3 == 0) if chunks > 1 else write
            complete = write & (k3 == chunks - 1) if chunks > 1 else write
        if cfg.registered_stall:
            self._registered_advance(m, (adv, adv_chunk, adv_ctl), out, o_full, first_chunk,
                                     complete)
        else:
            m.d.comb += [self.o.valid.eq(o_full),
                         *(self.o.payload[c].eq(out[c]) for c in range(cfg.cols))]
            with m.If(adv):
                m.d.sync += o_full.eq(complete)

        if chunks == 1:
            # All C lanes at once, straight from the input stream.
            m.d.comb += [self.i.ready.eq(adv),
                         self.busy.eq(v1 | v2 | v3 | self.o.valid)]
            lanes = [requantize(self.i.payload[c], str(c)) for c in range(cfg.cols)]
            with m.If(adv):
                m.d.sync += v1.eq(self.i.valid)
            # Only a word is written (a bubble must not overwrite a word held in ``out``).
            with m.If(write):
                m.d.sync += [out[c].eq(lane) for c, lane in enumerate(lanes)]
            return m

        # out_lanes requantisers, used ceil(C / out_lanes) times per word.
        chunk = Signal(range(max(chunks, 2)))
        last = Signal(name="chunk_last")        # chunk == chunks - 1, kept a step ahead
        k1 = Signal.like(chunk, name="chunk1", reset_less=True)   # chunk in stages 1..3
        k2 = Signal.like(chunk, name="chunk2", reset_less=True)
        if cfg.registered_stall:
            # No holding register: the array keeps its result while its chunks are selected
            # (its skid register lets it go on), into a register of out_lanes lanes that
            # moves with the stage; the word is taken with its last chunk.
            sel = [Signal(signed(w), name=f"chunk_in_{lane}", reset_less=True)
                   for lane in range(q)]
            v0 = Signal(name="v0")
            k0 = Signal.like(chunk, name="chunk0", reset_less=True)
            m.d.comb += [
                self.i.ready.eq(adv_chunk & last),
                self.busy.eq(v0 | v1 | v2 | v3 | self.o.valid),
            ]
            with m.If(adv_chunk & self.i.valid):
                m.d.sync += [chunk.eq(chunk + 1), last.eq(chunk == chunks - 2)]
                with m.If(last):
                    m.d.sync += [chunk.eq(0), last.eq(0)]
            with m.If(adv):
                m.d.sync += [v0.eq(self.i.valid), k0.eq(chunk)]
                with m.Switch(chunk):
                    for k in range(chunks):
                        with m.Case(k):
                            m.d.sync += [sel[lane].eq(self.i.payload[k * q + lane]
                                                      if k * q + lane < cfg.cols else 0)
                                         for lane in range(q)]
            front_valid, front_chunk, front = v0, k0, sel
        else:
            # The word is taken into a holding register at once (so the array can go on),
            # which moves its lanes down out_lanes per cycle, the next chunk into lanes
            # 0..out_lanes-1.
            hold = [Signal(signed(w), name=f"hold_{c}", reset_less=True)
                    for c in range(cfg.cols)]
            h_valid = Signal()
            m.d.comb += [
                self.i.ready.eq(~h_valid | (adv & last)),
                self.busy.eq(h_valid | v1 | v2 | v3 | self.o.valid),
            ]
            with m.If(adv & h_valid):
                m.d.sync += [chunk.eq(chunk + 1), last.eq(chunk == chunks - 2)]
                m.d.sync += [hold[c].eq(hold[c + q]) for c in range(cfg.cols - q)]
                with m.If(last):
                    m.d.sync += [chunk.eq(0), last.eq(0), h_valid.eq(0)]
            with m.If(self.i.valid & self.i.ready):
                m.d.sync += [hold[c].eq(self.i.payload[c]) for c in range(cfg.cols)]
                m.d.sync += h_valid.eq(1)
            front_valid, front_chunk, front = h_valid, chunk, hold[:q]

        lanes = [requantize(front[lane], str(lane)) for lane in range(q)]
        with m.If(adv):
            m.d.sync += [v1.eq(front_valid), k1.eq(front_chunk), k2.eq(k1), k3.eq(k2)]
            if cfg.registered_stall:
                m.d.sync += [first3.eq(v2 & (k2 == 0)), last3.eq(v2 & (k2 == chunks - 1))]
            with m.If(v3):
                with m.Switch(k3):
                    for k in range(chunks):
                        with m.Case(k):
                            for lane in range(q):
                                if k * q + lane < cfg.cols:
                                    m.d.sync += out[k * q + lane].eq(lanes[lane])
        return m

    def _registered_advance(self, m, advs, out, o_full, first_chunk, complete):
        """``adv`` as a register decided a cycle ahead, with a one-word skid register.

        As in the array with ``registered_stall``: a complete word still in ``out`` when the
        first chunk of the next one is written moves to the skid register (``o`` shows the
        skid's word first), and ``adv`` drops while both hold a word.  So neither ``o.ready``
        nor ``o.valid`` reaches the stage's clock enables in the cycle it changes.
        """
        cfg = self._cfg
        s_full = Signal()
        skid = [Signal(signed(cfg.act_bits), name=f"out_skid_{c}", reset_less=True)
                for c in range(cfg.cols)]
        m.d.comb += self.o.valid.eq(o_full | s_full)
        m.d.comb += [self.o.payload[c].eq(Mux(s_full, skid[c], out[c]))
                     for c in range(cfg.cols)]
        pop = self.o.valid & self.o.ready
        pop_out = pop & ~s_full                 # the word taken is the one in ``out``
        # ``adv`` is low while both hold a word, so the skid register is empty when a first
        # chunk is written: it may take ``out`` whether or not that word leaves (its clock
        # enables do not wait for ``o.ready``); it is only valid if the word stays.
        overwrite = first_chunk & o_full
        move = overwrite & ~pop_out
        o_next, s_next = Signal(), Signal()
        m.d.comb += [
            o_next.eq(Mux(complete, 1, Mux(move | pop_out, 0, o_full))),
            s_next.eq(Mux(move, 1, Mux(pop & s_full, 0, s_full))),
        ]
        m.d.sync += [o_full.eq(o_next), s_full.eq(s_next)]
        m.d.sync += [adv.eq(~(o_next & s_next)) for adv in advs]
        with m.If(overwrite):
            m.d.sync += [d.eq(s) for d, s in zip(skid, out)]
