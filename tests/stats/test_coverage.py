"""Interval behaviour by simulation: coverage near 95%, and patient clustering respected.

The planted truth: binormal scores N(0,1) vs N(1.5,1) have AUROC
Φ(1.5/√2) ≈ 0.856 (Hanley & McNeil 1982), whatever monotone map turns them
into probabilities.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

from auditkit.stats.bootstrap import IntervalSettings, make_resamples
from auditkit.stats.engine import Engine
from auditkit.stats.views import BinaryView

from .conftest import binormal

TRUE_AUROC = norm.cdf(1.5 / np.sqrt(2))


def _auroc_interval(y, s, *, n_boot, seed, clusters=None):
    res = make_resamples(y, n_boot=n_boot, random_state=seed, clusters=clusters)
    engine = Engine(res, IntervalSettings())
    view = BinaryView.from_arrays(np.arange(len(y)), y, s)
    est = engine.estimate(engine.evaluate(view, lambda b: {"auroc": b.auroc()})["auroc"])
    return est.ci_low, est.ci_high


def test_auroc_interval_coverage_is_near_95_percent():
    hits = 0
    n_sim = 200
    for i in range(n_sim):
        y, s = binormal(120, seed=1000 + i, shift=1.5)
        lo, hi = _auroc_interval(y, s, n_boot=200, seed=i)
        hits += lo <= TRUE_AUROC <= hi
    coverage = hits / n_sim
    assert 0.90 <= coverage <= 0.99, coverage


def test_duplicated_patients_clustered_interval_matches_unduplicated_naive_is_too_narrow():
    y, s = binormal(300, seed=7, shift=1.5)
    lo, hi = _auroc_interval(y, s, n_boot=1000, seed=1)
    width = hi - lo
    y5, s5 = np.repeat(y, 5), np.repeat(s, 5)
    patients = np.repeat(np.arange(300), 5)
    lo_c, hi_c = _auroc_interval(y5, s5, n_boot=1000, seed=1, clusters=patients)
    lo_n, hi_n = _auroc_interval(y5, s5, n_boot=1000, seed=1)
    assert 0.8 < (hi_c - lo_c) / width < 1.25
    # ignoring the clustering shrinks the interval by about 1/sqrt(5)
    assert (hi_n - lo_n) / width < 0.6


def _oe_interval(y, p, strata, seed):
    from auditkit.stats.cohort import CohortAnalyzer, TaskArrays

    res = make_resamples(strata, n_boot=200, random_state=seed)
    engine = Engine(res, IntervalSettings())
    analyzer = CohortAnalyzer(TaskArrays(y, np.c_[1 - p, p], ("0", "1")), engine, threshold=0.5)
    est = engine.estimate(analyzer.metrics(np.arange(len(y)), fits=False)["oe"])
    return est.ci_low, est.ci_high


def test_observed_expected_interval_covers_with_cohort_strata_and_class_strata_is_too_narrow():
    """O/E of a model predicting p when the true risk is p: truth O/E = 1 (calibration in the large)."""
    hits = 0
    n_sim = 120
    for i in range(n_sim):
        rng = np.random.default_rng(500 + i)
        p = rng.uniform(0.05, 0.6, 300)
        y = (rng.random(300) < p).astype(int)
        lo, hi = _oe_interval(y, p, np.zeros(300, int), seed=i)
        hits += lo <= 1.0 <= hi
    assert 0.88 <= hits / n_sim <= 0.99, hits / n_sim
    lo_u, hi_u = _oe_interval(y, p, np.zeros(300, int), seed=0)
    lo_s, hi_s = _oe_interval(y, p, y, seed=0)
    assert (hi_s - lo_s) < 0.75 * (hi_u - lo_u)
