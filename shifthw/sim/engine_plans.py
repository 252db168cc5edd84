"""Plans that run programs through a generated layer engine, with a scoreboard.

:func:`network_plan` runs a whole program on a batch, one harness run per shift layer. The host
does only data movement (im2col, and MaxPool/Flatten while they are still on the host): each
layer's input is the previous layer's *hardware* output. The scoreboard compares every layer's
hardware output with the golden model's output for the same input, and the final outputs with a
golden run of the whole network, and reports what differed (layer, index, expected, got).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .. import golden
from ..program import Flatten, MaxPool2d, ShiftLayer, load_program
from ..rtl_gen.config import EngineConfig
from ..rtl_gen.host import (decode_outputs, encode_job, golden_job, golden_program, layer_job,
                            layer_rows)
from .plans import RunRequest

__all__ = ["Mismatch", "LayerReport", "Scoreboard", "network_plan", "jobs_plan", "ideal_cycles"]

#: Mismatches listed in full per layer (the count is always complete).
MAX_LISTED = 20


@dataclass
class Mismatch:
    """One output that differed: layer, flat index (vector, output), expected, got."""

    layer: str
    vector: int
    output: int
    expected: int
    got: int


@dataclass
class LayerReport:
    """Per-layer result of a hardware run."""

    name: str
    kind: str
    vectors: int
    fan_in: int
    out_features: int
    cycles: int
    ideal_cycles: int
    source_blocked: int
    mismatches: int
    listed: list[dict] = field(default_factory=list)
    sim_wall_seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.mismatches == 0

    @property
    def utilisation(self) -> float:
        return self.ideal_cycles / self.cycles if self.cycles else 0.0


def ideal_cycles(cfg: EngineConfig, fan_in: int, out_features: int, vectors: int) -> int:
    """``ceil(K/R) * ceil(N/C)`` array cycles per input vector, times the vectors."""
    return -(-fan_in // cfg.rows) * -(-out_features // cfg.cols) * vectors


class Scoreboard:
    """Compares hardware outputs with expected ones and keeps what differed."""

    def __init__(self):
        self.layers: list[LayerReport] = []

    def compare(self, report: LayerReport, expected: np.ndarray, got: np.ndarray) -> None:
        exp2 = np.asarray(expected).reshape(len(expected), -1)
        got2 = np.asarray(got).reshape(len(got), -1)
        bad = np.argwhere(exp2 != got2)
        report.mismatches = int(len(bad))
        report.listed = [asdict(Mismatch(report.name, int(v), int(o), int(exp2[v, o]),
                                         int(got2[v, o]))) for v, o in bad[:MAX_LISTED]]
        self.layers.append(report)

    def reports(self) -> list[dict]:
        """Every layer's report as a plain dict (JSON), with utilisation and pass/fail."""
        return [dict(asdict(r), utilisation=r.utilisation, passed=r.passed)
                for r in self.layers]


def run_job(cfg: EngineConfig, job, x, board: Scoreboard, *, kind: str):
    """Plan step: one job on the input vectors ``x`` (M, K); scores it; returns the outputs."""
    streams = encode_job(cfg, job, x)
    out = yield RunRequest(streams={"desc": streams.desc, "params": streams.params,
                                    "act": streams.act},
                           expect={"out": streams.out_words},
                           timeout_cycles=50 * (len(streams.act) + len(streams.params)
                                                + 8 * streams.out_words) + 100_000)
    hw = decode_outputs(cfg, streams, out.words["out"])
    want, _ = golden_job(cfg, job, x)
    report = LayerReport(name=job.name, kind=kind, vectors=len(x), fan_in=job.fan_in,
                         out_features=job.out_features, cycles=out.cycles,
                         ideal_cycles=ideal_cycles(cfg, job.fan_in, job.out_features, len(x)),
                         source_blocked=out.source_blocked, mismatches=0,
                         sim_wall_seconds=out.wall_seconds)
    board.compare(report, want, hw)
    return hw


def network_plan(*, program: str, config: dict, inputs: str, chain: bool = True,
                 out_path: str | None = None):
    """Run ``program`` (a .shiftprog path) on the integer inputs in ``inputs`` (.npy).

    ``chain=True``: every layer's input is the previous layer's hardware output (the whole
    network in hardware). ``chain=False``: every layer gets the golden model's input to it
    (layer-by-layer verification). Every step's hardware-path output goes to ``out_path``
    (.npz, ``step0``, ``step1``, ...).
    """
    prog = load_program(program)
    cfg = EngineConfig(**config)
    xq = np.load(inputs)
    ref = golden_program(prog, cfg, xq)
    board = Scoreboard()
    cur = ref.input
    saved = {}
    start = time.perf_counter()
    for i, step in enumerate(prog.steps):
        if isinstance(step, ShiftLayer):
            rows, reshape = layer_rows(step, cur)
            job = layer_job(prog, step, cfg)
            hw = yield from run_job(cfg, job, rows, board, kind=step.kind)
            cur = reshape(hw)
        elif isinstance(step, MaxPool2d):
            cur = golden.maxpool2d(cur, step)
        elif isinstance(step, Flatten):
            cur = cur.reshape(cur.shape[0], -1)
        saved[f"step{i}"] = np.asarray(cur)
        if not chain:
            cur = ref.outputs[i]
    # The hardware path's last output (with chain=False, ``cur`` is the golden one by now).
    final = saved[f"step{len(prog.steps) - 1}"]
    final = final.reshape(len(final), -1)
    gold = np.asarray(ref.logits).reshape(len(ref.logits), -1)
    if out_path:
        np.savez(out_path, **saved)
    result = {
        "layers": board.reports(),
        "images": int(len(final)),
        "images_differing": int((final != gold).any(axis=1).sum()),
        "hw_predictions": final.argmax(axis=1).tolist(),
        "golden_predictions": gold.argmax(axis=1).tolist(),
        "total_cycles": int(sum(r.cycles for r in board.layers)),
        "sim_wall_seconds": float(sum(r.sim_wall_seconds for r in board.layers)),
        "plan_wall_seconds": time.perf_counter() - start,
        "chain": chain,
    }
    return result


def jobs_plan(*, config: dict, jobs: str):
    """Run a list of engine jobs (a pickle of ``[(LayerJob, x), ...]``), one run each.

    For the random-layer testbenches: each job is compared with
    :func:`~shifthw.rtl_gen.host.golden_job` for the engine's configuration (either PE kind).
    """
    import pickle

    cfg = EngineConfig(**config)
    with open(jobs, "rb") as fh:
        items = pickle.load(fh)
    board = Scoreboard()
    for job, x in items:
        yield from run_job(cfg, job, x, board, kind="job")
    return {"layers": board.reports()}
