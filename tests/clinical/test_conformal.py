"""Conformal prediction sets: equal to crepes' non-smoothed sets; coverage holds marginally and per class."""

from __future__ import annotations

import numpy as np
import pytest

from auditkit.stats.conformal import calibrate, coverage_summary, p_values, prediction_sets


def _probs(n, rng, k=3, shift=0.0):
    y = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), y] += 1.5 + shift
    p = np.exp(logits)
    return y, p / p.sum(axis=1, keepdims=True)


def test_split_sets_equal_crepes():
    crepes = pytest.importorskip("crepes")
    rng = np.random.default_rng(0)
    y_cal, p_cal = _probs(400, rng)
    _y_te, p_te = _probs(300, rng)
    cal = calibrate(p_cal, y_cal, alpha=0.1, method="split")
    cc = crepes.ConformalClassifier()
    cc.fit(1 - p_cal[np.arange(400), y_cal])
    ref = cc.predict_set(1 - p_te, confidence=0.9, smoothing=False)
    np.testing.assert_array_equal(prediction_sets(cal, p_te), ref.astype(bool))
    np.testing.assert_allclose(p_values(cal, p_te), cc.predict_p(1 - p_te, smoothing=False))


def test_mondrian_sets_equal_crepes():
    crepes = pytest.importorskip("crepes")
    rng = np.random.default_rng(1)
    y_cal, p_cal = _probs(500, rng)
    _y_te, p_te = _probs(200, rng)
    cal = calibrate(p_cal, y_cal, alpha=0.1, method="mondrian")
    cc = crepes.ConformalClassifier()
    cc.fit(1 - p_cal[np.arange(500), y_cal], bins=y_cal)
    # class-conditional: the p-value of class c uses the calibration images of class c
    ref = np.column_stack(
        [cc.predict_set((1 - p_te[:, c])[:, None], bins=np.full(200, c), confidence=0.9, smoothing=False)[:, 0]
         for c in range(3)]
    )
    np.testing.assert_array_equal(prediction_sets(cal, p_te), ref.astype(bool))


def test_coverage_guarantee_and_subgroup_undercoverage(make_engine):
    """Planted truth: a subgroup whose model is worse is under-covered by split, covered per class."""
    rng = np.random.default_rng(2)
    y_cal, p_cal = _probs(3000, rng)
    y_te, p_te = _probs(3000, rng)
    # a subgroup (30% of test) where the model is much less sharp
    g = rng.random(3000) < 0.3
    y_g, p_g = _probs(int(g.sum()), rng, shift=-1.5)
    y_te[g], p_te[g] = y_g, p_g
    split = prediction_sets(calibrate(p_cal, y_cal, alpha=0.1), p_te)
    engine = make_engine(3000, n_boot=200)
    rows = np.arange(3000)
    overall = coverage_summary(engine, rows[~g], split[~g], y_te[~g])
    sub = coverage_summary(engine, rows[g], split[g], y_te[g])
    assert overall["coverage"].estimate >= 0.88
    assert sub["coverage"].ci_high < 0.85  # the hidden shortfall, CI excluding the target
    covered = split[np.arange(3000), y_te].mean()
    assert sub["coverage"].estimate == pytest.approx(split[g][np.arange(g.sum()), y_te[g]].mean())
    assert 0 < covered < 1
    # exchangeable calibration: marginal coverage >= 1 - alpha across repeats (Vovk's guarantee)
    hits = []
    for rep in range(30):
        r = np.random.default_rng(100 + rep)
        yc, pc = _probs(200, r)
        yt, pt = _probs(2000, r)
        s = prediction_sets(calibrate(pc, yc, alpha=0.1, method="mondrian"), pt)
        hits.append(s[np.arange(2000), yt].mean())
    assert np.mean(hits) >= 0.895
