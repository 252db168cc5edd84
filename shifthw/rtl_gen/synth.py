"""Yosys (and nextpnr) runs on generated designs: cell counts and FPGA resource figures.

All tools run through :mod:`shifthw.toolchain` (YoWASP builds: paths relative to the work
folder only).  :func:`cell_counts` checks the structure of a design (for example that a shift
design has no ``$mul`` cell); :func:`fpga_resources` turns a ``stat -json`` of a technology
mapped netlist into LUT4 / FF / BRAM / DSP figures.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .. import toolchain

__all__ = ["cell_counts", "read_stat", "fpga_resources", "FAMILY_CELLS", "KEEP",
           "HIDE_INDEXED_NAMES", "pre_synthesis"]

#: Attributes of a signal whose flip-flop is a deliberate copy of another (to split a net of
#: high fanout): Yosys's opt_merge would merge identical flip-flops back into one, and it
#: spares only cells marked ``keep``, while Amaranth puts a signal's attributes on the wire.
#: :func:`pre_synthesis` moves the mark onto the flip-flop; other tools read it from the signal.
KEEP = {"keep": 1}


#: Yosys 0.70's ECP5 LUT mapping (``abc9``, and ``abc`` with ``-noabc9``) can join bit N of a
#: wire ``w`` and bit 0 of a wire named ``w[N]`` into one net with two drivers, silently: the
#: netlist computes wrong values.  Amaranth names the elements of array views that way
#: (``i__payload.w`` and ``i__payload.w[2]``); a ten-line Verilog design shows it
#: (``tests/rtl_gen/test_synth.py``).  Hiding the names of the wires that end in ``]``
#: (ports excepted) before synthesis avoids it.  The same kind of clash makes Yosys stop on
#: an assertion in YosysHQ/yosys#4349; here it is silent.
HIDE_INDEXED_NAMES = "rename -hide w:*] i:* o:* %u %d"


def pre_synthesis(top: str) -> list[str]:
    """Yosys commands, after reading the design and before synthesis: elaborate ``top``,
    give the ``keep`` attribute of a wire to the flip-flop driving it (so that copies of a
    register survive synthesis; see :data:`KEEP`), and hide the wire names that Yosys can
    confuse with another wire's bit (:data:`HIDE_INDEXED_NAMES`)."""
    return [f"hierarchy -top {top}", "proc", "setattr -set keep 1 w:* a:keep %i %ci1:+[Q]",
            HIDE_INDEXED_NAMES]


#: Cell names per family: what counts as a LUT4, a flip-flop, a block RAM, a DSP.
FAMILY_CELLS = {
    "ice40": {"lut4": ("SB_LUT4",), "ff_prefix": "SB_DFF", "bram": ("SB_RAM40_4K",),
              "spram": ("SB_SPRAM256KA",), "dsp": ("SB_MAC16",), "carry": ("SB_CARRY",)},
    "ecp5": {"lut4": ("LUT4",), "ff_prefix": "TRELLIS_FF", "bram": ("DP16KD",),
             "spram": (), "dsp": ("MULT18X18D", "ALU54B"), "carry": ("CCU2C",)},
}


def read_stat(path: str | os.PathLike) -> dict[str, int]:
    """Cell counts by type from a Yosys ``stat -json`` file (whole design)."""
    obj = json.loads(Path(path).read_text())
    design = obj.get("design") or next(iter(obj["modules"].values()))
    return {str(k): int(v) for k, v in design.get("num_cells_by_type", {}).items()}


def cell_counts(verilog_path: str | os.PathLike, top: str, *, script: str = "prep -flatten",
                timeout: float | None = 600) -> dict[str, int]:
    """Cell counts of a Verilog design after ``script`` (default: coarse cells, flattened).

    Coarse cells (``$mul``, ``$add``, ``$shr``...) survive ``prep``, so this is how a test
    sees whether the netlist multiplies anywhere.
    """
    path = Path(verilog_path)
    stat = f".{path.stem}.cells.json"
    toolchain.run_yosys(["-q", "-p", f"read_verilog {path.name}; {script} -top {top}; "
                         f"tee -q -o {stat} stat -json"], cwd=path.parent, timeout=timeout)
    try:
        return read_stat(path.parent / stat)
    finally:
        (path.parent / stat).unlink(missing_ok=True)


def fpga_resources(cells: dict[str, int], family: str) -> dict[str, int]:
    """LUT4, FF, BRAM, SPRAM, DSP and carry counts of a mapped netlist's cell counts."""
    if family not in FAMILY_CELLS:
        raise ValueError(f"family must be one of {', '.join(FAMILY_CELLS)}, not {family!r}")
    names = FAMILY_CELLS[family]

    def count(kinds):
        return sum(v for k, v in cells.items() if k in kinds or
                   any(k.endswith("\\" + n) for n in kinds))

    return {
        "lut4": count(names["lut4"]),
        "ff": sum(v for k, v in cells.items() if k.startswith(names["ff_prefix"])),
        "bram": count(names["bram"]),
        "spram": count(names["spram"]),
        "dsp": count(names["dsp"]),
        "carry": count(names["carry"]),
    }
