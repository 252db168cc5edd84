"""Processing elements: the DeepShift shift PE and the integer-multiplier baseline.

Both are combinational blocks with the same ports, so the PE array is one design for both
(with ``split`` each has one register inside and an ``en`` input, the array's
``pe_register`` setting):

* ``x``: the A-bit signed activation;
* ``w``: the weight (a contract weight code for :class:`ShiftPE`, a signed b-bit integer for
  :class:`MultPE`);
* ``term`` and ``carry``: the product is ``term + carry``.

:class:`ShiftPE` computes the contract's term ``(-1)**s * ((x << G) >> p)``
(:func:`shifthw.numerics.shift_term`) with an arithmetic right shifter and no multiplier.  By
default its negation is folded into the adder that follows: ``term`` is the one's complement
``~((x << G) >> p)`` and ``carry`` is 1, so the array's adder tree adds the carry into a spare
carry input instead of a negation adder per PE.  With ``fold_negation=False`` the PE negates by
itself (``term`` is then one bit wider, because ``-(-2**(A+G-1))`` needs it) and ``carry`` is 0.

The shifter covers the shifts that can change a term, 0..:func:`~shifthw.numerics.shifter_max`
= ``min(P, A + G - 1)``: it takes *canonical* codes (:func:`~shifthw.numerics.canonical_codes`,
larger shifts lowered to that maximum, the same terms), which is what the host writes into
the weight buffers.  When that maximum leaves the top bit of the shift field to the zero
code alone (A = 8, b = 5, G = 0: shifts 0..7, zero code 15), the zero test is that one bit
and the shifter has one mux level less: 27 iCE40 LUTs per PE instead of 32.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .. import numerics as nx

__all__ = ["ShiftPE", "MultPE", "make_pe", "partial_product_bits", "pe_register_bits",
           "shifter_muxes"]


def _silence(obj) -> None:
    # A component whose arguments were rejected is never elaborated: no "unused" warning.
    obj._MustUse__silence = True


class ShiftPE(wiring.Component):
    """One shift-and-add processing element (no multiplication anywhere).

    Parameters
    ----------
    act_bits : int
        Activation width A (2..16).
    weight_bits : int
        Weight code width b (2..8); P = 2**(b-1) - 2.
    guard_bits : int
        G (0..P): the term is ``(x << G) >> p``, A + G bits wide.  G = P is exact, G = 0 is
        DeepShift's kernel truncation.
    fold_negation : bool
        Emit a one's complement and a carry (default) instead of a negated term.
    split : bool
        A register inside the PE (default False): the shifter's upper levels before it, its
        lower levels, the zero code and the negation after, so ``term`` comes one cycle
        after ``x`` and ``w`` (the register loads when ``en`` is high).

    Members
    -------
    x : In(signed(A))
    w : In(weight_code_layout(b))
        A canonical code (shift at most :attr:`shifter_max`, or the zero code); a larger
        shift gives a wrong term.
    term : Out(signed(A + G)), or signed(A + G + 1) without folding
    carry : Out(1)
    en : In(1), only with ``split``
    """

    def __init__(self, *, act_bits: int, weight_bits: int, guard_bits: int,
                 fold_negation: bool = True, split: bool = False):
        try:
            self._act_bits = nx.check_act_bits(act_bits)
            self._weight_bits = nx.check_weight_bits(weight_bits)
            self._guard_bits = nx.check_guard_bits(guard_bits, weight_bits)
            if not isinstance(fold_negation, bool):
                raise TypeError(f"fold_negation must be a bool, not {fold_negation!r}")
            _check_split(split)
        except (TypeError, ValueError):
            _silence(self)
            raise
        self._fold = fold_negation
        self._split = split
        width = act_bits + guard_bits + (0 if fold_negation else 1)
        super().__init__({
            "x": In(signed(act_bits)),
            "w": In(nx.weight_code_layout(weight_bits)),
            "term": Out(signed(width)),
            "carry": Out(unsigned(1)),
            **({"en": In(1)} if split else {}),
        })

    @property
    def act_bits(self) -> int:
        return self._act_bits

    @property
    def weight_bits(self) -> int:
        return self._weight_bits

    @property
    def guard_bits(self) -> int:
        return self._guard_bits

    @property
    def fold_negation(self) -> bool:
        return self._fold

    @property
    def split(self) -> bool:
        return self._split

    @property
    def shifter_max(self) -> int:
        """The largest shift the shifter applies (codes must be canonical)."""
        return nx.shifter_max(self._act_bits, self._weight_bits, self._guard_bits)

    def elaborate(self, platform):
        m = Module()
        g = self._guard_bits
        top = self.shifter_max
        field = self._weight_bits - 1
        if top < 1 << (field - 1):
            # Canonical non-zero codes never set the field's top bit: it is the zero test,
            # and the shifter needs only the bits of 0..top.
            zero = self.w.shift[field - 1]
            amount = self.w.shift[:top.bit_length()]
        else:
            zero = self.w.shift == nx.zero_field(self._weight_bits)
            amount = self.w.shift
        if self._split:
            # The upper shift levels before the register, the lower ones and the zero code
            # after it (the register's inputs then come from the activation and the shift
            # field alone, through half the levels).
            lo = len(amount) // 2
            coarse = Signal(signed(len(self.x) + g), name="coarse", reset_less=True)
            fine = Signal(lo, name="fine", reset_less=True)
            zero_r = Signal(name="zero", reset_less=True)
            sign_r = Signal(name="sign", reset_less=True)
            with m.If(self.en):
                m.d.sync += [coarse.eq(self.x.shift_left(g) >> Cat(Const(0, lo), amount[lo:])),
                             fine.eq(amount[:lo]), zero_r.eq(zero), sign_r.eq(self.w.sign)]
            mag = Mux(zero_r, 0, coarse).as_signed()
            amount, zero, sign = fine, zero_r, sign_r
        else:
            # The zero code zeroes the activation before the shifter (0 >> p is 0), which
            # fits in the shifter's first LUT level instead of a gate after it.
            # Guard bits first (a constant left shift is wiring), then the arithmetic right
            # shifter: floor before the sign, as the contract and DeepShift's kernel do.
            mag = Mux(zero, 0, self.x).as_signed().shift_left(g)
            sign = self.w.sign
        negative = sign & ~zero
        if len(amount):
            mag = mag >> amount
        if self._fold:
            # One's complement here, +1 as the carry-in of the adder that takes this term.
            m.d.comb += [
                self.term.eq(mag ^ negative.replicate(len(mag)).as_signed()),
                self.carry.eq(negative),
            ]
        else:
            m.d.comb += [
                self.term.eq(Mux(negative, -mag, mag)),
                self.carry.eq(0),
            ]
        return m


class MultPE(wiring.Component):
    """The multiplier baseline: ``term = x * w`` with a b-bit signed integer weight.

    Parameters
    ----------
    act_bits : int
        Activation width A (2..16).
    weight_bits : int
        Signed integer weight width b (2..8).

    Members
    -------
    x : In(signed(A))
    w : In(signed(b))
    term : Out(signed(A + b))
    carry : Out(1), always 0 (same ports as :class:`ShiftPE`)
    en : In(1), only with ``split``

    With ``split`` the multiplier is pipelined as one would build it by hand: the products
    of ``x`` with the weight's lower ``b // 2`` bits (unsigned) and with its upper bits
    (signed) are registered, and ``term`` is their shifted sum, one cycle later.
    """

    def __init__(self, *, act_bits: int, weight_bits: int, split: bool = False):
        try:
            self._act_bits = nx.check_act_bits(act_bits)
            self._weight_bits = nx.check_weight_bits(weight_bits)
            _check_split(split)
        except (TypeError, ValueError):
            _silence(self)
            raise
        self._split = split
        super().__init__({
            "x": In(signed(act_bits)),
            "w": In(signed(weight_bits)),
            "term": Out(signed(act_bits + weight_bits)),
            "carry": Out(unsigned(1)),
            **({"en": In(1)} if split else {}),
        })

    @property
    def act_bits(self) -> int:
        return self._act_bits

    @property
    def weight_bits(self) -> int:
        return self._weight_bits

    @property
    def split(self) -> bool:
        return self._split

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.carry.eq(0)
        if not self._split:
            m.d.comb += self.term.eq(self.x * self.w)
            return m
        h = self._weight_bits // 2
        lo_w, hi_w = self.w.as_unsigned()[:h], self.w[h:].as_signed()
        lo_bits, hi_bits = partial_product_bits(self._act_bits, self._weight_bits)
        p_lo = Signal(signed(lo_bits), name="p_lo", reset_less=True)
        p_hi = Signal(signed(hi_bits), name="p_hi", reset_less=True)
        with m.If(self.en):
            m.d.sync += [p_lo.eq(self.x * lo_w), p_hi.eq(self.x * hi_w)]
        m.d.comb += self.term.eq((p_hi << h) + p_lo)
        return m


def shifter_muxes(act_bits: int, weight_bits: int, guard_bits: int) -> int:
    """Two-input multiplexers of the shift PE's logarithmic shifter, ``(x << G) >> p`` for
    the shifts 0..:func:`~shifthw.numerics.shifter_max`, least significant step first: a bit
    costs one where its two candidates differ, and none where both are the same bit of ``x``,
    the same zero guard bit or the same sign bit (so the G zero bits and the sign fill make
    the stages narrower than A + G).  Measured on the iCE40 the PE takes about 1.2 LUTs per
    multiplexer at G = 0, 4 and P (26 / 47 / 65 LUTs for 21 / 40 / 53 at A = 8, b = 5),
    where A + G bits times the stages (24 / 48 / 88) overstated G = P."""
    width = act_bits + guard_bits
    bits: list = [None] * guard_bits + list(range(act_bits))   # None: a zero guard bit
    count = 0
    for k in range(nx.shifter_max(act_bits, weight_bits, guard_bits).bit_length()):
        step = 1 << k
        new = []
        for j in range(width):
            a, b = bits[j], bits[min(j + step, width - 1)]
            if a == b:
                new.append(a)
            else:
                count += 1
                new.append(("mux", k, j))
        bits = new
    return count


def _check_split(split) -> None:
    if not isinstance(split, bool):
        raise TypeError(f"split must be a bool, not {split!r}")


def partial_product_bits(act_bits: int, weight_bits: int) -> tuple[int, int]:
    """Widths of :class:`MultPE`'s two partial products with ``split``: the activation times
    the weight's low half (unsigned, b // 2 bits) and times its high half (signed)."""
    h = weight_bits // 2
    return act_bits + h + 1, act_bits + weight_bits - h


def pe_register_bits(cfg) -> int:
    """Flip-flops inside one PE with ``split`` (``EngineConfig.pe_register``), for the
    energy estimate: shift, the partly shifted term, the lower shift bits, zero and sign;
    mult, the two partial products."""
    a, b = cfg.act_bits, cfg.weight_bits
    if cfg.pe == "shift":
        return a + cfg.guard_bits + nx.shifter_stages(a, b, cfg.guard_bits) // 2 + 2
    return sum(partial_product_bits(a, b))


def make_pe(cfg):
    """The PE an :class:`~.config.EngineConfig` asks for."""
    if cfg.pe == "shift":
        return ShiftPE(act_bits=cfg.act_bits, weight_bits=cfg.weight_bits,
                       guard_bits=cfg.guard_bits, split=cfg.pe_register)
    return MultPE(act_bits=cfg.act_bits, weight_bits=cfg.weight_bits, split=cfg.pe_register)
