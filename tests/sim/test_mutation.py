"""The benches can fail: wrong variants of the RTL are reported, with what differed."""

import pytest

from shifthw.rtl_gen.config import EngineConfig
from shifthw.sim.runner import SimError
from shifthw.sim.verify import build_engine, simulate_jobs
from tests.sim.mutants import DroppedNegation, LosesWords, OffByOneShift, pe_mutant
import numpy as np

from shifthw.rtl_gen.host import LayerJob, random_inputs, random_weights

CFG = dict(rows=3, cols=2, weight_bits=5, guard_bits=14)


def plain_jobs(cfg, seed=1):
    """Random layers whose output shift keeps results in range (no saturation hiding bugs)."""
    rng = np.random.default_rng(seed)
    items = []
    for n, k in [(5, 7), (4, 9)]:
        job = LayerJob(weights=random_weights(cfg, rng, n, k), bias=np.zeros(n, dtype=int),
                       out_shift=cfg.guard_bits, name=f"plain {n}x{k}")
        items.append((job, random_inputs(cfg, rng, 4, k)))
    return items


@pytest.mark.parametrize("mutant", [OffByOneShift, DroppedNegation], ids=lambda c: c.__name__)
def test_wrong_pe_is_a_mismatch(mutant, tmp_path):
    cfg = EngineConfig(**CFG)
    with pe_mutant(mutant):
        sim = build_engine(cfg)
    res = simulate_jobs(plain_jobs(cfg), cfg, tmp_path, sim=sim, seed=7)
    failed = [lay for lay in res["layers"] if not lay["passed"]]
    assert failed, "the mutant went unnoticed"
    first = failed[0]["listed"][0]
    assert set(first) == {"layer", "vector", "output", "expected", "got"}
    assert first["expected"] != first["got"]


def test_lost_word_is_reported(tmp_path):
    cfg = EngineConfig(**CFG)
    sim = build_engine(cfg, engine_factory=LosesWords)
    with pytest.raises(SimError, match="lost or stuck stream word"):
        simulate_jobs(plain_jobs(cfg), cfg, tmp_path, sim=sim, stall_prob=0.5, seed=7)


def test_layer_by_layer_summary_counts_the_hardware_outputs(tmp_path):
    # With golden inputs to every layer (verify --layer-inputs golden), the final outputs,
    # predictions and differing images are the hardware's last layer, not the golden model's
    # (the summary said 0 images differ while every layer failed).
    from shifthw.rtl_gen.host import golden_program, random_program
    from shifthw.sim.verify import simulate_program

    cfg = EngineConfig(rows=2, cols=2, weight_bits=5)
    prog = random_program("mlp", seed=1)
    xq = np.random.default_rng(0).integers(-128, 128, (6, 64))
    with pe_mutant(DroppedNegation):
        sim = build_engine(cfg)
    res = simulate_program(prog, cfg, xq, chain=False, sim=sim, work_dir=tmp_path)
    assert not all(lay["passed"] for lay in res["layers"])
    assert res["images_differing"] > 0
    hw_last = res["hw_steps"][-1].reshape(len(xq), -1)
    assert res["hw_predictions"] == hw_last.argmax(axis=1).tolist()
    ref = golden_program(prog, cfg, xq).logits.reshape(len(xq), -1)
    assert res["golden_predictions"] == ref.argmax(axis=1).tolist()
