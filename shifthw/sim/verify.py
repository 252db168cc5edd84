"""Verify a program on the generated engine in Verilator, against the golden model.

:func:`simulate_program` is the one entry point: it generates the engine's Verilog for an
:class:`~shifthw.rtl_gen.config.EngineConfig`, wraps it in the free-running harness, builds it
(cached), and runs :func:`~shifthw.sim.engine_plans.network_plan` in cocotb.
"""

from __future__ import annotations

import numbers
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..files import check_folder_path
from ..program import Program, save_program
from ..rtl_gen.config import EngineConfig
from ..rtl_gen.host import check_program
from ..rtl_gen.layouts import act_word_layout, descriptor_layout, out_word_layout
from .build import SimBuild, build
from .harness import HARNESS_TOP, StreamPort, harness_verilog
from .runner import run_cocotb

__all__ = ["ENGINE_TOP", "engine_ports", "engine_verilog", "build_engine", "simulate_program",
           "simulate_jobs"]

ENGINE_TOP = "shifthw_engine"


def engine_ports(cfg: EngineConfig) -> list[StreamPort]:
    """The engine's stream ports and payload widths, from the shared layouts."""
    return [StreamPort("desc", descriptor_layout(cfg).size, True),
            StreamPort("params", cfg.param_word_bits, True),
            StreamPort("act", act_word_layout(cfg).size, True),
            StreamPort("out", out_word_layout(cfg).size, False)]


def engine_verilog(cfg: EngineConfig, *, engine_factory=None) -> str:
    """Verilog of a :class:`~shifthw.rtl_gen.engine.LayerEngine` (or a factory's variant)."""
    from amaranth.back import verilog

    from ..rtl_gen.engine import LayerEngine

    factory = engine_factory or (lambda c: LayerEngine(config=c))
    return verilog.convert(factory(cfg), name=ENGINE_TOP)


def build_engine(cfg: EngineConfig, *, waves: bool = False, engine_factory=None) -> SimBuild:
    """A (cached) Verilator build of the engine inside the harness."""
    files = {"engine.v": engine_verilog(cfg, engine_factory=engine_factory),
             "harness.sv": harness_verilog(ENGINE_TOP, engine_ports(cfg))}
    return build(files, HARNESS_TOP, waves=waves)


def simulate_program(program: Program, cfg: EngineConfig, xq: np.ndarray, *, chain: bool = True,
                     stall_prob: float = 0.0, seed: int = 0, waves: bool = False,
                     work_dir: str | Path | None = None, sim: SimBuild | None = None,
                     progress=None) -> dict:
    """Run ``program`` on integer inputs ``xq`` (B, *input.shape) in Verilator.

    Returns the plan's result (per-layer reports, hardware outputs vs golden) plus build and
    wall-time figures. ``stall_prob`` drops valid on every source and ready on every sink with
    that probability per cycle. ``progress(n)`` hears of every finished layer run.
    """
    if isinstance(stall_prob, bool) or not isinstance(stall_prob, numbers.Real) \
            or not 0.0 <= stall_prob < 1.0:
        raise ValueError(f"stall_prob must be a number in [0, 1), not {stall_prob!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) \
            or not 0 <= seed < 2 ** 63:
        raise ValueError(f"seed must be an integer in 0..2**63-1, not {seed!r}")
    if not isinstance(waves, bool):
        raise TypeError(f"waves must be a bool, not {waves!r}")
    if work_dir is not None:
        check_folder_path(work_dir, "work_dir")
    check_program(program, cfg)
    t0 = time.perf_counter()
    sim = sim or build_engine(cfg, waves=waves)
    t_build = time.perf_counter() - t0
    owned = work_dir is None
    # Absolute: the simulator runs in another folder and reads the job's files by these paths.
    folder = Path(tempfile.mkdtemp(prefix="shifthw-sim-")) if owned else Path(work_dir).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    save_program(program, folder / "program.shiftprog")
    np.save(folder / "inputs.npy", np.asarray(xq, dtype=np.int64))
    job = {"plan": "shifthw.sim.engine_plans:network_plan",
           "args": {"program": str(folder / "program.shiftprog"),
                    "config": asdict(cfg), "inputs": str(folder / "inputs.npy"),
                    "chain": chain, "out_path": str(folder / "hw_steps.npz")},
           "source_stall": stall_prob, "sink_stall": stall_prob, "seed": seed}
    t1 = time.perf_counter()
    try:
        result = run_cocotb(sim, "shifthw.sim.harness_bench", folder, job=job, seed=seed,
                            progress=progress)
        with np.load(folder / "hw_steps.npz") as steps:
            result["hw_steps"] = [steps[f"step{i}"] for i in range(len(program.steps))]
    except BaseException:
        print(f"shifthw: the failed run's files are kept in {folder}", file=sys.stderr)
        raise
    result["build_seconds"] = t_build
    result["build_reused"] = sim.reused
    result["run_seconds"] = time.perf_counter() - t1
    if owned and not waves:
        shutil.rmtree(folder, ignore_errors=True)
    else:
        result["work_dir"] = str(folder)
    return result


def simulate_jobs(jobs, cfg: EngineConfig, work_dir: str | Path, *, sim: SimBuild | None = None,
                  stall_prob: float = 0.0, seed: int = 0) -> dict:
    """Run engine jobs ``[(LayerJob, inputs (M, K))]`` one after another in Verilator, each
    compared with :func:`~shifthw.rtl_gen.host.golden_job` for ``cfg`` (either PE kind).

    ``sim`` is the build to run (default: :func:`build_engine` of ``cfg``); ``work_dir``
    keeps the jobs and the run's files.  Returns the plan's result: ``layers``, one report
    per job (``mismatches``, ``listed``, ``cycles``...).
    """
    import pickle

    if not 0.0 <= stall_prob < 1.0:
        raise ValueError(f"stall_prob must be in [0, 1), not {stall_prob!r}")
    folder = Path(work_dir).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "jobs.pkl", "wb") as fh:
        pickle.dump(list(jobs), fh)
    return run_cocotb(sim or build_engine(cfg), "shifthw.sim.harness_bench", folder, seed=seed,
                      job={"plan": "shifthw.sim.engine_plans:jobs_plan",
                           "args": {"config": asdict(cfg), "jobs": str(folder / "jobs.pkl")},
                           "source_stall": stall_prob, "sink_stall": stall_prob,
                           "seed": seed})
