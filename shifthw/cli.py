"""The ``shifthw`` command line: one subcommand per step of the flow.

Each handler is thin: it parses options, calls the library, prints what it measured, and
turns the library's clear errors into one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main", "build_parser"]


class CliError(Exception):
    """An error to print as one line (no traceback) with exit code 2."""


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, not {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {v}")
    return v


def _exponent(text: str):
    if text == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'auto', not {text!r}") from None


# -- doctor ---------------------------------------------------------------------------------
def _cmd_doctor(args) -> int:
    from .doctor import run_doctor

    return run_doctor(workdir=args.workdir)


# -- train / convert / export -------------------------------------------------------------
def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weight-bits", type=int, default=5, help="weight code bits b (2..8)")
    p.add_argument("--act-bits", type=int, default=8, help="activation bits A (2..16)")
    p.add_argument("--exponent", type=_exponent, default=0,
                   help="per-layer exponent e, or 'auto' (largest weight representable)")
    p.add_argument("--seed", type=int, default=0, help="random seed (data split and init)")


def _cmd_train(args) -> int:
    from .models.train import train

    _, metrics = train(arch=args.arch, mode=args.mode, weight_bits=args.weight_bits,
                       act_bits=args.act_bits, epochs=args.epochs, seed=args.seed,
                       dataset=args.dataset, data_dir=args.data_dir, exponent=args.exponent,
                       out=args.output, progress=not args.quiet)
    print(f"{args.arch} {args.mode} b={args.weight_bits} A={args.act_bits}: "
          f"test accuracy {100 * metrics['test_accuracy']:.2f} % "
          f"({metrics['wall_seconds']:.1f} s)")
    if args.output:
        print(f"wrote {args.output} and {Path(args.output).with_suffix('.json')}")
    return 0


def _cmd_convert(args) -> int:
    from .models.train import convert_and_finetune

    _, metrics = convert_and_finetune(args.checkpoint, mode=args.mode,
                                      weight_bits=args.weight_bits, act_bits=args.act_bits,
                                      finetune_epochs=args.finetune_epochs, seed=args.seed,
                                      exponent=args.exponent, out=args.output,
                                      progress=not args.quiet)
    print(f"converted to {args.mode} b={args.weight_bits}: test accuracy "
          f"{100 * metrics['test_accuracy']:.2f} %")
    if args.output:
        print(f"wrote {args.output}")
    return 0


def _cmd_export(args) -> int:
    from .models.checkpoint import export_checkpoint
    from .program import save_program

    prog = export_checkpoint(args.model)
    path = save_program(prog, args.output)
    kinds = ", ".join(f"{s.name} {s.out_features}x{s.fan_in}" for s in prog.layers)
    print(f"wrote {path}: {len(prog.steps)} steps ({kinds}), A={prog.act_bits}, "
          f"b={prog.weight_bits}")
    return 0


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
    p.add_argument("--finetune-epochs", type=int, default=10)
    p.add_argument("-o", "--output", type=Path, default=None)
    p.add_argument("-q", "--quiet", action="store_true")
    _add_model_options(p)
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser("export", help="write the integer program (.shiftprog) of a checkpoint")
    p.add_argument("model", help="checkpoint (.pt) or zoo name (mlp, cnn)")
    p.add_argument("-o", "--output", type=Path, required=True)
    p.set_defaults(func=_cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``shifthw`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from .program import ProgramError

    try:
        return int(args.func(args) or 0)
    except (CliError, ProgramError, ValueError, TypeError, FileNotFoundError) as exc:
        print(f"shifthw {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
