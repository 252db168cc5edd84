"""``shifthw verify`` and ``shifthw flow``: a model through the generated hardware, measured.

:func:`verify_model` runs a program on the engine in Verilator over a set of images and puts
three answers side by side for every layer and for the whole network: the hardware's (RTL), the
golden model's (the numeric contract) and the torch model's (when the source is a checkpoint).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import golden
from ..program import Program, is_program_file, load_program
from ..rtl_gen.config import EngineConfig
from ..rtl_gen.host import check_program, golden_program

__all__ = ["VerifyReport", "load_source", "verify_model", "format_report"]


@dataclass
class VerifyReport:
    """Everything ``shifthw verify`` measured."""

    model: str
    config: dict
    images: int
    layers: list[dict]
    hw_accuracy: float | None
    golden_accuracy: float | None
    torch_accuracy: float | None
    images_differing: int
    total_cycles: int
    sim_seconds: float
    build_seconds: float
    build_reused: bool
    wall_seconds: float
    stall_prob: float
    layer_inputs: str
    waves: list[str] = field(default_factory=list)
    data: str = "digits test split"

    @property
    def passed(self) -> bool:
        return self.images_differing == 0 and all(lay["passed"] for lay in self.layers)

    @property
    def cycles_per_second(self) -> float:
        return self.total_cycles / self.sim_seconds if self.sim_seconds else 0.0


def load_source(source: str | os.PathLike):
    """(program, torch model or None) from a .shiftprog, a checkpoint or a zoo name."""
    if is_program_file(source):
        return load_program(source), None
    from ..models.checkpoint import export_checkpoint, load_model

    model, _ = load_model(source)
    return export_checkpoint(source), model


def _digits_test(program: Program, images: int | None):
    from ..models.data import load_digits_split

    _, _, x, y = load_digits_split()
    if images is not None and images > len(x):
        raise ValueError(f"images (--images): {images} asked for, the digits test split has "
                         f"{len(x)}")
    n = len(x) if images is None else int(images)
    if tuple(program.input.shape) != tuple(x.shape[1:]) and \
            int(np.prod(program.input.shape)) != int(np.prod(x.shape[1:])):
        raise ValueError(f"model input shape {program.input.shape} does not fit the digits "
                         f"images {tuple(x.shape[1:])}")
    return x[:n], y[:n]


def _load_array(value, what: str) -> tuple[np.ndarray, str]:
    """An array given as such or as a .npy file, and how to name it."""
    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        if not path.is_file():
            raise FileNotFoundError(f"{what} {os.fspath(value)!r}: no such .npy file")
        try:
            data = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise ValueError(f"{what} {os.fspath(value)!r}: not a .npy array "
                             f"({exc or type(exc).__name__})") from None
        if not isinstance(data, np.ndarray):         # an .npz archive of several arrays
            data.close()
            raise ValueError(f"{what} {os.fspath(value)!r}: an .npz archive, not a .npy "
                             f"array (save the one array with numpy.save)")
        return data, os.fspath(value)
    return np.asarray(value), "(an array)"


def user_inputs(program: Program, images: int | None, inputs, labels=None):
    """(x, y or None, name): a model's own real-valued inputs (an array or a .npy file, shaped
    (B, *input shape) or flat rows; the first ``images``) and optional integer labels."""
    import torch

    x, name = _load_array(inputs, "inputs")
    if x.dtype.kind not in "iuf" or x.ndim < 2 or not len(x):
        raise ValueError(f"inputs {name}: need a non-empty batch of real numbers (B, ...), "
                         f"not {x.dtype} of shape {x.shape}")
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        raise ValueError(f"inputs {name}: NaN or infinite values")
    try:
        x = golden._input_batch(program, x)
    except ValueError as exc:
        raise ValueError(f"inputs {name}: {exc}") from None
    y = None
    if labels is not None:
        y, lname = _load_array(labels, "labels")
        if y.shape != (len(x),) or y.dtype.kind not in "iu":
            raise ValueError(f"labels {lname}: need {len(x)} integer class labels (one per "
                             f"input), not {y.dtype} of shape {y.shape}")
        classes = int(np.prod(program.shapes()[-1]))
        if len(y) and (y.min() < 0 or y.max() >= classes):
            raise ValueError(f"labels {lname}: class labels must be 0..{classes - 1} (the "
                             f"model has {classes} outputs), found {int(y.min())}.."
                             f"{int(y.max())}")
        y = torch.from_numpy(y.astype(np.int64))
    if images is not None and images > len(x):
        raise ValueError(f"images (--images): {images} asked for, inputs {name} has {len(x)}")
    n = len(x) if images is None else int(images)
    return torch.from_numpy(x[:n]), (None if y is None else y[:n]), name


def verify_model(source: str | os.PathLike, cfg: EngineConfig, *, images: int | None = None,
                 stall_prob: float = 0.0, seed: int = 0, waves: bool = False,
                 layer_inputs: str = "hardware", work_dir: str | Path | None = None,
                 progress=None, inputs=None, labels=None) -> VerifyReport:
    """Verify ``source`` on the engine ``cfg`` over the digits test split (or its first N).

    ``inputs``: the model's own real-valued inputs instead (an array or a .npy file, shaped
    (B, *input shape) or flat rows), with optional integer ``labels`` for the accuracies
    (without them the accuracies are None: hardware is still compared with golden and torch).

    ``layer_inputs="hardware"``: each layer takes the previous layer's hardware output (the
    whole network in hardware); ``"golden"``: each layer takes the golden model's input to it.
    Either way every layer is compared bit for bit with the golden model on the very input it
    received.
    """
    from .verify import build_engine, simulate_program

    if layer_inputs not in ("hardware", "golden"):
        raise ValueError(f"layer_inputs must be 'hardware' or 'golden', not {layer_inputs!r}")
    if images is not None and images < 1:
        raise ValueError(f"images must be >= 1, not {images}")
    if labels is not None and inputs is None:
        raise ValueError("labels (--labels) go with inputs (--inputs); the digits test split "
                         "has its own")
    start = time.perf_counter()
    say = progress or (lambda msg: None)
    program, model = load_source(source)
    check_program(program, cfg)
    if inputs is None:
        x, y = _digits_test(program, images)
        data = "digits test split"
    else:
        x, y, data = user_inputs(program, images, inputs, labels)
    xq = golden.quantize_input(program, x.numpy())
    ref = golden_program(program, cfg, xq)
    say(f"building the {cfg.rows}x{cfg.cols} engine (Verilator, cached per design)")
    t0 = time.perf_counter()
    sim = build_engine(cfg, waves=waves)
    build_s = time.perf_counter() - t0
    say(f"simulating {len(x)} images layer by layer"
        + (" (build reused)" if sim.reused else f" (built in {build_s:.0f} s)"))
    bar = _bar(len(program.layers), f"{len(x)} images, layer", show=progress is not None)
    try:
        res = simulate_program(program, cfg, xq, chain=layer_inputs == "hardware",
                               stall_prob=stall_prob, seed=seed, work_dir=work_dir, sim=sim,
                               progress=lambda n: bar.update(n - bar.n))
    finally:
        bar.close()
    torch_acc, trace = None, None
    if model is not None:
        from ..models.export import trace_integers

        trace = trace_integers(model.double(), x.double())
        if y is not None:
            torch_pred = model.float()(x.float()).argmax(dim=1).numpy()
            torch_acc = float((torch_pred == y.numpy()).mean())
    layers = []
    step_index = {s.name: i for i, s in enumerate(program.steps)}
    for lay in res["layers"]:
        i = step_index[lay["name"]]
        hw = res["hw_steps"][i]
        lay = dict(lay)
        if trace is not None:
            lay["max_diff_torch_lsb"] = int(np.abs(hw.astype(np.int64) - trace[i]).max())
        layers.append(lay)
    hw_pred = np.asarray(res["hw_predictions"])
    return VerifyReport(
        model=str(source), config=cfg.to_dict(), images=len(x), layers=layers,
        hw_accuracy=None if y is None else float((hw_pred == y.numpy()).mean()),
        golden_accuracy=None if y is None else float((ref.predictions() == y.numpy()).mean()),
        torch_accuracy=torch_acc, images_differing=res["images_differing"],
        total_cycles=res["total_cycles"], sim_seconds=res["sim_wall_seconds"],
        build_seconds=build_s, build_reused=sim.reused,
        wall_seconds=time.perf_counter() - start, stall_prob=stall_prob,
        layer_inputs=layer_inputs, waves=res.get("waves", []), data=data)


def _bar(total: int, desc: str, *, show: bool):
    from tqdm import tqdm

    # disable=None: no bar when stderr is not a terminal (a log would fill with \r updates).
    return tqdm(total=total, desc=desc, unit="layer", disable=None if show else True,
                leave=False)


_SIZE_KEYS = ("rows", "cols", "act_bits", "weight_bits", "guard_bits", "pe")


def engine_settings(config: dict) -> list[str]:
    """``key=value`` for each engine parameter of ``config`` (a ``to_dict``) that differs from
    the default engine of the same size and widths: what else was verified."""
    base = EngineConfig(**{k: config[k] for k in _SIZE_KEYS}).to_dict()
    return [f"{k}={v}" for k, v in config.items() if k not in _SIZE_KEYS and base.get(k) != v]


def format_report(rep: VerifyReport) -> str:
    """The summary table ``shifthw verify`` prints."""
    c = rep.config
    settings = engine_settings(c)
    lines = [f"model {rep.model}: {rep.images} images ({rep.data}), engine "
             f"{c['rows']}x{c['cols']} "
             f"A={c['act_bits']} b={c['weight_bits']} G={c['guard_bits']}"
             + (f" ({', '.join(settings)})" if settings else "") + ", "
             f"stall probability {rep.stall_prob}, layer inputs from {rep.layer_inputs}",
             "",
             f"{'layer':<10} {'K':>4} {'N':>4} {'vectors':>8} {'cycles':>8} {'ideal':>8} "
             f"{'util':>6} {'stalled':>8} {'torch':>6}  result"]
    for lay in rep.layers:
        torch_d = lay.get("max_diff_torch_lsb")
        lines.append(
            f"{lay['name']:<10} {lay['fan_in']:>4} {lay['out_features']:>4} "
            f"{lay['vectors']:>8} {lay['cycles']:>8} {lay['ideal_cycles']:>8} "
            f"{100 * lay['utilisation']:>5.1f}% {lay['source_blocked']:>8} "
            f"{'-' if torch_d is None else torch_d:>6}  "
            + ("PASS" if lay["passed"] else f"FAIL ({lay['mismatches']} mismatches)"))
        for m in lay["listed"][:5]:
            lines.append(f"    vector {m['vector']} output {m['output']}: expected "
                         f"{m['expected']}, got {m['got']}")
    if rep.hw_accuracy is None:
        acc = "accuracy: - (no labels given)"
    else:
        acc = (f"accuracy: hardware {100 * rep.hw_accuracy:.2f} %, golden "
               f"{100 * rep.golden_accuracy:.2f} %, torch "
               + ("-" if rep.torch_accuracy is None else f"{100 * rep.torch_accuracy:.2f} %"))
    lines += ["", "(util = ideal ceil(K/R)*ceil(N/C) cycles per vector / measured cycles; "
              "stalled = cycles an input word waited; torch = largest |hardware - torch float64| "
              "in output LSBs)", acc,
              f"images whose hardware output differs from golden: {rep.images_differing}",
              f"simulated {rep.total_cycles} cycles in {rep.sim_seconds:.1f} s "
              f"({rep.cycles_per_second / 1e3:.0f} k cycles/s); build "
              + ("reused" if rep.build_reused else f"{rep.build_seconds:.1f} s")
              + f"; wall {rep.wall_seconds:.1f} s"]
    if rep.waves:
        lines.append("waveforms: " + ", ".join(rep.waves))
    lines.append("RESULT: " + ("PASS" if rep.passed else "FAIL"))
    return "\n".join(lines)
