"""The targets an estimate can be made for: four FPGA devices and a generic gate library.

Each FPGA target names the amaranth-boards platform whose board top
(:class:`~shifthw.rtl_gen.board.BoardTop`) is synthesised for it, the Yosys and nextpnr
family, the nextpnr device options and the device's capacity.  Three of them reuse the boards
of :data:`shifthw.rtl_gen.board.BOARDS` (same capacities); the iCE40HX8K is added here on the
iCE40-HX8K breakout board's platform.

The ``generic`` target has no device: the bare engine is mapped to a small gate set for
ASIC-minded users (cell counts, NAND2 equivalents, memories kept as macros).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..rtl_gen.board import BOARDS

__all__ = ["Target", "TARGETS", "TARGET_NAMES", "get_target", "board_target"]


@dataclass(frozen=True)
class Target:
    """One estimation target.

    Attributes
    ----------
    name : the command-line name (``ice40-up5k``...).
    family : ``"ice40"``, ``"ecp5"`` or ``"generic"``.
    device : the part, for reports.
    platform : ``(module, class)`` of the amaranth-boards platform (FPGA targets).
    nextpnr : nextpnr device options.
    capacity : resources of the device (lut4, ff, bram, spram, dsp).
    freq_mhz : the clock target given to nextpnr (the issue's goal for the family).
    dsp : whether Yosys can map multipliers to DSP blocks on this device.
    synth_opts : options of the family's Yosys synthesis that name the device (its timing
        model: ``-device u`` for the iCE40UP5K).
    """

    name: str
    family: str
    device: str
    platform: tuple[str, str] | None = None
    nextpnr: tuple[str, ...] = ()
    capacity: dict = field(default_factory=dict)
    freq_mhz: float | None = None
    dsp: bool = False
    synth_opts: str = ""

    @property
    def is_fpga(self) -> bool:
        return self.family != "generic"


def _from_board(name: str, board: str, device: str, freq_mhz: float, dsp: bool) -> Target:
    info = BOARDS[board]
    return Target(name=name, family=info.family, device=device,
                  platform=(info.module, info.platform), nextpnr=tuple(info.nextpnr),
                  capacity={"spram": 0, **info.capacity}, freq_mhz=freq_mhz, dsp=dsp,
                  synth_opts=info.synth_opts)


#: Every target by name.  iCE40HX8K: 7680 logic cells, 32 block RAMs of 4 kbit, no DSP
#: (Lattice iCE40 LP/HX family data sheet).
TARGETS: dict[str, Target] = {
    "ice40-up5k": _from_board("ice40-up5k", "icebreaker", "iCE40UP5K-SG48", 60.0, True),
    "ice40-hx8k": Target(
        name="ice40-hx8k", family="ice40", device="iCE40HX8K-CT256",
        platform=("amaranth_boards.ice40_hx8k_b_evn", "ICE40HX8KBEVNPlatform"),
        nextpnr=("--hx8k", "--package", "ct256"),
        capacity={"lut4": 7680, "ff": 7680, "bram": 32, "spram": 0, "dsp": 0},
        freq_mhz=60.0, dsp=False, synth_opts="-device hx"),
    "ecp5-25k": _from_board("ecp5-25k", "ulx3s-25f", "LFE5U-25F-CABGA381", 200.0, True),
    "ecp5-85k": _from_board("ecp5-85k", "ulx3s-85f", "LFE5U-85F-CABGA381", 200.0, True),
    "generic": Target(name="generic", family="generic", device="generic gates (Yosys abc -g)"),
}

TARGET_NAMES = tuple(TARGETS)


def get_target(name) -> Target:
    """The :class:`Target` called ``name``; a clear error for anything else."""
    if isinstance(name, Target):
        return name
    if not isinstance(name, str) or name not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, not {name!r}")
    return TARGETS[name]


#: The device of each board that no target has, for :func:`board_target`.
_BOARD_DEVICES = {"ulx3s-12f": "LFE5U-12F-CABGA381", "ulx3s-45f": "LFE5U-45F-CABGA381"}


def board_target(board: str) -> Target:
    """The FPGA of a board of :data:`~shifthw.rtl_gen.board.BOARDS` as a :class:`Target`
    (named after the board; its capacity and family), for the analytic area model."""
    if board not in BOARDS:
        raise ValueError(f"board must be one of {', '.join(BOARDS)}, not {board!r}")
    for t in TARGETS.values():
        if t.platform == (BOARDS[board].module, BOARDS[board].platform):
            return t
    return _from_board(f"the {board}'s {_BOARD_DEVICES[board]}", board,
                       _BOARD_DEVICES[board], 200.0 if BOARDS[board].family == "ecp5" else 60.0,
                       True)
