"""The resample-weight engine and the interval formulas.

Oracles: scipy.stats.bootstrap (given our replicates through
``bootstrap_result``, it computes the percentile and BCa intervals with its
own jackknife), NumPy's percentile, and counts checked by hand.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from auditkit.stats.bootstrap import (
    Distribution,
    IntervalSettings,
    bca_interval,
    bootstrap_homogeneity_test,
    bootstrap_z_test,
    make_resamples,
    percentile_interval,
    to_estimate,
)
from auditkit.stats.engine import Engine
from auditkit.stats.views import BinaryView


def test_stratified_resamples_keep_class_counts_and_are_seeded():
    y = np.r_[np.zeros(70, int), np.ones(30, int)]
    res = make_resamples(y, n_boot=200, random_state=5)
    counts = res.counts[res.unit_of_row].astype(int)  # (n, B)
    assert counts.shape == (100, 200)
    np.testing.assert_array_equal(counts[y == 1].sum(0), 30)
    np.testing.assert_array_equal(counts[y == 0].sum(0), 70)
    # multinomial draws: each row is drawn once per resample on average
    assert counts.mean() == pytest.approx(1.0)
    assert counts.var() == pytest.approx(1.0, abs=0.05)
    again = make_resamples(y, n_boot=200, random_state=5)
    np.testing.assert_array_equal(again.counts, res.counts)
    other = make_resamples(y, n_boot=200, random_state=6)
    assert not np.array_equal(other.counts, res.counts)


def test_clustered_resamples_move_a_patients_images_together():
    rng = np.random.default_rng(0)
    patients = np.repeat(np.arange(50), rng.integers(1, 5, 50))
    y = (patients % 3 == 0).astype(int)
    res = make_resamples(y, n_boot=100, random_state=1, clusters=patients)
    assert res.clustered and res.n_units == 50
    counts = res.counts[res.unit_of_row].astype(int)
    for p in range(50):
        rows = np.flatnonzero(patients == p)
        assert (counts[rows] == counts[rows[0]]).all()
    # stratified at the patient level: the number of positive patients drawn is fixed
    pos_patients = np.unique(patients[y == 1])
    drawn = res.counts[
        res.unit_of_row[[np.flatnonzero(patients == p)[0] for p in pos_patients]]
    ].sum(0)
    np.testing.assert_array_equal(drawn, len(pos_patients))


def test_patient_spanning_two_cohorts_is_refused():
    with pytest.raises(Exception, match="spans two cohorts"):
        make_resamples(
            ["a", "b"], n_boot=10, random_state=0, clusters=["p", "p"], jackknife_groups=["x", "y"]
        )


def _mean_distribution(x, res):
    """The mean of x under the run's weights: point, replicates, leave-one-out jackknife."""
    counts = res.counts[res.unit_of_row].astype(float)
    boot = (x @ counts) / counts.sum(0)
    jack = np.full(res.n_blocks, np.nan)
    for j in range(res.n_blocks):
        keep = res.block_of_unit[res.unit_of_row] != j
        jack[j] = x[keep].mean()
    return Distribution(float(x.mean()), boot, jack)


def test_percentile_and_bca_match_scipy_bootstrap_on_the_same_replicates():
    x = np.random.default_rng(3).exponential(size=60)  # skewed: BCa differs from percentile
    res = make_resamples(np.zeros(60, int), n_boot=2000, random_state=2, max_jackknife_blocks=1000)
    dist = _mean_distribution(x, res)
    prior = stats.bootstrap((x,), np.mean, n_resamples=10, rng=0)
    prior.bootstrap_distribution = dist.boot
    for method in ("percentile", "BCa"):
        ref = stats.bootstrap(
            (x,), np.mean, n_resamples=0, bootstrap_result=prior, method=method, rng=0
        )
        if method == "percentile":
            lo, hi = percentile_interval(dist.boot)
        else:
            lo, hi = bca_interval(dist.point, dist.boot, dist.jack, res.group_of_block)
        assert lo == pytest.approx(ref.confidence_interval.low, rel=1e-9)
        assert hi == pytest.approx(ref.confidence_interval.high, rel=1e-9)


def test_estimate_without_enough_defined_resamples_has_no_interval():
    boot = np.r_[np.full(90, 0.5), np.full(10, np.nan)]
    est = to_estimate(Distribution(0.5, boot), settings=IntervalSettings())
    assert est.estimate == 0.5 and est.ci_low is None and "undefined in 10%" in est.reason
    assert not to_estimate(
        Distribution(np.nan, boot), settings=IntervalSettings(), reason="no positives"
    ).defined


def test_bootstrap_tests():
    rng = np.random.default_rng(0)
    boot = rng.normal(0.3, 0.1, 5000)
    p = bootstrap_z_test(Distribution(0.3, boot))
    assert p == pytest.approx(2 * stats.norm.sf(0.3 / np.std(boot, ddof=1)), rel=1e-12)
    # homogeneity of two independent statistics = z-test of their difference (covariance ~ diagonal)
    a = Distribution(0.5, rng.normal(0.5, 0.05, 4000))
    b = Distribution(0.4, rng.normal(0.4, 0.05, 4000))
    assert bootstrap_homogeneity_test([a, b]) == pytest.approx(bootstrap_z_test(a - b), rel=1e-9)
    # identical groups: no evidence of a difference
    c = Distribution(0.5, rng.normal(0.5, 0.05, 4000))
    assert bootstrap_homogeneity_test([a, c, Distribution(0.5, rng.normal(0.5, 0.05, 4000))]) > 0.5


def test_engine_jackknife_values_are_leave_one_patient_out():
    rng = np.random.default_rng(4)
    patients = np.repeat(np.arange(40), 2)
    y = np.repeat(rng.integers(0, 2, 40), 2)
    y[:2], y[2:4] = 0, 1
    s = rng.random(80)
    res = make_resamples(y, n_boot=50, random_state=0, clusters=patients)
    engine = Engine(res, IntervalSettings(method="bca"))
    view = BinaryView.from_arrays(np.arange(80), y, s)
    dist = engine.evaluate(view, lambda b: {"auroc": b.auroc()})["auroc"]
    from sklearn.metrics import roc_auc_score

    for p in (0, 1, 17):
        keep = patients != p
        block = res.block_of_unit[res.unit_of_row[np.flatnonzero(patients == p)[0]]]
        assert dist.jack[block] == pytest.approx(roc_auc_score(y[keep], s[keep]), abs=1e-12)
