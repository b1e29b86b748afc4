"""Small shared builders for the clinical-validation tests: an engine over a table's rows."""

from __future__ import annotations

import numpy as np

from auditkit.stats.bootstrap import IntervalSettings, make_resamples
from auditkit.stats.engine import Engine


def engine_for(n_rows: int, *, n_boot: int = 200, seed: int = 0, clusters=None) -> Engine:
    """Return a percentile-interval engine over ``n_rows`` rows in one stratum."""
    resamples = make_resamples(
        np.zeros(n_rows, np.int64), n_boot=n_boot, random_state=seed, clusters=clusters
    )
    return Engine(resamples, IntervalSettings(level=0.95, method="percentile"))


import pytest  # noqa: E402


@pytest.fixture
def make_engine():
    """Return :func:`engine_for`."""
    return engine_for
