"""Run cocotb benches on a cached Verilator build, from pytest or from the command line.

:func:`run_cocotb` behaves the same in both places: it hides ``PYTEST_CURRENT_TEST`` from the
cocotb runner (which would otherwise exit the process on failure), sends the simulator's
output to a log file, and reports failures as :class:`SimError` with the log's tail.
Benches hand their results back through a JSON file (``SHIFTHW_RESULT``).
"""

from __future__ import annotations

import json
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from .. import toolchain
from .build import SimBuild

__all__ = ["SimError", "run_cocotb"]


class SimError(RuntimeError):
    """A simulation that failed to run or whose cocotb test failed."""


@contextmanager
def _outside_pytest():
    saved = os.environ.pop("PYTEST_CURRENT_TEST", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["PYTEST_CURRENT_TEST"] = saved


def run_cocotb(sim: SimBuild, test_module: str, work_dir: Path, *, job: dict | None = None,
               plusargs: list[str] | None = None, seed: int = 0, progress=None) -> dict:
    """Run ``test_module``'s cocotb tests on ``sim``; return the bench's result JSON.

    ``job`` is written to ``work_dir/job.json`` and its path passed to the bench in
    ``SHIFTHW_JOB``; the bench writes its result to ``SHIFTHW_RESULT``. ``progress(n)`` is
    called with the number of finished harness runs while the simulator works.
    """
    from cocotb_tools.runner import get_results, get_runner

    work_dir = Path(work_dir).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    job_path, result_path = work_dir / "job.json", work_dir / "result.json"
    job_path.write_text(json.dumps(job or {}))
    result_path.unlink(missing_ok=True)
    log = work_dir / "sim.log"
    env = {"SHIFTHW_JOB": str(job_path), "SHIFTHW_RESULT": str(result_path),
           "COCOTB_REDUCED_LOG_FMT": "1"}
    start = time.perf_counter()
    with toolchain.activated(), _outside_pytest():
        runner = get_runner("verilator")
        watcher = _ProgressWatcher(work_dir / "progress.txt", progress) if progress else None
        try:
            xml = runner.test(test_module=test_module, hdl_toplevel=sim.top,
                              hdl_toplevel_lang="verilog",
                              build_dir=sim.build_dir, test_dir=work_dir, extra_env=env,
                              plusargs=list(plusargs or []), seed=seed, waves=sim.waves,
                              log_file=log, results_xml=str(work_dir / "results.xml"))
            tests, failed = get_results(xml)
        except (SystemExit, RuntimeError) as exc:
            raise SimError(f"simulation of {sim.top} did not complete ({exc}); "
                           f"log {log}:\n{_tail(log)}") from None
        finally:
            if watcher:
                watcher.stop()
    wall = time.perf_counter() - start
    if failed:
        raise SimError(f"{failed} of {tests} cocotb tests failed in {test_module}; log {log}:\n"
                       f"{_tail(log)}")
    if not result_path.exists():
        raise SimError(f"bench {test_module} wrote no result; log {log}:\n{_tail(log)}")
    result = json.loads(result_path.read_text())
    if isinstance(result, dict):
        result.setdefault("wall_seconds", wall)
        if sim.waves:
            result["waves"] = [str(p) for p in sorted(work_dir.glob("dump.*"))
                               if p.suffix in (".fst", ".vcd")]
    return result


class _ProgressWatcher:
    """Polls the bench's progress file from a thread while the simulator runs."""

    def __init__(self, path: Path, callback):
        path.unlink(missing_ok=True)
        self._path, self._callback, self._seen = path, callback, 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _check(self) -> None:
        try:
            n = int(self._path.read_text().strip() or 0)
        except (OSError, ValueError):
            return
        if n > self._seen:
            self._seen = n
            self._callback(n)

    def _poll(self) -> None:
        while not self._done.wait(0.2):
            self._check()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()
        self._check()


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
