"""Data sets: scikit-learn's 8x8 digits (shipped with scikit-learn, the default) and MNIST
from its standard IDX files (read from a local folder; nothing is downloaded)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch

__all__ = ["load_digits_split", "read_idx", "load_mnist_idx", "MNIST_FILES"]

#: The four MNIST file names (each may also be present with a ``.gz`` suffix).
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def load_digits_split(seed: int = 0, test_fraction: float = 0.2
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The 1797 8x8 digits, split train/test with a fixed seeded stratified split.

    Parameters
    ----------
    seed : int
        ``random_state`` of :func:`sklearn.model_selection.train_test_split`.
    test_fraction : float
        Fraction of images in the test split (0.2 gives 360 test images).

    Returns
    -------
    x_train, y_train, x_test, y_test : torch.Tensor
        Images as float32 ``N x 1 x 8 x 8`` with values ``pixel / 16`` in [0, 1]; labels
        as int64.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not isinstance(test_fraction, float) or not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be a float in (0, 1), not {test_fraction!r}")
    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction,
                                              random_state=seed, stratify=y)
    return (torch.from_numpy(x_tr), torch.from_numpy(y_tr),
            torch.from_numpy(x_te), torch.from_numpy(y_te))


def _open(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"IDX file {str(path)!r} cannot be read: {exc}") from exc


def read_idx(path: str | os.PathLike, *, ndim: int) -> np.ndarray:
    """Read one IDX file of unsigned bytes (optionally gzipped) as a uint8 array.

    Checks the magic number (two zero bytes, type 0x08 = unsigned byte, ``ndim``
    dimensions), that every dimension is positive, and that the data is exactly as long
    as the dimensions say.

    Parameters
    ----------
    path : str or os.PathLike
        The file; a ``.gz`` suffix means gzip.
    ndim : int
        Expected number of dimensions (3 for images, 1 for labels).

    Raises
    ------
    ValueError
        Naming the file and what is wrong.
    """
    path = Path(path)
    raw = _open(path)
    name = str(path)
    if len(raw) < 4:
        raise ValueError(f"IDX file {name!r} is too short for a header ({len(raw)} bytes)")
    if raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"IDX file {name!r}: bad magic number 0x{raw[:4].hex()} (the first "
                         "two bytes must be zero)")
    if raw[2] != 0x08:
        raise ValueError(f"IDX file {name!r}: data type 0x{raw[2]:02x}, expected 0x08 "
                         "(unsigned byte)")
    if raw[3] != ndim:
        raise ValueError(f"IDX file {name!r}: {raw[3]} dimensions, expected {ndim}")
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise ValueError(f"IDX file {name!r} is too short for its {ndim} dimension sizes")
    dims = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    if any(d == 0 for d in dims):
        raise ValueError(f"IDX file {name!r}: a dimension is zero {dims}")
    expected = int(np.prod(dims, dtype=np.int64))
    got = len(raw) - head
    if got != expected:
        raise ValueError(f"IDX file {name!r}: dimensions {dims} need {expected} data bytes, "
                         f"the file has {got}")
    return np.frombuffer(raw, dtype=np.uint8, offset=head).reshape(dims).copy()


def _find(data_dir: Path, base: str) -> Path:
    for cand in (data_dir / base, data_dir / f"{base}.gz"):
        if cand.is_file():
            return cand
    raise FileNotFoundError(f"MNIST file {base!r} (or {base}.gz) not found in "
                            f"{str(data_dir)!r}")


def load_mnist_idx(data_dir: str | os.PathLike
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Read MNIST (or a same-format set) from the four standard IDX files in ``data_dir``.

    Parameters
    ----------
    data_dir : str or os.PathLike
        Folder with ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (each optionally ``.gz``).

    Returns
    -------
    x_train, y_train, x_test, y_test : torch.Tensor
        Images as float32 ``N x 1 x H x W`` with values ``pixel / 255``; labels int64.

    Raises
    ------
    FileNotFoundError
        A file is missing.
    ValueError
        A header is wrong, a file is truncated, image and label counts differ, the train
        and test image sizes differ, images are not square (or smaller than 4 x 4), or a
        label is not in 0..9; naming the file.
    """
    data_dir = Path(data_dir)
    out = []
    size = None
    for split in ("train", "test"):
        img_path = _find(data_dir, MNIST_FILES[f"{split}_images"])
        lab_path = _find(data_dir, MNIST_FILES[f"{split}_labels"])
        images = read_idx(img_path, ndim=3)
        labels = read_idx(lab_path, ndim=1)
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f"IDX file {str(lab_path)!r} has {labels.shape[0]} labels but "
                             f"{str(img_path)!r} has {images.shape[0]} images")
        if size is not None and images.shape[1:] != size:
            raise ValueError(f"IDX file {str(img_path)!r}: images are {images.shape[1:]}, the "
                             f"training images are {size}")
        size = images.shape[1:]
        if size[0] != size[1] or size[0] < 4:
            raise ValueError(f"IDX file {str(img_path)!r}: images are {size[0]} x {size[1]}; "
                             f"the zoo architectures take square images of 4 x 4 or more")
        if labels.max() > 9:
            raise ValueError(f"IDX file {str(lab_path)!r}: label {int(labels.max())} is not "
                             "a digit 0..9")
        x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
        out += [x, torch.from_numpy(labels.astype(np.int64))]
    return tuple(out)
