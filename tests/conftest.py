"""Shared fixtures: the seed example of issue 1 and a seeded random generator."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def seed_logits() -> np.ndarray:
    """Three samples: an ordinary row, one spanning +-1000 (the naive path's nightmare), and
    a second ordinary row."""
    return np.array([[2.0, 1.0, 0.1], [1000.0, 0.0, -1000.0], [0.5, 2.5, -1.0]], dtype=np.float32)


@pytest.fixture
def seed_targets() -> np.ndarray:
    return np.array([0, 2, 1])


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240607)
