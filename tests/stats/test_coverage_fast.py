"""Fast coverage checks of the gated intervals against a planted truth (benchmarks/coverage.py is the full run).

Planted model: logit scores x ~ N(−0.8, 1.6²), p = expit(x), and the true
risk P(Y = 1 | p) = expit(0.8·x + 0.2), so the model is miscalibrated by a
known amount: the L1 calibration error E|r(x) − p| is an integral computed
here by quadrature, independently of the estimators. The bands are loose
(60 simulations: a binomial SD of 0.03 at 0.95) so they cannot flake, but the
old gated number — the 15-bin plug-in ECE with its percentile interval —
covers in about 10–25% of simulations and fails them.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate
from scipy.special import expit
from scipy.stats import norm

from auditkit.stats.bootstrap import Distribution, IntervalSettings, make_resamples
from auditkit.stats.calibration import calibration_spec, calibration_statistic
from auditkit.stats.discrimination import threshold_rates
from auditkit.stats.engine import Engine
from auditkit.stats.intervals import normal_estimate, range_estimate
from auditkit.stats.views import BinaryView, FeatureSpec

MU, SD, A, B = -0.8, 1.6, 0.8, 0.2


def _true_ce() -> float:
    def f(x: float) -> float:
        return abs(expit(A * x + B) - expit(x)) * norm.pdf(x, MU, SD)

    return integrate.quad(f, MU - 10 * SD, MU + 10 * SD, limit=200)[0]


def _draw(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x = rng.normal(MU, SD, n)
    y = (rng.random(n) < expit(A * x + B)).astype(np.int64)
    return y, expit(x)


def test_debiased_l1_calibration_interval_covers_and_the_binned_ece_interval_does_not():
    truth = _true_ce()
    n, n_sim = 400, 60
    new_hits = old_hits = 0
    for i in range(n_sim):
        rng = np.random.default_rng(2000 + i)
        y, p = _draw(n, rng)
        engine = Engine(make_resamples(np.zeros(n), n_boot=200, random_state=i), IntervalSettings())
        view = BinaryView.from_arrays(np.arange(n), y, p, spec=calibration_spec(p))
        dists = engine.evaluate(view, lambda b: calibration_statistic(b, fits=False))
        new = normal_estimate(dists["ece_l1_debiased"], floor=0.0)
        old = engine.estimate(dists["ece"])
        new_hits += new.ci_low <= truth <= new.ci_high
        old_hits += old.ci_low <= truth <= old.ci_high
    assert new_hits / n_sim >= 0.85, (new_hits / n_sim, truth)
    assert old_hits / n_sim <= 0.60, (old_hits / n_sim, truth)


def test_fnr_gap_projection_interval_covers_the_planted_gap():
    """Two groups whose scores are shifted by 0.6 at a fixed threshold: a known FNR difference."""
    t = 0.4
    shift = {0: 0.0, 1: -0.6}

    def fnr(g: int) -> float:  # P(p < t | Y = 1) in group g, by quadrature
        def joint(x: float, below: bool) -> float:
            r = expit(A * x + B)
            return r * norm.pdf(x, MU + shift[g], SD) * ((expit(x) < t) == below)

        lo = integrate.quad(joint, -15, 15, args=(True,), points=[np.log(t / (1 - t))], limit=200)[0]
        hi = integrate.quad(joint, -15, 15, args=(False,), points=[np.log(t / (1 - t))], limit=200)[0]
        return lo / (lo + hi)

    truth = abs(fnr(0) - fnr(1))
    hits, inside, n_sim = 0, 0, 50
    for i in range(n_sim):
        rng = np.random.default_rng(3000 + i)
        g = rng.integers(0, 2, 600)
        x = rng.normal(MU, SD, 600) + np.where(g == 1, shift[1], 0.0)
        y = (rng.random(600) < expit(A * x + B)).astype(np.int64)
        p = expit(x)
        engine = Engine(make_resamples(np.zeros(600), n_boot=200, random_state=i), IntervalSettings())
        dists = []
        for grp in (0, 1):
            rows = np.flatnonzero(g == grp)
            view = BinaryView.from_arrays(rows, y[rows], p[rows], spec=FeatureSpec(threshold=t))
            dists.append(engine.evaluate(view, threshold_rates)["fnr"])
        est = range_estimate([dists], [["a", "b"]])
        hits += est.ci_low <= truth <= est.ci_high
        inside += est.ci_low <= est.estimate <= est.ci_high
    assert inside == n_sim
    assert 0.85 <= hits / n_sim <= 1.0, (hits / n_sim, truth)


def test_range_of_many_noisy_groups_keeps_its_estimate_inside_and_the_ratio_at_most_one():
    """Ten groups with the same true value: the resampled max − min is biased upward (the old bug)."""
    rng = np.random.default_rng(0)
    dists = []
    for _ in range(10):
        boot = 0.8 + rng.normal(0, 0.05, 500)
        dists.append(Distribution(float(0.8 + rng.normal(0, 0.01)), boot))
    names = [[f"g{i}" for i in range(10)]]
    gap = range_estimate([dists], names)
    points = [d.point for d in dists]
    assert np.isclose(gap.estimate, max(points) - min(points))
    # the percentile interval of the resampled range excludes this estimate
    rng_boot = np.max([d.boot for d in dists], 0) - np.min([d.boot for d in dists], 0)
    assert np.quantile(rng_boot, 0.025) > gap.estimate
    assert 0.0 <= gap.ci_low <= gap.estimate <= gap.ci_high
    ratio = range_estimate([dists], names, log=True)
    assert np.isclose(ratio.estimate, min(points) / max(points))
    assert 0.0 < ratio.ci_low <= ratio.estimate <= ratio.ci_high <= 1.0
    assert ratio.groups == (names[0][int(np.argmin(points))], names[0][int(np.argmax(points))])


def test_folded_gap_interval_covers_the_absolute_difference_exactly_under_normality():
    """d ~ N(δ, 1): the interval for |δ| covers with probability 0.95 for every δ (planted δ), and
    at d = 0 it is [0, z]; the old fallback [0, max(|d|, z)] over-covered near |δ| = se."""
    from auditkit.stats.intervals import folded_interval

    rng = np.random.default_rng(11)
    for delta in (0.0, 1.0, 1.25, 3.0):
        draws = rng.normal(delta, 1.0, 1500)
        bounds = np.array([folded_interval(float(d), 1.0, 0.05) for d in draws])
        coverage = np.mean((bounds[:, 0] <= delta) & (delta <= bounds[:, 1]))
        assert 0.93 <= coverage <= 0.97, (delta, coverage)
        assert np.all((bounds[:, 0] <= np.abs(draws)) & (np.abs(draws) <= bounds[:, 1]))
    lo, hi = folded_interval(0.0, 2.0, 0.05)
    assert lo == 0.0 and hi == pytest.approx(2.0 * norm.ppf(0.975), rel=1e-9)



def test_the_coverage_harness_has_a_truth_for_every_gateable_metric_and_its_truths_match_sklearn():
    """benchmarks/coverage.py iterates the registry: a newly registered gateable metric without a
    population value fails here until it is simulated. Its weighted AUROC and AP are checked
    against scikit-learn with each image counted as a positive (weight r) and a negative (1 − r)."""
    import sys
    from pathlib import Path

    from sklearn.metrics import average_precision_score, roc_auc_score

    from auditkit.stats import metrics

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import coverage as harness

    rng = np.random.default_rng(3)
    x = rng.normal(-0.5, 1.5, 4000)
    r = expit(0.7 * x + 0.3)
    truth = harness.population(x, r, fits=True)
    gateable = [m for m in metrics.cohort_keys() if metrics.get(m).gateable]
    assert [m for m in gateable if m not in truth] == []
    y = np.r_[np.ones(len(x)), np.zeros(len(x))]
    w = np.r_[r, 1 - r]
    # scikit-learn also pairs each image's positive copy with its own negative copy (a tie, counted
    # half); the population AUROC has no such pairs (measure zero), so they are taken out by hand
    self_ties = 0.5 * np.sum(r * (1 - r)) / (r.sum() * (1 - r).sum())
    assert truth["auroc"] == pytest.approx(roc_auc_score(y, np.r_[x, x], sample_weight=w) - self_ties, abs=1e-9)
    assert truth["auprc"] == pytest.approx(average_precision_score(y, np.r_[x, x], sample_weight=w), abs=1e-9)
    call = expit(x) >= harness.THRESHOLD
    assert truth["sensitivity"] == pytest.approx((r * call).sum() / r.sum(), abs=1e-12)
