"""Default architectures, the checkpoint format, and the shipped (zoo) models.

Architectures (sized for a small FPGA; input ``1 x 8 x 8`` digits, ``pixel / 16``):

* ``mlp``: ActQuant, Flatten, Linear 64->32, ReLU, ActQuant, Linear 32->10, ActQuant.
  (The Flatten after the input quantiser lets the MLP take ``N x 1 x 8 x 8`` images
  like the CNN; on ``N x 64`` input it does nothing.)
* ``cnn``: ActQuant, Conv2d(1, 8, 3, pad 1), ReLU, ActQuant, MaxPool2d(2),
  Conv2d(8, 16, 3, pad 1), ReLU, ActQuant, MaxPool2d(2), Flatten, Linear(64, 10),
  ActQuant.

Shipped models ``shifthw/zoo/mlp.pt`` and ``shifthw/zoo/cnn.pt`` are DeepShift-PS,
weight_bits 5, act_bits 8, exponent 0, seed 0, default epochs, trained on the digits
split of :func:`shifthw.models.data.load_digits_split` (seed 0).  To reproduce them
(bit-identical state on the same torch build; training runs single-threaded)::

    shifthw train --arch mlp --mode ps --weight-bits 5 --act-bits 8 --epochs 100 --seed 0 \
        -o shifthw/zoo/mlp.pt
    shifthw train --arch cnn --mode ps --weight-bits 5 --act-bits 8 --epochs 60 --seed 0 \
        -o shifthw/zoo/cnn.pt

or without the CLI::

    python -c "from shifthw.models.train import train; \
        train('mlp', 'ps', 5, 8, epochs=100, seed=0, out='shifthw/zoo/mlp.pt')"
    python -c "from shifthw.models.train import train; \
        train('cnn', 'ps', 5, 8, epochs=60, seed=0, out='shifthw/zoo/cnn.pt')"

Checkpoint format (a ``.pt`` file readable with ``torch.load(..., weights_only=True)``): a
dict with keys ``arch``, ``mode``, ``weight_bits``, ``act_bits``, ``exponent`` (int, or a
list with one int per layer), ``image_size``, ``state_dict``, ``metrics``, ``seed``,
``epochs``.  The model is rebuilt with :func:`build` and the state loaded.  PS layers are
stored in canonical form (``shift`` = -p and ``sign`` in {-1, 0, 1} as int8), which gives
exactly the trained quantised weights and keeps the files small.
"""

from __future__ import annotations

import importlib.resources
import io
import os
import re
from collections.abc import Sequence

import torch
from torch import nn

from shifthw.models.layers import MODES, Conv2dShift, LinearShift
from shifthw.models.net import ShiftSequential
from shifthw.models.quant import ActQuant, pow2_round
from shifthw.numerics import check_act_bits, check_weight_bits

__all__ = ["ARCHS", "ALL_MODES", "ZOO_NAMES", "CHECKPOINT_KEYS", "mlp", "cnn", "build",
           "layer_exponents", "checkpoint_dict", "save_checkpoint", "load_checkpoint",
           "load_zoo", "zoo_info"]

#: Modes of :func:`build`: the shift modes plus the float baseline.
ALL_MODES = (*MODES, "float")
#: Names of the shipped models.
ZOO_NAMES = ("mlp", "cnn")
#: Keys of a checkpoint dict.
CHECKPOINT_KEYS = ("arch", "mode", "weight_bits", "act_bits", "exponent", "image_size",
                   "state_dict", "metrics", "seed", "epochs")


class _Layers:
    """Makes the weight layers of one network for a mode, handing out exponents."""

    def __init__(self, mode: str, weight_bits: int, exponent, count: int):
        if mode not in ALL_MODES:
            raise ValueError(f"mode must be one of {ALL_MODES}, not {mode!r}")
        self.mode = mode
        self.weight_bits = check_weight_bits(weight_bits)
        if isinstance(exponent, Sequence) and not isinstance(exponent, str):
            exps = [int(e) for e in exponent]
            if len(exps) != count:
                raise ValueError(f"exponent has {len(exps)} entries, the network has "
                                 f"{count} layers")
        elif isinstance(exponent, int) and not isinstance(exponent, bool):
            exps = [exponent] * count
        else:
            raise TypeError(f"exponent must be an int or a list of ints, not {exponent!r}")
        self._exps = iter(exps)

    def _kw(self) -> dict:
        return {"mode": self.mode, "weight_bits": self.weight_bits,
                "exponent": next(self._exps)}

    def linear(self, n_in: int, n_out: int) -> nn.Module:
        if self.mode == "float":
            next(self._exps)
            return nn.Linear(n_in, n_out)
        return LinearShift(n_in, n_out, **self._kw())

    def conv(self, c_in: int, c_out: int) -> nn.Module:
        if self.mode == "float":
            next(self._exps)
            return nn.Conv2d(c_in, c_out, 3, padding=1)
        return Conv2dShift(c_in, c_out, 3, padding=1, **self._kw())


#: The largest square input side a zoo network is built for.
MAX_IMAGE_SIZE = 1024


def _check_size(image_size) -> int:
    if isinstance(image_size, bool) or not isinstance(image_size, int) or \
            not 4 <= image_size <= MAX_IMAGE_SIZE:
        raise ValueError(f"image_size must be an integer in 4..{MAX_IMAGE_SIZE}, not "
                         f"{image_size!r}")
    return image_size


def mlp(mode: str = "ps", weight_bits: int = 5, act_bits: int = 8, *,
        exponent: int | Sequence[int] = 0, image_size: int = 8) -> ShiftSequential:
    """The default MLP: (image_size**2)->32->10 with ReLU (see the module docstring).

    Parameters
    ----------
    mode : {"ps", "q", "float"}
        Shift layers of that mode, or plain float layers with disabled ActQuants.
    weight_bits, act_bits : int
        b and A.
    exponent : int or sequence of int
        e of every layer, or one per layer.
    image_size : int
        Side of the square input image (8 for digits, 28 for MNIST).
    """
    a = check_act_bits(act_bits)
    n_in = _check_size(image_size) ** 2
    mk = _Layers(mode, weight_bits, exponent, 2)
    on = mode != "float"
    return ShiftSequential(
        ActQuant(a, enabled=on), nn.Flatten(),
        mk.linear(n_in, 32), nn.ReLU(), ActQuant(a, enabled=on),
        mk.linear(32, 10), ActQuant(a, enabled=on),
    )


def cnn(mode: str = "ps", weight_bits: int = 5, act_bits: int = 8, *,
        exponent: int | Sequence[int] = 0, image_size: int = 8) -> ShiftSequential:
    """The default CNN: two 3x3 conv layers (8, 16 channels) with 2x2 max-pooling, then a
    linear classifier (see the module docstring).  Parameters as :func:`mlp`."""
    a = check_act_bits(act_bits)
    side = _check_size(image_size) // 4
    mk = _Layers(mode, weight_bits, exponent, 3)
    on = mode != "float"
    return ShiftSequential(
        ActQuant(a, enabled=on),
        mk.conv(1, 8), nn.ReLU(), ActQuant(a, enabled=on), nn.MaxPool2d(2),
        mk.conv(8, 16), nn.ReLU(), ActQuant(a, enabled=on), nn.MaxPool2d(2),
        nn.Flatten(), mk.linear(16 * side * side, 10), ActQuant(a, enabled=on),
    )


#: The architectures by name.
ARCHS = {"mlp": mlp, "cnn": cnn}


def build(arch: str, mode: str = "ps", weight_bits: int = 5, act_bits: int = 8, *,
          exponent: int | Sequence[int] = 0, image_size: int = 8) -> ShiftSequential:
    """Build architecture ``arch`` (a key of :data:`ARCHS`)."""
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {tuple(ARCHS)}, not {arch!r}")
    return ARCHS[arch](mode, weight_bits, act_bits, exponent=exponent,
                       image_size=image_size)


def layer_exponents(model: nn.Module) -> list[int]:
    """The exponent of every shift layer (0 for float layers), in order."""
    return [int(getattr(m, "exponent", 0)) for m in model.modules()
            if isinstance(m, (nn.Linear, nn.Conv2d))]


def _q_weight_float32(layer) -> torch.Tensor:
    """A Q layer's float weight in float32 with the codes it has: a (float64) weight within a
    float32 step of a switch point 2**(k + 1/2) could round to the other side; those few
    are stored as their power of two (exact in float32), the rest as they are."""
    w = layer._parameters["weight"].detach()
    small = w.to(torch.float32)
    sign, p = pow2_round(w, layer.weight_bits, layer.exponent)
    sign32, p32 = pow2_round(small, layer.weight_bits, layer.exponent)
    moved = (sign != sign32) | (p != p32)
    if moved.any():
        exact = (sign.to(torch.float64) * torch.exp2((layer.exponent - p).to(torch.float64)))
        small = torch.where(moved, exact.to(torch.float32), small)
    return small


def _compact_state(model: nn.Module) -> dict[str, torch.Tensor]:
    state = {}
    shift_layers = {name: m for name, m in model.named_modules()
                    if isinstance(m, (LinearShift, Conv2dShift))}
    for key, value in model.state_dict().items():
        owner, _, leaf = key.rpartition(".")
        layer = shift_layers.get(owner)
        if layer is not None and layer.mode == "ps" and leaf in ("shift", "sign"):
            sign, p = layer.sign_and_shift()
            # A zero weight's latent shift parks at -P (as ps_init and load_sign_and_shift
            # do), so that one revived by more training comes back small, not at 2**e.
            shift = torch.where(sign != 0, -p, -layer.max_shift)
            value = (sign if leaf == "sign" else shift).to(torch.int8)
        elif layer is not None and layer.mode == "q" and leaf == "weight":
            value = _q_weight_float32(layer)
        elif value.is_floating_point():
            value = value.to(torch.float32)
        state[key] = value.detach().clone().cpu()
    return state


def checkpoint_dict(model: ShiftSequential, *, arch: str, mode: str, weight_bits: int,
                    act_bits: int, metrics: dict, seed: int, epochs: int,
                    image_size: int = 8) -> dict:
    """The checkpoint dict of ``model`` (see the module docstring)."""
    exps = layer_exponents(model)
    exponent = exps[0] if len(set(exps)) == 1 else exps
    return {"arch": arch, "mode": mode, "weight_bits": int(weight_bits),
            "act_bits": int(act_bits), "exponent": exponent, "image_size": int(image_size),
            "state_dict": _compact_state(model), "metrics": dict(metrics),
            "seed": int(seed), "epochs": int(epochs)}


def save_checkpoint(ckpt: dict, path: str | os.PathLike) -> None:
    """Write a checkpoint dict atomically (temporary file in the same folder, renamed)."""
    path = os.fspath(path)
    # A missing folder is made (as export and generate do); torch.save would stop on it.
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        torch.save(ckpt, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _starts_as_json(path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(64).lstrip().startswith(b"{")
    except OSError:
        return False


def _some(names, n: int = 4) -> str:
    names = sorted(names)
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def _from_ckpt(ckpt, where: str) -> tuple[ShiftSequential, dict]:
    if not isinstance(ckpt, dict):
        raise ValueError(f"{where}: not a shifthw checkpoint (a dict)")
    missing = [k for k in CHECKPOINT_KEYS if k not in ckpt and k != "image_size"]
    if missing:
        raise ValueError(f"{where}: checkpoint lacks {missing}")
    try:
        model = build(ckpt["arch"], ckpt["mode"], ckpt["weight_bits"], ckpt["act_bits"],
                      exponent=ckpt["exponent"], image_size=ckpt.get("image_size", 8))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from None
    state = ckpt["state_dict"]
    if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ValueError(f"{where}: state_dict must be a dict of tensors, not "
                         f"{type(state).__name__}")
    want = set(model.state_dict())
    if set(state) != want:
        parts = [f"missing {_some(want - set(state))}" if want - set(state) else "",
                 f"unexpected {_some(set(state) - want)}" if set(state) - want else ""]
        raise ValueError(f"{where}: state_dict does not fit the {ckpt['arch']!r} "
                         f"architecture ({'; '.join(p for p in parts if p)})")
    for name, t in state.items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise ValueError(f"{where}: state_dict tensor {name!r} holds NaN or infinite "
                             f"values")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        # torch lists every size mismatch on lines of its own: the first one says enough.
        lines = [ln.strip() for ln in str(exc).splitlines() if "size mismatch" in ln]
        raise ValueError(f"{where}: state_dict does not fit the {ckpt['arch']!r} "
                         f"architecture: {lines[0] if lines else str(exc).strip()}"
                         + (f" (and {len(lines) - 1} more)" if len(lines) > 1 else "")
                         ) from None
    model.link()
    model.eval()
    return model, ckpt


def load_checkpoint(path: str | os.PathLike) -> tuple[ShiftSequential, dict]:
    """Rebuild and load a model saved by :func:`save_checkpoint`.

    Returns
    -------
    model : ShiftSequential
        In eval mode, float32, linked (bias_frac set); use ``model.double()`` for the
        exact forward.
    ckpt : dict
        The checkpoint dict.
    """
    where = f"checkpoint {os.fspath(path)!r}"
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise
    except Exception as exc:
        # A file that is not a torch.save file: pickle and zip readers fail with anything
        # from KeyError to RuntimeError, whose text alone does not say what happened.
        from ..program import is_program_file

        if is_program_file(path) and _starts_as_json(path):
            raise ValueError(f"{where}: a JSON file (a .shiftprog program?), not a PyTorch "
                             f"checkpoint") from exc
        # torch's first sentence only: the rest can run to lines of advice.
        first = re.split(r"(?<=\.)\s", str(exc).strip(), maxsplit=1)[0][:160]
        raise ValueError(f"{where}: not a PyTorch checkpoint file ({type(exc).__name__}: "
                         f"{first})") from exc
    return _from_ckpt(ckpt, where)


def _zoo_bytes(name: str) -> bytes:
    if name not in ZOO_NAMES:
        raise ValueError(f"zoo model name must be one of {ZOO_NAMES}, not {name!r}")
    res = importlib.resources.files("shifthw").joinpath("zoo", f"{name}.pt")
    if not res.is_file():
        raise FileNotFoundError(f"zoo model {name!r} is not installed (shifthw/zoo/{name}.pt)")
    return res.read_bytes()


def load_zoo(name: str) -> ShiftSequential:
    """The shipped model ``name`` ("mlp" or "cnn"), rebuilt, loaded, linked, eval mode."""
    ckpt = torch.load(io.BytesIO(_zoo_bytes(name)), map_location="cpu", weights_only=True)
    return _from_ckpt(ckpt, f"zoo model {name!r}")[0]


def zoo_info(name: str) -> dict:
    """The shipped model's checkpoint dict without the state (metrics, seed, epochs...)."""
    ckpt = torch.load(io.BytesIO(_zoo_bytes(name)), map_location="cpu", weights_only=True)
    return {k: v for k, v in ckpt.items() if k != "state_dict"}
