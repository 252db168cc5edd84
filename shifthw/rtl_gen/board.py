"""Board tops: the layer engine on an FPGA board from amaranth-boards, for synthesis and place.

A host link (to run a network on the board) is a later issue.  Until then the board top only
has to synthesise and place with realistic resource figures, so the engine's streams must go
somewhere that synthesis cannot optimise away:

* every input stream (payload and valid) and the output's ready are driven from a serial-in
  shift register fed by a 31-bit LFSR (x^31 + x^28 + 1), so every input bit is a distinct,
  unpredictable register;
* every output bit (payload, valid, busy) is registered, then folded into a rotating
  signature register (a MISR) whose bit drives an LED (so the harness adds no logic after an
  engine output, and no deep path of its own).

The clock is the board's default clock; the engine's reset is a power-on reset (one cycle,
from register initial values).  Placement may ask for another clock frequency than the board
oscillator's: :func:`set_clock_frequency` rewrites it in the pin constraints.  The
harness costs one shift register as wide as the widest input stream plus the signature
register: small next to the engine, and it is counted in the figures.
"""

from __future__ import annotations

import importlib
import json
import math
import numbers
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Cat, ClockSignal, Elaboratable, Instance, Module, Signal, Value
from amaranth.lib import io
from amaranth.lib.wiring import In

from .. import toolchain
from .config import EngineConfig, check_verilog_name
from .engine import LayerEngine, engine_signature
from .synth import fpga_resources, pre_synthesis, read_stat

__all__ = ["BoardInfo", "BOARD_TOP", "BOARDS", "BoardTop", "board_platform", "board_plan",
           "set_clock_frequency", "synthesize_board"]


@dataclass(frozen=True)
class BoardInfo:
    """A supported board: its amaranth-boards platform and what its FPGA holds."""

    module: str
    platform: str
    family: str
    capacity: dict = field(default_factory=dict)
    nextpnr: tuple = ()
    #: Options of synth_ice40 / synth_ecp5 that name the device: Yosys's iCE40 flow maps
    #: logic with the HX timing model unless told ``-device u`` (UltraPlus) or ``lp``.
    synth_opts: str = ""


#: Boards by command-line name.  Capacities are the devices' data-sheet figures.
BOARDS: dict[str, BoardInfo] = {
    "icebreaker": BoardInfo(
        "amaranth_boards.icebreaker", "ICEBreakerPlatform", "ice40",
        {"lut4": 5280, "ff": 5280, "bram": 30, "spram": 4, "dsp": 8},
        ("--up5k", "--package", "sg48"), "-device u"),
    "ulx3s-12f": BoardInfo(
        "amaranth_boards.ulx3s", "ULX3S_12F_Platform", "ecp5",
        {"lut4": 12288, "ff": 12288, "bram": 32, "dsp": 28},
        ("--12k", "--package", "CABGA381")),
    "ulx3s-25f": BoardInfo(
        "amaranth_boards.ulx3s", "ULX3S_25F_Platform", "ecp5",
        {"lut4": 24288, "ff": 24288, "bram": 56, "dsp": 28},
        ("--25k", "--package", "CABGA381")),
    "ulx3s-45f": BoardInfo(
        "amaranth_boards.ulx3s", "ULX3S_45F_Platform", "ecp5",
        {"lut4": 43848, "ff": 43848, "bram": 108, "dsp": 72},
        ("--45k", "--package", "CABGA381")),
    "ulx3s-85f": BoardInfo(
        "amaranth_boards.ulx3s", "ULX3S_85F_Platform", "ecp5",
        {"lut4": 83640, "ff": 83640, "bram": 208, "dsp": 156},
        ("--85k", "--package", "CABGA381")),
}


def _board(board: str) -> BoardInfo:
    if board not in BOARDS:
        raise ValueError(f"board must be one of {', '.join(BOARDS)}, not {board!r}")
    return BOARDS[board]


def board_platform(board: str):
    """A fresh amaranth-boards platform object for ``board``."""
    info = _board(board)
    return getattr(importlib.import_module(info.module), info.platform)()


#: The clock constraint amaranth writes, by family: ``set_frequency <port> <MHz>`` in the .pcf,
#: ``FREQUENCY PORT "<port>" <Hz> HZ;`` in the .lpf; and how the new value is written.
_CLOCK = {
    "ice40": (re.compile(r"^(set_frequency\s+\S+\s+)[0-9.eE+-]+", re.M), "{mhz:g}"),
    "ecp5": (re.compile(r'^(FREQUENCY\s+PORT\s+"[^"]+"\s+)[0-9.eE+-]+(?=\s*HZ)', re.M),
             "{hz:.1f}"),
}


#: Clock goals nextpnr is asked for, in MHz: any FPGA clock lies within (nextpnr itself
#: fails on a period it cannot represent, e.g. 1e-300 MHz, or takes infinity as 0 ps).
FREQ_RANGE_MHZ = (1.0, 5000.0)


def check_freq(freq_mhz, name: str = "freq_mhz") -> float:
    """``freq_mhz`` as a float, or one error naming ``name`` if it is not a clock goal of
    :data:`FREQ_RANGE_MHZ`."""
    if isinstance(freq_mhz, bool) or not isinstance(freq_mhz, numbers.Real):
        raise TypeError(f"{name} must be a number of MHz, not {freq_mhz!r}")
    lo, hi = FREQ_RANGE_MHZ
    if not (math.isfinite(freq_mhz) and lo <= freq_mhz <= hi):
        raise ValueError(f"{name} must be a clock goal of {lo:g} to {hi:g} MHz, not "
                         f"{freq_mhz!r}")
    return float(freq_mhz)



def set_clock_frequency(constraints: str, family: str, freq_mhz: float) -> str:
    """Pin constraints (.pcf or .lpf text) with every clock constraint set to ``freq_mhz``.

    nextpnr places for the frequency in the constraints, which for a board is its
    oscillator's (12 MHz iCEBreaker, 25 MHz ULX3S), not the speed a user asks for.

    Parameters
    ----------
    constraints : str
        The text of the ``.pcf`` (``family="ice40"``) or ``.lpf`` (``"ecp5"``) file.
    family : str
        ``"ice40"`` or ``"ecp5"``.
    freq_mhz : float
        The clock target in MHz, positive.

    Returns
    -------
    str
        The same text with the frequencies replaced (other lines untouched).
    """
    if family not in _CLOCK:
        raise ValueError(f"family must be one of {', '.join(_CLOCK)}, not {family!r}")
    freq_mhz = check_freq(freq_mhz)
    rx, fmt = _CLOCK[family]
    value = fmt.format(mhz=freq_mhz, hz=freq_mhz * 1e6)
    return rx.sub(lambda m: m.group(1) + value, constraints)


class BoardTop(Elaboratable):
    """The engine with pseudo-random stimulus and its outputs folded onto an LED.

    The engine enters as the very Verilog that :func:`~.generate.generate` writes (an
    ``Instance`` of module ``engine_name``, added to the platform's files), so the board
    figures are those of the generated design, and Yosys sees its memories' ``no_rw_check``
    attribute (which it only honours when reading Verilog).

    Parameters
    ----------
    config : EngineConfig
    engine_name : str
        Verilog module name of the engine.
    """

    def __init__(self, *, config: EngineConfig, engine_name: str = "shifthw_engine"):
        # A refused top is never elaborated: mark it used, or Amaranth warns "created but
        # never used" when it is collected, after the error.
        self._MustUse__used = True
        if not isinstance(config, EngineConfig):
            raise TypeError(f"config must be an EngineConfig, not {config!r}")
        check_verilog_name(engine_name, "engine_name")
        self._MustUse__used = False
        self._cfg = config
        self._name = engine_name

    @property
    def engine_name(self) -> str:
        return self._name

    def engine_verilog(self) -> str:
        """The engine's Verilog, as :func:`~.generate.generate` writes it."""
        return verilog.convert(LayerEngine(config=self._cfg), name=self._name)

    def elaborate(self, platform):
        m = Module()
        signature = engine_signature(self._cfg)
        eng = signature.create(path=("engine",))
        # Power-on reset from register initial values: every FPGA family here has them, and
        # not every board's default clock domain has a reset (ECP5's is reset-less).
        por = Signal(init=1, reset_less=True)
        m.d.sync += por.eq(0)
        ports = {"i_clk": ClockSignal(), "i_rst": por}
        for path, member, value in signature.flatten(eng):
            prefix = "i" if member.flow == In else "o"
            ports[f"{prefix}_{'__'.join(str(p) for p in path)}"] = value
        m.submodules.engine = Instance(self._name, **ports)
        if platform is not None:
            platform.add_file(f"{self._name}.v", self.engine_verilog())

        inputs = [Value.cast(eng.desc.payload), Value.cast(eng.params.payload),
                  Value.cast(eng.act.payload)]
        width = max(len(v) for v in inputs) + 8
        lfsr = Signal(31, init=1)
        chain = Signal(width)
        m.d.sync += [
            lfsr.eq(Cat(lfsr[30] ^ lfsr[27], lfsr[:30])),
            chain.eq(Cat(lfsr[0], chain[:-1])),
        ]
        # Different offsets into the chain for each stream, valids and ready from the LFSR.
        m.d.comb += [
            inputs[0].eq(chain[0:]),
            inputs[1].eq(chain[3:]),
            inputs[2].eq(chain[7:]),
            eng.desc.valid.eq(lfsr[3] & lfsr[9]),
            eng.params.valid.eq(lfsr[5]),
            eng.act.valid.eq(lfsr[11]),
            eng.out.ready.eq(lfsr[17]),
        ]
        # Every output bit registered first (the harness adds no logic after an engine
        # output), then folded into a rotating signature register (a MISR): each of its bits
        # takes the previous one and two output bits, one LUT, and every bit reaches the LED
        # through the rotation, so no output can be optimised away and the harness has no
        # deep path of its own (an XOR of all outputs into one bit was 4 LUT levels, the
        # UP5K's limit once the engine's control was shallow).
        outs = Signal(len(Value.cast(eng.out.payload)) + 2, name="seen_outputs")
        m.d.sync += outs.eq(Cat(Value.cast(eng.out.payload), eng.out.valid, eng.busy))
        pairs = [outs[k:k + 2].xor() for k in range(0, len(outs), 2)]
        seen = Signal(len(pairs), name="seen")
        m.d.sync += seen.eq(Cat(seen[-1], seen[:-1]) ^ Cat(*pairs))
        if platform is not None:
            m.submodules.led = led = io.Buffer("o", platform.request("led", 0, dir="-"))
            m.d.comb += led.o.eq(seen[0])
        return m


#: The board top's module name in the build plans (the engine's must differ).
BOARD_TOP = "top"


def board_plan(config: EngineConfig, board: str, *, name: str = BOARD_TOP,
               engine_name: str = "shifthw_engine", synth_opts: str = ""):
    """The amaranth build plan (engine Verilog, top RTLIL, Yosys script, constraints).

    The Yosys script also writes ``<name>.stat.json`` (``stat -json`` after synthesis);
    ``synth_opts`` are extra options of ``synth_ice40`` / ``synth_ecp5`` (e.g. ``-dsp``),
    after the board's own (its device: ``-device u`` for the UP5K).
    """
    if engine_name == name:
        raise ValueError(f"engine name {engine_name!r} is the board top's module name: give "
                         f"the engine another")
    platform = board_platform(board)
    top = BoardTop(config=config, engine_name=engine_name)
    opts = " ".join(o for o in (_board(board).synth_opts, synth_opts) if o)
    return platform.build(top, name=name, do_build=False, synth_opts=opts,
                          script_after_read="\n".join(pre_synthesis(name)),
                          script_after_synth=f"tee -q -o {name}.stat.json stat -json")


def synthesize_board(config: EngineConfig, board: str, work_dir: str | os.PathLike, *,
                     place: bool = False, freq_mhz: float | None = None, name: str = BOARD_TOP,
                     synth_opts: str = "", timeout: float | None = 3600):
    """Synthesise (and optionally place and route) the board top; return its figures.

    Parameters
    ----------
    freq_mhz : float, optional
        Clock target of placement in MHz (default: the board's oscillator).  nextpnr
        optimises for it, so the Fmax it reports is for the speed asked for; a target
        it misses is no error (``placed["fmax"]`` has the achieved and the constraint).

    Returns
    -------
    dict
        ``board``, ``family``, ``resources`` (lut4, ff, bram, spram, dsp, carry from Yosys),
        ``capacity``, ``fits`` (every resource within capacity), and with ``place`` the
        clock target (``target_mhz``) and the nextpnr report (``placed``: its utilisation
        and Fmax).
    """
    info = _board(board)
    if freq_mhz is not None:
        freq_mhz = check_freq(freq_mhz)
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    plan = board_plan(config, board, name=name, synth_opts=synth_opts)
    plan.extract(str(work))
    toolchain.run_yosys(["-q", "-l", f"{name}.rpt", f"{name}.ys"], cwd=work, timeout=timeout)
    if info.family == "ice40" and "-dsp" in f"{info.synth_opts} {synth_opts}".split():
        from ..estimate.area import dropped_dsp_inputs   # (estimate imports rtl_gen)
        bad = dropped_dsp_inputs(json.loads((work / f"{name}.json").read_text()))
        if bad:
            raise toolchain.ToolError(
                f"Yosys' ice40_dsp dropped a multiplier in this netlist ({len(bad)} SB_MAC16 "
                f"block(s) add an undriven input, first {bad[0]}; a Yosys 0.70 fault with "
                f"stall_free engines): synthesise without -dsp, or estimate it with "
                f"shifthw estimate, which works around it", tool="yosys")
    resources = fpga_resources(read_stat(work / f"{name}.stat.json"), info.family)
    fits = {k: resources.get(k, 0) <= cap for k, cap in info.capacity.items()}
    result = {"board": board, "family": info.family, "resources": resources,
              "capacity": dict(info.capacity), "fits": all(fits.values()),
              "fits_by_resource": fits}
    if place:
        ext, flag, out = (("pcf", "--pcf", ["--asc", f"{name}.asc"]) if info.family == "ice40"
                          else ("lpf", "--lpf", ["--textcfg", f"{name}.config"]))
        pins, clock = f"{name}.{ext}", []
        if freq_mhz is None:
            freq_mhz = board_platform(board).default_clk_frequency / 1e6
        else:
            pins = f"{name}.place.{ext}"
            (work / pins).write_text(set_clock_frequency(
                (work / f"{name}.{ext}").read_text(), info.family, freq_mhz))
            clock = ["--freq", f"{freq_mhz:g}", "--timing-allow-fail"]
        result["target_mhz"] = freq_mhz
        report = f"{name}.report.json"
        try:
            toolchain.run_nextpnr(info.family, [*info.nextpnr, "--json", f"{name}.json",
                                                flag, pins, *out, *clock, "--report", report,
                                                "--log", f"{name}.tim"],
                                  cwd=work, timeout=timeout)
            result["placed"] = json.loads((work / report).read_text())
        except toolchain.ToolError as exc:
            result["placed"] = {"error": str(exc).splitlines()[0]}
    return result
