"""Tests of shifthw.models.zoo: architectures and the shipped models."""

import importlib.resources

import pytest
import torch
from torch import nn

from shifthw.models.data import load_digits_split
from shifthw.models.layers import Conv2dShift, LinearShift
from shifthw.models.train import evaluate
from shifthw.models.zoo import CHECKPOINT_KEYS, build, cnn, load_zoo, mlp, zoo_info


def test_architectures():
    m = mlp("ps")
    assert [type(x).__name__ for x in m] == ["ActQuant", "Flatten", "LinearShift", "ReLU",
                                             "ActQuant", "LinearShift", "ActQuant"]
    assert (m[2].in_features, m[2].out_features, m[5].out_features) == (64, 32, 10)
    c = cnn("q", 4, 6)
    convs = [x for x in c if isinstance(x, Conv2dShift)]
    assert [(x.in_channels, x.out_channels) for x in convs] == [(1, 8), (8, 16)]
    assert isinstance(c[10], LinearShift) and c[10].in_features == 64
    assert c[0].act_bits == 6 and convs[0].weight_bits == 4
    f = mlp("float")
    assert type(f[2]) is nn.Linear and not f[0].enabled
    assert build("cnn", "ps", image_size=28)(torch.rand(1, 1, 28, 28)).shape == (1, 10)
    with pytest.raises(ValueError, match="arch"):
        build("vgg")
    for size in (3, 100000, 8.0):       # (a checkpoint's: 100000 asked for 1.3 TB)
        with pytest.raises(ValueError, match=f"image_size must be an integer in 4..1024, "
                                             f"not {size}"):
            build("mlp", "ps", image_size=size)
    with pytest.raises(ValueError, match="exponent has 3 entries"):
        mlp("ps", exponent=[0, 0, 0])


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_shipped_model_reaches_stored_accuracy(name):
    info = zoo_info(name)
    assert set(CHECKPOINT_KEYS) - {"state_dict"} <= set(info)
    assert (info["arch"], info["mode"], info["weight_bits"], info["act_bits"]) == \
        (name, "ps", 5, 8)
    model = load_zoo(name)
    model.check_structure()
    assert all(m.bias_frac is not None for m in model.shift_layers())
    _, _, x_te, y_te = load_digits_split()
    acc = evaluate(model, x_te, y_te)
    assert acc == info["metrics"]["test_accuracy"]
    assert acc > 0.95
    size = importlib.resources.files("shifthw").joinpath("zoo", f"{name}.pt")
    assert len(size.read_bytes()) < 16_000


def test_unknown_zoo_name():
    with pytest.raises(ValueError, match="resnet"):
        load_zoo("resnet")


def _edited(tmp_path, name, edit):
    ck = torch.load(importlib.resources.files("shifthw") / "zoo" / "cnn.pt", weights_only=True)
    edit(ck)
    path = tmp_path / f"{name}.pt"
    torch.save(ck, path)
    return path


@pytest.mark.parametrize("name,edit,match", [
    ("nan", lambda ck: ck["state_dict"]["1.bias"].fill_(float("nan")),
     "state_dict tensor '1.bias' holds NaN or infinite values"),
    ("inf", lambda ck: ck["state_dict"]["1.bias"].fill_(float("inf")),
     "state_dict tensor '1.bias' holds NaN"),
    ("wbstr", lambda ck: ck.update(weight_bits="5"), "weight_bits must be an integer"),
    ("expstr", lambda ck: ck.update(exponent="abc"), "exponent must be an int"),
    ("sdnone", lambda ck: ck.update(state_dict=None), "state_dict must be a dict of tensors"),
    ("arch", lambda ck: ck.update(arch="mlp"),
     r"does not fit the 'mlp' architecture \(missing .* and \d+ more; unexpected"),
])
def test_a_broken_checkpoint_is_one_error_naming_the_file(tmp_path, name, edit, match):
    """Checkpoint fields of the wrong type or non-finite weights were tracebacks (or an
    export crash on int(inf)); a wrong architecture was torch's many-line key dump."""
    from shifthw.models.zoo import load_checkpoint
    path = _edited(tmp_path, name, edit)
    with pytest.raises(ValueError, match=match) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
