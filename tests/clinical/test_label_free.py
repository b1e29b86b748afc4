"""Label-free estimates: right under covariate shift, prevalence shift detected (simulations with known truth)."""

from __future__ import annotations

import numpy as np
import pytest

from auditkit.stats.label_free import atc_threshold, fit_reference, label_free_estimates


def _posterior(x, prior):
    # x | y ~ N(2y - 1, 1): the Bayes posterior at this prior is perfectly calibrated
    lr = np.exp(2 * x)
    return prior * lr / (prior * lr + (1 - prior))


def _draw(n, rng, prior):
    y = rng.binomial(1, prior, n)
    x = rng.normal(2 * y - 1, 1)
    return y, x


def test_atc_threshold_by_hand():
    conf = np.array([0.9, 0.8, 0.7, 0.6, 0.55])
    correct = np.array([1, 1, 1, 0, 0], bool)  # error 0.4: 40% of confidences below t
    t = atc_threshold(conf, correct)
    assert np.mean(conf < t) == pytest.approx(0.4)


def test_estimates_track_accuracy_under_covariate_shift(make_engine):
    rng = np.random.default_rng(0)
    y0, x0 = _draw(4000, rng, 0.3)
    ref = fit_reference(y0, _posterior(x0, 0.3), threshold=0.3)
    # covariate shift: x drawn from another distribution, y | x unchanged (same posterior)
    x1 = rng.normal(0.0, 0.5, 3000)  # crowded near the decision boundary: accuracy drops
    y1 = rng.binomial(1, _posterior(x1, 0.3))
    p1 = _posterior(x1, 0.3)
    est = label_free_estimates(make_engine(3000, n_boot=200), np.arange(3000), p1, ref)
    truth_acc = np.mean((p1 >= 0.3) == (y1 == 1))
    truth_sens = np.mean(p1[y1 == 1] >= 0.3)
    assert est["cbpe_accuracy"].estimate == pytest.approx(truth_acc, abs=0.03)
    assert est["cbpe_sensitivity"].estimate == pytest.approx(truth_sens, abs=0.04)
    # ATC is a heuristic (exact only when the confidence ranks errors as on the reference):
    # it moves with the truth, less precisely than CBPE on calibrated scores
    assert est["atc_accuracy"].estimate < ref.accuracy - 0.15
    assert est["atc_accuracy"].estimate == pytest.approx(truth_acc, abs=0.12)
    assert est["cbpe_accuracy"].estimate != pytest.approx(ref.accuracy, abs=0.03)  # it moved
    # calibrated scores: the mean probability is the prevalence under covariate shift,
    # while ACC (which assumes x | y unchanged) is not; the two disagreeing is the alarm
    assert est["mean_probability"].estimate == pytest.approx(y1.mean(), abs=0.03)
    assert est["prevalence_change"].ci_low > 0


def test_prevalence_shift_is_detected(make_engine):
    rng = np.random.default_rng(1)
    y0, x0 = _draw(4000, rng, 0.3)
    ref = fit_reference(y0, _posterior(x0, 0.3), threshold=0.3)
    y1, x1 = _draw(3000, rng, 0.6)  # label shift: x | y unchanged, prior doubled
    est = label_free_estimates(make_engine(3000, n_boot=200), np.arange(3000), _posterior(x1, 0.3), ref)
    assert est["prevalence_change"].ci_low > 0.2
    assert est["acc_prevalence"].estimate == pytest.approx(0.6, abs=0.05)
    # and why it matters: CBPE's sensitivity (probabilities calibrated at 0.3) is off at 0.6
    truth_sens = np.mean(_posterior(x1, 0.3)[y1 == 1] >= 0.3)
    assert abs(est["cbpe_sensitivity"].estimate - truth_sens) > 0.05
    # a clean batch: no change
    _y2, x2 = _draw(3000, rng, 0.3)
    clean = label_free_estimates(make_engine(3000, n_boot=200, seed=3), np.arange(3000), _posterior(x2, 0.3), ref)
    # (its interval ignores the reference's own sampling error, hence the monitor's tolerance)
    assert abs(clean["prevalence_change"].estimate) < 0.05 and clean["prevalence_change"].ci_low > -0.1
