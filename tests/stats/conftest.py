"""Synthetic data for the statistics tests: binormal scores with a planted AUROC."""

from __future__ import annotations

import numpy as np
import pytest


def binormal(
    n: int,
    *,
    prevalence: float = 0.3,
    shift: float = 1.5,
    seed: int = 0,
    decimals: int | None = None,
):
    """Return (y (n,), probability scores (n,)): logistic of N(0,1) + shift·y, optionally rounded (ties)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < prevalence).astype(np.int64)
    y[:2] = [0, 1]
    z = rng.normal(size=n) + shift * y - shift / 2
    s = 1.0 / (1.0 + np.exp(-z))
    if decimals is not None:
        s = np.round(s, decimals)
    return y, s


@pytest.fixture
def tied_binary():
    """A binary sample of 300 with heavily tied scores (2 decimals)."""
    return binormal(300, decimals=2, seed=11)
