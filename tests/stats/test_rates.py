"""Confusion-matrix metrics, the operating point and the multi-class one-vs-rest metrics.

Oracles: scikit-learn (confusion_matrix, recall/precision/f1, balanced
accuracy, roc_curve, roc_auc_score with multi_class="ovr") and hand-computed
likelihood ratios.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from auditkit.errors import ConfigError
from auditkit.stats.bootstrap import IntervalSettings, make_resamples
from auditkit.stats.cohort import CohortAnalyzer, TaskArrays
from auditkit.stats.engine import Engine
from auditkit.stats.rates import binary_rates, rates_from_counts
from auditkit.stats.threshold import OperatingPointRule, choose_operating_point

from .conftest import binormal


def test_binary_rates_match_sklearn(tied_binary):
    y, s = tied_binary
    t = 0.5
    pred = (s >= t).astype(int)
    r = binary_rates(y, s, threshold=t)
    tn, fp, fn, tp = confusion_matrix(y, pred).ravel()
    assert r["sensitivity"] == pytest.approx(recall_score(y, pred))
    assert r["specificity"] == pytest.approx(recall_score(y, pred, pos_label=0))
    assert r["ppv"] == pytest.approx(precision_score(y, pred))
    assert r["npv"] == pytest.approx(precision_score(y, pred, pos_label=0))
    assert r["f1"] == pytest.approx(f1_score(y, pred))
    assert r["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert r["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert r["fnr"] == pytest.approx(fn / (fn + tp))
    assert r["fpr"] == pytest.approx(fp / (fp + tn))
    sens, spec = tp / (tp + fn), tn / (tn + fp)
    assert r["lr_positive"] == pytest.approx(sens / (1 - spec))
    assert r["lr_negative"] == pytest.approx((1 - sens) / spec)


def test_zero_denominators_are_undefined_not_zero():
    r = rates_from_counts(0, 0, 10, 0)  # no positives, none called positive
    assert np.isnan(r["sensitivity"]) and np.isnan(r["ppv"]) and r["specificity"] == 1.0
    assert np.isnan(r["lr_positive"])


@pytest.mark.parametrize("text", ["youden", "sensitivity:0.9", "specificity:0.8"])
def test_operating_point_rules_match_sklearn_roc_curve(text, tied_binary):
    y, s = tied_binary
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
    rule = OperatingPointRule.parse(text)
    op = choose_operating_point(y, s, rule)
    if rule.rule == "youden":
        expected = thr[np.argmax(tpr - fpr)]
    elif rule.rule == "sensitivity":
        expected = thr[np.flatnonzero(tpr >= 0.9)[0]]
    else:
        expected = thr[np.flatnonzero(1 - fpr >= 0.8)[-1]]
    assert op.threshold == expected
    pred = s >= op.threshold
    assert op.val_sensitivity == pytest.approx(recall_score(y, pred))
    assert op.val_specificity == pytest.approx(recall_score(y, pred, pos_label=0))


def test_operating_point_errors_name_the_fix():
    with pytest.raises(ConfigError, match=r"youden, sensitivity:0\.9"):
        OperatingPointRule.parse("sensitivity:1.5")
    with pytest.raises(ConfigError, match="threshold:T"):
        choose_operating_point(
            np.zeros(5, int), np.linspace(0, 1, 5), OperatingPointRule.parse("youden")
        )


def _multiclass(n=600, k=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return y, probs


def test_multiclass_one_vs_rest_and_macro_match_sklearn():
    y, probs = _multiclass()
    res = make_resamples(y, n_boot=20, random_state=0)
    analyzer = CohortAnalyzer(
        TaskArrays(y, probs, ("a", "b", "c")), Engine(res, IntervalSettings()), threshold=None
    )
    m = analyzer.metrics(np.arange(len(y)))
    pred = probs.argmax(1)
    recalls = recall_score(y, pred, average=None)
    for k in range(3):
        assert m[f"auroc/{k}"].point == pytest.approx(roc_auc_score(y == k, probs[:, k]), abs=1e-12)
        assert m[f"sensitivity/{k}"].point == pytest.approx(recalls[k])
    assert m["auroc"].point == pytest.approx(
        roc_auc_score(y, probs, multi_class="ovr", average="macro"), abs=1e-12
    )
    assert m["balanced_accuracy"].point == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["f1"].point == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["accuracy"].point == pytest.approx(accuracy_score(y, pred))
    from sklearn.metrics import brier_score_loss

    assert m["brier"].point == pytest.approx(
        brier_score_loss(y, probs, labels=[0, 1, 2]), abs=1e-12
    )


def test_threshold_metrics_per_resample_match_sklearn():
    y, s = binormal(200, seed=3, decimals=2)
    res = make_resamples(y, n_boot=10, random_state=0)
    analyzer = CohortAnalyzer(
        TaskArrays(y, np.c_[1 - s, s], ("0", "1")), Engine(res, IntervalSettings()), threshold=0.5
    )
    m = analyzer.metrics(np.arange(len(y)))
    counts = res.counts[res.unit_of_row]
    for r in range(0, 10, 3):
        idx = np.repeat(np.arange(len(y)), counts[:, r])
        pred = s[idx] >= 0.5
        assert m["sensitivity"].boot[r] == pytest.approx(recall_score(y[idx], pred))
        assert m["ppv"].boot[r] == pytest.approx(precision_score(y[idx], pred))
        assert m["f1"].boot[r] == pytest.approx(f1_score(y[idx], pred))
