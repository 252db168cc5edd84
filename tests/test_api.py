"""The hls4ml-shaped API: compile, predict (golden), simulate (Verilator), write."""

import json

import numpy as np
import pytest
import torch

import shifthw
from shifthw import golden
from shifthw.models.data import load_digits_split
from shifthw.models.zoo import load_zoo


@pytest.fixture(scope="module")
def images():
    _, _, x, y = load_digits_split()
    return x[:6], y[:6]


def test_predict_is_the_golden_model(images):
    x, _ = images
    hw = shifthw.compile("mlp", rows=8, cols=8)
    logits = hw.predict(x)
    ref = golden.run_program(hw.program, x.numpy())
    assert (logits == ref.logits).all()
    # A torch model compiles too, and a truncating engine changes the arithmetic.
    hw0 = shifthw.compile(load_zoo("mlp"), guard_bits=0)
    assert hw0.config.guard_bits == 0
    assert (hw0.predict(x) == golden.run_program(hw0.program, x.numpy(),
                                                 guard_bits=0).logits).all()


def test_simulate_matches_predict(images, tmp_path, monkeypatch):
    x, _ = images
    hw = shifthw.compile("mlp")
    # A relative work folder (the simulator runs elsewhere, so the run must not pass it on
    # as it is: before, the bench could not find the program).
    monkeypatch.chdir(tmp_path)
    res = hw.simulate(x, stall_prob=0.2, work_dir="sim")
    assert (tmp_path / "sim" / "program.shiftprog").exists()
    assert (res["logits"] == hw.predict(x)).all()
    assert set(res["mismatches"].values()) == {0}


def test_write(tmp_path):
    hw = shifthw.compile("cnn", rows=4, cols=4)
    manifest = hw.write(tmp_path / "out")
    names = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"manifest.json", "model.shiftprog"} <= names
    assert any(n.endswith(".v") for n in names)
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["parameters"]["rows"] == 4
    # The program is written with the rest, atomically, and listed (it was saved after the
    # folder's rename and missing from files).
    assert "model.shiftprog" in manifest["files"]
    with pytest.raises(TypeError, match="out_dir must be a path, not NoneType"):
        hw.write(None)
    # A file in the way: named, before the Verilog is made.
    (tmp_path / "f.pt").write_text("x")
    for out, match in ((tmp_path / "f.pt", "exists and is not a folder"),
                       (tmp_path / "f.pt" / "x", "f.pt' is a file, not a folder")):
        with pytest.raises(FileExistsError, match=f"out_dir .*{match}"):
            hw.write(out)


def test_bad_model_type():
    with pytest.raises(TypeError, match="model must be"):
        shifthw.compile(42)


def test_a_program_changed_after_loading_is_checked_again():
    from shifthw.program import ProgramError

    prog = shifthw.compile("mlp").program
    prog.layers[0].codes[:] = 99
    with pytest.raises(ProgramError, match=r"layer linear1: codes must be in 0..31"):
        shifthw.compile(prog)


def test_input_shape_of_a_torch_model():
    from shifthw.models import ActQuant, LinearShift, ShiftSequential
    from shifthw.program import ProgramError

    m = ShiftSequential(ActQuant(8), LinearShift(16, 4), ActQuant(8))
    m.calibrate([torch.rand(8, 16)])
    assert shifthw.compile(m, input_shape=(16,)).program.input.shape == (16,)
    with pytest.raises(ProgramError, match=r"linear expects \(16,\) input"):
        shifthw.compile(m)                                  # the digits default: (1, 8, 8)
    with pytest.raises(ValueError, match="input_shape applies to a torch model"):
        shifthw.compile("mlp", input_shape=(64,))
    for bad in ((), "abc", 64, (16.0,), (True,)):     # () was taken as the default
        with pytest.raises(ValueError, match="input_shape must be a non-empty tuple"):
            shifthw.compile(m, input_shape=bad)
    with pytest.raises(TypeError, match="compile: unknown engine option.* foo"):
        shifthw.compile("mlp", foo=1)


def test_engine_options_the_model_fixes():
    assert shifthw.compile("mlp", act_bits=8, pe="shift").config.act_bits == 8
    with pytest.raises(ValueError, match=r"act_bits=4: the engine takes its act_bits from the "
                                         r"model \(8\)"):
        shifthw.compile("mlp", act_bits=4)
    with pytest.raises(ValueError, match="pe='mult': compile builds shift engines"):
        shifthw.compile("mlp", pe="mult")
    with pytest.raises(ValueError, match="layer linear1: fan-in K=64 needs"):
        shifthw.compile("mlp", k_depth=2)


@pytest.mark.parametrize("x, quantized, match", [
    (np.zeros((0, 64)), False, "a batch of at least one input"),
    (np.full((1, 64), np.nan), False, "NaN or infinite"),
    (np.full((1, 64), 1 + 2j), False, "real numbers, not complex"),
    (np.full((1, 64), 3.7), True, "quantized=True takes integers"),
    # The int64 cast wrapped these: 2**64 - 1 ran as -1.
    (np.full((1, 64), 2 ** 64 - 1, np.uint64), True, r"8-bit activations -128..127, found"),
    (np.full((1, 64), 2.0 ** 70), True, r"8-bit activations -128..127"),
    (np.full((1, 64), 128), True, r"8-bit activations -128..127"),
    ([[1.0, 2.0], [3.0]], False, "x: not an array of one shape"),
])
def test_bad_inputs_to_predict(x, quantized, match):
    with pytest.raises(ValueError, match=match):
        shifthw.compile("mlp").predict(x, quantized=quantized)
    with pytest.raises(TypeError, match="quantized must be a bool"):
        shifthw.compile("mlp").predict(np.zeros((1, 64)), quantized="yes")
    # bfloat16 has no numpy twin: taken through float64.
    x16 = torch.rand(2, 64).to(torch.bfloat16)
    hw = shifthw.compile("mlp")
    assert (hw.predict(x16) == hw.predict(x16.double().numpy())).all()
    assert shifthw.compile("mlp").predict(np.full((1, 64), 3.0), quantized=True).shape == (1, 10)


def test_simulate_checks_its_options_before_any_build(tmp_path):
    # A bad seed failed only after the Verilator run (and left its folder behind).
    hw = shifthw.compile("mlp", rows=2, cols=2)
    for kw, match in ((dict(seed="abc"), "seed must be an integer"), (dict(seed=-1), "seed"),
                      (dict(seed=1.5), "seed"), (dict(stall_prob="0.2"),
                                                 "stall_prob must be a number in")):
        with pytest.raises(ValueError, match=match):
            hw.simulate(np.zeros((1, 64)), **kw)
    with pytest.raises(TypeError, match="waves must be a bool, not 'yes'"):
        hw.simulate(np.zeros((1, 64)), waves="yes")
    with pytest.raises(TypeError, match="work_dir must be a path, not int"):
        hw.simulate(np.zeros((1, 64)), work_dir=5)
    (tmp_path / "f.pt").write_text("x")
    for work, match in (("f.pt", "exists and is not a folder"),
                        ("f.pt/x", "f.pt' is a file, not a folder")):
        with pytest.raises(FileExistsError, match=f"work_dir .*{match}"):
            hw.simulate(np.zeros((1, 64)), work_dir=tmp_path / work)
