"""The worst misclassified cases per cohort at the frozen operating point (results.json ``failures``).

A reviewer reading a failure analysis wants the cases the model got most
wrong, not a sample: the false negatives with the lowest positive-class score
and the false positives with the highest, over every image of each cohort
(internal test and each external site; the validation split chose the
threshold and is left out). A case is called positive when its score is at or
above the threshold, as for the confusion matrix
(:func:`auditkit.stats.threshold.choose_operating_point`). Binary tasks only:
a multi-class error has no single score to rank by.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from auditkit.fileio import plain_cell

#: cases listed per cohort and error type.
N_WORST = 5
#: cohorts that never get a worst-case list (the threshold was chosen there).
SKIPPED_COHORTS = ("val",)


def _case(frame: pd.DataFrame, row: int, score: float, attributes: list[str]) -> dict[str, Any]:
    case: dict[str, Any] = {"id": str(frame["id"].iloc[row]), "score": float(score)}
    if "patient_id" in frame.columns:
        case["patient_id"] = plain_cell(frame["patient_id"].iloc[row])
    case["attributes"] = {a: plain_cell(frame[a].iloc[row]) for a in attributes if a in frame.columns}
    return case


def worst_cases(
    frame: pd.DataFrame,
    cohorts: pd.Series,
    y_pos: np.ndarray,
    score: np.ndarray,
    *,
    threshold: float,
    attributes: list[str] | tuple[str, ...] = (),
    n_worst: int = N_WORST,
) -> dict[str, Any]:
    """Return, per cohort, the count of false negatives and positives and the ``n_worst`` worst of each.

    ``frame`` is the predictions table (``id``, optional ``patient_id`` and
    attribute columns), ``cohorts`` each row's cohort (None for rows outside
    every cohort), ``y_pos`` (n,) bool whether the row is of the positive
    class and ``score`` (n,) its positive-class score. Worst false negatives
    are sorted by ascending score, worst false positives by descending score;
    ties keep table order.
    """
    y_pos = np.asarray(y_pos, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    called = score >= threshold
    labels = cohorts.to_numpy(dtype=object)
    out: dict[str, Any] = {}
    for cohort in pd.unique(cohorts.dropna()):
        if cohort in SKIPPED_COHORTS:
            continue
        in_cohort = labels == cohort
        block = {}
        for name, wrong, ascending in (
            ("false_negative", in_cohort & y_pos & ~called, True),
            ("false_positive", in_cohort & ~y_pos & called, False),
        ):
            rows = np.flatnonzero(wrong)
            key = score[rows] if ascending else -score[rows]
            order = rows[np.argsort(key, kind="stable")][:n_worst]
            block[name] = {"n": int(rows.size),
                           "worst": [_case(frame, int(r), score[r], list(attributes)) for r in order]}
        out[str(cohort)] = block
    return {
        "threshold": float(threshold),
        "rule": "score >= threshold is called positive; false negatives by ascending score, "
        "false positives by descending score",
        "n_worst": int(n_worst),
        "cohorts": out,
    }
