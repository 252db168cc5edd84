"""Export to the integer program, and agreement of torch and the golden model at every layer."""

import numpy as np
import pytest
import torch
from torch import nn

from shifthw import golden
from shifthw.models.checkpoint import export_checkpoint, load_model
from shifthw.models.data import load_digits_split
from shifthw.models.export import ExportError, export_program, trace_integers
from shifthw.models.quant import ActQuant
from shifthw.program import load_program, save_program


@pytest.fixture(scope="module")
def test_split():
    _, _, x, y = load_digits_split()
    return x, y


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_float64_torch_equals_golden_at_every_layer(name, test_split):
    x, y = test_split
    model, info = load_model(name)
    prog = export_checkpoint(name)
    model = model.double()
    trace = trace_integers(model, x.double())
    run = golden.run_program(prog, x.numpy())
    assert len(trace) == len(run.outputs) == len(prog.steps)
    for step, t, g in zip(prog.steps, trace, run.outputs):
        assert t.shape == g.shape, step.name
        assert (t == g).all(), f"{step.name}: {np.sum(t != g)} values differ"
    # Identical predictions, and the accuracy the checkpoint reports.
    torch_pred = model(x.double()).argmax(dim=1).numpy()
    assert (run.predictions() == torch_pred).all()
    acc = float((run.predictions() == y.numpy()).mean())
    assert acc == pytest.approx(info["metrics"]["test_accuracy"])


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_float32_torch_within_one_lsb(name, test_split):
    x, _ = test_split
    model, _ = load_model(name)
    prog = export_checkpoint(name)
    trace = trace_integers(model.float(), x.float())
    run = golden.run_program(prog, x.numpy())
    for step, t, g in zip(prog.steps, trace, run.outputs):
        assert np.abs(t.astype(np.int64) - g).max() <= 1, step.name


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_truncation_drift_is_bounded_and_reported(name, test_split):
    """G < P floors every term; measure how far outputs move (never more than the bound)."""
    x, _ = test_split
    prog = export_checkpoint(name)
    exact = golden.run_program(prog, x.numpy())
    for g in (0, 4):
        run = golden.run_program(prog, x.numpy(), guard_bits=g)
        agree = float((run.predictions() == exact.predictions()).mean())
        assert agree > 0.9, (g, agree)
        # G = 0 must really differ somewhere, or the guard bits would not matter.
        if g == 0:
            assert any((a != b).any() for a, b in zip(run.outputs, exact.outputs))


def test_shipped_programs_match_fresh_export(tmp_path):
    for name in ("mlp", "cnn"):
        shipped = load_program(f"shifthw/zoo/{name}.shiftprog")
        fresh = export_checkpoint(name)
        assert shipped.to_json()["steps"] == fresh.to_json()["steps"]
        path = save_program(fresh, tmp_path / f"{name}.shiftprog")
        assert load_program(path).to_json() == fresh.to_json()


def test_export_refuses_unknown_modules():
    model = nn.Sequential(ActQuant(8), nn.Linear(4, 2), ActQuant(8))
    with pytest.raises(ExportError, match=r"module 1 \(Linear\) cannot be exported"):
        export_program(model, (4,))
    with pytest.raises(ExportError, match="must start with an ActQuant"):
        export_program(nn.Sequential(nn.ReLU()), (4,))


def test_export_needs_a_quantiser_after_each_layer():
    from shifthw.models.layers import LinearShift

    model = nn.Sequential(ActQuant(8), LinearShift(4, 2), nn.ReLU())
    with pytest.raises(ExportError, match=r"module 1 \(LinearShift\).*followed by an ActQuant"):
        export_program(model, (4,))


def test_float_checkpoint_is_refused(tmp_path):
    from shifthw.models.train import train

    out = tmp_path / "f.pt"
    train("mlp", "float", 5, 8, epochs=1, seed=0, out=out, progress=False, train_limit=64)
    with pytest.raises(ValueError, match="float baseline"):
        export_checkpoint(out)
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        export_checkpoint(tmp_path / "missing.pt")


def test_a_bias_the_accumulator_cannot_hold_is_saturated_alike_and_warned_of():
    # The contract saturates a bias to what the accumulator holds, and so does the torch
    # layer (it did not: torch and the program differed by most of the output range even at
    # G = P); export still warns, since such a bias (inputs calibrated on tiny values) is
    # beyond every reachable sum.
    import warnings

    from shifthw.models import LinearShift, ShiftSequential

    lin = LinearShift(1, 1, mode="q")
    with torch.no_grad():
        lin.weight.fill_(1.0)
        lin.bias.fill_(1.0)
    m = ShiftSequential(ActQuant(8), lin, ActQuant(8)).double()
    x = torch.linspace(-0.01, 0.01, 32, dtype=torch.float64)[:, None]
    m.calibrate([x])
    m.eval()
    with pytest.warns(UserWarning, match="layer linear1: 1 of 1 biases exceed what its "
                                         "accumulator holds .* saturated .as the torch"):
        prog = export_program(m, (1,))
    run = golden.run_program(prog, x.numpy())
    assert (trace_integers(m, x)[-1] == run.logits).all()
    got = run.logits[:, 0] / 2 ** prog.layers[-1].frac_out
    assert np.allclose(got, m(x).detach().numpy()[:, 0])
    assert got.max() < 0.5              # the saturated bias: far below the float bias 1.0
    with torch.no_grad():
        lin.bias.fill_(0.001)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        export_program(m, (1,))


def test_padding_strings_export_as_numbers(test_split):
    # 'valid' is no padding and 'same' (stride 1, odd kernel) is (k - 1) / 2 each side: the
    # program equals torch at every step, as with the numbers.
    from shifthw.models import Conv2dShift, LinearShift, ShiftSequential

    x = test_split[0][:32].double()
    torch.manual_seed(0)
    for padding, want in (("valid", (0, 0)), ("same", (1, 2))):
        conv = Conv2dShift(1, 2, (3, 5), padding=padding, mode="ps")
        side = 8 if padding == "same" else (6, 4)
        flat = 2 * 64 if padding == "same" else 2 * 6 * 4
        m = ShiftSequential(ActQuant(8), conv, nn.ReLU(), ActQuant(8), nn.Flatten(),
                            LinearShift(flat, 3, mode="ps"), ActQuant(8)).double()
        m.calibrate([x])
        m.eval()
        prog = export_program(m, (1, 8, 8))
        assert prog.layers[0].padding == want, side
        run = golden.run_program(prog, x.numpy())
        for step, t, g in zip(prog.steps, trace_integers(m, x), run.outputs):
            assert (t == g).all(), (padding, step.name)
    # torch's 'same' with an even kernel pads one side more (and warns that it does).
    even = ShiftSequential(ActQuant(8), Conv2dShift(1, 2, (3, 2), padding="same"),
                           ActQuant(8)).double()
    even.calibrate([x])
    with pytest.raises(ExportError, match=r"module 1 \(Conv2dShift\): padding='same' with "
                                          r"the even kernel \(3, 2\)"):
        export_program(even, (1, 8, 8))


def test_disabled_or_uncalibrated_quantisers():
    from shifthw.models import LinearShift, ShiftSequential

    m = ShiftSequential(ActQuant(8), LinearShift(4, 2), ActQuant(8, enabled=False))
    with pytest.raises(ExportError, match=r"module 2 \(ActQuant\): disabled"):
        export_program(m, (4,))
    m = ShiftSequential(ActQuant(8), LinearShift(4, 2), ActQuant(8))
    with pytest.warns(UserWarning) as caught:
        export_program(m, (4,))
    assert [str(w.message).split(":")[0] for w in caught] == ["module 0 (ActQuant)",
                                                              "module 2 (ActQuant)"]
    assert "F = 0 and no activation recorded: it looks never calibrated" in str(caught[0].message)
    m.calibrate([torch.randn(16, 4)])
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        export_program(m, (4,))
    # A corrupt F or e (a checkpoint's buffers) is named, not an OverflowError of the bias.
    for module, value in ((0, 2000), (2, 10**12), (2, -33)):
        bad = ShiftSequential(ActQuant(8), LinearShift(4, 2), ActQuant(8))
        bad.calibrate([torch.randn(16, 4)])
        bad[module].frac_bits.fill_(value)
        with pytest.raises(ExportError, match=rf"module {module} \(ActQuant\): F = {value} "
                                              r"fraction bits, outside -32..48"):
            export_program(bad, (4,))
    bad = ShiftSequential(ActQuant(8), LinearShift(4, 2), ActQuant(8))
    bad.calibrate([torch.randn(16, 4)])
    bad[1].exponent = 2000
    with pytest.raises(ExportError, match="module 1: exponent e = 2000, outside -32..32"):
        export_program(bad, (4,))
