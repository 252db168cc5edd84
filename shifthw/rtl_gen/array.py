"""The PE array: R x C processing elements, C pipelined adder trees, C accumulators.

Every beat on ``i`` carries one row-tile: R activations (lane r goes to every PE of array row
r) and the R x C weights of one weight buffer entry.  Column c's R terms are summed by an adder
tree and added to accumulator c.  With shift PEs the trees also absorb the PEs' negation
carries: each two-input adder takes one pending carry as its carry-in, and the one carry left
over (R carries, R - 1 adders) goes into the accumulator's adder.

Pipelining: with ``input_registers`` >= 1 (default 1) every beat is registered before the
PEs, so the buffers' read data meets no logic in the cycle it leaves the block RAM (with 2,
the first of them can become the block RAMs' own output register and the second stays next
to the PEs); with ``pe_register`` one more inside every PE; then
``pipeline_stages`` registers are placed between the PEs and the accumulator at evenly spaced
tree levels (level 0 is the PE outputs).  All registers advance together on one enable, so
backpressure on ``o`` (or a missing bias) stalls the whole array, and nothing is ever lost
or duplicated.  That enable is combinational from ``o.ready`` and ``bias.valid``, or, with
``registered_stall``, a register decided a cycle ahead, with a one-result skid register
taking the result the array may finish in the cycle it learns it must stop.

With ``stall_free`` there is no such enable: the datapath advances every cycle and a valid
bit travels with each beat.  Every finished column-tile goes into a result FIFO of
:data:`~.config.RESULT_FIFO_DEPTH` words, and a beat flagged ``last`` is taken only while the
array holds a credit (one per free FIFO word, returned when a result leaves the FIFO), so a
result always has room.  The accumulators then start from zero and the bias is added after
the FIFO (where a result may wait for its bias), on the way into one of two output slots
that drive ``o``: the same sums, as the accumulator is exact (``EngineConfig`` checks it).

Accumulation follows the contract with the saturation order of
``golden.shift_matmul(..., chunk=R)``: a beat flagged ``first`` loads
``saturate(bias + tree_sum)`` (the bias comes from the ``bias`` stream, one word per
column-tile), every other beat ``saturate(acc + tree_sum)``; a beat flagged ``last`` makes the
accumulators a result on ``o``.  Saturation logic is only built when ``acc_bits`` is narrower
than the formula's width for the largest K the buffers take; at that width it provably never
triggers.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .config import RESULT_FIFO_DEPTH, EngineConfig, resolve_config
from .layouts import acc_word_layout, array_in_layout, bias_word_layout
from .output import saturate
from .pe import make_pe
from .synth import KEEP

__all__ = ["PEArray", "SPLIT_ACC_BITS"]

#: With ``stall_free``, accumulators of this many bits or more are two carry chains of half
#: the width, the upper a cycle behind (see ``PEArray.elaborate``).
SPLIT_ACC_BITS = 16


class PEArray(wiring.Component):
    """R x C shift (or multiply) accumulate array with stream interfaces.

    Parameters
    ----------
    config : EngineConfig
        (or the same parameters as keywords): rows, cols, act_bits, weight_bits, guard_bits,
        pe, acc_bits, input_registers, registered_stall, stall_free, pe_register,
        pipeline_stages are used.

    Members
    -------
    i : In(stream.Signature(array_in_layout))
        Row-tiles: ``act`` (R lanes), ``w`` (C x R weights), ``first``, ``last``.
    bias : In(stream.Signature(bias_word_layout))
        One word of C biases per column-tile, taken with its ``first`` beat.
    bias_next : In(1)
        With ``registered_stall`` (unused with ``stall_free``): a promise of the bias source
        that ``bias.valid`` will be high in the next cycle whether or not the bias is taken
        in this one, computed without ``bias.ready`` (the stall is decided a cycle ahead, so
        a first beat only enters the accumulators when its bias is sure to be there; tied to
        0, the array waits one cycle more whenever a bias arrives just in time).  Unused
        otherwise.
    i_ready_buf : Out(1)
        Equal to ``i.ready``; with ``registered_stall`` from a flip-flop of its own, for the
        buffers' read enables (spread over the device), so that the issuer's logic does not
        share their net.
    o : Out(stream.Signature(acc_word_layout))
        C accumulators per column-tile.
    busy : Out(1)
        Some beat is still inside the array.
    """

    def __init__(self, *, config: EngineConfig | None = None, **params):
        cfg = resolve_config(config, params, owner=self)
        self._cfg = cfg
        super().__init__({
            "i": In(stream.Signature(array_in_layout(cfg))),
            "bias": In(stream.Signature(bias_word_layout(cfg))),
            "bias_next": In(1),
            "i_ready_buf": Out(1),
            "o": Out(stream.Signature(acc_word_layout(cfg))),
            "busy": Out(1),
        })

    @property
    def config(self) -> EngineConfig:
        return self._cfg

    @property
    def register_levels(self) -> list[int]:
        """Tree levels followed by a pipeline register (0: the PE outputs)."""
        return self._cfg.register_levels

    @property
    def latency(self) -> int:
        """Cycles from a beat accepted on ``i`` to its accumulator update."""
        return self._cfg.array_latency

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        en = Signal(init=1, name="en")
        regs = set(self.register_levels)

        valid, beat = self.i.valid, self.i.payload
        if cfg.stall_free:
            # Nothing waits: the enable is a constant (Yosys drops the clock enables) and a
            # beat is valid in the array only if it was taken.
            m.d.comb += en.eq(1)
            valid = self.i.valid & self.i.ready
        valids = []
        # (valid, first, last) of every stage from the input on: the last one is at the
        # accumulators.
        stages = [(valid, self.i.payload.first, self.i.payload.last)]
        for k in range(cfg.input_registers):
            # The buffers' read data goes straight into flip-flops: a block RAM's clock-to-out
            # is the slowest start of a path there is (5.8 ns on ECP5), so no logic follows it.
            suffix = "" if k == 0 else f"{k + 1}"
            in_valid = Signal(name=f"in_valid{suffix}")
            in_beat = Signal(array_in_layout(cfg), name=f"in_beat{suffix}", reset_less=True)
            with m.If(en):
                m.d.sync += [in_valid.eq(valid), in_beat.eq(beat)]
            valids.append(in_valid)
            valid, beat = in_valid, in_beat
            stages.append((in_valid, in_beat.first, in_beat.last))
        first, last = beat.first, beat.last

        # Per column: the values still to be summed and the carries still to be added.
        columns = []
        for c in range(cfg.cols):
            vals, cars = [], []
            for r in range(cfg.rows):
                pe = make_pe(cfg)
                m.submodules[f"pe_r{r}_c{c}"] = pe
                m.d.comb += [pe.x.eq(beat.act[r]), pe.w.eq(beat.w[c][r])]
                if cfg.pe_register:
                    m.d.comb += pe.en.eq(en)
                vals.append(pe.term)
                if cfg.pe == "shift":
                    cars.append(pe.carry)
            columns.append((vals, cars))

        def track(suffix):
            """valid / first / last registered along with a pipeline stage."""
            nonlocal valid, first, last
            v = Signal(name=f"valid_{suffix}")
            f = Signal(name=f"first_{suffix}", reset_less=True)
            la = Signal(name=f"last_{suffix}", reset_less=True)
            with m.If(en):
                m.d.sync += [v.eq(valid), f.eq(first), la.eq(last)]
            valids.append(v)
            stages.append((v, f, la))
            valid, first, last = v, f, la

        if cfg.pe_register:
            track("pe")                     # the register inside the PEs

        def register(level):
            nonlocal columns
            track(f"l{level}")
            assigns, new_cols = [], []
            for c, (vals, cars) in enumerate(columns):
                rv = [Signal.like(x, name=f"sum_l{level}_c{c}_{k}", reset_less=True)
                      for k, x in enumerate(vals)]
                rc = [Signal(name=f"carry_l{level}_c{c}_{k}", reset_less=True)
                      for k in range(len(cars))]
                assigns += [d.eq(s) for d, s in zip(rv, vals)]
                assigns += [d.eq(s) for d, s in zip(rc, cars)]
                new_cols.append((rv, rc))
            with m.If(en):
                m.d.sync += assigns
            columns = new_cols

        level = 0
        if level in regs:
            register(level)
        while len(columns[0][0]) > 1:
            level += 1
            new_cols = []
            for c, (vals, cars) in enumerate(columns):
                out, cars = [], list(cars)
                for k in range(0, len(vals) - 1, 2):
                    a, b = vals[k], vals[k + 1]
                    width = max(len(a), len(b)) + 1
                    # Each adder a wire of its own (kept): otherwise Yosys's alumacc merges
                    # a column's unregistered adders (and a multiplier's products) into one
                    # multi-operand $macc, which maccmap builds as a carry-save tree of gates
                    # instead of carry chains: at 8 x 8 on the iCE40 the G = P trees took
                    # 2013 LUTs instead of 1325, the b = 8 multiplier's 1453 instead of 989.
                    node = Signal(signed(width), name=f"add_l{level}_c{c}_{k // 2}",
                                  attrs=KEEP)
                    # A one's complement pair plus one carry cannot leave width bits.
                    m.d.comb += node.eq(a + b + cars.pop(0) if cars else a + b)
                    out.append(node)
                if len(vals) % 2:
                    out.append(vals[-1])
                new_cols.append((out, cars))
            columns = new_cols
            if level in regs:
                register(level)

        # Accumulators: the contract's order, bias first, then saturate after each row-tile.
        o_valid = Signal()                    # the accumulators hold an untaken result
        need_bias = valid & first
        accs = []
        # With stall_free (exact accumulators, no clock enable) the accumulators' carry
        # chains are cut in two: the low half adds each beat, the high half the same beat a
        # cycle later with the low half's registered carry, so neither chain is longer than
        # half the accumulator (the 33-bit chain at G = P was the ECP5 high-Fmax limit).
        # The result leaves a cycle later, its low half from a copy of the low half.
        split = cfg.stall_free and cfg.acc_bits >= SPLIT_ACC_BITS
        for c, (vals, cars) in enumerate(columns):
            sel = first
            if len(stages) >= 2:
                # A copy of `first` per column: one flip-flop driving all C x acc_bits
                # selects was the ECP5 limit at 190 MHz (1.6 ns of its 5.3 were its net).
                sel = Signal(name=f"first_acc_c{c}", reset_less=True, attrs=KEEP)
                with m.If(en):
                    m.d.sync += sel.eq(stages[-2][1])
            upd = en & valid
            if cfg.stall_free and len(stages) >= 2:
                # Without a common enable the beat's valid bit is the accumulators' clock
                # enable: a copy per column, like `first`.
                upd = Signal(name=f"valid_acc_c{c}", attrs=KEEP)
                m.d.sync += upd.eq(stages[-2][0])
            if split:
                accs.append(self._split_accumulator(m, c, vals[0], cars, sel, upd))
                continue
            acc = Signal(signed(cfg.acc_bits), name=f"acc_{c}", reset_less=True)
            total = Mux(sel, 0 if cfg.stall_free else self.bias.payload[c], acc) + vals[0]
            for carry in cars:
                total = total + carry
            with m.If(upd):
                if cfg.saturating:
                    m.d.sync += acc.eq(saturate(total, cfg.acc_bits))
                else:
                    m.d.sync += acc.eq(total)
            accs.append(acc)
        busy = o_valid
        if cfg.stall_free:
            busy = self._stall_free(m, valid, last, accs, delay=int(split))
        elif cfg.registered_stall:
            busy = busy | self._registered_stall(m, en, valid, last, need_bias, accs, o_valid,
                                                 stages)
        else:
            # The accumulators are the output register, free when empty or taken this cycle;
            # the result leaves on o's handshake alone, even if a missing bias holds the
            # pipeline in the same cycle.
            m.d.comb += [
                self.i.ready.eq(en),
                self.i_ready_buf.eq(en),
                self.bias.ready.eq(en & need_bias),
                en.eq((~o_valid | self.o.ready) & ~(need_bias & ~self.bias.valid)),
                self.o.valid.eq(o_valid),
            ]
            m.d.comb += [self.o.payload[c].eq(acc) for c, acc in enumerate(accs)]
            with m.If(self.o.ready):
                m.d.sync += o_valid.eq(0)
            with m.If(en):
                m.d.sync += o_valid.eq(valid & last)
        for v in valids:
            busy = busy | v
        m.d.comb += self.busy.eq(busy)
        return m

    def _registered_stall(self, m, en, valid, last, need_bias, accs, o_valid, stages):
        """``en`` as a register decided a cycle ahead; returns the skid register's valid.

        The price is one result of slack: a result still waiting in the accumulators when the
        array advances moves to the skid register, and ``en`` drops while both hold one.  A
        first beat enters the accumulators only when its bias is sure to be there: on
        ``bias`` already and not taken this cycle, or promised by ``bias_next``.  (The
        promise must not depend on ``bias.ready``, which comes from ``en``.)
        """
        cfg = self._cfg
        s_valid = Signal()                    # the skid register holds the older result
        skid = [Signal(signed(cfg.acc_bits), name=f"skid_{c}", reset_less=True)
                for c in range(cfg.cols)]
        if len(stages) >= 2:
            # en drives every clock enable of the array (thousands): the control logic here
            # and the issuer use a copy of it, so that their paths do not start on that net.
            # (The copy has no reset, or Yosys would merge the two flip-flops; after a reset
            # it equals en from the first cycle on, as en's next value is then 1.)
            ctl = Signal(init=1, name="en_ctl", reset_less=True)
            # A third copy for the buffers' read enables (init 0 keeps Yosys from merging
            # it: in the first cycle nothing is in the array, so the read is enabled anyway).
            buf = Signal(init=0, name="en_buf", reset_less=True)
            # "valid & first" and "valid & last" at the accumulators, and "valid & first" one
            # stage before, as flip-flops of their own (they advance on en like the stages
            # they shadow), so that en's next value is a function of few flip-flops.
            prev_valid, prev_first, prev_last = stages[-2]
            need_bias, push_r = Signal(name="need_bias_r"), Signal(name="push_r")
            with m.If(ctl):
                m.d.sync += [need_bias.eq(prev_valid & prev_first),
                             push_r.eq(prev_valid & prev_last)]
            if len(stages) >= 3:
                pp_valid, pp_first, _ = stages[-3]
                prev_need = Signal(name="prev_need_bias_r")
                with m.If(ctl):
                    m.d.sync += prev_need.eq(pp_valid & pp_first)
            else:
                prev_need = prev_valid & prev_first
            push = ctl & push_r
        else:
            ctl = buf = en
            push = en & valid & last
        m.d.comb += [self.i.ready.eq(ctl), self.i_ready_buf.eq(buf),
                     self.bias.ready.eq(ctl & need_bias)]
        pop = self.o.valid & self.o.ready
        m.d.comb += self.o.valid.eq(o_valid | s_valid)
        m.d.comb += [self.o.payload[c].eq(Mux(s_valid, skid[c], acc))
                     for c, acc in enumerate(accs)]
        # Room for a result after this cycle (with two held, en is low: no push), and whether
        # the beat then at the accumulators is a first one (the stage before moves up when
        # en is high).
        room = Mux(o_valid & s_valid, pop, Mux(o_valid | s_valid, ~push | pop, 1))
        if len(stages) >= 2:
            next_need = Mux(ctl, prev_need, need_bias)
            bias_stays = self.bias.valid & ~(ctl & need_bias)
            en_next = room & (~next_need | bias_stays | self.bias_next)
            m.d.sync += [en.eq(en_next), ctl.eq(en_next), buf.eq(en_next)]
        else:
            # No register before the accumulators: the next beat is not known a cycle
            # ahead, so the bias check stays combinational.
            en_room = Signal(init=1)
            m.d.sync += en_room.eq(room)
            m.d.comb += en.eq(en_room & (~need_bias | self.bias.valid))
        with m.If(pop):
            with m.If(s_valid):
                m.d.sync += s_valid.eq(0)
            with m.Else():
                m.d.sync += o_valid.eq(0)
        # The accumulators are about to be overwritten while holding a result that does not
        # leave this cycle: it moves to the skid register.  With en high the skid register is
        # empty (en is low while both hold a result), so it takes the accumulators whether or
        # not the result leaves: its clock enables do not wait for o.ready.
        with m.If(ctl & valid & o_valid & ~(pop & ~s_valid)):
            m.d.sync += [s_valid.eq(1), o_valid.eq(0)]
        with m.If(en & valid & o_valid):
            m.d.sync += [d.eq(a) for d, a in zip(skid, accs)]
        with m.If(push):
            m.d.sync += o_valid.eq(1)
        return s_valid

    def _split_accumulator(self, m, c, term, cars, first, upd):
        """Column ``c``'s exact accumulator as two halves, the high one a cycle behind;
        returns the result as it is two cycles after its last beat's update (see
        ``elaborate``).  ``first`` restarts the sum, ``upd`` is the update's enable."""
        cfg = self._cfg
        lo_bits = cfg.acc_bits // 2
        hi_bits = cfg.acc_bits - lo_bits
        ext = Signal(signed(cfg.acc_bits), name=f"acc_term_{c}")
        m.d.comb += ext.eq(term)
        lo = Signal(lo_bits, name=f"acc_lo_{c}", reset_less=True)
        hi = Signal(signed(hi_bits), name=f"acc_hi_{c}", reset_less=True)
        # The low half with the column's last carry: below 2 ** (lo_bits + 1), so its carry
        # out is bit lo_bits (one carry is left for the accumulator: R - 1 adders take R).
        lo_sum = Mux(first, 0, lo) + ext[:lo_bits]
        for carry in cars:
            lo_sum = lo_sum + carry
        carry_out = Signal(name=f"acc_carry_{c}", reset_less=True)
        hi_term = Signal(signed(hi_bits), name=f"acc_hi_term_{c}", reset_less=True)
        hi_first = Signal(name=f"first_hi_c{c}", reset_less=True)
        hi_upd = Signal(name=f"valid_hi_c{c}")
        lo_out = Signal(lo_bits, name=f"acc_lo_out_{c}", reset_less=True)
        m.d.sync += [carry_out.eq(lo_sum[lo_bits]), hi_term.eq(ext[lo_bits:]),
                     hi_first.eq(first), hi_upd.eq(upd), lo_out.eq(lo)]
        with m.If(upd):
            m.d.sync += lo.eq(lo_sum[:lo_bits])
        with m.If(hi_upd):
            # (modulo 2 ** hi_bits: the exact sum fits acc_bits)
            m.d.sync += hi.eq(Mux(hi_first, 0, hi) + hi_term + carry_out)
        return Cat(lo_out, hi).as_signed()

    def _stall_free(self, m, valid, last, accs, delay=0):
        """Result FIFO, credits and the bias adder of ``stall_free``; returns "busy".

        Every decision is one LUT of flip-flops, and no enable waits for ``o.ready``: the
        FIFO's "not empty" and the credits' "one left" are the lowest bits of thermometer
        codes (one flip-flop per word, shifted up or down); a result is read out of the FIFO
        only when one of the two output slots is sure to be free (slot credits), together
        with its bias, into registers with no enable, and written a cycle later with the
        bias added into the first slot, which passes its word on to the second; ``o`` shows
        the older word.
        """
        cfg = self._cfg
        width, depth = cfg.acc_bits, RESULT_FIFO_DEPTH
        # Never read and written at one address in a cycle where the read is used (a word is
        # read only while the FIFO holds it, and written only while it has room).
        m.submodules.results = mem = Memory(shape=unsigned(cfg.cols * width), depth=depth,
                                            init=[], attrs={"no_rw_check": 1})
        wr, rd = mem.write_port(), mem.read_port()
        wr_ptr = Signal(range(depth), name="results_wr")
        rd_ptr = Signal(range(depth), name="results_rd")
        # A result is in the accumulators in the cycle after its last beat updated them (the
        # next beat overwrites them at the end of that cycle): written into the FIFO then.
        # (With the split accumulators, ``delay`` = 1: the high halves end a cycle later.)
        push = Signal(name="push")
        early = valid & last
        for k in range(delay):
            stage = Signal(name=f"push_early{k}")
            m.d.sync += stage.eq(early)
            early = stage
        m.d.sync += push.eq(early)
        m.d.comb += [wr.addr.eq(wr_ptr), wr.data.eq(Cat(*accs)), wr.en.eq(push),
                     rd.addr.eq(rd_ptr), rd.en.eq(1)]
        with m.If(push):
            m.d.sync += wr_ptr.eq(wr_ptr + 1)          # (depth is a power of two)

        def thermometer(name, size, init, up, down):
            """A count 0..size as ``size`` flip-flops, bit k set while the count > k."""
            t = Signal(size, init=(1 << init) - 1, name=name)
            step_up, step_down = up & ~down, down & ~up
            # Bit by bit as and / or of the neighbours (thermometer codes: t[k + 1] implies
            # t[k]), with no constant to mux in: a multiplexer with a constant input becomes
            # a flip-flop's synchronous set or reset, which split the credits' update over
            # three LUTs and the ECP5 LSR input (0.4 ns of setup), the G = P limit there.
            for k in range(size):
                below = step_up if k == 0 else step_up & t[k - 1]
                above = t[k + 1] if k + 1 < size else 0
                m.d.sync += t[k].eq(above | (t[k] & ~step_down) | below)
            return t

        # `read` is kept as a net of its own: one LUT of three nearby flip-flops (the bias
        # valid is a copy kept next to the array), which the placer puts by the counts it
        # steps rather than merged into the bias reader's logic across the chip.
        read = Signal(name="result_read", attrs=KEEP)
        pop = Signal(name="result_pop")
        held = thermometer("results_held", depth, 0, push, read)
        free = thermometer("slots_free", 2, 2, pop, read)
        m.d.comb += [read.eq(held[0] & self.bias.valid & free[0]), self.bias.ready.eq(read)]
        with m.If(read):
            m.d.sync += rd_ptr.eq(rd_ptr + 1)

        # Credits: FIFO words neither held nor promised to a result on its way.  A last
        # beat takes one, a result read out of the FIFO gives one back a cycle later (from
        # `got`, a flip-flop: `read` already has a wide fanout).  Every beat waits while
        # none is left, not only a last one: `ready` is then a flip-flop itself, and the
        # buffers' read enables (spread over the device) one LUT of it and the issuer's
        # valid (with `~last |` in front it was two LUTs, the ECP5 G = P limit: 5.4 ns, half
        # of it the route to the block RAMs).  Other beats then wait only where the output
        # side has held back RESULT_FIFO_DEPTH results already.
        take_last, got = Signal(name="take_last"), Signal(name="result_got")
        credits = thermometer("credits", depth, depth, got, take_last)
        ready = credits[0]
        m.d.comb += [self.i.ready.eq(ready), self.i_ready_buf.eq(ready),
                     take_last.eq(self.i.valid & self.i.payload.last & ready)]

        # The read result (the read port's register) and its bias, then the two slots.  The
        # bias is added here: exact, as the accumulator is wide enough for bias + sum, so it
        # is for the sum alone.
        bias = [Signal.like(b, name=f"result_bias_{c}", reset_less=True)
                for c, b in enumerate(self.bias.payload)]
        m.d.sync += got.eq(read)
        m.d.sync += [d.eq(b) for d, b in zip(bias, self.bias.payload)]
        data = [rd.data[c * width:(c + 1) * width].as_signed() for c in range(cfg.cols)]
        # Two slots as a two-word shift register: a result always enters slot 0, which
        # passes its word on to slot 1 at the same time, so each sum bit drives one
        # flip-flop (the one in its adder's slice) and slot 1 takes flip-flops only.  The
        # words held are always none, slot 0, or both (slot 1 the older), which is what
        # the thermometer `full` counts: `o` shows slot 1 while both are full, else slot 0.
        # Slot 1 may take slot 0's word unconditionally: a new result arrives only while a
        # slot is free (the slot credits), so slot 1 then holds no word or one that leaves
        # in this cycle.
        slots = [[Signal(signed(width), name=f"result_s{k}_{c}", reset_less=True)
                  for c in range(cfg.cols)] for k in range(2)]
        full = thermometer("slots_full", 2, 0, got, pop)
        with m.If(got):
            m.d.sync += [r.eq(x + b) for r, x, b in zip(slots[0], data, bias)]
            m.d.sync += [older.eq(newer) for older, newer in zip(slots[1], slots[0])]
        m.d.comb += [self.o.valid.eq(full[0]), pop.eq(full[0] & self.o.ready)]
        m.d.comb += [self.o.payload[c].eq(Mux(full[1], s1, s0))
                     for c, (s0, s1) in enumerate(zip(*slots))]
        in_flight = push
        if delay:
            in_flight = in_flight | early
        return in_flight | held[0] | got | full[0]
