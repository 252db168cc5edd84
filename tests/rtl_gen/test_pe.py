"""Processing elements: exhaustive against the contract, and no multiplier in the shift PE."""

import ast
import inspect
import textwrap

import numpy as np
import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from shifthw import numerics as nx
from shifthw.rtl_gen.config import EngineConfig
from shifthw.rtl_gen.pe import MultPE, ShiftPE, make_pe, pe_register_bits


def _run_comb(dut, cases):
    """Set every (x, w) of ``cases`` on the PE and collect term + carry."""
    got = []

    async def bench(ctx):
        for x, w in cases:
            ctx.set(dut.x, x)
            ctx.set(dut.w.as_value() if hasattr(dut.w, "as_value") else dut.w, w)
            got.append(ctx.get(dut.term) + ctx.get(dut.carry))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    return np.array(got)


@pytest.mark.parametrize("guard", [0, 4, 14])
@pytest.mark.parametrize("fold", [True, False])
def test_shift_pe_exhaustive(guard, fold):
    a, b = 8, 5
    xs = np.arange(nx.act_min(a), nx.act_max(a) + 1)
    codes = np.arange(1 << b)
    # The PE takes canonical codes (the host writes them); the terms are every code's.
    hw = nx.canonical_codes(codes, a, b, guard)
    cases = [(int(x), int(h)) for h in hw for x in xs]
    dut = ShiftPE(act_bits=a, weight_bits=b, guard_bits=guard, fold_negation=fold)
    got = _run_comb(dut, cases)
    want = nx.shift_term(np.tile(xs, len(codes)), np.repeat(codes, len(xs)), b, guard)
    assert np.array_equal(got, want)
    # The folded term (one's complement + carry) fits in A + G bits, as the issue says.
    assert len(dut.term) == a + guard + (0 if fold else 1)


@pytest.mark.parametrize("a, b, guard, levels", [
    (8, 5, 0, 3), (8, 5, 4, 4), (8, 5, 14, 4), (4, 5, 0, 2), (8, 2, 0, 0), (16, 8, 0, 4)])
def test_canonical_codes_keep_terms_and_size_the_shifter(a, b, guard, levels):
    codes = np.arange(1 << b)
    hw = nx.canonical_codes(codes, a, b, guard)
    xs = np.arange(nx.act_min(a), nx.act_max(a) + 1, max(1, (1 << a) // 64))
    for c, h in zip(codes, hw):
        assert np.array_equal(nx.shift_term(xs, int(h), b, guard),
                              nx.shift_term(xs, int(c), b, guard))
    top = nx.shifter_max(a, b, guard)
    field = hw & nx.zero_field(b)
    assert field[field != nx.zero_field(b)].max(initial=0) <= top
    assert top.bit_length() == levels
    # The PE built for these parameters gives every code's term from its canonical code...
    dut = ShiftPE(act_bits=a, weight_bits=b, guard_bits=guard)
    got = _run_comb(dut, [(int(x), int(h)) for h in hw for x in xs])
    assert np.array_equal(got, nx.shift_term(np.tile(xs, len(codes)),
                                             np.repeat(codes, len(xs)), b, guard))
    # ...and a wrong term from a code the host did not canonicalise (smaller shifter).
    if levels < b - 1 and top < nx.max_shift(b):
        raw = nx.encode_weight(-1, top + 1, b)
        got = _run_comb(dut, [(nx.act_min(a), raw)])
        assert got[0] != nx.shift_term(nx.act_min(a), raw, b, guard)
    with pytest.raises(ValueError, match="weight code out of range"):
        nx.canonical_codes(1 << b, a, b, guard)


def test_mult_pe_exhaustive():
    a, b = 8, 5
    dut = MultPE(act_bits=a, weight_bits=b)
    cases = [(x, w) for w in range(-16, 16) for x in range(-128, 128)]
    got = _run_comb(dut, cases)
    assert np.array_equal(got, [x * w for x, w in cases])


def _run_split(dut, cases):
    """A split PE, inputs every cycle with ``en`` high: each term one cycle later; then a
    cycle with ``en`` low and other inputs, which must hold the last term."""
    got = []

    async def bench(ctx):
        w_port = dut.w.as_value() if hasattr(dut.w, "as_value") else dut.w
        ctx.set(dut.en, 1)
        for x, w in cases:
            ctx.set(dut.x, x)
            ctx.set(w_port, w)
            await ctx.tick()
            got.append(ctx.get(dut.term) + ctx.get(dut.carry))
        ctx.set(dut.en, 0)
        x, w = cases[0]
        ctx.set(dut.x, x)
        ctx.set(w_port, w)
        await ctx.tick()
        got.append(ctx.get(dut.term) + ctx.get(dut.carry))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return np.array(got[:-1]), got[-1]


@pytest.mark.parametrize("guard", [0, 4, 14])
def test_split_shift_pe_is_one_cycle_late_and_exact(guard):
    a, b = 8, 5
    xs = np.arange(nx.act_min(a), nx.act_max(a) + 1)
    codes = np.arange(1 << b)
    hw = nx.canonical_codes(codes, a, b, guard)
    cases = [(int(x), int(h)) for h in hw for x in xs]
    got, held = _run_split(ShiftPE(act_bits=a, weight_bits=b, guard_bits=guard, split=True),
                           cases)
    want = nx.shift_term(np.tile(xs, len(codes)), np.repeat(codes, len(xs)), b, guard)
    assert np.array_equal(got, want)
    assert held == want[-1] != want[0]


@pytest.mark.parametrize("b", [2, 5, 8])
def test_split_mult_pe_is_one_cycle_late_and_exact(b):
    a = 8
    ws = range(-(1 << (b - 1)), 1 << (b - 1))
    cases = [(x, w) for w in ws for x in range(-128, 128, 3 if b == 8 else 1)]
    got, held = _run_split(MultPE(act_bits=a, weight_bits=b, split=True), cases)
    assert np.array_equal(got, [x * w for x, w in cases])
    assert held == cases[-1][0] * cases[-1][1] != cases[0][0] * cases[0][1]


@pytest.mark.parametrize("kw", [dict(pe="shift", guard_bits=0), dict(pe="shift", guard_bits=4),
                                dict(pe="shift", guard_bits=None),
                                dict(pe="shift", weight_bits=3, act_bits=4, guard_bits=0),
                                dict(pe="mult", weight_bits=2), dict(pe="mult", weight_bits=5),
                                dict(pe="mult")])
def test_pe_register_bits_counts_the_split_pe_flip_flops(kw):
    """The energy estimate's count is the width of what the PE's sync domain assigns."""
    cfg = EngineConfig(**{"act_bits": 8, **kw, "pe_register": True})
    frag = Fragment.get(make_pe(cfg), None)
    assigned = {s.name: len(s) for st in frag.statements["sync"] for s in st._lhs_signals()}
    assert sum(assigned.values()) == pe_register_bits(cfg)


def test_split_must_be_a_bool():
    with pytest.raises(TypeError, match="split must be a bool"):
        MultPE(act_bits=8, weight_bits=5, split=1)
    with pytest.raises(TypeError, match="split must be a bool"):
        ShiftPE(act_bits=8, weight_bits=5, guard_bits=0, split="yes")


def _multiplications(tree) -> list[str]:
    return [ast.unparse(n) for n in ast.walk(tree)
            if isinstance(n, ast.BinOp) and isinstance(n.op, (ast.Mult, ast.Pow, ast.MatMult))
            or isinstance(n, ast.AugAssign) and isinstance(n.op, (ast.Mult, ast.Pow))]


def test_shift_pe_source_has_no_multiplication():
    source = textwrap.dedent(inspect.getsource(ShiftPE))
    assert _multiplications(ast.parse(source)) == []
    # Not even a '*' character in the hardware description itself.
    assert "*" not in inspect.getsource(ShiftPE.elaborate)
    # The check can fail: the multiplier PE has one.
    assert _multiplications(ast.parse(textwrap.dedent(inspect.getsource(MultPE)))) != []


@pytest.mark.parametrize("kw, word", [
    (dict(act_bits=1, weight_bits=5, guard_bits=0), "act_bits"),
    (dict(act_bits=8, weight_bits=9, guard_bits=0), "weight_bits"),
    (dict(act_bits=8, weight_bits=5, guard_bits=15), "guard_bits"),
    (dict(act_bits=8, weight_bits=5, guard_bits=0, fold_negation=1), "fold_negation"),
])
def test_shift_pe_checks(kw, word):
    with pytest.raises((TypeError, ValueError), match=word):
        ShiftPE(**kw)
