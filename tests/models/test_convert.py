"""Tests of shifthw.models.convert: BN folding, float->shift conversion, DeepShift import."""

import copy

import pytest
import torch
from torch import nn

from shifthw.models.convert import (
    auto_exponent, convert_to_shift, fold_batchnorm, import_deepshift_checkpoint,
)
from shifthw.models.layers import Conv2dShift, LinearShift, ps_init
from shifthw.models.quant import pow2_round
from shifthw.models.zoo import mlp


def randomise_bn(model):
    g = torch.Generator().manual_seed(5)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g))
            m.running_var.copy_(torch.rand(n, generator=g) + 0.2)
            if m.affine:
                m.weight.data.copy_(torch.randn(n, generator=g))
                m.bias.data.copy_(torch.randn(n, generator=g))


class Net(nn.Module):
    """A non-Sequential parent with a nested Sequential and a direct layer."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
            nn.Sequential(nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4, affine=False), nn.ReLU()),
            nn.Flatten())
        self.head = nn.Linear(4 * 4 * 4, 10)

    def forward(self, x):
        return self.head(self.features(x))


def test_fold_batchnorm_gives_identical_outputs():
    torch.manual_seed(0)
    model = nn.Sequential(Net(), nn.Linear(10, 6), nn.BatchNorm1d(6)).double().eval()
    randomise_bn(model)
    x = torch.randn(5, 1, 6, 6, dtype=torch.float64)
    want = model(x)
    out = fold_batchnorm(model)
    assert out is model
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert isinstance(model[0].features[1], nn.Identity)
    assert isinstance(model[0].features[3][1], nn.Identity)
    assert model[0].features[0].bias is not None  # created for the bias-free conv
    torch.testing.assert_close(model(x), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("model,where", [
    (nn.Sequential(nn.BatchNorm1d(3), nn.Linear(3, 2)), "'0'"),
    (nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.BatchNorm1d(3)), "'2'"),
    (nn.Sequential(nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(3))), "'0.1'"),
    (nn.Sequential(nn.Linear(3, 3), nn.BatchNorm2d(3)), "'1'"),
    (nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3, track_running_stats=False)), "'1'"),
])
def test_unfoldable_batchnorm_is_named(model, where):
    with pytest.raises(ValueError, match=where):
        fold_batchnorm(model)


def test_batchnorm_outside_sequential_is_named():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)
            self.norm = nn.BatchNorm1d(2)

    with pytest.raises(ValueError, match="'norm'"):
        fold_batchnorm(Odd())


def test_convert_nested_and_non_sequential_parent():
    torch.manual_seed(0)
    model = Net().double().eval()
    randomise_bn(model)
    new = convert_to_shift(model, mode="ps", weight_bits=5)
    assert new is not model and type(model.head) is nn.Linear  # original untouched
    assert isinstance(new.features[0], Conv2dShift)
    assert isinstance(new.features[3][0], Conv2dShift)
    assert isinstance(new.head, LinearShift)
    assert isinstance(new.features[1], nn.Identity)
    # PS init from the (folded) float weights
    folded = fold_batchnorm(copy.deepcopy(model))
    for got, want in ((new.head, folded.head), (new.features[0], folded.features[0])):
        shift, sign = ps_init(want.weight, 5, 0)
        assert torch.equal(got.shift, shift) and torch.equal(got.sign, sign)
        assert torch.equal(got.bias, want.bias)
    assert torch.equal(new.head.bias, model.head.bias)
    assert new.features[3][0].kernel_size == (3, 3) and new.features[0].padding == (1, 1)
    x = torch.randn(2, 1, 6, 6, dtype=torch.float64)
    assert new(x).shape == (2, 10)


def test_convert_q_mode_copies_weights_and_last_n():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Sequential(nn.Linear(4, 3)),
                          nn.Linear(3, 2))
    new = convert_to_shift(model, mode="q", weight_bits=4, last_n=2)
    assert type(new[0]) is nn.Linear
    assert isinstance(new[2][0], LinearShift) and isinstance(new[3], LinearShift)
    assert torch.equal(new[3]._parameters["weight"], model[3].weight)
    assert new[3].mode == "q" and new[3].weight_bits == 4
    assert all(type(m) is nn.Linear for m in convert_to_shift(model, last_n=0)
               if isinstance(m, nn.Linear))
    everything = convert_to_shift(model, last_n=10)
    assert sum(isinstance(m, LinearShift) for m in everything.modules()) == 3
    same = convert_to_shift(model, inplace=True)
    assert same is model and isinstance(model[0], LinearShift)


def test_convert_auto_exponent():
    layer = nn.Linear(2, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[3.0, -0.1], [0.5, 1.0]]))
    new = convert_to_shift(layer, exponent="auto")
    assert isinstance(new, LinearShift) and new.exponent == 2
    assert new.sign_and_shift()[1].tolist() == [[0, 5], [3, 2]]
    # The power of two the largest weight rounds to (log domain: 2**(k + 1/2) switches)...
    assert auto_exponent(torch.tensor([4.0])) == 2
    assert auto_exponent(torch.tensor([4.01])) == 2
    assert auto_exponent(torch.tensor([-0.3])) == -2
    assert auto_exponent(torch.tensor([2 ** 2.5 * 1.0001])) == 3
    assert auto_exponent(torch.zeros(3)) == 0
    # ... or, with headroom, the smallest e with every |w| <= 2**e.
    assert auto_exponent(torch.tensor([4.0]), headroom=True) == 2
    assert auto_exponent(torch.tensor([4.01]), headroom=True) == 3
    assert auto_exponent(torch.tensor([-0.3]), headroom=True) == -1
    # A layer whose largest weight is just above 1 used every code but the top one with
    # headroom (e = 1: nothing rounds to 2); "auto" gives e = 0 and the codes below.
    layer = nn.Linear(3, 1)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.03, 0.2, -0.02]]))
    auto = convert_to_shift(layer, exponent="auto", weight_bits=3)
    roomy = convert_to_shift(layer, exponent="auto-headroom", weight_bits=3)
    assert (auto.exponent, roomy.exponent) == (0, 1)
    assert auto.sign_and_shift()[0].tolist() == [[1, 1, 0]]
    assert roomy.sign_and_shift()[0].tolist() == [[1, 0, 0]]     # 0.2 -> 1/4 lost



def test_convert_auto_exponent_with_one_magnitude():
    """At b = 2 a code is 0 or +-2**e: "auto" takes the least-squares e, not the largest
    weight's (which rounded every weight but the largest to zero here, and a converted
    digits CNN to 0.10 accuracy)."""
    w = torch.tensor([1.0] + [0.25] * 100 + [-0.3] * 20)
    assert auto_exponent(w) == 0 and auto_exponent(w, weight_bits=3) == 0
    assert auto_exponent(w, weight_bits=2) == -2
    assert auto_exponent(w, weight_bits=2, headroom=True) == 0      # headroom: as it was
    layer = nn.Linear(121, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(w[None])
    for mode in ("ps", "q"):
        new = convert_to_shift(layer, mode=mode, weight_bits=2, exponent="auto")
        assert new.exponent == -2 and (new.sign_and_shift()[0] != 0).all()


@pytest.mark.parametrize("kwargs,match", [
    ({"mode": "float"}, "mode"), ({"weight_bits": 1}, "weight_bits"),
    ({"last_n": -1}, "last_n"), ({"exponent": "max"}, "exponent"),
])
def test_convert_checks_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        convert_to_shift(nn.Linear(2, 2), **kwargs)


def deepshift_ps_state(model, seed=0):
    """A hand-made DeepShift-PS state dict for our model's layers (float shift/sign)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, m in model.named_modules():
        if isinstance(m, (LinearShift, Conv2dShift)):
            shape = m.weight_shape
            state[f"{name}.shift"] = -torch.rand(shape, generator=g) * 14.4
            state[f"{name}.sign"] = torch.rand(shape, generator=g) * 3 - 1.5
            state[f"{name}.bias"] = torch.randn(m.bias.shape, generator=g)
    return state


@pytest.mark.parametrize("mode", ["ps", "q"])
def test_import_deepshift_ps(mode):
    model = mlp(mode)
    state = deepshift_ps_state(model)
    import_deepshift_checkpoint(state, model, weight_bits=5)
    for name in ("2", "5"):
        layer = model.get_submodule(name)
        sign, p = layer.sign_and_shift()
        want_sign = torch.sign(torch.round(state[f"{name}.sign"])).to(torch.int64)
        want_p = torch.where(want_sign != 0, -torch.round(state[f"{name}.shift"]), 0)
        assert torch.equal(sign, want_sign)
        assert torch.equal(p, want_p.to(torch.int64))
        assert torch.equal(layer.bias, state[f"{name}.bias"])


def test_import_deepshift_q_and_file_wrapper(tmp_path):
    model = mlp("ps")
    g = torch.Generator().manual_seed(1)
    state = {}
    for name in ("2", "5"):
        layer = model.get_submodule(name)
        state[f"module.{name}.weight"] = torch.randn(layer.weight_shape, generator=g) * 0.3
        state[f"module.{name}.bias"] = torch.randn(layer.bias.shape, generator=g)
    path = tmp_path / "deepshift_q.pth.tar"
    torch.save({"epoch": 3, "state_dict": state}, path)
    import_deepshift_checkpoint(path, model, weight_bits=5)
    want = pow2_round(state["module.5.weight"], 5, 0)
    got = model[5].sign_and_shift()
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def bad(state, key, value):
    state = dict(state)
    if value is None:
        del state[key]
    else:
        state[key] = value
    return state


@pytest.mark.parametrize("edit,match", [
    (lambda s: bad(s, "5.shift", torch.full((10, 32), 0.7)), r"layer '5'.*positive"),
    (lambda s: bad(s, "2.shift", torch.full((32, 64), -15.2)), r"layer '2'.*below -14"),
    (lambda s: bad(s, "5.sign", None), r"layer '5'.*no '5.sign'"),
    (lambda s: bad(bad(s, "2.shift", None), "2.sign", None), r"layer '2'.*neither"),
    (lambda s: bad(s, "5.shift", torch.zeros(10, 31)), r"layer '5'.*shape \(10, 31\)"),
    (lambda s: bad(s, "2.bias", None), r"layer '2'.*no '2.bias'"),
    (lambda s: bad(s, "2.sign", torch.full((32, 64), float("nan"))), r"layer '2'.*NaN"),
])
def test_import_refuses_what_cannot_be_represented(edit, match):
    model = mlp("ps")
    state = edit(deepshift_ps_state(model))
    with pytest.raises(ValueError, match=match):
        import_deepshift_checkpoint(state, model, weight_bits=5)


def test_import_checks_layer_config():
    model = mlp("ps", weight_bits=4)
    with pytest.raises(ValueError, match=r"layer '2' has weight_bits=4"):
        import_deepshift_checkpoint(deepshift_ps_state(model), model, weight_bits=5)
    model = mlp("ps", exponent=[0, 1])
    with pytest.raises(ValueError, match=r"layer '5' has exponent=1"):
        import_deepshift_checkpoint(deepshift_ps_state(model), model, weight_bits=5)


def test_import_zero_weights_ignore_their_shift_and_warn_on_extra_keys():
    model = mlp("ps")
    state = deepshift_ps_state(model)
    state["5.shift"] = torch.full((10, 32), -40.0)
    state["5.sign"] = torch.zeros(10, 32)  # all zero: shift irrelevant
    state["extra.running_mean"] = torch.zeros(3)
    with pytest.warns(UserWarning, match="extra.running_mean"):
        import_deepshift_checkpoint(state, model, weight_bits=5)
    assert (model[5].sign_and_shift()[0] == 0).all()


def test_layers_left_float_are_named():
    m = nn.Sequential(nn.Conv1d(1, 2, 3), nn.Linear(3, 2))
    with pytest.warns(UserWarning, match=r"these layers stay float: 0 \(Conv1d\)"):
        out = convert_to_shift(m)
    assert type(out[0]) is nn.Conv1d and isinstance(out[1], LinearShift)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, not str"):
        convert_to_shift("hello")
