"""Write the Verilog of a layer engine (or a board top around it) and its manifest.

:func:`generate` is what ``shifthw generate`` calls.  Everything is written into a temporary
folder beside the output folder and renamed into place at the end, so an error never leaves a
half-written output.  The manifest (``manifest.json``) records every parameter, the port list,
every stream word and buffer entry layout, the accumulator width and the largest layer the
buffers take.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Shape, Value
from amaranth.lib.wiring import In

from .. import numerics as nx
from ..files import check_folder_path, make_folders, remove_created
from .board import BOARD_TOP, BOARDS, board_plan
from .config import PE_KINDS, EngineConfig, check_verilog_name
from .engine import LayerEngine
from .layouts import (act_word_layout, bias_entry_layout, bias_entry_words, descriptor_layout,
                      describe_layout, out_word_layout, param_word_shape, weight_entry_layout,
                      weight_entry_words)

__all__ = ["MANIFEST_FORMAT", "MANIFEST_VERSION", "LINT_WAIVERS", "generate", "build_manifest",
           "add_generate_arguments", "config_from_args", "waiver_file"]

MANIFEST_FORMAT = "shifthw.rtl_manifest"
MANIFEST_VERSION = 1

#: Verilator ``-Wall`` warnings waived for the generated Verilog, with the reason for each
#: (``docs/hardware.md`` explains them).  They are all properties of how Amaranth (through
#: Yosys' ``write_verilog``) prints a netlist, not of the design.
LINT_WAIVERS = {
    "WIDTHEXPAND": "operands are printed at their natural widths; Amaranth's (and Verilog's) "
                   "extension rules give exactly the designed arithmetic",
    "WIDTHTRUNC": "assignments to narrower signals are deliberate (adder-tree nodes, the "
                  "accumulator at its proven width, stream payload slices)",
    "UNUSEDSIGNAL": "intermediate nets (carry-outs of arithmetic, unused bits of padded "
                    "buffer words and of slices) are printed even when nothing reads them",
    "PROCASSINIT": "registers are printed with their reset value as an initialiser and "
                   "assigned in always blocks (power-on value = reset value)",
    "CASEINCOMPLETE": "state and switch cases are printed without a default arm; every "
                      "target is assigned a default before the case",
    "DECLFILENAME": "the whole hierarchy is one file, named after the top module",
}


def waiver_file(name: str) -> str:
    """A Verilator configuration file with :data:`LINT_WAIVERS` for ``<name>.v``."""
    lines = ["`verilator_config", f"// Waivers for {name}.v; reasons in docs/hardware.md."]
    for rule, why in LINT_WAIVERS.items():
        lines.append(f"// {rule}: {why}")
        lines.append(f'lint_off -rule {rule} -file "*{name}.v"')
    return "\n".join(lines) + "\n"


def _ports(component, top_ports: bool = True) -> list[dict]:
    ports = [{"name": "clk", "direction": "input", "width": 1},
             {"name": "rst", "direction": "input", "width": 1}] if top_ports else []
    for path, member, value in component.signature.flatten(component):
        ports.append({"name": "__".join(str(p) for p in path),
                      "direction": "input" if member.flow == In else "output",
                      "width": len(Value.cast(value))})
    return ports


def _stream(port: str, direction: str, layout, what: str) -> dict:
    return {"port": port, "direction": direction, "bits": Shape.cast(layout).width,
            "what": what, "layout": describe_layout(layout)}


def build_manifest(cfg: EngineConfig, engine: LayerEngine, *, name: str,
                   files: list[str], board: str | None = None) -> dict:
    """The manifest of a generated engine (see the module docstring)."""
    try:
        version = metadata.version("shifthw")
    except metadata.PackageNotFoundError:  # pragma: no cover - source checkout
        version = "unknown"
    formula = ("acc_bits_for(A, G, max_k) = A + G + ceil(log2 max_k) + 2" if cfg.pe == "shift"
               else "A + b + ceil(log2 max_k) + 2")
    return {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "generator": {"shifthw": version, "amaranth": metadata.version("amaranth")},
        "top": name,
        "files": files,
        "board": board,
        "parameters": cfg.to_dict(),
        "derived": {
            "max_shift": cfg.max_shift if cfg.pe == "shift" else None,
            "term_bits": cfg.term_bits,
            "tree_levels": cfg.tree_levels,
            "register_levels": cfg.register_levels,
            "array_latency": cfg.array_latency,
            "bias_bits": cfg.bias_bits,
            "bias_beats": cfg.bias_beats,
            "out_beats": cfg.out_beats,
            "full_rate_needs": f"k_tiles >= {max(cfg.bias_beats, cfg.out_beats)}",
        },
        "accumulator": {"bits": cfg.acc_bits, "formula": formula,
                        "formula_bits": cfg.natural_acc_bits, "saturating": cfg.saturating},
        "limits": {
            "max_k": cfg.max_k,
            "max_k_tiles": cfg.max_k_tiles,
            "max_n_tiles": cfg.max_n_tiles,
            "n_tiles_per_tile": "min(bias_depth, weight_depth // k_tiles)",
            "max_n": "unlimited (split into tiles by the host; each tile's weights stream once)",
            "max_count_per_descriptor": (1 << cfg.count_bits) - 1,
            "out_shift_range": list(cfg.out_shift_range),
        },
        "ports": _ports(engine),
        "streams": {
            "desc": _stream("desc", "input", descriptor_layout(cfg),
                            "one layer descriptor per tile / batch chunk"),
            "params": _stream("params", "input", param_word_shape(cfg),
                              "bias buffer words then weight buffer entries, each cut into "
                              "param_word_bits-bit words, LSB first"),
            "act": _stream("act", "input", act_word_layout(cfg),
                           "k_tiles words of R activations per input vector"),
            "out": _stream("out", "output", out_word_layout(cfg),
                           "n_tiles words of C outputs per input vector"),
        },
        "buffers": {
            "weight_entry": {"layout": describe_layout(weight_entry_layout(cfg)),
                             "bits": weight_entry_layout(cfg).size,
                             "words": weight_entry_words(cfg), "depth": cfg.weight_depth,
                             "order": "entry j * k_tiles + i: outputs j*C.., inputs i*R..; "
                                      "[c][r]"},
            "bias_entry": {"layout": describe_layout(bias_entry_layout(cfg)),
                           "bits": bias_entry_layout(cfg).size,
                           "words": bias_entry_words(cfg),
                           "depth": cfg.bias_depth * cfg.bias_beats,
                           "order": "word j * bias_beats + k: lanes k*bias_lanes.. of "
                                    "column-tile j"},
            "act_bank_words": 1 << max(cfg.k_depth - 1, 0).bit_length(),
        },
        "weight_code": (describe_layout(nx.weight_code_layout(cfg.weight_bits))
                        if cfg.pe == "shift" else
                        [{"field": "value", "offset": 0, "width": cfg.weight_bits,
                          "signed": True}]),
        "lint_waivers": LINT_WAIVERS,
    }


def _check_replaceable(out: Path) -> None:
    """Refuse an ``out`` that :func:`_replace_dir` must not replace: a file, or a folder
    that is not empty and is not an earlier output (no shifthw manifest in it, or entries its
    manifest does not list, which replacing it would delete)."""
    check_folder_path(out, "out_dir")
    if not out.exists():
        return
    entries = sorted(e.name for e in out.iterdir())
    if not entries:
        return
    try:
        manifest = json.loads((out / "manifest.json").read_text())
        ours = isinstance(manifest, dict) and manifest.get("format") == MANIFEST_FORMAT
    except (OSError, ValueError):
        ours = False
    if not ours:
        raise FileExistsError(f"{out} is not empty and holds no shifthw manifest.json (of "
                              f"an earlier shifthw generate): not replacing it")
    listed = {str(f).split("/")[0] for f in manifest.get("files") or ()}
    others = [e for e in entries if e not in listed]
    if others:
        raise FileExistsError(
            f"{out} holds {len(others)} entr{'y' if len(others) == 1 else 'ies'} that its "
            f"manifest does not list ({', '.join(others[:3])}"
            f"{', ...' if len(others) > 3 else ''}): replacing the folder would delete "
            f"{'it' if len(others) == 1 else 'them'}; move {'it' if len(others) == 1 else 'them'}"
            f" or give another folder")


def _replace_dir(tmp: Path, out: Path) -> None:
    _check_replaceable(out)       # (again: the folder may have changed meanwhile)
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
        old.rmdir()
        out.rename(old)
        try:
            tmp.rename(out)
        except BaseException:
            old.rename(out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out)


def generate(config: EngineConfig, out_dir: str | os.PathLike, *, board: str | None = None,
             name: str = "shifthw_engine", extra_files: dict[str, str] | None = None) -> dict:
    """Write ``<name>.v``, ``verilator_waivers.vlt`` and ``manifest.json`` into ``out_dir``.

    Parameters
    ----------
    config : EngineConfig
    out_dir : path
        Created, or replaced if it holds an earlier output (a folder with other contents is
        refused).  Written atomically: a temporary folder beside it is renamed into place.
    board : str, optional
        A name from :data:`~.board.BOARDS`: also write the board top's build plan
        (``board/``: the engine Verilog, ``top.il``, the Yosys script and the constraints).
    name : str
        The Verilog module name of the engine.
    extra_files : dict, optional
        ``{file name: text}`` written into the folder with the rest (atomically, and listed
        in the manifest's ``files``): the program of :meth:`shifthw.HardwareModel.write`.

    Returns
    -------
    dict
        The manifest.
    """
    if not isinstance(config, EngineConfig):
        raise TypeError(f"config must be an EngineConfig, not {config!r}")
    if not isinstance(out_dir, (str, os.PathLike)):
        raise TypeError(f"out_dir must be a path, not {type(out_dir).__name__}")
    check_verilog_name(name, "name")
    if board is not None and board not in BOARDS:
        raise ValueError(f"board must be one of {', '.join(BOARDS)}, not {board!r}")
    if board is not None and name == BOARD_TOP:
        raise ValueError(f"name {name!r} is the board top's module name: give the engine "
                         f"another name (--name) or leave out the board")
    out = Path(out_dir)
    if out.is_symlink():
        out = out.resolve()                 # replace the folder it points to, not the link
    here = Path.cwd().resolve()
    if out.resolve() == here or out.resolve() in here.parents:
        raise ValueError(f"out_dir {os.fspath(out_dir)!r} is the current folder or holds it: "
                         f"generate replaces its output folder as a whole; give another")
    _check_replaceable(out)
    made = make_folders(out.parent)
    tmp = None
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp.", dir=out.parent))
        # mkdtemp makes the folder private; give it the mode a plain mkdir would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        engine = LayerEngine(config=config)
        text = verilog.convert(engine, name=name)
        files = [f"{name}.v", "verilator_waivers.vlt"]
        (tmp / files[0]).write_text(text)
        (tmp / files[1]).write_text(waiver_file(name))
        for fname, body in (extra_files or {}).items():
            if Path(fname).name != fname or fname in files or fname == "manifest.json":
                raise ValueError(f"extra_files: {fname!r} is not a plain file name of its own")
            (tmp / fname).write_text(body)
            files.append(fname)
        if board is not None:
            plan = board_plan(config, board, engine_name=name)
            plan.extract(str(tmp / "board"))
            files += [f"board/{f}" for f in sorted(plan.files)]
        manifest = build_manifest(config, engine, name=name, files=files + ["manifest.json"],
                                  board=board)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        _replace_dir(tmp, out)
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        remove_created(made)
        raise
    return manifest


# -- command line helpers (shifthw/cli.py builds the subcommand with these) ---------------
_MODES = {"exact": "G = P (exact accumulation)", "truncate": "G = 0 (DeepShift's kernel)"}


def add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``shifthw generate`` to ``parser``."""
    p = parser
    p.add_argument("--rows", type=int, default=8, help="array rows R (activation lanes)")
    p.add_argument("--cols", type=int, default=8, help="array columns C (outputs)")
    p.add_argument("--act-bits", type=int, default=8, help="activation bits A (2..16)")
    p.add_argument("--weight-bits", type=int, default=None,
                   help="weight bits b (2..8; default 5 for shift, 8 for mult)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--guard-bits", type=int, default=None, help="G, 0..P (shift only)")
    g.add_argument("--mode", choices=sorted(_MODES), default=None,
                   help="; ".join(f"{k}: {v}" for k, v in _MODES.items()))
    p.add_argument("--pe", choices=PE_KINDS, default="shift",
                   help="shift PEs, or the multiplier baseline")
    p.add_argument("--acc-bits", type=int, default=None,
                   help="accumulator bits (default: the contract's formula for max K)")
    p.add_argument("--pipeline-stages", type=int, default=None,
                   help="array register stages (default min(2, ceil(log2 R) + 1))")
    p.add_argument("--input-registers", type=int, default=1,
                   help="registers between the buffers and the PEs, 0..2 (default 1; 0: one "
                        "cycle less latency, lower Fmax; 2: for high Fmax on the ECP5)")
    p.add_argument("--registered-stall", action="store_true",
                   help="decide the array's stall a cycle ahead, with a one-result skid "
                        "register (higher Fmax on iCE40 and ECP5, ~250 more LUTs at 8 x 8)")
    p.add_argument("--stall-free", action="store_true",
                   help="no clock enable on the array's datapath: results go into a "
                        "16-word result FIFO, beats wait for credits (for high Fmax at G > 0 "
                        "on the ECP5; needs the default, exact accumulator)")
    p.add_argument("--pe-register", action="store_true",
                   help="a register inside every PE (shifter split in two; the multiplier "
                        "as two registered partial products): one cycle more latency, for "
                        "high Fmax at G > 0")
    p.add_argument("--k-depth", type=int, default=64,
                   help="activation buffer words per bank: max ceil(K / R)")
    p.add_argument("--weight-depth", type=int, default=256, help="weight buffer entries")
    p.add_argument("--bias-depth", type=int, default=32,
                   help="bias buffer entries: max column-tiles per layer tile")
    p.add_argument("--bias-lanes", type=int, default=None,
                   help="biases read per cycle (default C; fewer saves block RAM)")
    p.add_argument("--out-lanes", type=int, default=None,
                   help="output lanes requantised per cycle (default C; fewer saves logic)")
    p.add_argument("--param-word-bits", type=int, default=32, help="params stream word bits")
    p.add_argument("--out-depth", type=int, default=4,
                   help="output FIFO depth (0: none; 1: one register, a word every other "
                        "cycle; or 3 and more)")
    p.add_argument("--board", choices=sorted(BOARDS), default=None,
                   help="also write a board top (synthesis and place only)")
    p.add_argument("--name", default="shifthw_engine", help="Verilog module name")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")


def config_from_args(args: argparse.Namespace) -> EngineConfig:
    """The :class:`EngineConfig` of parsed ``shifthw generate`` options."""
    guard = args.guard_bits
    if getattr(args, "mode", None) is not None:
        if args.pe != "shift":
            raise ValueError(f"--mode {args.mode} applies to --pe shift only")
        weight_bits = args.weight_bits if args.weight_bits is not None else 5
        guard = nx.max_shift(weight_bits) if args.mode == "exact" else 0
    return EngineConfig(rows=args.rows, cols=args.cols, act_bits=args.act_bits,
                        weight_bits=args.weight_bits, guard_bits=guard, pe=args.pe,
                        acc_bits=args.acc_bits, pipeline_stages=args.pipeline_stages,
                        input_registers=getattr(args, "input_registers", 1),
                        registered_stall=getattr(args, "registered_stall", False),
                        stall_free=getattr(args, "stall_free", False),
                        pe_register=getattr(args, "pe_register", False),
                        k_depth=args.k_depth, weight_depth=args.weight_depth,
                        bias_depth=args.bias_depth, bias_lanes=args.bias_lanes,
                        out_lanes=args.out_lanes, param_word_bits=args.param_word_bits,
                        out_depth=args.out_depth)
