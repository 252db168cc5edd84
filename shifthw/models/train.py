"""Training: from scratch (:func:`train`) or from a float checkpoint
(:func:`convert_and_finetune`), with quantisation-aware training of the activations.

Reproducibility: training seeds torch (``torch.manual_seed(seed)``; the batch order comes
from its own seeded generator), turns on ``torch.use_deterministic_algorithms`` and runs
single-threaded (``torch.set_num_threads(1)``: a multi-threaded reduction may sum in a
different order).  Both settings are restored afterwards.  The same seed on the same torch
build then gives a bit-identical state_dict.

Optimiser: Adam (DeepShift found plain SGD poor for PS) with a cosine learning-rate decay.
PS parameters are projected back into ``shift in [-P, 0]``, ``sign in [-1, 1]`` after each
step.  ActQuants follow the running-maximum policy of
:class:`~shifthw.models.quant.ActQuant` (reset every epoch).  After training the model is
converted to float64, calibrated on the training set and evaluated with quantisers on:
in float64 the forward is exactly the integer arithmetic of :mod:`shifthw.numerics`.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from shifthw.files import write_texts_atomic
from shifthw.models.convert import convert_to_shift
from shifthw.models.data import load_digits_split, load_mnist_idx
from shifthw.models.layers import MODES
from shifthw.models.net import ShiftSequential
from shifthw.models.zoo import (
    ALL_MODES, ARCHS, build, checkpoint_dict, layer_exponents, load_checkpoint,
    save_checkpoint,
)
from shifthw.numerics import check_act_bits, check_weight_bits

__all__ = ["DEFAULT_EPOCHS", "DEFAULT_LR", "train", "evaluate", "convert_and_finetune",
           "load_dataset"]

#: Default epochs per architecture (digits: 1437 training images, batch 32).
DEFAULT_EPOCHS = {"mlp": 100, "cnn": 60}
#: Default Adam learning rate per mode.
DEFAULT_LR = {"float": 1e-2, "q": 1e-2, "ps": 3e-2}
#: Default mini-batch size.
DEFAULT_BATCH = 32


@contextlib.contextmanager
def _reproducible(seed: int) -> Iterator[None]:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2 ** 63:
        raise ValueError(f"seed must be an integer in 0..2**63-1, not {seed!r}")
    det = torch.are_deterministic_algorithms_enabled()
    threads = torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(det)
        torch.set_num_threads(threads)


def load_dataset(dataset: str = "digits", data_dir=None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_train, y_train, x_test, y_test)`` of ``"digits"`` (the fixed split of
    :func:`~shifthw.models.data.load_digits_split` with its default seed 0, whatever the
    training seed) or ``"mnist"`` (IDX files in ``data_dir``)."""
    if dataset == "digits":
        if data_dir is not None:
            raise ValueError(f"data_dir {os.fspath(data_dir)!r} applies to dataset='mnist'; "
                             f"digits ships with scikit-learn")
        return load_digits_split()
    if dataset == "mnist":
        if data_dir is None:
            raise ValueError("dataset='mnist' needs data_dir (a folder with the IDX files)")
        return load_mnist_idx(data_dir)
    raise ValueError(f"dataset must be 'digits' or 'mnist', not {dataset!r}")


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
             dtype: torch.dtype = torch.float64, batch_size: int = 1024) -> float:
    """Accuracy (fraction in [0, 1]) of ``model`` on ``(x, y)``, in eval mode.

    Runs on a copy converted to ``dtype`` (float64: the exact forward); ties between
    logits go to the lowest class index (``argmax``).  ``model`` is not changed.
    """
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x and y must be non-empty and of equal length, not {len(x)} and "
                         f"{len(y)}")
    net = copy.deepcopy(model).to(dtype).eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        logits = net(x[i:i + batch_size].to(dtype))
        correct += int((logits.argmax(dim=1) == y[i:i + batch_size]).sum())
    return correct / len(x)


def _batches(x: torch.Tensor, size: int) -> list[torch.Tensor]:
    return [x[i:i + size] for i in range(0, len(x), size)]


def _fit(model: ShiftSequential, x: torch.Tensor, y: torch.Tensor, *, epochs: int,
         lr: float, batch_size: int, seed: int, progress: bool, desc: str) -> float:
    """The training loop; returns the last epoch's mean loss."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * math.ceil(len(x) / batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
    loss_mean = float("nan")
    # disable=None: no bar when stderr is not a terminal (a log would fill with \r updates).
    bar = tqdm(range(epochs), desc=desc, disable=None if progress else True, leave=False)
    for _ in bar:
        model.train()
        model.reset_observers()
        perm = torch.randperm(len(x), generator=gen)
        total, count = 0.0, 0
        for i in range(0, len(x), batch_size):
            idx = perm[i:i + batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            model.constrain_()
            total += loss.item() * len(idx)
            count += len(idx)
        loss_mean = total / count
        if not math.isfinite(loss_mean):
            raise RuntimeError(f"training diverged (loss {loss_mean}); lower lr={lr}")
        bar.set_postfix(loss=f"{loss_mean:.4f}")
    bar.close()
    return loss_mean


def _check_positive(name: str, value, kind=int):
    ok = isinstance(value, kind) and not isinstance(value, bool) and value > 0
    if not ok:
        raise ValueError(f"{name} must be a positive {kind.__name__}, not {value!r}")
    return value


def _finish(model: ShiftSequential, data) -> tuple[ShiftSequential, dict]:
    """Calibrate in float64 on the training set, then measure train/test accuracy."""
    x_tr, y_tr, x_te, y_te = data
    model = model.double().eval()
    frac = model.calibrate(_batches(x_tr.double(), 256))
    return model, {
        "train_accuracy": evaluate(model, x_tr, y_tr),
        "test_accuracy": evaluate(model, x_te, y_te),
        "frac_bits": frac,
    }


def _same_file(a, b) -> bool:
    """Whether two paths name one existing file."""
    try:
        return os.path.samefile(a, b)
    except (OSError, TypeError, ValueError):
        return False


def _check_out(out) -> None:
    """Refuse, before any training, an ``out`` whose checkpoint or metrics file cannot be
    written: the metrics go to ``out.with_suffix(".json")``, so ``out`` may not end in .json
    (the metrics would overwrite the model), and neither path may be a folder."""
    if out is None:
        return
    out = Path(out)
    if out.suffix.lower() == ".json":
        raise ValueError(f"out {os.fspath(out)!r}: a checkpoint name may not end in .json "
                         f"(the metrics are written beside it as <name>.json)")
    for path, what in ((out, "checkpoint"), (out.with_suffix(".json"), "metrics file")):
        if path.exists() and not path.is_file():
            raise ValueError(f"out {os.fspath(out)!r}: the {what} {os.fspath(path)!r} exists "
                             f"and is not a regular file")


def _write(out, ckpt: dict, metrics: dict) -> None:
    out = Path(out)
    save_checkpoint(ckpt, out)
    write_texts_atomic({out.with_suffix(".json"): json.dumps(metrics, indent=2,
                                                             sort_keys=True) + "\n"})


def _limit(data, train_limit):
    if train_limit is None:
        return data
    _check_positive("train_limit", train_limit)
    x_tr, y_tr, x_te, y_te = data
    return x_tr[:train_limit], y_tr[:train_limit], x_te, y_te


def train(arch: str = "mlp", mode: str = "ps", weight_bits: int = 5, act_bits: int = 8, *,
          epochs: int | None = None, seed: int = 0, dataset: str = "digits",
          data_dir: str | os.PathLike | None = None, lr: float | None = None,
          batch_size: int = DEFAULT_BATCH, exponent: int | str = 0,
          out: str | os.PathLike | None = None, progress: bool = True,
          train_limit: int | None = None) -> tuple[ShiftSequential, dict]:
    """Train a zoo architecture from scratch with quantisation-aware training.

    Parameters
    ----------
    arch : {"mlp", "cnn"}
        Architecture (:mod:`shifthw.models.zoo`).
    mode : {"ps", "q", "float"}
        DeepShift-PS, DeepShift-Q, or the float baseline (no quantisation at all).
    weight_bits, act_bits : int
        b and A.
    epochs : int, optional
        Default :data:`DEFAULT_EPOCHS` of the architecture.
    seed : int
        Seeds the weights and the batch order (the digits split is fixed).
    dataset : {"digits", "mnist"}
        MNIST needs ``data_dir`` with the IDX files; its images are 28x28.
    data_dir : path, optional
        Folder of the MNIST IDX files.
    lr : float, optional
        Adam learning rate; default :data:`DEFAULT_LR` of the mode.
    batch_size : int
        Mini-batch size.
    exponent : int or "auto"
        Layer exponent e; ``"auto"`` takes ``ceil(log2 max|w|)`` of each layer's random
        float initialisation, room for the weights to grow (``convert_to_shift``'s
        ``"auto-headroom"``; measured better from scratch than the rounded ``"auto"`` of
        conversion, :func:`~shifthw.models.convert.auto_exponent`).  In Q mode the draw's
        weights below ``2**(e-P)`` are then rounded without bias to 0 or ``2**(e-P)``, as a
        fixed exponent's start does: at b = 2 the CNN otherwise started with a dead first
        layer (5 epochs, seeds 0-7: mean 0.39, now 0.86); the MLP lost a little by it
        (0.862 -> 0.837; 20 epochs 0.894 -> 0.874, seeds 0-3).
    out : path, optional
        Write the checkpoint here and the metrics as JSON beside it
        (``out.with_suffix(".json")``), each through a temporary file and a rename.
    progress : bool
        Show a tqdm progress bar (when stderr is a terminal).
    train_limit : int, optional
        Use only the first N training images (quick tests).

    Returns
    -------
    model : ShiftSequential
        Trained, calibrated and linked, float64, eval mode.
    metrics : dict
        ``test_accuracy``, ``train_accuracy`` (fractions, float64 forward with quantisers
        on), ``epochs``, ``seed``, ``arch``, ``mode``, ``weight_bits``, ``act_bits``,
        ``exponent``, ``wall_seconds``, ``lr``, ``batch_size``, ``dataset``, ``n_train``,
        ``n_test``, ``final_loss``, ``frac_bits``, ``torch``.
    """
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {tuple(ARCHS)}, not {arch!r}")
    if mode not in ALL_MODES:
        raise ValueError(f"mode must be one of {ALL_MODES}, not {mode!r}")
    check_weight_bits(weight_bits)
    check_act_bits(act_bits)
    epochs = DEFAULT_EPOCHS[arch] if epochs is None else _check_positive("epochs", epochs)
    lr = DEFAULT_LR[mode] if lr is None else _check_positive("lr", float(lr), float)
    _check_positive("batch_size", batch_size)
    if exponent != "auto" and (isinstance(exponent, bool) or not isinstance(exponent, int)):
        raise ValueError(f"exponent must be an integer or 'auto', not {exponent!r}")
    _check_out(out)
    data = _limit(load_dataset(dataset, data_dir), train_limit)
    image_size = int(data[0].shape[-1])
    start = time.perf_counter()
    with _reproducible(seed):
        if mode in MODES and exponent == "auto":
            float_net = build(arch, "float", weight_bits, act_bits, image_size=image_size)
            model = convert_to_shift(float_net, mode=mode, weight_bits=weight_bits,
                                     exponent="auto-headroom", inplace=True)
            if mode == "q":
                # As a fixed exponent's start (reset_parameters): no dead layer at low b.
                for layer in model.shift_layers():
                    layer.load_float_weight(layer.round_small_weights(layer.weight.detach()))
            for q in model.quantizers():
                q.enabled = True
        else:
            model = build(arch, mode, weight_bits, act_bits,
                          exponent=0 if exponent == "auto" else exponent,
                          image_size=image_size)
        loss = _fit(model, data[0], data[1], epochs=epochs, lr=lr, batch_size=batch_size,
                    seed=seed, progress=progress, desc=f"{arch}/{mode}/w{weight_bits}")
        model, acc = _finish(model, data)
    exps = layer_exponents(model)
    metrics = {
        **acc, "arch": arch, "mode": mode, "weight_bits": weight_bits, "act_bits": act_bits,
        "exponent": exps[0] if len(set(exps)) == 1 else exps, "epochs": epochs,
        "seed": seed, "lr": lr, "batch_size": batch_size, "dataset": dataset,
        "n_train": len(data[0]), "n_test": len(data[2]), "final_loss": loss,
        "wall_seconds": round(time.perf_counter() - start, 2), "torch": str(torch.__version__),
    }
    if out is not None:
        ckpt = checkpoint_dict(model, arch=arch, mode=mode, weight_bits=weight_bits,
                               act_bits=act_bits, metrics=metrics, seed=seed, epochs=epochs,
                               image_size=image_size)
        _write(out, ckpt, metrics)
    return model, metrics


def convert_and_finetune(float_ckpt_path: str | os.PathLike, mode: str = "ps",
                         weight_bits: int = 5, finetune_epochs: int = 10, *,
                         exponent: int | str = "auto", last_n: int | None = None,
                         seed: int = 0, dataset: str = "digits",
                         data_dir: str | os.PathLike | None = None,
                         lr: float | None = None, batch_size: int = DEFAULT_BATCH,
                         out: str | os.PathLike | None = None, progress: bool = True,
                         train_limit: int | None = None) -> tuple[ShiftSequential, dict]:
    """The pretrained path: convert a float checkpoint to shift layers and fine-tune.

    Loads a float checkpoint of our format (``mode == "float"``), converts it with
    :func:`~shifthw.models.convert.convert_to_shift`, turns its ActQuants on (A from the
    checkpoint), calibrates them, fine-tunes with QAT, calibrates again, evaluates in
    float64 and saves like :func:`train` (``out``).  ``lr`` defaults to a tenth of
    :data:`DEFAULT_LR`.  Returns ``(model, metrics)``; metrics add ``float_test_accuracy``
    (of the checkpoint) and ``converted_test_accuracy`` (right after conversion).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    check_weight_bits(weight_bits)
    _check_positive("finetune_epochs", finetune_epochs)
    lr = DEFAULT_LR[mode] / 10 if lr is None else _check_positive("lr", float(lr), float)
    _check_out(out)
    if out is not None and _same_file(out, float_ckpt_path):
        raise ValueError(f"out {os.fspath(out)!r} is the float checkpoint read: writing the "
                         f"converted model there would replace it; give another name")
    float_net, ck = load_checkpoint(float_ckpt_path)
    if ck["mode"] != "float":
        raise ValueError(f"checkpoint {os.fspath(float_ckpt_path)!r} has mode "
                         f"{ck['mode']!r}; convert_and_finetune needs a float checkpoint")
    layers = sum(isinstance(m, (nn.Linear, nn.Conv2d)) for m in float_net.modules())
    if last_n is not None and last_n < layers:
        raise ValueError(f"last_n={last_n} converts {last_n} of the network's {layers} "
                         f"layers, but a shifthw checkpoint (and the engine) needs every "
                         f"layer shifted; for a mixed float / shift network use "
                         f"shifthw.models.convert_to_shift(model, last_n=...) in Python")
    data = _limit(load_dataset(dataset, data_dir), train_limit)
    start = time.perf_counter()
    with _reproducible(seed):
        model = convert_to_shift(float_net, mode=mode, weight_bits=weight_bits,
                                 exponent=exponent, last_n=last_n)
        for q in model.quantizers():
            q.enabled = True
        model.check_structure()
        model.calibrate(_batches(data[0], 256))
        converted = evaluate(model, data[2], data[3])
        loss = _fit(model, data[0], data[1], epochs=finetune_epochs, lr=lr,
                    batch_size=batch_size, seed=seed, progress=progress,
                    desc=f"{ck['arch']}/{mode}/w{weight_bits} finetune")
        model, acc = _finish(model, data)
    exps = layer_exponents(model)
    metrics = {
        **acc, "arch": ck["arch"], "mode": mode, "weight_bits": weight_bits,
        "act_bits": ck["act_bits"], "exponent": exps[0] if len(set(exps)) == 1 else exps,
        "epochs": finetune_epochs, "seed": seed, "lr": lr, "batch_size": batch_size,
        "dataset": dataset, "n_train": len(data[0]), "n_test": len(data[2]),
        "final_loss": loss, "float_test_accuracy": ck["metrics"].get("test_accuracy"),
        "converted_test_accuracy": converted, "pretrained_from": os.fspath(float_ckpt_path),
        "wall_seconds": round(time.perf_counter() - start, 2), "torch": str(torch.__version__),
    }
    if out is not None:
        ckpt = checkpoint_dict(model, arch=ck["arch"], mode=mode, weight_bits=weight_bits,
                               act_bits=ck["act_bits"], metrics=metrics, seed=seed,
                               epochs=finetune_epochs,
                               image_size=int(ck.get("image_size", 8)))
        _write(out, ckpt, metrics)
    return model, metrics

