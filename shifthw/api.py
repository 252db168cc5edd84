"""The Python API, in the shape hls4ml users know: compile, predict, simulate, write.

>>> import shifthw
>>> hw = shifthw.compile("cnn", rows=8, cols=8)          # a zoo name, .pt, .shiftprog or model
>>> hw.predict(x)                                         # golden model (numpy integers)
>>> report = hw.simulate(x)                               # the generated RTL in Verilator
>>> hw.write("build/cnn_8x8")                             # Verilog + manifest + program
"""

from __future__ import annotations

import dataclasses
import json
import numbers
import os
import warnings
from dataclasses import dataclass

import numpy as np

from . import golden
from .program import Program

__all__ = ["compile", "HardwareModel"]


def _program_of(model, input_shape=None) -> tuple[Program, object]:
    """(program, torch model or None) from any accepted model form."""
    from torch import nn

    if input_shape is not None and not isinstance(model, nn.Module):
        raise ValueError("input_shape applies to a torch model; a program or checkpoint "
                         "records its own")
    if isinstance(model, Program):
        model.validate()        # (checked when made; its fields may have changed since)
        return model, None
    if isinstance(model, (str, os.PathLike)):
        from .sim.flow import load_source

        return load_source(model)
    if isinstance(model, nn.Module):
        from .models.export import export_program

        if input_shape is not None and (
                not isinstance(input_shape, (tuple, list)) or not input_shape
                or not all(isinstance(d, numbers.Integral) and not isinstance(d, bool)
                           and d > 0 for d in input_shape)):
            raise ValueError(f"input_shape must be a non-empty tuple of positive integers, "
                             f"(C, H, W) or (K,), not {input_shape!r}")
        shape = (tuple(int(d) for d in input_shape) if input_shape is not None
                 else getattr(model, "input_shape", None) or (1, 8, 8))
        return export_program(model, shape), model
    raise TypeError(f"model must be a Program, a path, a zoo name or a ShiftSequential, not "
                    f"{type(model).__name__}")


@dataclass
class HardwareModel:
    """A program bound to an engine configuration.

    Attributes
    ----------
    program : the integer program (:mod:`shifthw.program`).
    config : the engine (:class:`shifthw.rtl_gen.config.EngineConfig`).
    torch_model : the source torch model, when there was one.
    """

    program: Program
    config: object
    torch_model: object = None

    def _quantize(self, x, quantized: bool):
        if not isinstance(quantized, bool):
            raise TypeError(f"quantized must be a bool, not {quantized!r}")
        if hasattr(x, "detach"):                  # a torch tensor (bfloat16 has no numpy twin)
            x = x.detach().cpu()
            x = (x.double() if x.is_floating_point() else x).numpy()
        try:
            x = np.asarray(x)
        except ValueError as exc:                 # ragged nested lists
            raise ValueError(f"x: not an array of one shape ({exc})") from None
        if x.ndim == 0 or len(x) == 0:
            raise ValueError(f"x: a batch of at least one input, not shape {x.shape}")
        if x.dtype.kind not in "biuf":
            raise ValueError(f"x: real numbers, not {x.dtype}")
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            raise ValueError("x: NaN or infinite values")
        if quantized:
            if x.dtype.kind == "f" and (x != np.round(x)).any():
                raise ValueError("x: quantized=True takes integers (A-bit activations), not "
                                 "fractions")
            # Checked before the int64 cast, which would wrap a uint64 or a huge float.
            a = self.program.act_bits
            lo, hi = -(1 << (a - 1)), (1 << (a - 1)) - 1
            if (x < lo).any() or (x > hi).any():
                raise ValueError(f"x: quantized=True takes {a}-bit activations {lo}..{hi}, "
                                 f"found {x.min()}..{x.max()}")
            return x.astype(np.int64)
        return golden.quantize_input(self.program, x)

    def predict(self, x, *, quantized: bool = False) -> np.ndarray:
        """Integer logits from the golden model (bit-identical to the hardware).

        ``x``: real-valued inputs (B, *input shape), preprocessed as ``program.input``
        says; or A-bit integers with ``quantized=True``.
        """
        from .rtl_gen.host import golden_program

        xq = self._quantize(x, quantized)
        return golden_program(self.program, self.config, xq).logits

    def simulate(self, x, *, quantized: bool = False, stall_prob: float = 0.0, seed: int = 0,
                 waves: bool = False, work_dir: str | os.PathLike | None = None) -> dict:
        """Run ``x`` through the generated engine in Verilator (cocotb), layer by layer.

        Returns a dict with ``logits`` (the hardware's), ``golden_logits``, ``mismatches``
        (outputs that differ from golden, per layer), per-layer ``layers`` reports (cycles,
        utilisation, stalls) and timing.
        """
        from .rtl_gen.host import golden_program
        from .sim.verify import simulate_program

        xq = self._quantize(x, quantized)
        res = simulate_program(self.program, self.config, xq, stall_prob=stall_prob, seed=seed,
                               waves=waves, work_dir=work_dir)
        gold = golden_program(self.program, self.config, xq)
        return {"logits": res["hw_steps"][-1], "golden_logits": gold.logits,
                "mismatches": {lay["name"]: lay["mismatches"] for lay in res["layers"]},
                "layers": res["layers"], "total_cycles": res["total_cycles"],
                "sim_seconds": res["sim_wall_seconds"], "waves": res.get("waves", [])}

    def write(self, out_dir: str | os.PathLike, *, board: str | None = None) -> dict:
        """Write the engine's Verilog, its manifest and the program (``model.shiftprog``)
        into ``out_dir``, as :func:`shifthw.rtl_gen.generate.generate` does: the folder is
        created, or replaced as a whole if it holds an earlier output and nothing else (a
        folder with any other file in it is refused), atomically.  With ``board``, a
        warning (``UserWarning``) when the analytic area model says the engine does not fit
        the board's FPGA, with settings that do (``docs/estimation.md``)."""
        from .rtl_gen.generate import generate

        text = json.dumps(self.program.to_json(), indent=1) + "\n"
        manifest = generate(self.config, out_dir, board=board,
                            extra_files={"model.shiftprog": text})
        if board is not None:
            from .estimate.fit import board_warnings

            lines = board_warnings(self.config, board)
            if lines:
                warnings.warn("; ".join(lines), stacklevel=2)
        return manifest


def compile(model, *, rows: int = 8, cols: int = 8, guard_bits: int | None = None,
            input_shape: tuple | None = None, **engine) -> HardwareModel:
    """Bind a model to a generated shift engine.

    Parameters
    ----------
    model : a zoo name (``"mlp"``, ``"cnn"``), a checkpoint (.pt), a program (.shiftprog or
        :class:`~shifthw.program.Program`), or a calibrated ShiftSequential.
    rows, cols : the PE array (R x C).
    guard_bits : G (default P: exact accumulation; 0: DeepShift's truncation).
    input_shape : a torch model's input, (C, H, W) or (K,), without the batch (default: the
        digits images, (1, 8, 8)); programs and checkpoints record theirs.
    engine : further :class:`~shifthw.rtl_gen.config.EngineConfig` fields (buffer depths...).
    """
    from .rtl_gen.config import EngineConfig
    from .rtl_gen.host import check_program

    known = {f.name for f in dataclasses.fields(EngineConfig)}
    unknown = sorted(set(engine) - known)
    if unknown:
        raise TypeError(f"compile: unknown engine option(s) {', '.join(unknown)} (the "
                        f"EngineConfig fields are {', '.join(sorted(known))})")
    program, torch_model = _program_of(model, input_shape)
    fixed = {"act_bits": program.act_bits, "weight_bits": program.weight_bits, "pe": "shift"}
    for key, value in fixed.items():
        given = engine.pop(key, value)
        if given != value and key == "pe":
            raise ValueError(f"pe={given!r}: compile builds shift engines for shift programs")
        if given != value:
            raise ValueError(f"{key}={given!r}: the engine takes its {key} from the model "
                             f"({value!r})")
    cfg = EngineConfig(rows=rows, cols=cols, guard_bits=guard_bits, **fixed, **engine)
    check_program(program, cfg)
    return HardwareModel(program=program, config=cfg, torch_model=torch_model)
