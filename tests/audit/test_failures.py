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
