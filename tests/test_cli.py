"""The command line: train, convert, export, generate; errors are one line and exit code 2."""

import importlib
import importlib.resources
import json
from pathlib import Path

import pytest

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
    # An output that is the input is refused (it replaced the model with the program, or
    # the float checkpoint with the converted one).
    before = shift.read_bytes(), flt.read_bytes()
    assert main(["export", str(shift), "-o", str(shift)]) == 2
    assert main(["convert", str(flt), "--finetune-epochs", "1", "-q", "-o",
                 str(tmp_path / "." / "float.pt")]) == 2
    err = capsys.readouterr().err
    assert "is the model read" in err and "is the float checkpoint read" in err
    assert (shift.read_bytes(), flt.read_bytes()) == before


def test_errors_are_one_line(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope.pt"), "-o", str(tmp_path / "x.shiftprog")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such checkpoint" in err
    assert not (tmp_path / "x.shiftprog").exists()
    # A file that is not a checkpoint, and a truncated one: what is wrong, in one line.
    (tmp_path / "text.pt").write_text("hello")
    (tmp_path / "cut.pt").write_bytes(
        importlib.resources.files("shifthw").joinpath("zoo", "mlp.pt").read_bytes()[:100])
    for bad in ("text.pt", "cut.pt"):
        assert main(["export", str(tmp_path / bad), "-o", str(tmp_path / "x.shiftprog")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "not a PyTorch checkpoint file" in err, err
        assert not (tmp_path / "x.shiftprog").exists()
    prog = importlib.resources.files("shifthw").joinpath("zoo", "mlp.shiftprog")
    assert main(["export", str(prog), "-o", str(tmp_path / "x.shiftprog")]) == 2
    assert "a JSON file (a .shiftprog program?), not a PyTorch checkpoint" in \
        capsys.readouterr().err
    assert main(["estimate", str(tmp_path / "text.pt"), "--target", "generic"]) == 2
    assert "'" + str(tmp_path / "text.pt") + "': a file, not a folder" in capsys.readouterr().err
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
    # A keyword as the module name: one line naming --name, nothing written.
    assert main(["generate", "--name", "wire", "-o", str(tmp_path / "kw")]) == 2
    assert "--name 'wire' is a Verilog / SystemVerilog keyword" in capsys.readouterr().err
    assert not (tmp_path / "kw").exists()


# Each command's output path, checked before it does any work: the heavy step it would run
# is replaced by a failure, so a check that comes too late fails the test.
_HEAVY = {
    "generate": ("shifthw.rtl_gen.generate", "generate"),
    "estimate": ("shifthw.estimate.flow", "estimate"),
    "sweep": ("shifthw.estimate.sweep", "run_sweep_points"),
    "verify": ("shifthw.sim.flow", "verify_model"),
    "export": ("shifthw.models.checkpoint", "export_checkpoint"),
    "train": ("shifthw.models.train", "train"),
    "convert": ("shifthw.models.train", "convert_and_finetune"),
    "doctor": ("shifthw.doctor", "run_doctor"),
}


@pytest.mark.parametrize("argv, where, why", [
    (["generate", "--rows", "2", "-o", "{file}"], "-o {file}", "exists and is not a folder"),
    (["estimate", "--target", "generic", "-o", "{file}"], "-o {file}",
     "exists and is not a folder"),
    (["estimate", "--target", "generic", "--analytic", "-o", "{file}/sub"], "-o {file}/sub",
     "{file} is a file, not a folder"),
    (["sweep", "--rows", "2", "--cols", "2", "--target", "generic", "-o", "{file}"],
     "-o {file}", "exists and is not a folder"),
    (["verify", "mlp", "--work-dir", "{file}/run"], "--work-dir {file}/run",
     "{file} is a file, not a folder"),
    (["export", "mlp", "-o", "{dir}"], "-o {dir}", "is a folder; give a file name"),
    (["train", "--arch", "mlp", "-o", "{file}/m.pt"], "-o {file}/m.pt",
     "{file} is a file, not a folder"),
    (["convert", "float.pt", "-o", "{dir}"], "-o {dir}", "is a folder; give a file name"),
    (["generate", "-o", "/proc/shifthw-out"], "-o /proc/shifthw-out", "cannot write in /proc"),
    (["doctor", "--workdir", "{file}"], "--workdir {file}", "exists and is not a folder"),
    (["doctor", "--workdir", "{dir}/a b"], "--workdir {dir}/a b",
     "Verilator cannot build in a path with a space"),
])
def test_bad_output_paths_fail_before_any_work(tmp_path, capsys, monkeypatch, argv, where,
                                               why):
    if "/proc" in where and not Path("/proc/self").exists():
        pytest.skip("no /proc here")
    module, name = _HEAVY[argv[0]]
    monkeypatch.setattr(importlib.import_module(module), name,
                        lambda *a, **k: pytest.fail(f"{argv[0]} worked before its output "
                                                    "path was checked"))
    afile, adir = tmp_path / "afile", tmp_path / "adir"
    afile.write_text("keep")
    adir.mkdir()
    fill = {"file": str(afile), "dir": str(adir)}
    assert main([a.format(**fill) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"error: {where.format(**fill)}: {why.format(**fill)}" in err
    assert afile.read_text() == "keep" and not any(adir.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "afile"]


def test_a_closed_stdout_pipe_ends_quietly(tmp_path):
    """`shifthw ... | head`: the reader leaves, the command stops with SIGPIPE's exit code
    and no error message (it printed 'error: [Errno 32] Broken pipe')."""
    import os
    import subprocess
    import sys

    code = ("import sys, os\n"
            "from shifthw.cli import main\n"
            "r, w = os.pipe(); os.close(r); os.dup2(w, 1)\n"
            "sys.exit(main(['estimate', '--analytic', '--target', 'ice40-up5k']))\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert run.returncode == 141, run.stderr
    assert run.stderr == ""


def test_sigterm_and_ctrl_c_clean_up_as_they_stop(tmp_path, monkeypatch, capsys):
    """SIGTERM (``timeout``, ``kill``) stops a run as Ctrl-C does: the output's temporary
    folder and the parents it made are removed; exit 143 (130 for Ctrl-C); the handler
    before the run is back after it."""
    import os
    import signal
    import threading

    from amaranth.back import verilog

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")

    def stopped(sig):
        def convert(*a, **kw):
            os.kill(os.getpid(), sig)
            raise AssertionError("not stopped")
        return convert

    before = signal.getsignal(signal.SIGTERM)
    for sig, code, word in ((signal.SIGTERM, 143, "terminated"),
                            (signal.SIGINT, 130, "interrupted")):
        monkeypatch.setattr(verilog, "convert", stopped(sig))
        assert main(["generate", "--rows", "2", "--cols", "2",
                     "-o", str(tmp_path / "new" / "eng")]) == code
        assert f"shifthw generate: {word}" in capsys.readouterr().err
        assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is before
    # The stopped runs' unelaborated components go now, not in another test's warnings.
    import gc
    import warnings

    from amaranth.hdl import UnusedElaboratable
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        gc.collect()
