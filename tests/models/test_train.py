"""Tests of shifthw.models.train: a short training run, checkpoints, reproducibility."""

import json

import pytest
import torch

from shifthw.models.data import load_digits_split
from shifthw.models.train import convert_and_finetune, evaluate, train
from shifthw.models.zoo import load_checkpoint

QUICK = {"epochs": 1, "train_limit": 96, "progress": False}
KEYS = {"test_accuracy", "train_accuracy", "epochs", "seed", "arch", "mode", "weight_bits",
        "act_bits", "exponent", "wall_seconds", "frac_bits", "final_loss"}


@pytest.mark.parametrize("arch,mode", [("mlp", "ps"), ("cnn", "q"), ("mlp", "float")])
def test_one_epoch_on_a_subset(arch, mode):
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    model, metrics = train(arch, mode, 4, 8, **QUICK)
    assert KEYS <= set(metrics)
    assert metrics["arch"] == arch and metrics["mode"] == mode and metrics["epochs"] == 1
    assert metrics["n_train"] == 96 and metrics["n_test"] == 360
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert not model.training
    assert next(model.parameters()).dtype == torch.float64
    # global torch settings are restored
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == deterministic


@pytest.mark.parametrize("exponent", ["auto", -2])
def test_low_bit_q_training_starts_with_live_weights(exponent):
    # At b = 2 (P = 0) a Q weight is 0 or +-2^e. The exponent="auto" start took e from the
    # float draw's largest weight and left the draw as it was, so the CNN's first layer
    # had no live weight (and the whole net trained to chance on some seeds): its small
    # weights are now rounded without bias, as a fixed exponent's start rounds them.
    model, _ = train("cnn", "q", 2, 8, seed=0, exponent=exponent, **QUICK)
    for layer in model.shift_layers():
        sign, _ = layer.sign_and_shift()
        live = (sign != 0).double().mean().item()
        assert live > 0.2, (layer, live)


def test_checkpoint_round_trip_and_reproducible(tmp_path):
    out = tmp_path / "m.pt"
    model, metrics = train("cnn", "ps", 5, 8, seed=3, out=out, **QUICK)
    assert json.loads(out.with_suffix(".json").read_text()) == json.loads(
        json.dumps(metrics))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.pt"]  # no temp files
    loaded, ckpt = load_checkpoint(out)
    assert ckpt["seed"] == 3 and ckpt["epochs"] == 1 and ckpt["arch"] == "cnn"
    for a, b in zip(model.shift_layers(), loaded.shift_layers(), strict=True):
        pairs = zip(a.sign_and_shift(), b.sign_and_shift(), strict=True)
        assert all(torch.equal(x, y) for x, y in pairs)
        assert a.bias_frac == b.bias_frac
    raw = torch.load(out, weights_only=True)  # plain content only
    assert raw["state_dict"]["1.shift"].dtype == torch.int8
    _, _, x_te, y_te = load_digits_split()
    assert evaluate(loaded, x_te, y_te) == metrics["test_accuracy"]
    again, _ = train("cnn", "ps", 5, 8, seed=3, **QUICK)
    s1, s2 = model.state_dict(), again.state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    other, _ = train("cnn", "ps", 5, 8, seed=4, **QUICK)
    assert not torch.equal(other.state_dict()["1.shift"], s1["1.shift"])


def test_a_missing_output_folder_is_made(tmp_path):
    # torch.save stopped on it after training (a traceback); export and generate make it.
    out = tmp_path / "new" / "deeper" / "m.pt"
    train("mlp", "float", 5, 8, out=out, **QUICK)
    assert sorted(p.name for p in out.parent.iterdir()) == ["m.json", "m.pt"]


def test_checkpoints_keep_the_codes_and_park_dead_weights(tmp_path):
    from shifthw.models.zoo import build, checkpoint_dict, save_checkpoint

    # Q weights in float64 one step above a switch point 2**(k + 1/2): float32 storage
    # rounded them below it, to the other code (p 1..10 instead of 0..9).
    q = build("mlp", "q", 5, 8).double()
    first = q.shift_layers()[0]
    edge = torch.tensor([2.0 ** (-k + 0.5) for k in range(1, 11)], dtype=torch.float64)
    with torch.no_grad():
        first.weight[0, :10] = torch.nextafter(edge, torch.tensor(2.0, dtype=torch.float64))
    before = first.sign_and_shift()[1][0, :10].tolist()
    assert before == list(range(10))
    path = tmp_path / "q.pt"
    save_checkpoint(checkpoint_dict(q, arch="mlp", mode="q", weight_bits=5, act_bits=8,
                                    metrics={}, seed=0, epochs=0), path)
    loaded, _ = load_checkpoint(path)
    for a, b in zip(q.shift_layers(), loaded.shift_layers(), strict=True):
        assert all(torch.equal(x, y) for x, y in zip(a.sign_and_shift(), b.sign_and_shift()))
    # A PS zero weight's latent shift is stored at -P (it was 0: magnitude 2**e if revived).
    ps = build("mlp", "ps", 5, 8)
    layer = ps.shift_layers()[0]
    with torch.no_grad():
        layer.sign[0, :4] = 0.0
        layer.shift[0, :4] = -3.0
    save_checkpoint(checkpoint_dict(ps, arch="mlp", mode="ps", weight_bits=5, act_bits=8,
                                    metrics={}, seed=0, epochs=0), path)
    raw = torch.load(path, weights_only=True)["state_dict"]
    key = next(k for k in raw if k.endswith(".shift"))
    assert raw[key][0, :4].tolist() == [-layer.max_shift] * 4


def test_convert_and_finetune(tmp_path):
    float_ckpt = tmp_path / "float.pt"
    train("mlp", "float", 5, 8, out=float_ckpt, **QUICK)
    out = tmp_path / "ps.pt"
    model, metrics = convert_and_finetune(float_ckpt, "ps", 4, 1, out=out, progress=False,
                                          train_limit=96)
    model.check_structure()
    assert metrics["mode"] == "ps" and metrics["weight_bits"] == 4
    assert isinstance(metrics["exponent"], (int, list))
    assert "converted_test_accuracy" in metrics and out.exists()
    with pytest.raises(ValueError, match="needs a float checkpoint"):
        convert_and_finetune(out, "ps", 4, 1, progress=False, train_limit=96)
    # Part of the layers only: a checkpoint the engine cannot run, refused before training.
    with pytest.raises(ValueError, match="last_n=1 converts 1 of the network's 2 layers"):
        convert_and_finetune(float_ckpt, "ps", 4, 1, last_n=1, out=tmp_path / "part.pt")
    assert not (tmp_path / "part.pt").exists()
    convert_and_finetune(float_ckpt, "ps", 4, 1, last_n=2, progress=False, train_limit=96)


@pytest.mark.parametrize("kwargs,match", [
    ({"arch": "resnet"}, "arch"), ({"mode": "int"}, "mode"), ({"epochs": 0}, "epochs"),
    ({"weight_bits": 9}, "weight_bits"), ({"exponent": "big"}, "exponent"),
    ({"dataset": "mnist"}, "data_dir"), ({"dataset": "cifar"}, "dataset"),
    ({"batch_size": -1}, "batch_size"),
    ({"seed": 2 ** 64}, "seed must be an integer in 0..2"), ({"seed": -1}, "seed"),
])
def test_train_checks_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        train(**{"progress": False, **kwargs})


def test_evaluate_counts_correct():
    model = torch.nn.Sequential(torch.nn.Flatten())
    x = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]])
    assert evaluate(model, x, torch.tensor([1, 0, 1])) == pytest.approx(2 / 3)


def test_outputs_that_cannot_be_written_are_refused_before_training(tmp_path):
    # m.json: the metrics (m.json) would overwrite the model; a folder where the metrics go:
    # the model was written and the metrics failed, after the training.
    with pytest.raises(ValueError, match="may not end in .json"):
        train(out=tmp_path / "m.json", epochs=1, progress=False)
    (tmp_path / "half.json").mkdir()
    for run in (lambda out: train(out=out, epochs=1, progress=False),
                lambda out: convert_and_finetune(tmp_path / "none.pt", out=out)):
        with pytest.raises(ValueError, match="the metrics file .*half.json' exists and is "
                                             "not a regular file"):
            run(tmp_path / "half.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["half.json"]


def test_data_dir_is_for_mnist():
    with pytest.raises(ValueError, match="data_dir 'x' applies to dataset='mnist'"):
        train(data_dir="x", epochs=1, progress=False)
