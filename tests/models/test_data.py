"""Tests of shifthw.models.data: the digits split and the IDX (MNIST) reader."""

import gzip
import struct

import numpy as np
import pytest
import torch

from shifthw.models.data import MNIST_FILES, load_digits_split, load_mnist_idx, read_idx


def test_digits_split_shapes_and_determinism():
    x_tr, y_tr, x_te, y_te = load_digits_split()
    assert x_tr.shape == (1437, 1, 8, 8) and x_te.shape == (360, 1, 8, 8)
    assert x_tr.dtype == torch.float32 and y_tr.dtype == torch.int64
    assert x_tr.min() >= 0 and x_tr.max() == 1.0
    # stratified: every class has 36 or 35/37 test images
    counts = torch.bincount(y_te, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37
    again = load_digits_split()
    assert torch.equal(again[0], x_tr) and torch.equal(again[3], y_te)
    other = load_digits_split(seed=1)
    assert not torch.equal(other[3], y_te)
    with pytest.raises(ValueError, match="test_fraction"):
        load_digits_split(test_fraction=1.5)


def idx_bytes(array: np.ndarray, *, magic=None) -> bytes:
    head = magic if magic is not None else bytes([0, 0, 0x08, array.ndim])
    dims = b"".join(struct.pack(">I", d) for d in array.shape)
    return head + dims + array.astype(np.uint8).tobytes()


def write_set(folder, n_train=5, n_test=3, side=4, gz=False):
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, side, side)),
        "train_labels": rng.integers(0, 10, n_train),
        "test_images": rng.integers(0, 256, (n_test, side, side)),
        "test_labels": rng.integers(0, 10, n_test),
    }
    for key, arr in arrays.items():
        path = folder / (MNIST_FILES[key] + (".gz" if gz else ""))
        data = idx_bytes(arr)
        path.write_bytes(gzip.compress(data) if gz else data)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_round_trip(tmp_path, gz):
    arrays = write_set(tmp_path, gz=gz)
    x_tr, y_tr, x_te, y_te = load_mnist_idx(tmp_path)
    assert x_tr.shape == (5, 1, 4, 4) and x_te.shape == (3, 1, 4, 4)
    assert x_tr.dtype == torch.float32 and y_te.dtype == torch.int64
    assert torch.equal((x_tr[:, 0] * 255).round().to(torch.int64),
                       torch.from_numpy(arrays["train_images"]))
    assert y_tr.tolist() == arrays["train_labels"].tolist()
    assert y_te.tolist() == arrays["test_labels"].tolist()


def corrupt(folder, key, data):
    (folder / MNIST_FILES[key]).write_bytes(data)


@pytest.mark.parametrize("key,make,match", [
    ("train_images", lambda: idx_bytes(np.zeros((5, 4, 4)), magic=b"\x01\x00\x08\x03"),
     "bad magic"),
    ("train_images", lambda: idx_bytes(np.zeros((5, 4, 4)), magic=b"\x00\x00\x0d\x03"),
     "data type 0x0d"),
    ("train_images", lambda: idx_bytes(np.zeros((5, 16))), "2 dimensions, expected 3"),
    ("train_images", lambda: idx_bytes(np.zeros((5, 4, 4)))[:-1],
     r"need 80 data bytes, the file has 79"),
    ("train_images", lambda: idx_bytes(np.zeros((5, 4, 4))) + b"\x00", "the file has 81"),
    ("train_images", lambda: b"\x00\x00", "too short for a header"),
    ("train_images", lambda: b"\x00\x00\x08\x03\x00\x00", "too short for its 3 dimension"),
    ("train_labels", lambda: idx_bytes(np.zeros(4)), "4 labels but"),
    ("test_labels", lambda: idx_bytes(np.full(3, 12)), "label 12"),
    ("test_images", lambda: idx_bytes(np.zeros((3, 5, 5))), r"images are \(5, 5\)"),
    ("test_images", lambda: idx_bytes(np.zeros((0, 4, 4))), "dimension is zero"),
    ("train_images", lambda: idx_bytes(np.zeros((5, 4, 6))), "images are 4 x 6; .* square"),
])
def test_mnist_idx_corrupt_files_name_the_file(tmp_path, key, make, match):
    write_set(tmp_path)
    if "4 x 6" in match:    # non-square images throughout (the train / test check is later)
        corrupt(tmp_path, "test_images", idx_bytes(np.zeros((3, 4, 6))))
    corrupt(tmp_path, key, make())
    with pytest.raises(ValueError, match=match) as info:
        load_mnist_idx(tmp_path)
    assert MNIST_FILES[key] in str(info.value)


def test_mnist_idx_missing_and_bad_gzip(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        load_mnist_idx(tmp_path)
    bad = tmp_path / "x.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="x.gz.*cannot be read"):
        read_idx(bad, ndim=1)
