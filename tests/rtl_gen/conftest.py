"""Shared fixtures of the RTL generator tests."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def rng(request):
    """A numpy generator seeded from the test's name (stable across runs and workers)."""
    seed = sum(ord(ch) * (i + 1) for i, ch in enumerate(request.node.nodeid)) % (1 << 32)
    return np.random.default_rng(seed)
