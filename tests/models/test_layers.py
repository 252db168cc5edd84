"""Tests of shifthw.models.layers: LinearShift and Conv2dShift in PS and Q mode."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from shifthw.models.layers import Conv2dShift, LinearShift, ps_init
from shifthw.models.quant import pow2_round
from shifthw.numerics import max_shift


def make(kind, mode, weight_bits=5, exponent=0, bias=True):
    torch.manual_seed(1)
    if kind == "linear":
        layer = LinearShift(6, 4, bias=bias, mode=mode, weight_bits=weight_bits,
                            exponent=exponent)
        x = torch.randn(5, 6)
    else:
        layer = Conv2dShift(2, 3, 3, padding=1, bias=bias, mode=mode,
                            weight_bits=weight_bits, exponent=exponent)
        x = torch.randn(2, 2, 5, 5)
    return layer.double(), x.double()


def reference(layer, x, weight):
    if isinstance(layer, nn.Conv2d):
        return F.conv2d(x, weight, layer.quantized_bias(), padding=1)
    return F.linear(x, weight, layer.quantized_bias())


@pytest.mark.parametrize("kind", ["linear", "conv"])
@pytest.mark.parametrize("mode", ["ps", "q"])
@pytest.mark.parametrize("weight_bits,exponent", [(5, 0), (3, 2), (2, -1), (8, 0)])
def test_forward_uses_sign_times_power_of_two(kind, mode, weight_bits, exponent):
    layer, x = make(kind, mode, weight_bits, exponent)
    sign, p = layer.sign_and_shift()
    big = max_shift(weight_bits)
    assert sign.dtype == torch.int64 and p.dtype == torch.int64
    assert set(sign.unique().tolist()) <= {-1, 0, 1}
    assert p.min() >= 0 and p.max() <= big
    assert (p[sign == 0] == 0).all()
    value = sign.double() * torch.exp2((exponent - p).double())
    assert torch.equal(layer.quantized_weight(), value)
    assert torch.equal(layer.weight, value) if mode == "ps" else True
    assert torch.equal(layer(x), reference(layer, x, value))


def test_ps_mode_has_no_weight_parameter():
    layer = LinearShift(3, 2, mode="ps")
    names = {n for n, _ in layer.named_parameters()}
    assert names == {"shift", "sign", "bias"}
    assert set(layer.state_dict()) == {"shift", "sign", "bias"}
    assert not layer.weight.is_leaf  # a computed (quantised) tensor
    q = LinearShift(3, 2, mode="q")
    assert {n for n, _ in q.named_parameters()} == {"weight", "bias"}


def test_ps_gradients_reach_shift_and_sign():
    layer = LinearShift(4, 3, mode="ps").double()
    x = torch.randn(8, 4, dtype=torch.float64)
    layer(x).pow(2).sum().backward()
    assert layer.shift.grad is not None and layer.shift.grad.abs().sum() > 0
    assert layer.sign.grad is not None and layer.sign.grad.abs().sum() > 0
    assert layer.bias.grad is not None


def test_q_gradient_is_straight_through():
    layer = LinearShift(4, 3, bias=False, mode="q").double()
    x = torch.randn(8, 4, dtype=torch.float64)
    g = torch.randn(8, 3, dtype=torch.float64)
    (layer(x) * g).sum().backward()
    assert torch.allclose(layer.weight.grad, g.T @ x)


def test_ps_clamps_and_rounds_shift_and_ternary_sign():
    layer = LinearShift(4, 1, bias=False, mode="ps", weight_bits=4)  # P = 6
    with torch.no_grad():
        layer.shift.copy_(torch.tensor([[0.4, -2.5, -9.0, -1.2]]))
        layer.sign.copy_(torch.tensor([[0.6, -2.7, 1.0, 0.5]]))
    sign, p = layer.sign_and_shift()
    assert sign.tolist() == [[1, -1, 1, 0]]
    assert p.tolist() == [[0, 2, 6, 0]]  # round half to even; -9 clamps to -6
    assert layer.quantized_weight().tolist() == [[1.0, -0.25, 2 ** -6, 0.0]]
    layer.constrain_()
    assert layer.shift.tolist() == [[0.0, -2.5, -6.0, pytest.approx(-1.2)]]
    assert layer.sign.tolist() == [[pytest.approx(0.6), -1.0, 1.0, 0.5]]


def test_ps_init_from_float_weights():
    # 5 bits, e = 0: P = 14; zero below 2**-15
    w = torch.tensor([0.3, -0.7, 2.0, 2 ** -14, -(2 ** -15) * 1.01, 2 ** -15 * 0.99, 0.0])
    shift, sign = ps_init(w, 5, 0)
    assert sign.tolist() == [1, -1, 1, 1, -1, 0, 0]
    assert shift.tolist()[:5] == [-2, -1, 0, -14, -14]
    shift, sign = ps_init(w, 5, 1)  # e = 1: 2.0 is representable as 2**(1-0)
    assert shift[2].item() == 0 and shift[0].item() == -3


def test_random_init_never_dead_at_low_bits():
    torch.manual_seed(0)
    layer = LinearShift(64, 32, mode="ps", weight_bits=2)
    sign, _ = layer.sign_and_shift()
    assert 0.02 < (sign != 0).double().mean() < 0.5
    torch.manual_seed(0)
    layer = LinearShift(64, 32, mode="ps", weight_bits=5)
    assert (layer.sign_and_shift()[0] != 0).double().mean() > 0.99


def test_bias_frac_floors_the_bias():
    layer = LinearShift(2, 3, mode="ps").double()
    with torch.no_grad():
        layer.bias.copy_(torch.tensor([0.3, -0.3, 0.25]))
    assert torch.equal(layer.quantized_bias(), layer.bias)
    layer.bias_frac = 2
    assert layer.quantized_bias().tolist() == [0.25, -0.5, 0.25]
    layer.bias_frac = 200  # no float32/64 overflow
    assert torch.equal(layer.quantized_bias(), layer.bias)
    layer.bias_frac = 2
    layer.quantized_bias().sum().backward()
    assert layer.bias.grad.tolist() == [1.0, 1.0, 1.0]


def test_load_sign_and_shift_round_trip():
    for mode in ("ps", "q"):
        layer = Conv2dShift(2, 2, 1, mode=mode, weight_bits=4, exponent=1)
        sign = torch.tensor([1, 0, -1, 1]).reshape(2, 2, 1, 1)
        p = torch.tensor([0, 5, 6, 3]).reshape(2, 2, 1, 1)
        layer.load_sign_and_shift(sign, p)
        s2, p2 = layer.sign_and_shift()
        assert s2.tolist() == sign.tolist()
        assert p2.flatten().tolist() == [0, 0, 6, 3]
        with pytest.raises(ValueError, match="shift must be in 0..6"):
            layer.load_sign_and_shift(sign, p + 2)


def test_q_sign_and_shift_is_pow2_round():
    layer = LinearShift(5, 2, mode="q", weight_bits=3, exponent=-1)
    want = pow2_round(layer.weight, 3, -1)
    got = layer.sign_and_shift()
    assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))


def test_conv_keeps_geometry_and_repr():
    layer = Conv2dShift(1, 2, (3, 1), stride=2, padding=(1, 0), mode="q", exponent=-2)
    assert layer.kernel_size == (3, 1) and layer.stride == (2, 2)
    r = repr(layer)
    assert "mode='q'" in r and "weight_bits=5" in r and "exponent=-2" in r
    layer.bias_frac = 7
    assert "bias_frac=7" in repr(layer)
    assert "mode='ps'" in repr(LinearShift(2, 2))


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"mode": "float"}, ValueError, "mode must be one of .*'float'"),
    ({"weight_bits": 9}, ValueError, "weight_bits must be in 2..8, not 9"),
    ({"weight_bits": 4.0}, TypeError, "weight_bits must be an integer"),
    ({"exponent": 40}, ValueError, "exponent must be in -32..32, not 40"),
    ({"exponent": "auto"}, TypeError, "exponent must be an integer"),
])
def test_arguments_are_checked(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        LinearShift(2, 2, **kwargs)
    with pytest.raises(exc, match=match):
        Conv2dShift(1, 1, 3, **kwargs)


def test_sizes_are_checked():
    # Zero outputs failed in the PS initialisation with an IndexError.
    for make, match in ((lambda: LinearShift(4, 0), "out_features must be a positive integer"),
                        (lambda: LinearShift(0, 4), "in_features must be a positive integer"),
                        (lambda: Conv2dShift(1, 0, 3), "out_channels must be a positive")):
        with pytest.raises(ValueError, match=match):
            make()


def test_float64_forward_is_exact_with_extreme_scales():
    # products x * 2**-p and their sums must be exact in float64: compare with integers
    layer = LinearShift(64, 1, bias=False, mode="ps", weight_bits=5).double()
    torch.manual_seed(3)
    sign = torch.randint(-1, 2, (1, 64))
    p = torch.randint(0, 15, (1, 64))
    layer.load_sign_and_shift(sign, p)
    q = torch.randint(-128, 128, (7, 64))
    x = q.double() * 2.0 ** -7
    exact = (q * sign * 2 ** (14 - p)).sum(dim=1)  # integer sum on the 2**-(7+14) grid
    assert torch.equal(layer(x)[:, 0] * 2.0 ** 21, exact.double())
