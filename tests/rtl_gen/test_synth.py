"""The Yosys pass that keeps deliberate copies of a register apart (synth.keep_flops)."""

import json

from amaranth.back import verilog
from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from shifthw import toolchain
from shifthw.rtl_gen.synth import KEEP, keep_flops


class _Copies(wiring.Component):
    """Three registers of the same input: two marked KEEP, one plain."""
    d: In(1)
    q: Out(3)

    def elaborate(self, platform):
        m = Module()
        a = Signal(name="copy_a", attrs=KEEP)
        b = Signal(name="copy_b", attrs=KEEP)
        c = Signal(name="plain")
        m.d.sync += [a.eq(self.d), b.eq(self.d), c.eq(self.d)]
        m.d.comb += self.q.eq(Cat(a, b, c))
        return m


def _flip_flops(tmp_path, pre: list[str]) -> int:
    (tmp_path / "copies.v").write_text(verilog.convert(_Copies(), name="copies"))
    script = ["read_verilog copies.v", *pre, "synth -top copies",
              "tee -q -o stat.json stat -json"]
    toolchain.run_yosys(["-q", "-p", "; ".join(script)], cwd=tmp_path)
    cells = json.loads((tmp_path / "stat.json").read_text())["design"]["num_cells_by_type"]
    return sum(n for kind, n in cells.items() if "dff" in kind.lower())


def test_marked_copies_survive_synthesis_and_plain_ones_merge(tmp_path):
    # Without the pass Yosys merges all three into one flip-flop; with it the two marked
    # copies stay (the plain one merges into one of them).
    assert _flip_flops(tmp_path, []) == 1
    assert _flip_flops(tmp_path, keep_flops("copies")) == 2
