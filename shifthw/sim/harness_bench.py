"""cocotb bench for the free-running harness (runs inside the simulator process).

The job (``SHIFTHW_JOB``) names a *plan*: ``"module:function"`` called with the job's
``args``; it returns a generator that yields :class:`~shifthw.sim.plans.RunRequest` objects
and is sent each run's :class:`~shifthw.sim.plans.RunOutput`; what it finally returns is
written to ``SHIFTHW_RESULT``. Python runs only between runs: during a run the clock is
cocotb's C++ clock and the bench awaits ``done``, with no per-cycle Python.
"""

from __future__ import annotations

import importlib
import json
import os
import time
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, SimTimeoutError, with_timeout

from .plans import RunOutput, RunRequest, read_words, write_run

STALL_SCALE = 65536


async def _run_once(dut, folder: Path, index: int, req: RunRequest, job: dict) -> RunOutput:
    write_run(folder, index, req)
    dut.source_stall.value = int(round(job.get("source_stall", 0.0) * (STALL_SCALE - 1)))
    dut.sink_stall.value = int(round(job.get("sink_stall", 0.0) * (STALL_SCALE - 1)))
    dut.seed.value = (int(job.get("seed", 0)) * 2654435761 + index) & 0xFFFFFFFF
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    start = time.perf_counter()
    limit = int(job.get("timeout_cycles", 0)) or req.timeout_cycles
    if not int(dut.done.value):
        try:
            await with_timeout(RisingEdge(dut.done), limit * 10, "ns")
        except SimTimeoutError:
            got = {name: len((folder / f"run{index}_{name}.out").read_text().split())
                   for name in req.expect}
            raise AssertionError(
                f"run {index}: no 'done' after {limit} cycles: output words expected "
                f"{req.expect}, received {got} (a lost or stuck stream word)") from None
    wall = time.perf_counter() - start
    outs = {name: read_words(folder, index, name, n) for name, n in req.expect.items()}
    return RunOutput(words=outs, cycles=int(dut.cycles.value),
                     source_blocked=int(dut.src_blocked.value), wall_seconds=wall)


@cocotb.test()
async def run_plan(dut):
    """Run every request of the job's plan through the harness."""
    job = json.loads(Path(os.environ["SHIFTHW_JOB"]).read_text())
    module, func = job["plan"].split(":")
    plan = getattr(importlib.import_module(module), func)(**job.get("args", {}))
    # The simulator runs in the job's folder; the harness opens its run files there.
    folder = Path(os.environ["SHIFTHW_JOB"]).parent
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    index, result = 0, None
    try:
        req = next(plan)
        while True:
            out = await _run_once(dut, folder, index, req, job)
            index += 1
            # The host polls this to drive its progress bar.
            (folder / "progress.txt").write_text(f"{index}\n")
            req = plan.send(out)
    except StopIteration as stop:
        result = stop.value
    Path(os.environ["SHIFTHW_RESULT"]).write_text(json.dumps(result))
