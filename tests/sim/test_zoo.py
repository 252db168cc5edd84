"""cocotb + Verilator: the digits MLP and CNN through the 8x8 engine, and `shifthw verify`."""

import pytest

from shifthw.cli import main
from shifthw.rtl_gen.config import EngineConfig
from shifthw.sim.flow import verify_model

ENGINE = EngineConfig(rows=8, cols=8, act_bits=8, weight_bits=5)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_every_layer_on_golden_inputs(name):
    rep = verify_model(name, ENGINE, images=24, stall_prob=0.25, layer_inputs="golden")
    assert [lay["name"] for lay in rep.layers] == (
        ["linear1", "linear2"] if name == "mlp" else ["conv2d1", "conv2d2", "linear1"])
    for lay in rep.layers:
        assert lay["passed"], lay["listed"]
        assert lay["max_diff_torch_lsb"] == 0      # G = P: hardware equals float64 torch
        assert lay["source_blocked"] > 0           # the stalls really happened
    assert rep.images_differing == 0


def test_cnn_whole_test_split_in_hardware():
    rep = verify_model("cnn", ENGINE, stall_prob=0.05)
    assert rep.images == 360
    assert rep.passed and rep.images_differing == 0
    assert rep.hw_accuracy == rep.golden_accuracy
    assert rep.hw_accuracy > 0.95
    # Dense layers keep the array busy: >= 95 % of the ideal cycle count without stalls
    # is checked by the benchmark; with 5 % stalls it stays high.
    assert all(lay["utilisation"] > 0.8 for lay in rep.layers)


def test_verify_command(capsys):
    assert main(["verify", "mlp", "--images", "8", "--stall-prob", "0.1"]) == 0
    out = capsys.readouterr().out
    assert "RESULT: PASS" in out and "linear2" in out and "accuracy: hardware" in out
    assert main(["verify", "mlp", "--weight-bits", "4"]) == 2
    assert "error: --weight-bits 4 does not match the model (A=8, b=5)" in \
        capsys.readouterr().err
    # A layer the engine's buffers cannot take: named before anything is built.
    assert main(["verify", "cnn", "--k-depth", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "layer conv2d2: fan-in K=72 needs 9 row-tiles" in err


def test_verify_a_generated_design(tmp_path, capsys):
    # The high-Fmax settings, verified on the very engine `shifthw generate` wrote.
    design = tmp_path / "design"
    assert main(["generate", "--rows", "2", "--cols", "4", "--registered-stall", "--stall-free",
                 "--pe-register", "--input-registers", "2", "--out-depth", "0",
                 "--bias-lanes", "2", "--out-lanes", "2", "-o", str(design)]) == 0
    capsys.readouterr()
    assert main(["verify", "mlp", "--design", str(design), "--images", "3",
                 "--stall-prob", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "RESULT: PASS" in out
    assert ("engine 2x4 A=8 b=5 G=14 (input_registers=2, registered_stall=True, "
            "stall_free=True, pe_register=True, bias_lanes=2, out_lanes=2, out_depth=0)") in out
    # The same settings as options.
    assert main(["verify", "mlp", "--rows", "2", "--cols", "4", "--stall-free", "--images", "2",
                 "--mode", "truncate"]) == 0
    assert "engine 2x4 A=8 b=5 G=0 (stall_free=True)" in capsys.readouterr().out
    # One clear line for a design that cannot run the model, or that comes with options.
    assert main(["verify", "mlp", "--design", str(design), "--rows", "4"]) == 2
    assert "give either --design" in capsys.readouterr().err
    for extra, why in ((["--weight-bits", "4"], "does not match the model"),
                       (["--pe", "mult"], "a mult engine; verify runs shift programs")):
        other = tmp_path / extra[-1]
        assert main(["generate", "--rows", "2", "--cols", "2", *extra, "-o", str(other)]) == 0
        capsys.readouterr()
        assert main(["verify", "mlp", "--design", str(other)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and why in err, err


def test_flow_names_the_model_and_engine_it_runs(capsys):
    # The main job's path on another model and engine: the banner must not claim the shipped
    # CNN on the 8x8 engine (it did, whatever was given).
    assert main(["flow", "--model", "mlp", "--rows", "2", "--cols", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("shifthw flow: model mlp on the generated engine (named in the "
                          "summary)")
    assert "360 images" in out and "engine 2x2 A=8 b=5" in out and "RESULT: PASS" in out
    assert main(["flow", "--model", "mlp", "--rows", "2", "--cols", "2", "--images", "3"]) == 0
    out = capsys.readouterr().out
    assert "every layer and the first 3 images of the test split in Verilator" in out


def test_verify_a_model_on_its_own_inputs(tmp_path, capsys):
    # A model that does not take 8 x 8 digits (3 x 6 x 5 inputs, a stride-2 conv) was
    # refused by verify: --inputs feeds it its own data, --labels adds the accuracies.
    import numpy as np
    import torch
    from torch import nn

    from shifthw.models import ActQuant, Conv2dShift, LinearShift, ShiftSequential
    from shifthw.models.export import export_program
    from shifthw.program import save_program

    torch.manual_seed(0)
    model = ShiftSequential(ActQuant(8), Conv2dShift(3, 4, (3, 2), stride=2, padding=1),
                            nn.ReLU(), ActQuant(8), nn.Flatten(), LinearShift(4 * 3 * 3, 3),
                            ActQuant(8)).double()
    x = np.random.default_rng(0).normal(size=(12, 3, 6, 5))
    model.calibrate([torch.from_numpy(x)])
    prog = save_program(export_program(model, (3, 6, 5)), tmp_path / "m.shiftprog")
    np.save(tmp_path / "x.npy", x.reshape(12, -1))                # flat rows work too
    np.save(tmp_path / "y.npy", np.arange(12) % 3)
    argv = ["verify", str(prog), "--rows", "2", "--cols", "2", "--inputs", str(tmp_path / "x.npy")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"12 images ({tmp_path / 'x.npy'})" in out and "RESULT: PASS" in out
    assert "accuracy: - (no labels given)" in out
    assert main([*argv, "--labels", str(tmp_path / "y.npy"), "--images", "5"]) == 0
    out = capsys.readouterr().out
    assert "5 images" in out and "accuracy: hardware " in out
    # One clear line each: labels without inputs, inputs of the wrong shape, too few labels.
    np.save(tmp_path / "bad.npy", x[:, :, :5, :])
    np.save(tmp_path / "few.npy", np.arange(3))
    np.save(tmp_path / "class9.npy", np.arange(12) % 10)            # the model has 3 outputs
    (tmp_path / "empty.npy").write_bytes(b"")
    np.savez(tmp_path / "two.npz", x=x, y=x)
    xs = ["--inputs", str(tmp_path / "x.npy")]
    for extra, why in ((["--labels", str(tmp_path / "y.npy")], "labels (--labels) go with"),
                       (["--inputs", str(tmp_path / "bad.npy")], "bad.npy: input batch has "
                                                                   "shape (12, 3, 5, 5)"),
                       ([*xs, "--labels", str(tmp_path / "few.npy")],
                        "need 12 integer class labels"),
                       ([*xs, "--labels", str(tmp_path / "class9.npy")],
                        "class labels must be 0..2 (the model has 3 outputs), found 0..9"),
                       (["--inputs", str(tmp_path / "empty.npy")],
                        "empty.npy': not a .npy array"),
                       (["--inputs", str(tmp_path / "two.npz")], "an .npz archive, not a .npy"),
                       ([*xs, "--images", "13"], "13 asked for, inputs")):
        assert main(["verify", str(prog), "--rows", "2", "--cols", "2", *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and why in err, err
