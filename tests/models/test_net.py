"""Tests of shifthw.models.net: structure checks, calibration, linking, and bit-exactness of
the float64 forward against an integer pipeline built from shifthw.numerics."""

import numpy as np
import pytest
import torch
from torch import nn

from shifthw.models.layers import Conv2dShift, LinearShift
from shifthw.models.net import ShiftSequential
from shifthw.models.quant import ActQuant
from shifthw.models.zoo import cnn, mlp
from shifthw.numerics import (
    LayerArith, calibrate_frac_bits, encode_weight, quantize_act, requantize, shift_term,
)


def integer_forward(model: ShiftSequential, x: torch.Tensor) -> tuple[np.ndarray, int]:
    """The network on integers with the contract's functions (exact accumulation, G = P)."""
    mods = list(model)
    a = mods[0].act_bits
    frac = mods[0].frac
    q = quantize_act(x.numpy(), frac, a)
    i = 1
    while i < len(mods):
        m = mods[i]
        if isinstance(m, nn.MaxPool2d):
            k = m.kernel_size
            n, c, h, w = q.shape
            q = q[:, :, :h // k * k, :w // k * k].reshape(n, c, h // k, k, w // k, k)
            q = q.max(axis=(3, 5))
            i += 1
            continue
        if isinstance(m, nn.Flatten):
            q = q.reshape(len(q), -1)
            i += 1
            continue
        relu = isinstance(mods[i + 1], nn.ReLU)
        out_q = mods[i + 2 if relu else i + 1]
        b, e, big = m.weight_bits, m.exponent, m.max_shift
        sign, p = m.sign_and_shift()
        codes = encode_weight(sign.numpy(), p.numpy(), b)
        fan_in = codes[0].size
        arith = LayerArith(act_bits=a, weight_bits=b, guard_bits=big, exponent=e,
                           frac_in=frac, frac_out=out_q.frac, fan_in=fan_in, relu=relu)
        bias = arith.bias_q(m.bias.detach().numpy())
        if isinstance(m, LinearShift):
            acc = bias + shift_term(q[:, None, :], codes[None], b, big).sum(axis=2)
        else:
            pad = m.padding[0]
            qp = np.pad(q, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
            n, _, h, w = q.shape
            kh, kw = m.kernel_size
            oh, ow = h + 2 * pad - kh + 1, w + 2 * pad - kw + 1
            acc = np.broadcast_to(bias[None, :, None, None], (n, len(bias), oh, ow)).copy()
            for c in range(codes.shape[1]):
                for dy in range(kh):
                    for dx in range(kw):
                        win = qp[:, c, dy:dy + oh, dx:dx + ow]
                        acc += shift_term(win[:, None], codes[None, :, c, dy, dx, None, None],
                                          b, big)
        q = requantize(acc, arith.out_shift, a, relu=relu)
        frac = out_q.frac
        i += 3 if relu else 2
    return q, frac


def random_biases(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.shift_layers():
            m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.7)


@pytest.mark.parametrize("build,mode,weight_bits,exponent", [
    (mlp, "ps", 5, 0), (mlp, "q", 3, [1, -2]), (mlp, "ps", 6, [0, 2]),
    (cnn, "ps", 5, 0), (cnn, "q", 4, [-1, 0, 1]),
])
def test_float64_forward_equals_integer_golden_model(build, mode, weight_bits, exponent):
    torch.manual_seed(2)
    model = build(mode, weight_bits, 8, exponent=exponent).double()
    random_biases(model)
    x = torch.rand(12, 1, 8, 8, dtype=torch.float64)
    model.calibrate([x[:6], x[6:]])
    want, frac = integer_forward(model, x)
    got = model(x)
    assert torch.equal(got * 2.0 ** frac, torch.from_numpy(want).double())
    assert np.abs(want).max() > 0


def test_calibrate_in_order_with_upstream_quantisers():
    torch.manual_seed(0)
    model = cnn("ps").double()
    x = torch.rand(16, 1, 8, 8, dtype=torch.float64) * 3
    fracs = model.calibrate([(x[:8], None), (x[8:], None)])
    # naive reference: one full pass per ActQuant, upstream already fixed
    a = x
    seen = []
    model.eval()
    with torch.no_grad():
        for m in model:
            if isinstance(m, ActQuant):
                seen.append(calibrate_frac_bits(float(a.abs().max()), 8))
                assert m.frac == seen[-1]
            a = m(a)
    assert fracs == seen
    for layer, q_in in zip(model.shift_layers(), [model[0], model[3], model[7]], strict=True):
        assert layer.bias_frac == layer.max_shift + q_in.frac - layer.exponent


def test_calibrate_restores_training_flag_and_link():
    model = mlp("ps")
    model.train()
    model.calibrate([torch.rand(4, 64)])
    assert model.training
    model[0].set_frac_bits(3)
    model.link()
    assert model[2].bias_frac == 14 + 3
    model[0].enabled = False
    model.link()
    assert model[2].bias_frac is None


def test_float_mode_structure():
    model = mlp("float")
    model.check_structure(allow_float=True)
    with pytest.raises(ValueError, match=r"module 2 \(Linear\): float layer"):
        model.check_structure()
    x = torch.rand(3, 1, 8, 8)
    model.calibrate([x])
    assert torch.equal(model[0](x), x)  # disabled quantiser


def aq(bits=8):
    return ActQuant(bits)


@pytest.mark.parametrize("modules,match", [
    ([], "empty"),
    ([LinearShift(4, 2), aq()], r"module 0 \(LinearShift\): the first module"),
    ([aq()], "no layer group"),
    ([aq(), LinearShift(4, 2)], "end of the network"),
    ([aq(), LinearShift(4, 2), nn.ReLU(), nn.ReLU(), aq()], r"module 3 \(ReLU\): expected "
     "an ActQuant"),
    ([aq(), nn.Sigmoid(), LinearShift(4, 2), aq()], r"module 1 \(Sigmoid\)"),
    ([aq(), nn.Identity(), LinearShift(4, 2), nn.Dropout(), nn.Sigmoid(), aq()],
     r"module 4 \(Sigmoid\): expected an ActQuant after the layer module 2"),
    ([aq(), nn.MaxPool2d(2, padding=1), Conv2dShift(1, 1, 1), aq()], r"module 1.*padding"),
    ([aq(), nn.MaxPool2d((2, 0)), Conv2dShift(1, 1, 1), aq()], r"module 1.*kernel_size"),
    ([aq(), nn.MaxPool2d(2, stride=1.5), Conv2dShift(1, 1, 1), aq()], r"module 1.*stride"),
    ([aq(), nn.MaxPool2d(2, dilation=2), Conv2dShift(1, 1, 1), aq()], r"module 1.*dilation"),
    ([aq(), Conv2dShift(1, 1, 1), aq(), nn.Flatten()], r"module 3 \(Flatten\): the network"),
    ([aq(), LinearShift(4, 2), aq(6)], r"module 2 \(ActQuant\): act_bits=6"),
    ([aq(), LinearShift(4, 2), ActQuant(8, enabled=False)], r"module 2.*disabled"),
])
def test_check_structure_names_the_offender(modules, match):
    with pytest.raises(ValueError, match=match):
        ShiftSequential(*modules).check_structure()


def test_pair_pooling_passes_the_check_and_exports():
    # Export and the golden model take (rows, columns) pairs: the check must too (it used to
    # refuse a model that export_program would take).
    from shifthw import golden
    from shifthw.models.export import export_program, trace_integers

    torch.manual_seed(0)
    model = ShiftSequential(aq(), Conv2dShift(1, 2, 3, padding=1), aq(),
                            nn.MaxPool2d((2, 1), stride=(2, 1)), nn.Flatten(),
                            LinearShift(2 * 4 * 8, 3), aq()).double()
    model.check_structure()
    x = torch.rand(8, 1, 8, 8, dtype=torch.float64)
    model.calibrate([x])
    model.eval()
    prog = export_program(model, (1, 8, 8))
    assert prog.steps[1].kernel_size == (2, 1)
    run = golden.run_program(prog, x.numpy())
    assert all((t == g).all() for t, g in zip(trace_integers(model, x), run.outputs))


def test_zoo_architectures_pass_the_check():
    for build in (mlp, cnn):
        for mode in ("ps", "q"):
            model = build(mode)
            model.check_structure()
            assert len(model.shift_layers()) == (2 if build is mlp else 3)
            assert model(torch.rand(2, 1, 8, 8)).shape == (2, 10)
    assert mlp("ps")(torch.rand(2, 64)).shape == (2, 10)


def test_calibrate_sees_upstream_quantisation():
    # a 2-bit input quantiser floors everything here to 0, so the layer output is 0
    layer = LinearShift(1, 1, mode="ps").double()
    layer.load_sign_and_shift(torch.tensor([[1]]), torch.tensor([[0]]))
    with torch.no_grad():
        layer.bias.zero_()
    model = ShiftSequential(ActQuant(2), layer, ActQuant(2))
    x = torch.tensor([[10.0], [0.3]], dtype=torch.float64)
    assert model.calibrate([x]) == [calibrate_frac_bits(10.0, 2), calibrate_frac_bits(0.0, 2)]


def _difference_net(bias=0.3):
    # Weights +1 and -1 (b = 2, P = 0): outputs far smaller than the inputs, so the output
    # grid is finer than the bias grid P + F_in - e and an unfloored bias shows.
    lin = LinearShift(2, 1, mode="ps", weight_bits=2).double()
    lin.load_sign_and_shift(torch.tensor([[1, -1]]), torch.tensor([[0, 0]]))
    with torch.no_grad():
        lin.bias.fill_(bias)
    return ShiftSequential(aq(), lin, aq()).double()


def test_the_bias_grid_follows_the_quantisers_after_load_state_dict():
    from shifthw import golden
    from shifthw.models.export import export_program, trace_integers

    x = torch.tensor([[100.0, 100.0], [100.0, 99.0]], dtype=torch.float64)
    ref = _difference_net()
    ref.calibrate([x])
    ref.eval()
    prog = export_program(ref, (2,))
    want = golden.run_program(prog, x.numpy()).logits
    f_out = prog.layers[-1].frac_out
    # A fresh model (never linked) and one linked to other F before the load: both forward
    # with the loaded F's bias grid, as the program does (they used a float bias / a stale
    # grid: 0.3 instead of 0 at the input's F = 0).
    fresh = _difference_net(0.0)
    stale = _difference_net(0.0)
    stale.calibrate([x * 0.01])
    for model in (fresh, stale):
        model.load_state_dict(ref.state_dict())
        model.eval()
        got = torch.floor(torch.ldexp(model(x), torch.tensor(f_out))).to(torch.int64)
        assert got.numpy().tolist() == want.tolist()
        assert (trace_integers(model, x)[-1] == want).all()
    # trace_integers leaves the model in the mode it found it in.
    fresh.train()
    trace_integers(fresh, x)
    assert fresh.training


def test_identity_and_dropout_are_skipped_as_export_skips_them():
    # A converted BatchNorm leaves an nn.Identity, and dropout is common: calibrate refused
    # both although export (and the golden model) take the same network.
    from shifthw import golden
    from shifthw.models.convert import convert_to_shift
    from shifthw.models.export import export_program, trace_integers

    torch.manual_seed(0)
    net = ShiftSequential(ActQuant(8, enabled=False), nn.Conv2d(1, 2, 3, padding=1, bias=False),
                          nn.BatchNorm2d(2), nn.ReLU(), ActQuant(8, enabled=False),
                          nn.Flatten(), nn.Dropout(0.2), nn.Linear(128, 3),
                          ActQuant(8, enabled=False))
    x = torch.rand(16, 1, 8, 8, dtype=torch.float64)
    net.double().train()
    net(x)                                    # BatchNorm statistics
    net.eval()
    model = convert_to_shift(net)
    assert isinstance(model[2], nn.Identity)
    for q in model.quantizers():
        q.enabled = True
    model.check_structure()
    model.calibrate([x])
    prog = export_program(model, (1, 8, 8))
    run = golden.run_program(prog, x.numpy())
    assert all((t == g).all() for t, g in zip(trace_integers(model, x), run.outputs))
