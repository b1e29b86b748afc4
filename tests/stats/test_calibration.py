"""Calibration metrics and recalibration.

Oracles: torchmetrics ``binary_calibration_error`` / ``multiclass_calibration_error``
(ECE l1 and MCE max norm, 15 equal-width bins), netcal ``ECE`` with
equal-mass bins, scikit-learn ``brier_score_loss`` and
``LogisticRegression`` without penalty (``C=inf``) (slope, Platt), SciPy's optimiser (the
intercept with logit offset, temperature), SciPy's Wilson interval, hand
computations (debiased ECE of Kumar et al. 2019, Murphy's identity), and
planted truths (a calibrated model; a model sharpened by a known temperature).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize
from scipy.special import expit, logit
from scipy.stats import binomtest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from torchmetrics.functional.classification import (
    binary_calibration_error,
    multiclass_calibration_error,
)

from auditkit.stats.bootstrap import IntervalSettings, make_resamples
from auditkit.stats.calibration import (
    brier_decomposition,
    brier_score,
    calibration_intercept_slope,
    debiased_calibration_error,
    expected_calibration_error,
    maximum_calibration_error,
    observed_expected_ratio,
    reliability_diagram,
)
from auditkit.stats.cohort import CohortAnalyzer, TaskArrays
from auditkit.stats.engine import Engine
from auditkit.stats.recalibration import (
    fit_platt,
    fit_temperature_binary,
    fit_temperature_multiclass,
)

from .conftest import binormal


def calibrated(n, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.03, 0.97, n)
    return (rng.random(n) < p).astype(int), p


def test_ece_and_mce_match_torchmetrics():
    y, p = binormal(500, seed=5)
    tp, ty = torch.tensor(p, dtype=torch.float64), torch.tensor(y)
    assert expected_calibration_error(y, p) == pytest.approx(
        float(binary_calibration_error(tp, ty, n_bins=15)), abs=1e-12
    )
    assert maximum_calibration_error(y, p) == pytest.approx(
        float(binary_calibration_error(tp, ty, n_bins=15, norm="max")), abs=1e-12
    )


def test_equal_mass_ece_matches_netcal():
    from netcal.metrics import ECE

    y, p = binormal(600, seed=8)
    ours = expected_calibration_error(y, p, strategy="quantile")
    # netcal's equal_intervals=False uses quantile bins of the given confidences
    ref = ECE(bins=15, equal_intervals=False).measure(p, y)
    assert ours == pytest.approx(ref, abs=2e-3)


def test_top_label_ece_matches_torchmetrics_multiclass():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 400)
    logits = rng.normal(size=(400, 3)) + 2.0 * np.eye(3)[y]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    res = make_resamples(y, n_boot=10, random_state=0)
    analyzer = CohortAnalyzer(
        TaskArrays(y, probs, ("a", "b", "c")), Engine(res, IntervalSettings()), threshold=None
    )
    m = analyzer.metrics(np.arange(400))
    ref = multiclass_calibration_error(
        torch.tensor(probs), torch.tensor(y), num_classes=3, n_bins=15
    )
    # torchmetrics' multi-class path computes the confidences in float32
    assert m["ece"].point == pytest.approx(float(ref), abs=1e-6)


def test_brier_and_oe_match_sklearn_and_hand():
    y, p = binormal(300, seed=2)
    assert brier_score(y, p) == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    assert observed_expected_ratio(y, p) == pytest.approx(y.sum() / p.sum(), rel=1e-12)


def test_debiased_ece_matches_kumar_formula_by_hand():
    y, p = binormal(400, seed=4)
    edges = np.quantile(p, np.linspace(0, 1, 16))
    edges[0], edges[-1] = 0, 1
    b = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, 14)
    total = 0.0
    for k in range(15):
        sel = b == k
        n_b = sel.sum()
        if n_b == 0:
            continue
        yb, pb = y[sel].mean(), p[sel].mean()
        total += n_b * ((yb - pb) ** 2 - (yb * (1 - yb) / (n_b - 1) if n_b > 1 else 0.0))
    assert debiased_calibration_error(y, p) == pytest.approx(
        np.sqrt(max(total / len(y), 0.0)), abs=1e-12
    )


def test_slope_and_intercept_match_independent_logistic_fits():
    y, p = binormal(500, seed=6)
    z = logit(p)
    ref = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(z[:, None], y)
    cal = calibration_intercept_slope(y, p)
    assert cal.slope == pytest.approx(ref.coef_[0, 0], rel=1e-6)

    def nll(a):
        eta = a + z
        return np.sum(np.logaddexp(0, eta) - y * eta)

    a_ref = optimize.minimize_scalar(
        nll, bounds=(-10, 10), method="bounded", options={"xatol": 1e-12}
    ).x
    assert cal.intercept == pytest.approx(a_ref, abs=1e-6)


def test_perfectly_calibrated_model_has_slope_one_intercept_zero_within_ci():
    y, p = calibrated(4000, seed=3)
    res = make_resamples(
        np.zeros(len(y), int), n_boot=200, random_state=0
    )  # one cohort, classes free
    engine = Engine(res, IntervalSettings())
    analyzer = CohortAnalyzer(TaskArrays(y, np.c_[1 - p, p], ("0", "1")), engine, threshold=0.5)
    m = analyzer.metrics(np.arange(len(y)))
    slope, intercept = engine.estimate(m["slope"]), engine.estimate(m["intercept"])
    assert slope.ci_low <= 1.0 <= slope.ci_high
    assert intercept.ci_low <= 0.0 <= intercept.ci_high
    assert engine.estimate(m["ece_debiased"]).estimate < 0.05
    smooth = analyzer.calibration_details(np.arange(len(y)))["smooth"]
    np.testing.assert_allclose(smooth["observed"], smooth["predicted"], atol=0.06)


def test_brier_decomposition_is_exact_when_bins_hold_one_forecast_value():
    rng = np.random.default_rng(0)
    p = rng.choice(np.arange(0.05, 1.0, 0.1), 800)
    y = (rng.random(800) < np.clip(p + 0.1, 0, 1)).astype(int)
    d = brier_decomposition(y, p, n_bins=10)
    assert d.brier == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    assert d.reliability - d.resolution + d.uncertainty == pytest.approx(d.brier, abs=1e-12)
    assert d.uncertainty == pytest.approx(y.mean() * (1 - y.mean()))


def test_reliability_bins_carry_wilson_intervals():
    y, p = binormal(300, seed=9)
    diagram = reliability_diagram(y, p)
    for k in np.flatnonzero(diagram.count > 0)[:5]:
        sel = np.clip(np.searchsorted(np.linspace(0, 1, 16), p, side="right") - 1, 0, 14) == k
        ci = binomtest(int(y[sel].sum()), int(sel.sum())).proportion_ci(0.95, method="wilson")
        assert diagram.count[k] == sel.sum()
        assert diagram.ci_low[k] == pytest.approx(ci.low, abs=1e-12)
        assert diagram.ci_high[k] == pytest.approx(ci.high, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.floats(0, 1)), min_size=1, max_size=80))
def test_ece_is_in_unit_interval_and_order_free(pairs):
    y = np.array([a for a, _ in pairs])
    p = np.array([b for _, b in pairs])
    ece = expected_calibration_error(y, p)
    assert 0.0 <= ece <= 1.0
    perm = np.random.default_rng(len(y)).permutation(len(y))
    assert expected_calibration_error(y[perm], p[perm]) == pytest.approx(ece, abs=1e-12)


def test_temperature_recovers_a_planted_temperature_and_keeps_auroc():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 1.5, 5000)
    y = (rng.random(5000) < expit(z)).astype(int)
    overconfident = expit(2.0 * z)  # the true temperature is 2
    temp = fit_temperature_binary(y, overconfident)
    assert temp.temperature == pytest.approx(2.0, rel=0.08)

    def nll(t):
        q = np.clip(expit(logit(overconfident) / t), 1e-15, 1 - 1e-15)
        return -np.mean(y * np.log(q) + (1 - y) * np.log(1 - q))

    ref = optimize.minimize(
        lambda v: nll(v[0]), x0=[1.0], method="Nelder-Mead", options={"xatol": 1e-9, "fatol": 1e-14}
    ).x[0]
    assert temp.temperature == pytest.approx(ref, rel=1e-5)
    assert roc_auc_score(y, temp.transform_binary(overconfident)) == pytest.approx(
        roc_auc_score(y, overconfident), abs=1e-12
    )


def test_multiclass_temperature_recovers_planted_value():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 1.5, (4000, 3))
    true = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = np.array([rng.choice(3, p=row) for row in true])
    sharp = np.exp(2 * logits) / np.exp(2 * logits).sum(1, keepdims=True)
    assert fit_temperature_multiclass(y, sharp).temperature == pytest.approx(2.0, rel=0.1)


def test_platt_matches_sklearn_logistic_regression():
    y, p = binormal(400, seed=12)
    ref = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(logit(p)[:, None], y)
    platt = fit_platt(y, p)
    assert platt.a == pytest.approx(ref.coef_[0, 0], rel=1e-6)
    assert platt.b == pytest.approx(ref.intercept_[0], abs=1e-6)


def test_replicate_fits_agree_with_single_column_fits():
    """Many columns are solved together in float32 from a warm start; each must match its own float64 fit."""
    from auditkit.stats.logistic import fit_logistic

    y, p = binormal(800, seed=13)
    z = logit(p)
    w = np.random.default_rng(0).multinomial(800, np.full(800, 1 / 800), size=12).T
    for slope in (False, True):
        a, b = fit_logistic(z[y == 0], z[y == 1], w[y == 0], w[y == 1], fit_slope=slope)
        for j in range(12):
            a1, b1 = fit_logistic(
                z[y == 0], z[y == 1], w[y == 0][:, [j]], w[y == 1][:, [j]], fit_slope=slope
            )
            assert a[j] == pytest.approx(a1[0], abs=1e-4)
            assert b[j] == pytest.approx(b1[0], abs=1e-4)
