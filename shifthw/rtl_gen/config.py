"""The parameters of one generated engine, checked once.

:class:`EngineConfig` is the single object that the RTL (:mod:`.pe`, :mod:`.array`,
:mod:`.engine`), the stream layouts (:mod:`.layouts`), the host driver (:mod:`.host`) and the
generator (:mod:`.generate`) read their parameters from.  Every check names the parameter and
the bad value.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import asdict, dataclass

from amaranth.utils import ceil_log2

from .. import numerics as nx

__all__ = ["PE_KINDS", "RESULT_FIFO_DEPTH", "EngineConfig", "resolve_config",
           "check_verilog_name"]

#: The processing-element kinds: DeepShift shift-and-add, or the integer-multiplier baseline.
PE_KINDS = ("shift", "mult")

#: Results (column-tiles of C accumulators) the PE array's result FIFO holds with
#: ``stall_free``: 16 is one LUT-RAM primitive deep on the ECP5 and more than the credit round
#: trip (array latency + 4 cycles) of an array of up to 16 rows at its deepest pipeline, so
#: credits do not hold back the issue of a layer whose results the output side keeps up with.
RESULT_FIFO_DEPTH = 16

#: The reserved words of Verilog (IEEE 1364-2005) and SystemVerilog (IEEE 1800-2017): a
#: module named after one does not parse in Verilator, Yosys or a vendor tool.
_VERILOG_KEYWORDS = frozenset("""
    accept_on alias always always_comb always_ff always_latch and assert assign assume automatic
    before begin bind bins binsof bit break buf bufif0 bufif1 byte case casex casez cell chandle
    checker class clocking cmos config const constraint context continue cover covergroup
    coverpoint cross deassign default defparam design disable dist do edge else end endcase
    endchecker endclass endclocking endconfig endfunction endgenerate endgroup endinterface
    endmodule endpackage endprimitive endprogram endproperty endspecify endsequence endtable
    endtask enum event eventually expect export extends extern final first_match for force
    foreach forever fork forkjoin function generate genvar global highz0 highz1 if iff ifnone
    ignore_bins illegal_bins implements implies import incdir include initial inout input inside
    instance int integer interconnect interface intersect join join_any join_none large let
    liblist library local localparam logic longint macromodule matches medium modport module
    nand negedge nettype new nexttime nmos nor noshowcancelled not notif0 notif1 null or output
    package packed parameter pmos posedge primitive priority program property protected pull0
    pull1 pulldown pullup pulsestyle_ondetect pulsestyle_onevent pure rand randc randcase
    randsequence rcmos real realtime ref reg reject_on release repeat restrict return rnmos
    rpmos rtran rtranif0 rtranif1 s_always s_eventually s_nexttime s_until s_until_with
    scalared sequence shortint shortreal showcancelled signed small soft solve specify specparam
    static string strong strong0 strong1 struct super supply0 supply1 sync_accept_on
    sync_reject_on table tagged task this throughout time timeprecision timeunit tran tranif0
    tranif1 tri tri0 tri1 triand trior trireg type typedef union unique unique0 unsigned until
    until_with untyped use uwire var vectored virtual void wait wait_order wand weak weak0 weak1
    while wildcard wire with within wor xnor xor
""".split())


#: The longest module name taken (it is a file name too, ``<name>.v``).
MAX_NAME_CHARS = 128


def check_verilog_name(name, what: str = "name") -> str:
    """``name`` if it can name a Verilog module, else a ``ValueError`` naming ``what``.

    A simple identifier (ASCII letters, digits and ``_``, not starting with a digit) of at
    most :data:`MAX_NAME_CHARS` characters that is not a Verilog or SystemVerilog keyword.
    """
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"{what} must be a Verilog identifier (ASCII letters, digits and _, "
                         f"not starting with a digit), not {name!r}")
    if len(name) > MAX_NAME_CHARS:
        # (It names files too: <name>.v, and the build folders' files.)
        raise ValueError(f"{what} must be at most {MAX_NAME_CHARS} characters, not "
                         f"{len(name)} ({name[:20]}...)")
    if name in _VERILOG_KEYWORDS:
        raise ValueError(f"{what} {name!r} is a Verilog / SystemVerilog keyword: give another")
    return name


#: Default weight width per PE kind (shift: DeepShift's 5-bit codes; mult: 8-bit integers).
_DEFAULT_WEIGHT_BITS = {"shift": 5, "mult": 8}


def _int(name: str, value, lo: int, hi: int) -> int:
    """``value`` as a Python int (numpy integers too), or raise naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in {lo}..{hi}, not {value!r}")
    return int(value)


@dataclass(frozen=True, kw_only=True)
class EngineConfig:
    """Parameters of a PE array and the layer engine around it.

    Parameters
    ----------
    rows, cols : int
        Array size R x C: R activation lanes (the K direction) and C output columns.
    act_bits : int
        Activation width A (2..16).
    weight_bits : int or None
        Weight width b (2..8): shift-code bits for ``pe="shift"`` (default 5), signed integer
        bits for ``pe="mult"`` (default 8).
    guard_bits : int or None
        G (0..P) of the shift PE; default P (exact).  Does not apply to ``pe="mult"``, whose
        products are exact: leave it None (or 0).
    pe : str
        ``"shift"`` (no multiplier anywhere) or ``"mult"`` (a real multiplier per PE).
    acc_bits : int or None
        Accumulator width.  Default: ``acc_bits_for(A, G, max_k)`` for shift, and
        ``A + b + ceil(log2 max_k) + 2`` for mult; a narrower one saturates after every
        row-tile of R terms (``golden.shift_matmul(..., chunk=R)``).
    input_registers : int
        Registers every beat passes at the PE array's input, 0..2 (default 1), each one
        more cycle of latency.  With one, no logic follows a block RAM read in the same
        cycle.  With two, the first can move into the block RAMs' own output registers (the
        ECP5 estimate flow packs it) and the second stays in the fabric next to the PEs,
        so the PEs no longer wait for read data to cross the chip (the high-Fmax setting).
    registered_stall : bool
        Make the PE array's stall a register decided a cycle ahead (default False): nothing
        from the output side or the bias reader then reaches the array's ~700 clock enables,
        the issuer or the bias reader in the same cycle, at the cost of a one-result skid
        register (C x acc_bits flip-flops; about 250 LUTs more at 8 x 8).  The faster
        choice on both families measured (UP5K 41-50 against 42-45 MHz over three nextpnr
        seeds, faster at the best one, and the base of the ECP5 high-Fmax setting;
        ``docs/estimation.md``); off by default as the smaller one.
    stall_free : bool
        The PE array's datapath never stalls (default False): no clock enable on the PE,
        tree or input registers, so no enable net reaches thousands of flip-flops.  A beat
        enters only when its result is sure to have room: every finished column-tile goes
        into a result FIFO of :data:`RESULT_FIFO_DEPTH` words (LUT RAM on the ECP5; on the
        iCE40, which has none, ``ceil(C * acc_bits / 16)`` block RAMs: not an iCE40
        setting), and the array hands out that many credits (a beat flagged ``last`` takes
        one; every beat waits while none is left).  The bias is then added after the FIFO,
        where a result may wait for it, so the accumulator must be exact (``acc_bits`` at
        least the formula's width: no saturation inside the array).  For the ECP5 high-Fmax
        setting.
    pe_register : bool
        A register inside every PE (default False), one cycle more latency: the shift PE's
        shifter is split between its upper and lower levels, the multiplier PE registers
        two partial products (``rtl_gen.pe``).  For the high-Fmax setting at G > 0, where
        the shifter between the input register and the first tree register sets the clock.
    pipeline_stages : int or None
        Register stages in the PE array between the PEs and the accumulator
        (0..ceil(log2 R) + 1); default ``min(2, ceil(log2 R) + 1)``.
    k_depth : int
        Activation buffer words per bank (two banks, double-buffered): the largest
        ``ceil(K / R)`` a layer may have.
    weight_depth : int
        Weight buffer entries of R x C weights (1..65536): a tile holds
        ``ceil(K/R) * n_tiles <= weight_depth`` entries.
    bias_depth : int
        Bias buffer entries of C biases: the largest ``n_tiles`` (``ceil(N_tile / C)``) of a tile.
    bias_lanes : int or None
        Biases read from the bias buffer per cycle (1..C, default C).  Fewer lanes make the
        buffer narrower (fewer block RAMs); a layer then needs ``ceil(K/R) >=
        ceil(C / bias_lanes)`` to keep the array busy.
    out_lanes : int or None
        Output lanes requantised per cycle (1..C, default C).  Fewer save logic; a layer then
        needs ``ceil(K/R) >= ceil(C / out_lanes)`` to keep the array busy.
    param_word_bits : int
        Width of the parameter stream words (bias and weight entries are cut into words of
        this many bits, LSB first).
    out_depth : int
        Output FIFO depth (words of C lanes) after the output stage's own register: 0 (none;
        the output stage drives ``out`` directly, still at full rate), 1 (one register, which
        passes a word every other cycle), or 3 and more.
    count_bits : int
        Width of the descriptor's vector count M.
    """

    rows: int = 8
    cols: int = 8
    act_bits: int = 8
    weight_bits: int | None = None
    guard_bits: int | None = None
    pe: str = "shift"
    acc_bits: int | None = None
    input_registers: int = 1
    registered_stall: bool = False
    stall_free: bool = False
    pe_register: bool = False
    pipeline_stages: int | None = None
    k_depth: int = 64
    weight_depth: int = 256
    bias_depth: int = 32
    bias_lanes: int | None = None
    out_lanes: int | None = None
    param_word_bits: int = 32
    out_depth: int = 4
    count_bits: int = 16

    def __post_init__(self):
        if not isinstance(self.pe, str) or self.pe not in PE_KINDS:
            raise ValueError(f"pe must be one of {', '.join(PE_KINDS)}, not {self.pe!r}")
        self._set("rows", _int("rows", self.rows, 1, 256))
        self._set("cols", _int("cols", self.cols, 1, 256))
        self._set("act_bits", nx.check_act_bits(self.act_bits))
        if self.weight_bits is None:
            self._set("weight_bits", _DEFAULT_WEIGHT_BITS[self.pe])
        self._set("weight_bits", nx.check_weight_bits(self.weight_bits))
        if self.pe == "shift":
            if self.guard_bits is None:
                self._set("guard_bits", nx.max_shift(self.weight_bits))
            self._set("guard_bits", nx.check_guard_bits(self.guard_bits, self.weight_bits))
        else:
            if self.guard_bits not in (None, 0) or isinstance(self.guard_bits, bool):
                raise ValueError(f"guard_bits does not apply to pe='mult' (its products are "
                                 f"exact); leave it unset, not {self.guard_bits!r}")
            self._set("guard_bits", 0)
        self._set("k_depth", _int("k_depth", self.k_depth, 1, 1 << 16))
        # (at most 65536 entries, as the other buffers: 21 Mbit at 8 x 8 x 5 bits, beyond any
        # FPGA's block RAM; Amaranth's Verilog conversion takes minutes per 65536 rows)
        self._set("weight_depth", _int("weight_depth", self.weight_depth, 1, 1 << 16))
        self._set("bias_depth", _int("bias_depth", self.bias_depth, 1, 1 << 16))
        if self.bias_lanes is None:
            self._set("bias_lanes", self.cols)
        self._set("bias_lanes", _int("bias_lanes", self.bias_lanes, 1, self.cols))
        if self.out_lanes is None:
            self._set("out_lanes", self.cols)
        self._set("out_lanes", _int("out_lanes", self.out_lanes, 1, self.cols))
        self._set("param_word_bits", _int("param_word_bits", self.param_word_bits, 1, 4096))
        self._set("out_depth", _int("out_depth", self.out_depth, 0, 1 << 12))
        if self.out_depth == 2:
            # Amaranth's SyncFIFOBuffered of depth 2 has zero-width pointers (bad Verilog).
            raise ValueError("out_depth must be 0, 1 or at least 3, not 2")
        self._set("count_bits", _int("count_bits", self.count_bits, 1, 32))
        self._set("input_registers", _int("input_registers", self.input_registers, 0, 2))
        if not isinstance(self.registered_stall, bool):
            raise TypeError(f"registered_stall must be a bool, not {self.registered_stall!r}")
        if not isinstance(self.stall_free, bool):
            raise TypeError(f"stall_free must be a bool, not {self.stall_free!r}")
        if not isinstance(self.pe_register, bool):
            raise TypeError(f"pe_register must be a bool, not {self.pe_register!r}")
        if self.pipeline_stages is None:
            self._set("pipeline_stages", min(2, self.tree_levels + 1))
        self._set("pipeline_stages", _int("pipeline_stages", self.pipeline_stages, 0,
                                          self.tree_levels + 1))
        if self.acc_bits is None:
            self._set("acc_bits", self.natural_acc_bits)
        self._set("acc_bits", _int("acc_bits", self.acc_bits, 2, 256))
        if self.stall_free and self.saturating:
            raise ValueError(f"stall_free adds the bias after the accumulators, so it needs an "
                             f"exact accumulator: acc_bits must be at least "
                             f"{self.natural_acc_bits} (the formula's width for K = "
                             f"{self.max_k}), not {self.acc_bits}")

    def _set(self, name, value):
        object.__setattr__(self, name, value)

    # -- derived quantities ------------------------------------------------------------------
    @property
    def max_shift(self) -> int:
        """P, the largest right shift of a weight code (shift PEs only)."""
        return nx.max_shift(self.weight_bits)

    @property
    def tree_levels(self) -> int:
        """Adder levels of one column's tree of R terms."""
        return ceil_log2(self.rows)

    @property
    def register_levels(self) -> list[int]:
        """Adder-tree levels followed by a pipeline register (0: the PE outputs)."""
        n, s = self.tree_levels + 1, self.pipeline_stages
        return [k * n // s for k in range(s)]

    @property
    def array_latency(self) -> int:
        """Cycles from a beat accepted by the PE array to its accumulator update."""
        return self.input_registers + int(self.pe_register) + self.pipeline_stages + 1

    @property
    def max_k_tiles(self) -> int:
        """The largest ``ceil(K / R)`` the buffers take."""
        return min(self.k_depth, self.weight_depth)

    @property
    def max_k(self) -> int:
        """The largest fan-in K the buffers take."""
        return self.rows * self.max_k_tiles

    @property
    def term_bits(self) -> int:
        """Width of one PE's term: A + G (shift, one's complement plus carry) or A + b."""
        if self.pe == "shift":
            return self.act_bits + self.guard_bits
        return self.act_bits + self.weight_bits

    def natural_acc_bits_for(self, fan_in: int) -> int:
        """The accumulator width that can never saturate for a fan-in K."""
        if self.pe == "shift":
            return nx.acc_bits_for(self.act_bits, self.guard_bits, fan_in)
        return self.act_bits + self.weight_bits + math.ceil(math.log2(fan_in)) + 2

    @property
    def natural_acc_bits(self) -> int:
        """The formula's width for the largest K the buffers take."""
        return self.natural_acc_bits_for(self.max_k)

    @property
    def saturating(self) -> bool:
        """True when the accumulator is narrower than the formula (saturation logic is built)."""
        return self.acc_bits < self.natural_acc_bits

    @property
    def bias_bits(self) -> int:
        """Width of a stored bias: ``acc_bits - 1`` (the contract's :func:`bias_limit`)."""
        return max(self.acc_bits - 1, 1)

    @property
    def bias_beats(self) -> int:
        """Bias buffer reads per n-tile: ``ceil(C / bias_lanes)``."""
        return -(-self.cols // self.bias_lanes)

    @property
    def out_beats(self) -> int:
        """Output-stage cycles per output word: ``ceil(C / out_lanes)``."""
        return -(-self.cols // self.out_lanes)

    @property
    def max_n_tiles(self) -> int:
        """The largest ``n_tiles`` of one tile (any K)."""
        return min(self.bias_depth, self.weight_depth)

    @property
    def out_shift_range(self) -> tuple[int, int]:
        """The descriptor's out_shift range; the host clamps to it (same result, see docs)."""
        return (-(self.act_bits + 1), self.acc_bits)

    def n_tiles_for(self, k_tiles: int) -> int:
        """How many n-tiles (of C outputs) one tile with ``k_tiles`` row-tiles can hold."""
        return min(self.bias_depth, self.weight_depth // k_tiles)

    def to_dict(self) -> dict:
        """Every parameter, resolved (defaults filled in)."""
        return asdict(self)


def resolve_config(config, params: dict, owner=None) -> EngineConfig:
    """``config`` if given (then no other parameters), else ``EngineConfig(**params)``.

    ``owner`` is the component being built: if the parameters are rejected it will never be
    elaborated, so Amaranth's "created but never used" warning is silenced for it.
    """
    try:
        if config is not None:
            if not isinstance(config, EngineConfig):
                raise TypeError(f"config must be an EngineConfig, not {config!r}")
            if params:
                raise TypeError(f"give either config or parameters, not both "
                                f"({', '.join(sorted(params))})")
            return config
        return EngineConfig(**params)
    except (TypeError, ValueError):
        if owner is not None:
            owner._MustUse__silence = True
        raise
