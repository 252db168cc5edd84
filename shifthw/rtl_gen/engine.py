"""The layer engine: a whole Linear or im2col Conv2d layer through one PE array.

Streams (layouts in :mod:`.layouts`): ``desc`` (one descriptor per layer tile), ``params``
(the tile's bias words, then its weight entries, only when the descriptor says ``reload``),
``act`` (``k_tiles`` words of R activations per input vector, ``count`` vectors) and ``out``
(``n_tiles`` words of C outputs per input vector).

Schedule of one descriptor::

    IDLE --desc--> SETUP --> START --> LOAD_BIAS --> LOAD_WEIGHTS --> RUN --> DRAIN --> IDLE
                                    \\______________(reload = 0)______/

* LOAD_BIAS / LOAD_WEIGHTS take ``params`` words into the bias buffer (``n_tiles *
  bias_beats`` words) and the weight buffer (``k_tiles * n_tiles`` entries, column-tile major:
  entry ``j * k_tiles + i`` holds the weights of outputs ``j*C..`` and inputs ``i*R..``).  Each
  buffer row is written ``param_word_bits`` at a time through a write port with that
  granularity, so no assembly register is needed.
* RUN: a *loader* writes each input vector's ``k_tiles`` words into one of two activation
  banks while an *issuer* reads the other: for every column-tile j and row-tile i it reads
  activation word i and weight entry ``j * k_tiles + i`` (one cycle ahead of the array) and
  hands them to the array with ``first = (i == 0)``, ``last = (i == k_tiles - 1)``.  A *bias
  reader* streams the bias words in the same column-tile order.  In steady state the array
  takes one beat every cycle: ``count * k_tiles * n_tiles`` cycles for the descriptor.
* DRAIN: wait until the array and the output stage are empty (so the next descriptor may
  change the buffers and the output settings), then IDLE.  Results wait in the output FIFO.

No buffer is ever read and written at one address in one cycle where the read data is used:
the loader writes only a bank the issuer is not reading, weights and biases are written only
in the load states, and reads in other cycles are speculative and discarded.  The memories
therefore carry Yosys' ``no_rw_check`` attribute (no collision emulation logic).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for, ceil_log2

from .array import PEArray
from .config import EngineConfig, resolve_config
from .layouts import (act_word_layout, bias_entry_layout, bias_entry_words, descriptor_layout,
                      out_word_layout, param_word_shape, weight_entry_layout, weight_entry_words)
from .output import OutputStage
from .synth import KEEP

__all__ = ["LayerEngine", "engine_signature"]


def _one_hot(index, count: int):
    return Cat(index == k for k in range(count))


def _counter(count: int, name: str) -> Signal:
    # At least one bit: zero-width registers make odd Verilog ([-1:0] ranges).
    return Signal(range(max(count, 2)), name=name)


def engine_signature(cfg: EngineConfig) -> wiring.Signature:
    """The ports of a :class:`LayerEngine` (without building one)."""
    return wiring.Signature({
        "desc": In(stream.Signature(descriptor_layout(cfg))),
        "params": In(stream.Signature(param_word_shape(cfg))),
        "act": In(stream.Signature(act_word_layout(cfg))),
        "out": Out(stream.Signature(out_word_layout(cfg))),
        "busy": Out(1),
    })


class LayerEngine(wiring.Component):
    """Runs whole layers (Linear, or Conv2d from im2col patches) on a PE array.

    Parameters
    ----------
    config : EngineConfig
        (or the same parameters as keywords).

    Members
    -------
    desc : In(stream.Signature(descriptor_layout))
    params : In(stream.Signature(unsigned(param_word_bits)))
    act : In(stream.Signature(act_word_layout))
    out : Out(stream.Signature(out_word_layout))
    busy : Out(1)
        A descriptor is being executed or results wait in the output FIFO.
    """

    def __init__(self, *, config: EngineConfig | None = None, **params):
        cfg = resolve_config(config, params, owner=self)
        self._cfg = cfg
        self._array = PEArray(config=cfg)
        super().__init__(engine_signature(cfg))

    @property
    def config(self) -> EngineConfig:
        return self._cfg

    @property
    def array(self) -> PEArray:
        """The PE array inside (its ``i`` stream shows when the array is busy)."""
        return self._array

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        word = cfg.param_word_bits
        m.submodules.array = arr = self._array
        m.submodules.output = ost = OutputStage(config=cfg)

        # -- buffers ---------------------------------------------------------------------
        wpe, wpb, beats = weight_entry_words(cfg), bias_entry_words(cfg), cfg.bias_beats
        bank_bits = ceil_log2(cfg.k_depth)
        bank = 1 << bank_bits
        # stall_free is the high-Fmax engine: its control keeps a few more flags as flip-flops.
        fast = cfg.stall_free
        # Both high-Fmax modes step the vectors-left counters a cycle late (`lagged_left`).
        lag = fast or cfg.registered_stall
        # No buffer is ever read and written at one address in one cycle where the read
        # matters (see the module docstring), so Yosys need not emulate collisions.  (At least
        # two rows each: a zero-width address makes odd Verilog.)
        attrs = {"no_rw_check": 1}
        m.submodules.weights = w_mem = Memory(shape=unsigned(wpe * word),
                                              depth=max(cfg.weight_depth, 2), init=[],
                                              attrs=attrs)
        m.submodules.biases = b_mem = Memory(shape=unsigned(wpb * word),
                                             depth=max(cfg.bias_depth * beats, 2), init=[],
                                             attrs=attrs)
        m.submodules.acts = a_mem = Memory(shape=act_word_layout(cfg), depth=2 * bank, init=[],
                                           attrs=attrs)
        w_wr, w_rd = w_mem.write_port(granularity=word), w_mem.read_port()
        b_wr, b_rd = b_mem.write_port(granularity=word), b_mem.read_port()
        a_wr, a_rd = a_mem.write_port(), a_mem.read_port()

        # -- descriptor ------------------------------------------------------------------
        d = Signal(descriptor_layout(cfg))
        # Registered once per descriptor: the row- and column-tile indices one and two
        # before the last ones and whether there are one or two tiles.  The loader and the
        # issuer keep "this is the last word / tile / vector" in flags computed a step
        # ahead, so no counter comparison sits between a handshake and the state it changes.
        kt_prev = Signal.like(d.k_tiles, name="kt_prev")
        nt_prev = Signal.like(d.n_tiles, name="nt_prev")
        kt_prev2 = Signal.like(d.k_tiles, name="kt_prev2")   # k_tiles - 3
        # The rows of a load: a bias entry's beats - 3 or a weight tile's k_tiles - 3, so as
        # wide as l_row (a bias entry may have more beats than a layer has row-tiles).
        rows_prev2 = Signal(max(len(d.k_tiles), bits_for(beats - 1)), name="rows_prev2")
        nt_prev2 = Signal.like(d.n_tiles, name="nt_prev2")   # n_tiles - 3
        kt_one = Signal(name="kt_one")
        nt_one = Signal(name="nt_one")
        kt_two = Signal(name="kt_two")
        nt_two = Signal(name="nt_two")
        cnt_one = Signal(name="count_one")
        cnt_nz = Signal(name="count_nz")

        # load counters
        beat = Signal(max(wpe, wpb), init=1, name="beat")   # one-hot: the word of the row
        l_addr = _counter(max(cfg.weight_depth, cfg.bias_depth * beats), "l_addr")
        l_row = _counter(max(beats, cfg.max_k_tiles), "l_row")
        l_col = _counter(cfg.max_n_tiles, "l_col")
        l_row_last = Signal()                # l_row is the last row of the entry / tile
        l_col_last = Signal()                # l_col == n_tiles - 1
        # The loads keep every "last" a flip-flop, so the params handshake only enables
        # registers whose next values come from flip-flops: the load's rows per tile (one,
        # two, minus three: the bias entry's rows, then k_tiles), the next row / column
        # being the last (`_pen`), the present word being the last of its row.
        p_ready = Signal(name="params_ready")   # load_bias | load_weights
        beat_last = Signal(name="beat_last")
        # With stall_free also the column's and the load's last words as flags:
        col_end = Signal(name="col_end")     # beat_last & l_row_last
        load_end = Signal(name="load_end")   # beat_last & l_row_last & l_col_last
        l_row_pen = Signal()
        l_col_pen = Signal()
        rows_one = Signal(name="rows_one")
        rows_two = Signal(name="rows_two")
        # loader (activations into banks)
        full = Signal(2)
        set_full, clr_full = Signal(2), Signal(2)
        full_next = Signal(2)
        ld_bank = Signal()
        ld_word = _counter(bank, "ld_word")
        ld_left = Signal(cfg.count_bits)     # vectors still to load
        ld_left_m1 = Signal(cfg.count_bits)  # ld_left - 1 (no carry chain after a handshake)
        ld_last = Signal()                   # ld_word == k_tiles - 1
        # With stall_free, ld_last is the low bit of a one-hot token (bit i: i more words in
        # this vector), shifted down by the act handshake: ld_last's next value is then one
        # LUT of the handshake instead of a comparison of ld_word.
        ld_tok = Signal(bank, name="ld_tok")
        kt_tok = Signal(bank, name="kt_tok")  # 1 << (k_tiles - 1)
        kt_last = Signal(bank_bits)           # k_tiles - 1
        ld_more = Signal()                   # ld_left != 0
        ld_left_one = Signal()               # ld_left == 1
        load_ok = Signal()                   # running & ~full[ld_bank] & ld_more, a step ahead
        other_full = Signal()                # full[~ld_bank], a flip-flop
        kick = Signal()                      # the first cycle of RUN
        # The issuer's handshakes; with registered_stall kept as nets of their own, so that
        # synthesis maps each to one LUT of flip-flops for the many registers they enable.
        issue = Signal(name="issue", attrs=KEEP if cfg.registered_stall else {})
        vec_end = Signal(name="vec_end", attrs=KEEP if cfg.registered_stall else {})
        # issuer (buffers into the array)
        is_bank = Signal()
        is_row = _counter(bank, "is_row")
        is_col = _counter(cfg.max_n_tiles, "is_col")
        is_addr = _counter(cfg.weight_depth, "is_addr")
        is_left = Signal(cfg.count_bits)     # vectors still to issue
        is_left_m1 = Signal(cfg.count_bits)  # is_left - 1
        is_row_first = Signal()              # is_row == 0
        is_row_last = Signal()               # is_row == k_tiles - 1
        is_col_last = Signal()               # is_col == n_tiles - 1
        is_vec_last = Signal()               # is_row_last & is_col_last, a flip-flop
        # "The next tile is the last": is_row == k_tiles - 2 and is_col == n_tiles - 2, kept
        # a step ahead too, so the last-tile flags' next values compare no counter.
        is_row_pen = Signal()
        is_col_pen = Signal()
        is_left_one = Signal()               # is_left == 1
        is_bank_next = Signal()
        bank_ok = Signal()                   # full[is_bank], kept a step ahead
        next_ok = Signal()                   # full[~is_bank], kept a step ahead
        same_bank = Signal(init=1)           # ld_bank == is_bank, a flip-flop
        issue_done = Signal()                # the last beat was issued in the cycle before
        s1_valid = Signal()
        s1_first = Signal(reset_less=True)
        s1_last = Signal(reset_less=True)

        # The control's states, one flip-flop each (one-hot), so that every state test is
        # a flip-flop and no transition waits for a decoder: binary-coded, the state's next
        # value and enable were 5 LUT levels on the UP5K, the limit of the registered
        # stall there.
        idle = Signal(init=1, name="st_idle")
        setup = Signal(name="st_setup")      # buffers' bank state reset
        start = Signal(name="st_start")
        load_bias = Signal(name="st_load_bias")
        load_weights = Signal(name="st_load_weights")
        running = Signal(name="st_run")
        draining = Signal(name="st_drain")
        last_issue = Signal()
        quiet = Signal()                     # DRAIN: nothing left inside (a cycle late)
        m.d.comb += full_next.eq(Mux(setup, 0, (full | set_full) & ~clr_full))
        m.d.sync += full.eq(full_next)

        # Buffer writes, one cycle after the params word is taken: the word, its row and the
        # write enables wait in registers, so the enables reach the block RAMs (spread over
        # the device) straight from flip-flops.  The last write lands in the first cycle
        # after the load states, before any read of the buffers can use it.
        wr_data = Signal(word, name="wr_data", reset_less=True)
        wr_addr = Signal.like(l_addr, name="wr_addr", reset_less=True)
        w_we, b_we = Signal(wpe, name="w_we"), Signal(wpb, name="b_we")
        m.d.sync += [w_we.eq(0), b_we.eq(0), kick.eq(0)]
        with m.If(self.params.valid & self.params.ready):
            m.d.sync += [wr_data.eq(self.params.payload), wr_addr.eq(l_addr)]
        m.d.comb += [
            b_wr.addr.eq(wr_addr[:len(b_wr.addr)]), b_wr.data.eq(wr_data.replicate(wpb)),
            b_wr.en.eq(b_we),
            w_wr.addr.eq(wr_addr[:len(w_wr.addr)]), w_wr.data.eq(wr_data.replicate(wpe)),
            w_wr.en.eq(w_we),
        ]

        def goto(src, dst):
            m.d.sync += [src.eq(0), dst.eq(1)]

        # A descriptor takes three cycles to start: IDLE registers it, SETUP derives the
        # per-descriptor values from the register and START the flags from those, so that
        # no handshake and no comparison share a path into the counters.
        m.d.comb += self.desc.ready.eq(idle)
        with m.If(idle & self.desc.valid):
            m.d.sync += d.eq(self.desc.payload)
            goto(idle, setup)

        with m.If(setup):
            m.d.sync += [
                kt_prev.eq(d.k_tiles - 2),
                nt_prev.eq(d.n_tiles - 2),
                kt_prev2.eq(d.k_tiles - 3),
                nt_prev2.eq(d.n_tiles - 3),
                kt_one.eq(d.k_tiles == 1),
                nt_one.eq(d.n_tiles == 1),
                kt_two.eq(d.k_tiles == 2),
                nt_two.eq(d.n_tiles == 2),
                cnt_one.eq(d.count == 1),
                cnt_nz.eq(d.count != 0),
                # (the lagging counters of the high-Fmax modes keep the count minus one only)
                *([] if lag else [ld_left.eq(d.count), is_left.eq(d.count)]),
                ld_left_m1.eq(d.count - 1),
                is_left_m1.eq(d.count - 1),
                is_row_first.eq(1),
                beat.eq(1), l_addr.eq(0), l_row.eq(0), l_col.eq(0),
                l_row_last.eq(beats == 1), l_row_pen.eq(beats == 2),
                rows_one.eq(beats == 1), rows_two.eq(beats == 2), rows_prev2.eq(beats - 3),
                beat_last.eq(wpb == 1),
                ld_bank.eq(0), ld_word.eq(0),
                is_row.eq(0), is_col.eq(0), is_addr.eq(0),
            ]
            if fast:
                m.d.sync += [col_end.eq((wpb == 1) & (beats == 1)),
                             kt_last.eq((d.k_tiles - 1)[:bank_bits])]
            goto(setup, start)

        with m.If(start):
            if fast:
                tok = (Const(1, 1) << kt_last)[:bank]
                m.d.sync += [kt_tok.eq(tok), ld_tok.eq(tok)]
            else:
                m.d.sync += ld_last.eq(kt_one)
            m.d.sync += [is_row_last.eq(kt_one),
                         is_vec_last.eq(kt_one & nt_one),
                         is_row_pen.eq(kt_two), is_col_pen.eq(nt_two),
                         l_col_pen.eq(nt_two),
                         is_col_last.eq(nt_one), l_col_last.eq(nt_one),
                         ld_more.eq(cnt_nz), ld_left_one.eq(cnt_one),
                         is_left_one.eq(cnt_one)]
            if fast:
                m.d.sync += load_end.eq(col_end & nt_one)
            with m.If(d.reload):
                m.d.sync += p_ready.eq(1)
                goto(start, load_bias)
            with m.Elif(cnt_nz):
                m.d.sync += kick.eq(1)
                goto(start, running)
            with m.Else():
                goto(start, idle)

        def load_done(first=(), last=()):
            """The load's last word: the weights follow the biases, then RUN (or IDLE when
            the descriptor has no vectors).  ``first`` and ``last`` are the caller's own
            resets of the bias load's counters, around the shared ones."""
            with m.If(load_bias):
                m.d.sync += [*first, rows_one.eq(kt_one), rows_two.eq(kt_two),
                             rows_prev2.eq(kt_prev2), *last]
                goto(load_bias, load_weights)
            with m.Else():
                m.d.sync += p_ready.eq(0)
                with m.If(ld_more):
                    m.d.sync += kick.eq(1)
                    goto(load_weights, running)
                with m.Else():
                    goto(load_weights, idle)

        if not fast:
            # The loads: `beat` walks one-hot over the words of a buffer row (it is the write
            # enable), bias entries first, then weight entries.
            take = self.params.valid & p_ready
            row_end = take & beat_last
            m.d.comb += self.params.ready.eq(p_ready)
            with m.If(take):
                m.d.sync += beat.eq(beat.rotate_left(1))
                with m.If(load_bias):
                    m.d.sync += [b_we.eq(beat[:wpb]), beat_last.eq(beat[wpb - 2] if wpb > 1 else 1)]
                with m.Else():
                    m.d.sync += [w_we.eq(beat[:wpe]), beat_last.eq(beat[wpe - 2] if wpe > 1 else 1)]
            with m.If(row_end):
                m.d.sync += [beat.eq(1), beat_last.eq(Mux(load_bias, wpb == 1, wpe == 1)),
                             l_addr.eq(l_addr + 1), l_row.eq(l_row + 1),
                             l_row_last.eq(l_row_pen), l_row_pen.eq(l_row == rows_prev2)]
                with m.If(l_row_last):
                    m.d.sync += [l_row.eq(0), l_row_last.eq(rows_one), l_row_pen.eq(rows_two),
                                 l_col.eq(l_col + 1), l_col_last.eq(l_col_pen),
                                 l_col_pen.eq(l_col == nt_prev2)]
                    with m.If(l_col_last):
                        m.d.sync += [l_col.eq(0), l_col_last.eq(nt_one), l_col_pen.eq(nt_two)]
                        load_done(first=[l_addr.eq(0), l_row_last.eq(kt_one),
                                         l_row_pen.eq(kt_two)],
                                  last=[beat_last.eq(wpe == 1)])

        else:
            # stall_free: the same loads, with the column's and the load's last words as
            # flags of their own, and every register under one enable (the handshake and
            # one flag) with a next value from flip-flops: each enable is one LUT of the
            # handshake.  The next values of beat_last, l_row_last, l_col_last, then of the
            # flags, each as it becomes in a handshake:
            bias_end = load_end & load_bias      # the bias entries' last word
            n_beat_last = Mux(beat_last,
                              Mux(bias_end, wpe == 1, Mux(load_bias, wpb == 1, wpe == 1)),
                              Mux(load_bias, beat[wpb - 2] if wpb > 1 else 1,
                                  beat[wpe - 2] if wpe > 1 else 1))
            n_row_last = Mux(col_end, Mux(bias_end, kt_one, rows_one), l_row_pen)
            n_col_last = Mux(load_end, nt_one, l_col_pen)
            n_col_end = n_beat_last & Mux(beat_last, n_row_last, l_row_last)
            n_load_end = n_col_end & Mux(col_end, n_col_last, l_col_last)
            take = self.params.valid & p_ready
            m.d.comb += self.params.ready.eq(p_ready)
            with m.If(take):
                m.d.sync += [beat.eq(Mux(beat_last, 1, beat.rotate_left(1))),
                             beat_last.eq(n_beat_last), col_end.eq(n_col_end),
                             load_end.eq(n_load_end)]
                with m.If(load_bias):
                    m.d.sync += b_we.eq(beat[:wpb])
                with m.Else():
                    m.d.sync += w_we.eq(beat[:wpe])
            with m.If(take & beat_last):
                m.d.sync += [l_addr.eq(Mux(bias_end, 0, l_addr + 1)),
                             l_row.eq(Mux(col_end, 0, l_row + 1)), l_row_last.eq(n_row_last),
                             l_row_pen.eq(Mux(col_end, Mux(bias_end, kt_two, rows_two),
                                              l_row == rows_prev2))]
            with m.If(take & col_end):
                m.d.sync += [l_col.eq(Mux(load_end, 0, l_col + 1)), l_col_last.eq(n_col_last),
                             l_col_pen.eq(Mux(load_end, nt_two, l_col == nt_prev2))]
            with m.If(take & load_end):
                load_done()

        with m.If(running & issue_done):
            goto(running, draining)
        with m.If(draining & quiet):
            goto(draining, idle)

        # DRAIN ends a cycle after the array and the output stage are empty (they cannot fill
        # again in DRAIN; quiet is low in DRAIN's first cycle, computed while running).
        m.d.sync += quiet.eq(draining & ~s1_valid & ~arr.busy & ~ost.busy)

        def equals_two(count, step, name):
            """``count == 2`` from flip-flops: the comparisons with 2 and 3 are registered
            every cycle, with whether ``count`` was decremented (``step``) in that cycle."""
            eq2, eq3 = Signal(name=f"{name}_eq2"), Signal(name=f"{name}_eq3")
            stepped = Signal(name=f"{name}_stepped")
            m.d.sync += [eq2.eq(count == 2), eq3.eq(count == 3), stepped.eq(step)]
            return Mux(stepped, eq3, eq2)

        def lagged_left(count_m1, step, name):
            """registered_stall / stall_free: ``count_m1`` (a vectors-left counter minus
            one) steps down a cycle after ``step``, so the enable of its flip-flops is a
            flip-flop instead of the handshake.  Its carry chain is cut in two: the low half
            steps, and the high half a cycle later when the low half wrapped (`borrow`, a
            flip-flop), so neither chain is longer than half the counter.  While the high
            half waits, the counter reads as its true value plus ``2**lo_bits`` with all low
            bits one, which is neither its true value nor 1, 2 or 3 (nor is the true value),
            so the comparisons below are right throughout.  Returns ``count == 2`` (that
            is, ``count_m1 == 1``) as it is before this cycle's step, from flip-flops: the
            comparisons with 1, 2 and 3 of the lagging counter are registered every cycle,
            with the steps of the last two cycles."""
            q, q2 = Signal(name=f"{name}_step_q"), Signal(name=f"{name}_step_q2")
            eqs = [Signal(name=f"{name}_eq{k + 1}") for k in (1, 2, 3)]
            m.d.sync += [q.eq(step), q2.eq(q),
                         *(e.eq(count_m1 == k) for e, k in zip(eqs, (1, 2, 3)))]
            bits = len(count_m1)
            lo_bits = bits // 2 if bits >= 6 else bits
            lo, hi = count_m1[:lo_bits], count_m1[lo_bits:]
            if lo_bits < bits:
                borrow = Signal(name=f"{name}_borrow")
                m.d.sync += borrow.eq(q & ~setup & (lo == 0))
                with m.If(borrow & ~setup):
                    m.d.sync += hi.eq(hi - 1)
            with m.If(q & ~setup):
                m.d.sync += lo.eq(lo - 1)
            return Mux(q & q2, eqs[2], Mux(q | q2, eqs[1], eqs[0]))

        # -- loader: act words into the free bank ----------------------------------------
        # With registered_stall, `load_ok` is a register, so the act handshake is one LUT of
        # two flip-flops.  Otherwise the loader's enable is combinational (as the issuer's
        # stall is): load_ok's next value waits for the issuer's handshake, and on the UP5K
        # that path measured 2-4 MHz slower.
        if cfg.registered_stall:
            can_load = load_ok
        else:
            can_load = running & ~full.bit_select(ld_bank, 1) & ld_more
        if fast:
            m.d.comb += ld_last.eq(ld_tok[0])
        fin = Signal(name="ld_fin")          # the last word of a vector is written
        m.d.comb += fin.eq(self.act.valid & can_load & ld_last)
        if lag:
            ld_left_two = lagged_left(ld_left_m1, fin, "ld_left")
        else:
            ld_left_two = equals_two(ld_left, fin, "ld_left")
        m.d.comb += [
            self.act.ready.eq(can_load),
            a_wr.addr.eq(Cat(ld_word[:bank_bits], ld_bank)),
            a_wr.data.eq(self.act.payload),
        ]
        with m.If(self.act.valid & can_load):
            m.d.comb += a_wr.en.eq(1)
            m.d.sync += ld_word.eq(ld_word + 1)
            if fast:
                m.d.sync += ld_tok.eq(Mux(ld_last, kt_tok, ld_tok >> 1))
            else:
                m.d.sync += ld_last.eq(ld_word == kt_prev)
            with m.If(ld_last):
                m.d.comb += set_full.eq(_one_hot(ld_bank, 2))
                if not fast:
                    m.d.sync += ld_last.eq(kt_one)
                step = [] if lag else [ld_left.eq(ld_left_m1), ld_left_m1.eq(ld_left_m1 - 1)]
                m.d.sync += [ld_word.eq(0), ld_bank.eq(~ld_bank), *step,
                             ld_more.eq(~ld_left_one), ld_left_one.eq(ld_left_two)]
        # load_ok a step ahead: after a vector's last word, the other bank must be empty (or
        # emptied by the issuer this cycle) and a vector left; otherwise it stays, or turns
        # on when the issuer empties the loader's bank, or after RUN's first cycle.  The issuer
        # takes the banks in the order they were filled, so a full bank the loader waits for
        # (after its last word: the other bank; while waiting: its own) is the issuer's, and
        # the issuer's `vec_end` alone says it is emptied: load_ok's next value needs neither
        # `full` nor the banks' numbers, only `other_full` (= full[~ld_bank], a flip-flop).
        if cfg.registered_stall:
            with m.If(setup):
                m.d.sync += other_full.eq(0)
            with m.Elif(fin):
                m.d.sync += other_full.eq(1)       # the bank just filled becomes the other
            with m.Elif(vec_end & ~same_bank):      # same_bank == (ld_bank == is_bank)
                m.d.sync += other_full.eq(0)
            with m.If(running):
                m.d.sync += load_ok.eq(Mux(
                    load_ok,
                    Mux(self.act.valid & ld_last, ~ld_left_one & (~other_full | vec_end), 1),
                    ld_more & (vec_end | kick)))

        # -- issuer: buffers into the array, memories read one cycle ahead ---------------
        # A bank is full only while running (the loader fills it in RUN, the issuer empties
        # every bank it issues from before RUN ends), so `bank_ok` (= full[is_bank], a
        # register) is all the issuer asks: `issue` is one LUT of three flip-flops, and
        # `vec_end` (the last beat of an input vector) one of four (`is_vec_last`).
        advance = ~s1_valid | arr.i.ready
        rd_advance = ~s1_valid | arr.i_ready_buf      # the same, for the read enables
        if lag:
            is_left_two = lagged_left(is_left_m1, vec_end, "is_left")
        else:
            is_left_two = equals_two(is_left, vec_end, "is_left")
        m.d.comb += [
            issue.eq(bank_ok & advance),
            vec_end.eq(issue & is_vec_last),
            clr_full.eq(Mux(vec_end, _one_hot(is_bank, 2), 0)),
            is_bank_next.eq(Mux(setup, 0, is_bank ^ vec_end)),
            a_rd.addr.eq(Cat(is_row[:bank_bits], is_bank)), a_rd.en.eq(rd_advance),
            w_rd.addr.eq(is_addr[:len(w_rd.addr)]), w_rd.en.eq(rd_advance),
            last_issue.eq(vec_end & is_left_one),
        ]
        # bank_ok = full_next[is_bank_next], written with bank_ok == full[is_bank] (the
        # issuer's bank cannot be filled by the loader while it is full, nor the other bank
        # emptied by the issuer), which keeps it shallow.
        # Both from flip-flops and the two handshakes (fin, vec_end) only: which bank the
        # loader fills is `same_bank` (= ld_bank == is_bank), and the issuer's other bank's
        # state `next_ok` (cleared when the issuer moves on: the bank it leaves is empty).
        m.d.sync += [is_bank.eq(is_bank_next),
                     bank_ok.eq(Mux(vec_end, next_ok | (fin & ~same_bank),
                                    bank_ok | (fin & same_bank))),
                     next_ok.eq(Mux(setup | vec_end, 0, next_ok | (fin & ~same_bank))),
                     same_bank.eq(Mux(setup, 1, same_bank ^ fin ^ vec_end))]
        m.d.sync += issue_done.eq(last_issue)
        with m.If(advance):
            m.d.sync += [s1_valid.eq(issue), s1_first.eq(is_row_first),
                         s1_last.eq(is_row_last)]
        with m.If(issue):
            m.d.sync += [is_row.eq(is_row + 1), is_addr.eq(is_addr + 1),
                         is_row_first.eq(0), is_row_last.eq(is_row_pen),
                         is_row_pen.eq(is_row == kt_prev2),
                         is_vec_last.eq(is_row_pen & is_col_last)]
            with m.If(is_row_last):
                m.d.sync += [is_row.eq(0), is_row_first.eq(1), is_row_last.eq(kt_one),
                             is_row_pen.eq(kt_two),
                             is_col.eq(is_col + 1), is_col_last.eq(is_col_pen),
                             is_col_pen.eq(is_col == nt_prev2),
                             is_vec_last.eq(kt_one & is_col_pen)]
                with m.If(is_col_last):
                    m.d.sync += [is_col.eq(0), is_col_last.eq(nt_one), is_addr.eq(0),
                                 is_col_pen.eq(nt_two), is_vec_last.eq(kt_one & nt_one),
                                 *([] if lag else [is_left.eq(is_left_m1),
                                                    is_left_m1.eq(is_left_m1 - 1)]),
                                 is_left_one.eq(is_left_two)]
        entry = weight_entry_layout(cfg)
        m.d.comb += [
            arr.i.valid.eq(s1_valid),
            arr.i.payload.act.eq(a_rd.data),
            arr.i.payload.w.eq(w_rd.data[:entry.size]),
            arr.i.payload.first.eq(s1_first),
            arr.i.payload.last.eq(s1_last),
        ]

        # -- bias reader: one word of C biases per column-tile, in the issuer's order ------
        active = running | draining
        b_valid = Signal()       # the read port holds bias buffer word b_addr - 1
        b_beat = _counter(beats, "b_beat")
        b_col = _counter(cfg.max_n_tiles, "b_col")
        b_col_last = Signal()    # b_col == n_tiles - 1
        b_col_pen = Signal()     # b_col == n_tiles - 2
        b_addr = _counter(cfg.bias_depth * beats, "b_addr")
        b_read = Signal()
        rd_word = bias_entry_layout(cfg)(b_rd.data[:bias_entry_layout(cfg).size])
        q = cfg.bias_lanes
        if cfg.registered_stall:
            # Two register stages after the block RAM: the gather, a shift register that
            # each read word enters at the top and moves down bias_lanes lanes per word (its
            # top lanes take the read data and nothing else, so on the ECP5 they become the
            # block RAM's output register, see estimate.bram_pack), and the bias output
            # register next to the array, loaded with a whole gathered word.  The promise
            # to the array (`bias_next`): the bias will be in the output register in the
            # next cycle whether or not the array takes the present one.
            slots = [Signal.like(rd_word[0], name=f"gather_{n}", reset_less=True)
                     for n in range(beats * q)]
            out = [Signal.like(rd_word[0], name=f"bias_out_{c}", reset_less=True)
                   for c in range(cfg.cols)]
            # (Both it and its copy below are kept: Yosys would merge a plain register into
            # its kept twin.)
            g_valid = Signal(name="g_valid")
            o_valid = Signal(name="bias_out_valid", attrs=KEEP)
            g_beat = _counter(beats, "g_beat")
            if beats == 1:
                # One read per word: the output register refills in the cycle the array
                # takes its word, so a bias can go every cycle (layers with K <= R).
                move = g_valid & (~o_valid | arr.bias.ready)
            else:
                # The gather delivers a word every `beats` >= 2 cycles at best, so the
                # output register may refill in the cycle after the array took its word,
                # from registers only: arr.bias.ready reaches no clock enable of the
                # gather (on the UP5K it was the limit: 4 LUT levels across the chip).
                move = g_valid & ~o_valid
            take = b_valid & (~g_valid | move)
            # The promise (g_valid with one read per word, else g_valid & ~bias_out_valid)
            # is a flip-flop of its own, kept, which the placer puts by the array's enable,
            # whose next value it enters.  It is loaded with the next values of g_valid and
            # bias_out_valid, as they are assigned below, so the enable's next value waits
            # for none of the reader's logic (on the UP5K, g_valid into the enable through
            # the promise was a limit: 4 LUT levels, 17.7 ns).  (The stall-free array takes
            # no promise.)
            promise = 0
            if not cfg.stall_free:
                promise = Signal(name="bias_promise", attrs=KEEP)
                g_next = active & ((take & (g_beat == beats - 1)) | (g_valid & ~move))
                o_next = active & (move | (o_valid & ~arr.bias.ready))
                m.d.sync += promise.eq(g_next if beats == 1 else g_next & ~o_next)
            # The array sees a kept copy of bias_out_valid, which the placer puts by the
            # array's control: with stall_free by its result FIFO counts, whose read decision
            # (kept as a net of its own there) is one LUT of nearby flip-flops; otherwise by
            # the array's enable, whose next value it enters (on the UP5K that path, from
            # the reader's own flip-flop, was the limit: 4 LUT levels, 18.0 ns, most of it
            # routing).  Only this reader waits for the original.
            a_valid = Signal(name="bias_out_valid_a", attrs=KEEP)
            m.d.comb += [
                b_read.eq(~b_valid | take),
                arr.bias.valid.eq(a_valid),
                arr.bias_next.eq(promise),
            ]
            m.d.comb += [arr.bias.payload[c].eq(out[c]) for c in range(cfg.cols)]
            with m.If(arr.bias.ready):
                m.d.sync += [o_valid.eq(0), a_valid.eq(0)]
            with m.If(move):
                m.d.sync += [o_valid.eq(1), a_valid.eq(1), g_valid.eq(0)]
                m.d.sync += [out[c].eq(slots[c]) for c in range(cfg.cols)]
            with m.If(take):
                m.d.sync += [slots[n].eq(slots[n + q]) for n in range((beats - 1) * q)]
                m.d.sync += [slots[(beats - 1) * q + lane].eq(rd_word[lane])
                             for lane in range(q)]
                m.d.sync += g_beat.eq(g_beat + 1)
                with m.If(g_beat == beats - 1):
                    m.d.sync += [g_beat.eq(0), g_valid.eq(1)]
            with m.If(~active):
                m.d.sync += [o_valid.eq(0), a_valid.eq(0), g_valid.eq(0), g_beat.eq(0)]
        elif beats == 1:
            m.d.comb += [
                b_read.eq(~b_valid | arr.bias.ready),
                arr.bias.valid.eq(b_valid),
                arr.bias.payload.eq(rd_word),
            ]
        else:
            # Gather ceil(C / bias_lanes) narrow words into one word of C biases, each word
            # written into its own lanes (which keeps the clock enables of the
            # combinational stall path at half the fanout: 4.5 MHz more on the UP5K).
            slots = [Signal.like(rd_word[0], name=f"gather_{n}", reset_less=True)
                     for n in range(beats * q)]
            g_valid = Signal()
            g_beat = _counter(beats, "g_beat")
            take = b_valid & (~g_valid | arr.bias.ready)
            m.d.comb += [b_read.eq(~b_valid | take), arr.bias.valid.eq(g_valid)]
            m.d.comb += [arr.bias.payload[c].eq(slots[c]) for c in range(cfg.cols)]
            with m.If(arr.bias.ready):
                m.d.sync += g_valid.eq(0)
            with m.If(take):
                m.d.sync += g_beat.eq(g_beat + 1)
                with m.Switch(g_beat):
                    for k in range(beats):
                        with m.Case(k):
                            m.d.sync += [slots[k * q + lane].eq(rd_word[lane])
                                         for lane in range(q)]
                with m.If(g_beat == beats - 1):
                    m.d.sync += [g_beat.eq(0), g_valid.eq(1)]
            with m.If(~active):
                m.d.sync += [g_valid.eq(0), g_beat.eq(0)]
        m.d.comb += [b_rd.addr.eq(b_addr[:len(b_rd.addr)]), b_rd.en.eq(b_read)]
        with m.If(active & b_read):
            m.d.sync += [b_valid.eq(1), b_addr.eq(b_addr + 1), b_beat.eq(b_beat + 1)]
            with m.If(b_beat == beats - 1):
                m.d.sync += [b_beat.eq(0), b_col.eq(b_col + 1), b_col_last.eq(b_col_pen),
                             b_col_pen.eq(b_col == nt_prev2)]
                with m.If(b_col_last):
                    m.d.sync += [b_col.eq(0), b_addr.eq(0), b_col_last.eq(nt_one),
                                 b_col_pen.eq(nt_two)]
        with m.If(~active):
            m.d.sync += [b_valid.eq(0), b_beat.eq(0), b_col.eq(0), b_addr.eq(0),
                         b_col_last.eq(nt_one), b_col_pen.eq(nt_two)]

        # -- output stage and FIFO ---------------------------------------------------------
        wiring.connect(m, arr.o, ost.i)
        m.d.comb += [
            ost.out_shift.eq(d.out_shift),
            ost.relu.eq(d.relu),
            ost.round_half_up.eq(d.round_half_up),
        ]
        if cfg.out_depth:
            out_size = out_word_layout(cfg).size
            m.submodules.fifo = fifo = SyncFIFOBuffered(width=out_size, depth=cfg.out_depth)
            m.d.comb += [
                fifo.w_data.eq(ost.o.payload),
                fifo.w_en.eq(ost.o.valid),
                ost.o.ready.eq(fifo.w_rdy),
                self.out.payload.eq(fifo.r_data),
                self.out.valid.eq(fifo.r_rdy),
                fifo.r_en.eq(self.out.ready),
                self.busy.eq(~idle | fifo.r_rdy),
            ]
        else:
            wiring.connect(m, ost.o, wiring.flipped(self.out))
            m.d.comb += self.busy.eq(~idle | self.out.valid)
        return m
