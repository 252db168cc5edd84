"""Plans: plain-Python generators that say what the harness runs, and read what came out.

A plan yields :class:`RunRequest` (words for every source stream, word counts expected on
every sink stream) and receives :class:`RunOutput`. It holds no cocotb code, so plans are
ordinary, testable Python; :mod:`.harness_bench` drives them inside the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["RunRequest", "RunOutput", "write_run", "read_words", "echo_plan"]


@dataclass
class RunRequest:
    """One harness run: ``streams[name]`` words to send, ``expect[name]`` words to receive."""

    streams: dict[str, list[int]]
    expect: dict[str, int]
    timeout_cycles: int = 10_000_000
    tag: dict = field(default_factory=dict)


@dataclass
class RunOutput:
    """What one run produced: received words per sink, cycles, source backpressure cycles."""

    words: dict[str, list[int]]
    cycles: int
    source_blocked: int
    wall_seconds: float


def write_run(folder: Path, index: int, req: RunRequest) -> None:
    """Write the harness's input files for run ``index``."""
    for name, words in req.streams.items():
        (folder / f"run{index}_{name}.hex").write_text("".join(f"{w:x}\n" for w in words))
        (folder / f"run{index}_{name}.count").write_text(f"{len(words)}\n")
    for name, count in req.expect.items():
        (folder / f"run{index}_{name}.count").write_text(f"{count}\n")


def read_words(folder: Path, index: int, name: str, count: int) -> list[int]:
    """Read the words a sink wrote in run ``index`` (``x`` digits are an error)."""
    path = folder / f"run{index}_{name}.out"
    lines = path.read_text().split()
    if len(lines) != count:
        raise RuntimeError(f"{path.name}: expected {count} words, got {len(lines)}")
    try:
        return [int(t, 16) for t in lines]
    except ValueError:
        raise RuntimeError(f"{path.name}: unknown (x/z) bits in the output") from None


def echo_plan(words: list[int], runs: int = 1, source: str = "i", sink: str = "o"):
    """A plan for tests of the harness itself: send ``words``, expect as many back."""
    results = []
    for _ in range(runs):
        out = yield RunRequest(streams={source: list(words)}, expect={sink: len(words)})
        results.append({"words": out.words[sink], "cycles": out.cycles,
                        "source_blocked": out.source_blocked})
    return results
