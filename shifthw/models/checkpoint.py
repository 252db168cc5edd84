"""From a checkpoint (or a zoo name) to an integer program, with provenance."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .. import __version__
from ..program import Program
from .export import ExportError, export_program
from .zoo import ZOO_NAMES, load_checkpoint, load_zoo, zoo_info

__all__ = ["load_model", "export_checkpoint", "DIGITS_PREPROCESS"]

#: How the digits data set becomes the network input (``shifthw.models.data``).
DIGITS_PREPROCESS = "pixel / 16 (scikit-learn digits, 0..16 -> [0, 1])"


def load_model(source: str | os.PathLike) -> tuple[torch.nn.Module, dict]:
    """A model and its checkpoint info from a ``.pt`` path or a zoo name (``mlp``, ``cnn``)."""
    if isinstance(source, str) and source in ZOO_NAMES and not Path(source).exists():
        return load_zoo(source), zoo_info(source)
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"model {os.fspath(source)!r}: no such checkpoint file (or zoo "
                                f"name: {', '.join(ZOO_NAMES)})")
    model, ckpt = load_checkpoint(path)
    return model, {k: v for k, v in ckpt.items() if k != "state_dict"}


def export_checkpoint(source: str | os.PathLike) -> Program:
    """The integer program of a checkpoint or zoo model (input 1 x S x S digits images)."""
    model, info = load_model(source)
    if info.get("mode") == "float":
        raise ValueError(f"model {os.fspath(source)!r} is a float baseline: convert it to shift "
                         f"weights first (shifthw convert)")
    size = int(info.get("image_size", 8))
    meta = {"source": os.fspath(source), "shifthw": __version__,
            **{k: info[k] for k in ("arch", "mode", "seed", "epochs") if k in info}}
    if isinstance(info.get("metrics"), dict):
        meta["torch_test_accuracy"] = info["metrics"].get("test_accuracy")
    try:
        return export_program(model, (1, size, size),
                              preprocess=DIGITS_PREPROCESS if size == 8 else "pixel / 255",
                              meta=meta)
    except ExportError as exc:
        raise ExportError(f"model {os.fspath(source)!r}: {exc}") from None
