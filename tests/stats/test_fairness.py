"""Subgroup fairness: per-group values, gaps, tests, small groups and the prevalence-adjusted view.

Oracles: fairlearn ``MetricFrame`` (per-group values, ``difference()``,
``ratio()``, and its bootstrap intervals as a loose cross-check of widths),
fairlearn ``equalized_odds_difference``, scikit-learn on each masked group,
SciPy's Benjamini–Hochberg and a hand-computed Holm, and planted truths
(an underdiagnosed subgroup; two groups that differ only in prevalence).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame, equalized_odds_difference
from scipy.stats import false_discovery_control
from sklearn.metrics import brier_score_loss, precision_score, recall_score, roc_auc_score

from auditkit.results import Estimate
from auditkit.stats.bootstrap import IntervalSettings, make_resamples
from auditkit.stats.cohort import CohortAnalyzer, TaskArrays
from auditkit.stats.engine import Engine
from auditkit.stats.fairness import (
    ComparisonFamily,
    FairnessSettings,
    analyse_attribute,
    group_labels,
)
from auditkit.stats.multiplicity import adjust_p_values


def specificity(y, pred):
    return recall_score(y, pred, pos_label=0)


def cohort(n=1200, *, flaw=0.0, seed=0, prevalence=(0.3, 0.3), groups=("F", "M")):
    """Binary cohort with two groups; ``flaw`` lowers the scores of group 0's positives (underdiagnosis)."""
    rng = np.random.default_rng(seed)
    g = np.where(rng.random(n) < 0.5, groups[0], groups[1])
    prev = np.where(g == groups[0], prevalence[0], prevalence[1])
    y = (rng.random(n) < prev).astype(int)
    z = rng.normal(size=n) + 2.0 * y - 1.0 - flaw * y * (g == groups[0])
    return y, 1 / (1 + np.exp(-z)), g


def run(y, s, g, *, n_boot=300, settings=FairnessSettings(), columns=("sex",), seed=0):
    n = len(y)
    engine = Engine(
        make_resamples(np.zeros(n, int), n_boot=n_boot, random_state=seed), IntervalSettings()
    )
    analyzer = CohortAnalyzer(TaskArrays(y, np.c_[1 - s, s], ("0", "1")), engine, threshold=0.5)
    gap, rest = ComparisonFamily("gaps"), ComparisonFamily("rest")
    section = analyse_attribute(
        pd.Series(g),
        np.arange(n),
        analyzer,
        columns=list(columns),
        cohort="test",
        settings=settings,
    )
    section.register(settings.primary_metrics, gap, rest)
    adjusted = section.with_adjusted(gap.adjusted("holm") + rest.adjusted("holm"), None)
    assert section.gap is not adjusted.gap or not len(gap)  # an adjusted copy; the section is left alone
    return adjusted.to_dict()


def test_group_values_gap_and_ratio_match_fairlearn():
    y, s, g = cohort(seed=1, flaw=0.6)
    g = np.where(np.random.default_rng(5).random(len(y)) < 0.2, "X", g)  # three groups
    pred = (s >= 0.5).astype(int)
    section = run(y, s, g, n_boot=100)
    frame = MetricFrame(
        metrics={"sensitivity": recall_score, "specificity": specificity, "ppv": precision_score},
        y_true=y,
        y_pred=pred,
        sensitive_features=g,
    )
    scores = MetricFrame(
        metrics={"auroc": roc_auc_score, "brier": brier_score_loss},
        y_true=y,
        y_pred=s,
        sensitive_features=g,
    )
    for group in ("F", "M", "X"):
        block = section["groups"][group]
        assert block["n"] == int((g == group).sum())
        for metric in ("sensitivity", "specificity", "ppv"):
            assert block[metric].estimate == pytest.approx(
                frame.by_group.loc[group, metric], abs=1e-12
            )
        for metric in ("auroc", "brier"):
            assert block[metric].estimate == pytest.approx(
                scores.by_group.loc[group, metric], abs=1e-12
            )
    for metric in ("sensitivity", "specificity", "ppv"):
        assert section["gap"][metric].estimate == pytest.approx(
            frame.difference()[metric], abs=1e-12
        )
        assert section["ratio"][metric].estimate == pytest.approx(frame.ratio()[metric], abs=1e-12)
    assert section["gap"]["auroc"].estimate == pytest.approx(
        scores.difference()["auroc"], abs=1e-12
    )
    assert section["gap"]["equalized_odds"].estimate == pytest.approx(
        equalized_odds_difference(y, pred, sensitive_features=g), abs=1e-12
    )
    worst = section["worst_group"]["auroc"]
    assert worst.groups == (scores.by_group["auroc"].idxmin(),)


def test_interval_widths_roughly_agree_with_fairlearn_bootstrap():
    y, s, g = cohort(seed=2)
    pred = (s >= 0.5).astype(int)
    section = run(y, s, g, n_boot=200)
    frame = MetricFrame(
        metrics=recall_score,
        y_true=y,
        y_pred=pred,
        sensitive_features=g,
        n_boot=100,
        ci_quantiles=[0.025, 0.975],
        random_state=0,
    )
    low, high = frame.by_group_ci
    for group in ("F", "M"):
        est = section["groups"][group]["sensitivity"]
        ratio = (est.ci_high - est.ci_low) / (high[group] - low[group])
        assert 0.7 < ratio < 1.4


def test_planted_underdiagnosis_is_detected_and_clean_data_is_not():
    y, s, g = cohort(n=1600, flaw=1.2, seed=3)
    flawed = run(y, s, g)["gap"]["fnr"]
    assert flawed.groups == ("F", "M")  # F has the higher false-negative rate
    assert flawed.ci_low > 0
    assert flawed.p_adjusted < 0.05
    y, s, g = cohort(n=1600, flaw=0.0, seed=3)
    clean = run(y, s, g)["gap"]["fnr"]
    assert clean.ci_low <= 0 or clean.p_adjusted >= 0.05
    assert clean.p_value > 0.05


def test_small_groups_are_undefined_with_reason_and_left_out_of_gaps():
    y, s, g = cohort(n=600, seed=4)
    g = g.astype(object)
    g[:12] = "tiny"
    g[12:20] = None
    y[20:60] = 0
    g[20:60] = "few_events"
    y[20:25] = 1
    section = run(y, s, group_labels(pd.DataFrame({"sex": g}), ["sex"]).to_numpy(), n_boot=50)
    tiny = section["groups"]["tiny"]
    assert tiny["auroc"].estimate is None and "minimum group size of 30" in tiny["auroc"].reason
    assert section["groups"]["(missing)"]["n"] == 8
    assert any("5 events" in w for w in section["groups"]["few_events"]["warnings"])
    assert "tiny" not in section["gap"]["auroc"].groups
    assert "(missing)" not in section["gap"]["auroc"].groups


def test_one_class_group_gives_reasons_not_numbers():
    y, s, g = cohort(n=400, seed=5)
    y[g == "F"] = 0
    section = run(y, s, g, n_boot=50)
    block = section["groups"]["F"]
    assert block["auroc"].estimate is None and block["auroc"].reason == "no positive cases"
    assert block["sensitivity"].estimate is None
    assert block["specificity"].defined


def test_prevalence_adjusted_view_removes_a_pure_prevalence_gap():
    y, s, g = cohort(n=4000, seed=6, prevalence=(0.1, 0.5))
    section = run(y, s, g, n_boot=300)
    raw = section["gap"]["ppv"]
    assert raw.ci_low > 0.1  # PPV differs a lot because prevalence differs
    adjusted = section["prevalence_adjusted"]
    assert adjusted["gap"]["ppv"].ci_low <= 0.0 <= adjusted["gap"]["ppv"].ci_high
    assert "sensitivity" in adjusted["unchanged"]
    # reweighting the classes leaves class-conditional metrics untouched (checked by hand)
    for group in ("F", "M"):
        mask = g == group
        w = np.where(y[mask] == 1, y.mean() / y[mask].mean(), (1 - y.mean()) / (1 - y[mask].mean()))
        pred = s[mask] >= 0.5
        ppv = np.sum(w * (pred & (y[mask] == 1))) / np.sum(w * pred)
        assert adjusted["groups"][group]["ppv"].estimate == pytest.approx(ppv, abs=1e-12)


def test_vs_rest_is_group_minus_complement():
    y, s, g = cohort(seed=7)
    g = np.where(np.random.default_rng(1).random(len(y)) < 0.3, "X", g)
    section = run(y, s, g, n_boot=100)
    pred = s >= 0.5
    for group in ("F", "X"):
        inside, outside = g == group, g != group
        expected = (1 - recall_score(y[inside], pred[inside])) - (
            1 - recall_score(y[outside], pred[outside])
        )
        assert section["vs_rest"][group]["fnr"].estimate == pytest.approx(expected, abs=1e-12)
        assert section["vs_rest"][group]["fnr"].p_adjusted is not None


def test_intersection_labels_join_values():
    frame = pd.DataFrame({"sex": ["F", "M", None], "age_group": ["60-80", "80+", "<40"]})
    assert group_labels(frame, ["sex", "age_group"]).tolist() == [
        "F+60-80",
        "M+80+",
        "(missing)+<40",
    ]
    assert group_labels(pd.DataFrame({"site": [1.0, 2.0]}), ["site"]).tolist() == ["1", "2"]


def test_holm_and_bh_adjustments():
    p = np.array([0.01, 0.04, 0.03, 0.005, np.nan])
    # Holm by hand: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1, then running max
    np.testing.assert_allclose(adjust_p_values(p, method="holm")[:4], [0.03, 0.06, 0.06, 0.02])
    assert np.isnan(adjust_p_values(p, method="holm")[4])
    np.testing.assert_allclose(
        adjust_p_values(p, method="bh")[:4], false_discovery_control(p[:4], method="bh")
    )


def test_test_family_writes_adjusted_values_and_twins():
    a = {"fnr": Estimate(0.1, p_value=0.01), "sensitivity": Estimate(-0.1, p_value=0.01)}
    b = {"fnr": Estimate(0.1, p_value=0.04)}
    family = ComparisonFamily("gaps")
    family.add(a, "fnr", "a")
    family.add(b, "fnr", "b")
    family.adjust("holm")
    assert a["fnr"].p_adjusted == pytest.approx(0.02)
    assert a["sensitivity"].p_adjusted == pytest.approx(0.02)
    assert b["fnr"].p_adjusted == pytest.approx(0.04)


def test_the_family_returns_adjusted_copies_and_leaves_its_members_alone():
    """Holm by hand: p = (0.01, 0.04) -> (0.02, 0.04); the registered Estimates are not modified."""
    a = {"fnr": Estimate(0.1, p_value=0.01), "sensitivity": Estimate(-0.1, p_value=0.01)}
    b = {"fnr": Estimate(0.1, p_value=0.04)}
    family = ComparisonFamily("gaps")
    family.add(a, "fnr", "a")
    family.add(b, "fnr", "b")
    adjusted = family.adjusted("holm")
    assert a["fnr"].p_adjusted is None and b["fnr"].p_adjusted is None
    by_key = {(id(container), key): est.p_adjusted for container, key, est in adjusted}
    assert by_key == {(id(a), "fnr"): pytest.approx(0.02), (id(a), "sensitivity"): pytest.approx(0.02),
                      (id(b), "fnr"): pytest.approx(0.04)}  # fmt: skip
