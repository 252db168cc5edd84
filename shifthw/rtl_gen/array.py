"""The PE array: R x C processing elements, C pipelined adder trees, C accumulators.

Every beat on ``i`` carries one row-tile: R activations (lane r goes to every PE of array row
r) and the R x C weights of one weight buffer entry.  Column c's R terms are summed by an adder
tree and added to accumulator c.  With shift PEs the trees also absorb the PEs' negation
carries: each two-input adder takes one pending carry as its carry-in, and the one carry left
over (R carries, R - 1 adders) goes into the accumulator's adder.

Pipelining: with ``input_register`` (the default) every beat is registered before the PEs,
so the buffers' read data meets no logic in the cycle it leaves the block RAM; then
``pipeline_stages`` registers are placed between the PEs and the accumulator at evenly spaced
tree levels (level 0 is the PE outputs).  All registers advance together on one enable, so
backpressure on ``o`` (or a missing bias) stalls the whole array, and nothing is ever lost
or duplicated.

Accumulation follows the contract with the saturation order of
``golden.shift_matmul(..., chunk=R)``: a beat flagged ``first`` loads
``saturate(bias + tree_sum)`` (the bias comes from the ``bias`` stream, one word per
column-tile), every other beat ``saturate(acc + tree_sum)``; a beat flagged ``last`` makes the
accumulators a result on ``o``.  Saturation logic is only built when ``acc_bits`` is narrower
than the formula's width for the largest K the buffers take; at that width it provably never
triggers.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .config import EngineConfig, resolve_config
from .layouts import acc_word_layout, array_in_layout, bias_word_layout
from .output import saturate
from .pe import make_pe

__all__ = ["PEArray"]


class PEArray(wiring.Component):
    """R x C shift (or multiply) accumulate array with stream interfaces.

    Parameters
    ----------
    config : EngineConfig
        (or the same parameters as keywords): rows, cols, act_bits, weight_bits, guard_bits,
        pe, acc_bits, input_register, pipeline_stages are used.

    Members
    -------
    i : In(stream.Signature(array_in_layout))
        Row-tiles: ``act`` (R lanes), ``w`` (C x R weights), ``first``, ``last``.
    bias : In(stream.Signature(bias_word_layout))
        One word of C biases per column-tile, taken with its ``first`` beat.
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
        en = Signal()
        regs = set(self.register_levels)

        valid, beat = self.i.valid, self.i.payload
        valids = []
        if cfg.input_register:
            # The buffers' read data goes straight into flip-flops: a block RAM's clock-to-out
            # is the slowest start of a path there is (5.8 ns on ECP5), so no logic follows it.
            in_valid = Signal(name="in_valid")
            in_beat = Signal(array_in_layout(cfg), name="in_beat", reset_less=True)
            with m.If(en):
                m.d.sync += [in_valid.eq(valid), in_beat.eq(beat)]
            valids.append(in_valid)
            valid, beat = in_valid, in_beat
        first, last = beat.first, beat.last

        # Per column: the values still to be summed and the carries still to be added.
        columns = []
        for c in range(cfg.cols):
            vals, cars = [], []
            for r in range(cfg.rows):
                pe = make_pe(cfg)
                m.submodules[f"pe_r{r}_c{c}"] = pe
                m.d.comb += [pe.x.eq(beat.act[r]), pe.w.eq(beat.w[c][r])]
                vals.append(pe.term)
                if cfg.pe == "shift":
                    cars.append(pe.carry)
            columns.append((vals, cars))

        def register(level):
            nonlocal valid, first, last, columns
            v = Signal(name=f"valid_l{level}")
            f = Signal(name=f"first_l{level}", reset_less=True)
            la = Signal(name=f"last_l{level}", reset_less=True)
            assigns = [v.eq(valid), f.eq(first), la.eq(last)]
            new_cols = []
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
            valids.append(v)
            valid, first, last, columns = v, f, la, new_cols

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
                    node = Signal(signed(width), name=f"add_l{level}_c{c}_{k // 2}")
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
        o_valid = self.o.valid
        need_bias = valid & first
        # The output register is free when empty or taken this cycle; the result leaves on
        # o's handshake alone, even if a missing bias holds the pipeline in the same cycle.
        m.d.comb += [
            en.eq((~o_valid | self.o.ready) & ~(need_bias & ~self.bias.valid)),
            self.i.ready.eq(en),
            self.bias.ready.eq(en & need_bias),
        ]
        for c, (vals, cars) in enumerate(columns):
            acc = Signal(signed(cfg.acc_bits), name=f"acc_{c}", reset_less=True)
            base = Mux(first, self.bias.payload[c], acc)
            total = base + vals[0]
            for carry in cars:
                total = total + carry
            with m.If(en & valid):
                if cfg.saturating:
                    m.d.sync += acc.eq(saturate(total, cfg.acc_bits))
                else:
                    m.d.sync += acc.eq(total)
            m.d.comb += self.o.payload[c].eq(acc)
        with m.If(self.o.ready):
            m.d.sync += o_valid.eq(0)
        with m.If(en):
            m.d.sync += o_valid.eq(valid & last)
        busy = o_valid
        for v in valids:
            busy = busy | v
        m.d.comb += self.busy.eq(busy)
        return m
