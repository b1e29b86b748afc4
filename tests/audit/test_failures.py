"""Worst cases per cohort: the errors with the most wrong score over every image, checked by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd

from auditkit.audit.failures import worst_cases


def test_worst_false_negatives_and_positives_by_hand():
    frame = pd.DataFrame({
        "id": [f"i{k}" for k in range(8)],
        "patient_id": ["p0", "p0", "p1", "p2", "p3", "p4", "p5", "p6"],
        "sex": ["F", "M", "F", "M", "F", "M", "F", "M"],
    })
    cohorts = pd.Series(["test", "test", "test", "test", "site_c", "site_c", "val", None])
    y_pos = np.array([1, 1, 0, 0, 1, 0, 1, 0], dtype=bool)
    score = np.array([0.30, 0.05, 0.90, 0.60, 0.10, 0.20, 0.01, 0.99])
    out = worst_cases(frame, cohorts, y_pos, score, threshold=0.5, attributes=["sex"], n_worst=1)
    test = out["cohorts"]["test"]
    # positives below 0.5: i0 (0.30) and i1 (0.05); the worst is the lowest score
    assert test["false_negative"]["n"] == 2
    assert test["false_negative"]["worst"] == [{"id": "i1", "score": 0.05, "patient_id": "p0",
                                                "attributes": {"sex": "M"}}]
    # negatives at or above 0.5: i2 (0.90), i3 (0.60); the worst is the highest
    assert test["false_positive"]["n"] == 2 and test["false_positive"]["worst"][0]["id"] == "i2"
    assert out["cohorts"]["site_c"]["false_negative"]["worst"][0]["id"] == "i4"
    assert out["cohorts"]["site_c"]["false_positive"]["n"] == 0
    assert set(out["cohorts"]) == {"test", "site_c"}  # the validation split chose the threshold; row 7 is training


def test_a_score_at_the_threshold_is_called_positive():
    frame = pd.DataFrame({"id": ["a", "b"]})
    out = worst_cases(frame, pd.Series(["test", "test"]), np.array([1, 0], bool), np.array([0.5, 0.5]),
                      threshold=0.5)
    assert out["cohorts"]["test"]["false_negative"]["n"] == 0
    assert out["cohorts"]["test"]["false_positive"]["n"] == 1


def test_subgroup_sizes_count_patients_and_the_training_split():
    from auditkit.audit.demographics import describe_subgroups

    frame = pd.DataFrame({
        "split": ["train", "train", "train", "test", "external", "external"],
        "site": ["A", "A", "B", "A", "C", "C"],
        "patient_id": ["p1", "p1", "p2", "p3", "p4", "p5"],
        "sex": ["F", "F", "M", None, "F", "M"],
    })
    y_pos = np.array([1, 0, 1, 0, 1, 1], bool)
    out = describe_subgroups(frame, y_pos, ["sex"])
    assert list(out) == ["train", "test", "C"]
    assert out["train"]["sex"]["F"] == {"n_images": 2, "n_positive": 1, "n_patients": 1}  # two images, one patient
    assert out["test"]["sex"] == {"missing": {"n_images": 1, "n_positive": 0, "n_patients": 1}}
    assert out["C"]["total"] == {"n_images": 2, "n_positive": 2, "n_patients": 2}


def test_internal_sites_compared_match_scikit_learn_and_counts():
    from sklearn.metrics import roc_auc_score

    from auditkit.audit.demographics import compare_sites

    rng = np.random.default_rng(3)
    n = 200
    frame = pd.DataFrame({"site": np.where(np.arange(n) < 120, "A", "B"), "patient_id": [f"p{i}" for i in range(n)]})
    y = rng.random(n) < 0.4
    score = np.clip(0.3 * y + rng.random(n) * 0.7, 0, 1)
    out = compare_sites(frame, np.ones(n, bool), y, score, threshold=0.5)
    a = out["sites"]["A"]
    assert abs(a["auroc"]["estimate"] - roc_auc_score(y[:120], score[:120])) < 1e-12
    assert a["auroc"]["ci_low"] < a["auroc"]["estimate"] < a["auroc"]["ci_high"]
    assert a["sensitivity"]["estimate"] == (score[:120][y[:120]] >= 0.5).mean()
    assert a["n_images"] == 120 and a["n_patients"] == 120
    diff = a["auroc_vs_rest"]["estimate"]
    assert abs(diff - (roc_auc_score(y[:120], score[:120]) - roc_auc_score(y[120:], score[120:]))) < 1e-12
