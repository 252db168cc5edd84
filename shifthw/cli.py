"""The ``shifthw`` command line: one subcommand per step of the flow.

Each handler is thin: it parses options, calls the library, prints what it measured, and
turns the library's clear errors into one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import warnings
from pathlib import Path

__all__ = ["main", "build_parser"]


class CliError(Exception):
    """An error to print as one line (no traceback) with exit code 2."""


def check_output(path, option: str, *, folder: bool) -> Path:
    """``path`` as an output of ``option``, checked before the command does any work: a
    folder output that is a file, a file output that is a folder, a path under a file, or a
    place where nothing can be written (a probe file is made and removed there) is a
    :class:`CliError` naming the option.  Nothing is left behind."""
    p = Path(path)
    if folder and p.exists() and not p.is_dir():
        raise CliError(f"{option} {p}: exists and is not a folder")
    if not folder and p.is_dir():
        raise CliError(f"{option} {p}: is a folder; give a file name")
    if not folder and p.exists() and not p.is_file():
        raise CliError(f"{option} {p}: exists and is not a regular file")
    base = p if folder and p.is_dir() else p.parent
    while not base.exists():
        base = base.parent
    if not base.is_dir():
        raise CliError(f"{option} {p}: {base} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=base):
            pass
    except OSError as exc:
        raise CliError(f"{option} {p}: cannot write in {base} ({exc.strerror})") from None
    return p


def _error_text(exc: BaseException) -> str:
    # An OSError from the system ("[Errno 2] No such file or directory: 'x'") as
    # "x: No such file or directory"; the library's own messages as they are.
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, not {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {v}")
    return v


def _seed(text: str) -> int:
    """A random seed: an integer that torch and numpy both take (0 .. 2**63 - 1)."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, not {text!r}") from None
    if not 0 <= v < 2 ** 63:
        raise argparse.ArgumentTypeError(f"expected an integer in 0..2**63-1, not {v}")
    return v


def _exponent(text: str):
    if text == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'auto', not {text!r}") from None


def _convert_exponent(text: str):
    if text == "auto-headroom":
        return text
    try:
        return _exponent(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected an integer, 'auto' or 'auto-headroom', "
                                         f"not {text!r}") from None


# -- doctor ---------------------------------------------------------------------------------
def _cmd_doctor(args) -> int:
    from .doctor import run_doctor

    if args.workdir is not None:
        check_output(args.workdir, "--workdir", folder=True)
        if " " in str(Path(args.workdir).resolve()):
            raise CliError(f"--workdir {args.workdir}: Verilator cannot build in a path with "
                           f"a space; give a folder without one")
    return run_doctor(workdir=args.workdir)


# -- train / convert / export -------------------------------------------------------------
def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weight-bits", type=int, default=5, help="weight code bits b (2..8)")
    p.add_argument("--act-bits", type=int, default=8, help="activation bits A (2..16)")
    p.add_argument("--exponent", type=_exponent, default=0,
                   help="per-layer exponent e, or 'auto' (from each layer's random "
                        "initialisation: the smallest e with every |w| <= 2^e)")
    p.add_argument("--seed", type=_seed, default=0, help="random seed (data split and init)")


def _check_checkpoint_output(output) -> None:
    # A checkpoint and its metrics file beside it (<name>.json).
    if output:
        check_output(output, "-o", folder=False)
        check_output(Path(output).with_suffix(".json"), "-o (its metrics file)", folder=False)


def _cmd_train(args) -> int:
    from .models.train import train

    _check_checkpoint_output(args.output)
    _, metrics = train(arch=args.arch, mode=args.mode, weight_bits=args.weight_bits,
                       act_bits=args.act_bits, epochs=args.epochs, seed=args.seed,
                       dataset=args.dataset, data_dir=args.data_dir, exponent=args.exponent,
                       out=args.output, progress=not args.quiet)
    print(f"{args.arch} {args.mode} b={args.weight_bits} A={args.act_bits}: "
          f"test accuracy {100 * metrics['test_accuracy']:.2f} % "
          f"({metrics['wall_seconds']:.1f} s)")
    if args.output:
        print(f"wrote {args.output} and {Path(args.output).with_suffix('.json')}")
    else:
        print("(nothing saved: give -o FILE.pt to keep the model)")
    return 0


def _cmd_convert(args) -> int:
    from .models.train import convert_and_finetune

    _check_checkpoint_output(args.output)
    _, metrics = convert_and_finetune(args.checkpoint, mode=args.mode,
                                      weight_bits=args.weight_bits,
                                      finetune_epochs=args.finetune_epochs, seed=args.seed,
                                      exponent=args.exponent, last_n=args.last_n,
                                      out=args.output, progress=not args.quiet)
    print(f"converted to {args.mode} b={args.weight_bits}: test accuracy "
          f"{100 * metrics['test_accuracy']:.2f} %")
    if args.output:
        print(f"wrote {args.output} and {Path(args.output).with_suffix('.json')}")
    else:
        print("(nothing saved: give -o FILE.pt to keep the model)")
    return 0


def _cmd_export(args) -> int:
    from .models.checkpoint import export_checkpoint
    from .program import save_program

    check_output(args.output, "-o", folder=False)
    if Path(args.output).exists() and Path(args.model).exists() and \
            os.path.samefile(args.output, args.model):
        raise CliError(f"-o {args.output} is the model read ({args.model}): writing the "
                       f"program there would replace it; give another name")
    prog = export_checkpoint(args.model)
    path = save_program(prog, args.output)
    kinds = ", ".join(f"{s.name} {s.out_features}x{s.fan_in}" for s in prog.layers)
    print(f"wrote {path}: {len(prog.steps)} steps ({kinds}), A={prog.act_bits}, "
          f"b={prog.weight_bits}")
    return 0


# -- generate -------------------------------------------------------------------------------
def _cmd_generate(args) -> int:
    from .rtl_gen.config import check_verilog_name
    from .rtl_gen.generate import config_from_args, generate

    check_verilog_name(args.name, "--name")
    check_output(args.output, "-o", folder=True)
    cfg = config_from_args(args)
    manifest = generate(cfg, args.output, board=args.board, name=args.name)
    print(f"wrote {args.output}: {', '.join(manifest.get('files', []))}")
    guard = f" G={cfg.guard_bits}" if cfg.pe == "shift" else ""
    print(f"engine {cfg.rows}x{cfg.cols} pe={cfg.pe} A={cfg.act_bits} b={cfg.weight_bits}"
          f"{guard} acc_bits={cfg.acc_bits}; largest layer: K <= {cfg.max_k}")
    if args.board is not None:
        _board_fit(cfg, args.board)
    return 0


def _board_fit(cfg, board: str) -> None:
    """Warn when the analytic area model puts the board top beyond the board's FPGA, with
    the settings it says fit."""
    from .estimate.fit import board_warnings

    for line in board_warnings(cfg, board):
        print(f"warning: {line}", file=sys.stderr)


# -- verify / flow --------------------------------------------------------------------------
def _add_engine_options(p: argparse.ArgumentParser) -> None:
    from .estimate.cli import add_engine_extra

    p.add_argument("--design", type=Path, default=None,
                   help="a folder written by `shifthw generate`: verify that engine (instead "
                        "of the engine options)")
    g = p.add_argument_group("engine options (instead of --design)")
    g.add_argument("--rows", type=_positive_int, default=None, help="array rows R (default 8)")
    g.add_argument("--cols", type=_positive_int, default=None,
                   help="array columns C (default 8)")
    g.add_argument("--act-bits", type=int, default=None,
                   help="activation bits A (default: the model's; must match it)")
    g.add_argument("--weight-bits", type=int, default=None,
                   help="weight bits b (default: the model's; must match it)")
    m = g.add_mutually_exclusive_group()
    m.add_argument("--guard-bits", type=int, default=None, help="G, 0..P (default P, exact)")
    m.add_argument("--mode", choices=["exact", "truncate"], default=None,
                   help="exact: G = P; truncate: G = 0 (DeepShift's CUDA kernel)")
    g.add_argument("--acc-bits", type=int, default=None,
                   help="accumulator bits (default: the contract's formula for max K)")
    add_engine_extra(g)
    p.add_argument("--images", type=_positive_int, default=None,
                   help="the first N images of the digits test split, or of --inputs "
                        "(default: all)")
    p.add_argument("--inputs", type=Path, default=None,
                   help="the model's own real-valued inputs instead of the digits test "
                        "split: a .npy array (B, *input shape), or flat rows")
    p.add_argument("--labels", type=Path, default=None,
                   help="with --inputs: a .npy of B integer class labels, for the accuracies")
    p.add_argument("--stall-prob", type=float, default=0.0,
                   help="probability of a valid/ready stall on every stream, per cycle")
    p.add_argument("--layer-inputs", choices=["hardware", "golden"], default="hardware",
                   help="each layer's input: the previous layer's hardware output, or golden")
    p.add_argument("--waves", action="store_true",
                   help="write a waveform, FST where Verilator can, else VCD (slower)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the stall generators")
    p.add_argument("--work-dir", type=Path, default=None,
                   help="keep the run's files here (default: a temporary folder)")


def _engine_config(args, program):
    """The engine to verify ``program`` on: ``--design``'s, or the engine options' (any not
    given: the default engine, with the model's A and b)."""
    from . import numerics as nx
    from .estimate.cli import config_from_design_dir, engine_extra
    from .rtl_gen.config import EngineConfig

    given = {k: getattr(args, k) for k in ("rows", "cols", "act_bits", "weight_bits",
                                           "guard_bits", "mode", "acc_bits")
             if getattr(args, k) is not None}
    given.update(engine_extra(args))
    if args.design is not None:
        if given:
            raise CliError(f"give either --design {args.design} or engine options "
                           f"(--{', --'.join(k.replace('_', '-') for k in given)}), not both")
        cfg = config_from_design_dir(args.design)
        if cfg.pe != "shift":
            raise CliError(f"--design {args.design}: a {cfg.pe} engine; verify runs shift "
                           f"programs, on a shift engine")
        if (cfg.act_bits, cfg.weight_bits) != (program.act_bits, program.weight_bits):
            raise CliError(f"--design {args.design}: its engine (A={cfg.act_bits}, "
                           f"b={cfg.weight_bits}) does not match the model "
                           f"(A={program.act_bits}, b={program.weight_bits})")
        return cfg
    a = given.pop("act_bits", program.act_bits)
    b = given.pop("weight_bits", program.weight_bits)
    if (a, b) != (program.act_bits, program.weight_bits):
        given = [f"--act-bits {a}"] * (a != program.act_bits) + \
            [f"--weight-bits {b}"] * (b != program.weight_bits)
        raise CliError(f"{' / '.join(given)} {'does' if len(given) == 1 else 'do'} not match "
                       f"the model (A={program.act_bits}, b={program.weight_bits})")
    mode = given.pop("mode", None)
    if mode is not None:
        given["guard_bits"] = nx.max_shift(b) if mode == "exact" else 0
    return EngineConfig(act_bits=a, weight_bits=b, pe="shift", **given)


def _run_verify(args, model: str) -> int:
    from .sim.flow import format_report, load_source, verify_model

    if not 0.0 <= args.stall_prob < 1.0:
        raise CliError(f"--stall-prob must be in [0, 1), not {args.stall_prob}")
    if args.work_dir is not None:
        check_output(args.work_dir, "--work-dir", folder=True)
    program, _ = load_source(model)
    cfg = _engine_config(args, program)
    report = verify_model(model, cfg, images=args.images, stall_prob=args.stall_prob,
                          seed=args.seed, waves=args.waves, layer_inputs=args.layer_inputs,
                          work_dir=args.work_dir, inputs=args.inputs, labels=args.labels,
                          progress=lambda msg: print(f"shifthw: {msg}", flush=True))
    print(format_report(report))
    return 0 if report.passed else 1


def _cmd_verify(args) -> int:
    return _run_verify(args, args.model)


def _cmd_flow(args) -> int:
    from .estimate.cli import engine_extra

    default_engine = args.design is None and not engine_extra(args) and all(
        getattr(args, k) is None for k in ("rows", "cols", "act_bits", "weight_bits",
                                           "guard_bits", "mode", "acc_bits"))
    if args.model == "cnn" and default_engine:
        what = ("the shipped digits CNN (DeepShift-PS, 5-bit weights, 8-bit activations) on "
                "the generated 8x8 shift engine")
    else:
        what = f"model {args.model} on the generated engine (named in the summary)"
    data = ("the whole test split" if args.images is None
            else f"the first {args.images} images of the test split")
    if args.inputs is not None:
        data = f"the inputs of {args.inputs}" + (
            "" if args.images is None else f" (the first {args.images})")
    print(f"shifthw flow: {what}, every layer and {data} in Verilator", flush=True)
    return _run_verify(args, args.model)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shifthw",
        description="Multiplication-free (DeepShift) neural networks on FPGAs and ASICs.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("doctor", help="check every tool (Verilator, cocotb, yosys, nextpnr)")
    p.add_argument("--workdir", type=Path, default=None,
                   help="keep the check's files here (default: a temporary folder)")
    p.set_defaults(func=_cmd_doctor)

    p = sub.add_parser("train", help="train a shift network on digits or MNIST")
    p.add_argument("--arch", choices=["mlp", "cnn"], default="mlp")
    p.add_argument("--mode", choices=["ps", "q", "float"], default="ps",
                   help="DeepShift-PS, DeepShift-Q, or the float baseline")
    p.add_argument("--epochs", type=_positive_int, default=None,
                   help="training epochs (default: the zoo's setting for the arch)")
    p.add_argument("--dataset", choices=["digits", "mnist"], default="digits")
    p.add_argument("--data-dir", type=Path, default=None, help="folder of MNIST IDX files")
    p.add_argument("-o", "--output", type=Path, default=None, help="checkpoint to write (.pt)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_model_options(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("convert", help="convert a float checkpoint to shift weights, finetune")
    p.add_argument("checkpoint", type=Path,
                   help="float checkpoint from `shifthw train --mode float`")
    p.add_argument("--mode", choices=["ps", "q"], default="ps")
    p.add_argument("--finetune-epochs", type=_positive_int, default=10)
    p.add_argument("--weight-bits", type=int, default=5, help="weight code bits b (2..8)")
    p.add_argument("--exponent", type=_convert_exponent, default="auto",
                   help="per-layer exponent e; 'auto' (default): the power of two each "
                        "layer's largest weight rounds to (at b = 2, whose codes have one "
                        "magnitude, the least-squares e); 'auto-headroom': the smallest e "
                        "with every |w| <= 2^e (room to grow, one code fewer in use)")
    p.add_argument("--last-n", type=_positive_int, default=None,
                   help="convert only the last N layers (DeepShift's shift depth); a "
                        "checkpoint that runs on the engine needs every layer shifted, so N "
                        "below the layer count is refused (mixed networks: convert_to_shift "
                        "in Python)")
    p.add_argument("--seed", type=_seed, default=0, help="random seed")
    p.add_argument("-o", "--output", type=Path, default=None)
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser("export", help="write the integer program (.shiftprog) of a checkpoint")
    p.add_argument("model", help="checkpoint (.pt) or zoo name (mlp, cnn)")
    p.add_argument("-o", "--output", type=Path, required=True)
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("generate", help="write the engine's Verilog and manifest")
    from .rtl_gen.generate import add_generate_arguments

    add_generate_arguments(p)
    p.set_defaults(func=_cmd_generate)

    from .estimate.cli import (add_estimate_arguments, add_sweep_arguments, run_estimate,
                               run_sweep)

    p = sub.add_parser("estimate", help="area, Fmax and energy, shift vs multiplier baseline")
    add_estimate_arguments(p)
    p.set_defaults(func=run_estimate)

    p = sub.add_parser("sweep", help="synthesise a grid of designs (shift and mult) in parallel")
    add_sweep_arguments(p)
    p.set_defaults(func=run_sweep)

    p = sub.add_parser("verify", help="verify a model on the generated engine in Verilator")
    p.add_argument("model", nargs="?", default="cnn",
                   help=".shiftprog, checkpoint (.pt) or zoo name (default: cnn)")
    _add_engine_options(p)
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("flow", help="the main job: the default model through the whole flow")
    p.add_argument("--model", default="cnn", help="zoo name, checkpoint or .shiftprog")
    _add_engine_options(p)
    p.set_defaults(func=_cmd_flow)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``shifthw`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from .program import ProgramError
    from .sim.build import BuildError
    from .sim.runner import SimError

    on_term = _catch_sigterm()
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        # The reader of stdout went away (`shifthw ... | head`): stop quietly, as a command
        # killed by SIGPIPE would (and keep Python from reporting the flush at exit).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (CliError, ProgramError, ValueError, OSError, BuildError, SimError) as exc:
        # A build or simulation that failed to run (not a mismatch, which is exit code 1)
        # keeps its log's tail after the first line.
        print(f"shifthw {args.command}: error: {_error_text(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        # Every run cleans up as it unwinds; the Amaranth components a stopped generation
        # left unelaborated are no news to the user.
        from amaranth.hdl import UnusedElaboratable

        warnings.simplefilter("ignore", UnusedElaboratable)
        terminated = isinstance(exc, _Terminated)
        print(f"shifthw {args.command}: {'terminated' if terminated else 'interrupted'}",
              file=sys.stderr)
        return 143 if terminated else 130
    finally:
        if on_term is not None:
            signal.signal(signal.SIGTERM, on_term)


class _Terminated(KeyboardInterrupt):
    """SIGTERM (``timeout``, ``kill``), raised so that a run cleans up as on Ctrl-C."""


def _raise_terminated(signum, frame):
    raise _Terminated


def _catch_sigterm():
    """Make SIGTERM raise :class:`_Terminated` in the main thread; return the handler it
    replaced (None where signals cannot be caught: another thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)


if __name__ == "__main__":
    sys.exit(main())
