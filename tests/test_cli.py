"""The command line: train, convert, export, generate; errors are one line and exit code 2."""

import json

from shifthw.cli import main
from shifthw.program import load_program


def test_train_convert_export(tmp_path, capsys):
    flt = tmp_path / "float.pt"
    assert main(["train", "--arch", "mlp", "--mode", "float", "--epochs", "2", "-q",
                 "-o", str(flt)]) == 0
    assert json.loads(flt.with_suffix(".json").read_text())["mode"] == "float"
    shift = tmp_path / "shift.pt"
    assert main(["convert", str(flt), "--mode", "ps", "--finetune-epochs", "1", "-q",
                 "-o", str(shift)]) == 0
    prog_path = tmp_path / "m.shiftprog"
    assert main(["export", str(shift), "-o", str(prog_path)]) == 0
    prog = load_program(prog_path)
    assert [s.fan_in for s in prog.layers] == [64, 32]
    out = capsys.readouterr().out
    assert "test accuracy" in out and "wrote" in out


def test_errors_are_one_line(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope.pt"), "-o", str(tmp_path / "x.shiftprog")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such checkpoint" in err
    assert not (tmp_path / "x.shiftprog").exists()
    out_dir = tmp_path / "gen"
    assert main(["generate", "--rows", "0", "-o", str(out_dir)]) == 2
    assert "rows" in capsys.readouterr().err
    assert not out_dir.exists()


def test_generate(tmp_path, capsys):
    out_dir = tmp_path / "gen"
    assert main(["generate", "--rows", "2", "--cols", "2", "--mode", "truncate",
                 "-o", str(out_dir)]) == 0
    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert manifest["parameters"]["guard_bits"] == 0
    assert "G=0" in capsys.readouterr().out
