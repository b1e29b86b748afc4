"""Conformal prediction sets: split-conformal and class-conditional (Mondrian) sets with their coverage.

Calibrated on the validation split at error rate α, a test image's set holds
every class c whose conformal p-value

    p_c(x) = (1 + #{i in cal : a_i >= a_c(x)}) / (n_cal + 1)

is at least α, with the non-conformity score a_c(x) = 1 − p̂_c(x) (the
"hinge"/LAC score; Vovk, Gammerman & Shafer 2005; Angelopoulos & Bates 2023
§1). Split conformal uses every calibration image's score of its true class;
the class-conditional (Mondrian, label-conditional) variant compares a_c(x)
only with calibration images of class c, so coverage >= 1 − α holds within
each class (Vovk 2012; Löfström et al. 2015). These are the non-smoothed
p-values of ``crepes`` (``ConformalClassifier(...).predict_set(...,
smoothing=False)``), which the tests use as the oracle.

Marginal coverage >= 1 − α holds only over the calibration population; it
can hide under-coverage in a subgroup (Romano et al. 2020: 90% marginal,
77.5% in one group), which is why coverage is reported per subgroup and per
external site with patient-clustered bootstrap intervals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from auditkit.errors import InvalidInputError
from auditkit.results import Estimate
from auditkit.stats.engine import Engine
from auditkit.stats.views import LinearView

METHODS = ("split", "mondrian")


@dataclass(frozen=True, eq=False)
class ConformalCalibration:
    """Sorted calibration scores (overall, or one array per class for Mondrian) at error rate α."""

    method: str
    alpha: float
    scores: tuple[np.ndarray, ...]
    """Ascending non-conformity scores: one array (split) or one per class (mondrian)."""
    n_classes: int

    @property
    def n_cal(self) -> int:
        """Return the number of calibration images."""
        return int(sum(len(s) for s in self.scores))


def nonconformity(probs: np.ndarray) -> np.ndarray:
    """Return the non-conformity score 1 − p̂_c of every class, shape ``(n, K)`` like ``probs``."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise InvalidInputError(f"probs must be (n, K) class probabilities, got shape {p.shape}")
    return 1.0 - p


def calibrate(
    probs: np.ndarray, y_true: np.ndarray, *, alpha: float, method: str = "split"
) -> ConformalCalibration:
    """Return the calibration of ``method`` ('split' or 'mondrian') from validation probabilities and labels."""
    if not 0.0 < alpha < 1.0:
        raise InvalidInputError(f"conformal alpha must be in (0, 1), got {alpha}")
    if method not in METHODS:
        raise InvalidInputError(f"conformal method must be one of {METHODS}, got {method!r}")
    a = nonconformity(probs)
    y = np.asarray(y_true, dtype=np.int64)
    if y.shape != (a.shape[0],):
        raise InvalidInputError(f"y_true must have {a.shape[0]} labels, got shape {y.shape}")
    true_scores = a[np.arange(len(y)), y]
    if method == "split":
        scores: tuple[np.ndarray, ...] = (np.sort(true_scores),)
    else:
        scores = tuple(np.sort(true_scores[y == c]) for c in range(a.shape[1]))
    return ConformalCalibration(method, float(alpha), scores, a.shape[1])


def p_values(cal: ConformalCalibration, probs: np.ndarray) -> np.ndarray:
    """Return the non-smoothed conformal p-value of every class for each image, shape ``(n, K)``."""
    a = nonconformity(probs)
    out = np.empty_like(a)
    for c in range(a.shape[1]):
        ref = cal.scores[0] if cal.method == "split" else cal.scores[c]
        # number of calibration scores >= a: len - (number strictly below)
        at_least = len(ref) - np.searchsorted(ref, a[:, c], side="left")
        out[:, c] = (at_least + 1.0) / (len(ref) + 1.0)
    return out


def prediction_sets(cal: ConformalCalibration, probs: np.ndarray) -> np.ndarray:
    """Return the prediction sets as a boolean membership matrix ``(n, K)``: p-value >= α."""
    return p_values(cal, probs) >= cal.alpha


def _set_features(sets: np.ndarray, y_true: np.ndarray) -> np.ndarray:
    y = np.asarray(y_true, dtype=np.int64)
    covered = sets[np.arange(len(y)), y].astype(np.float64)
    size = sets.sum(axis=1).astype(np.float64)
    return np.vstack([np.ones(len(y)), covered, size, (size == 0).astype(np.float64)])


def _coverage_statistic(sums: np.ndarray) -> dict[str, np.ndarray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "coverage": sums[:, 1] / sums[:, 0],
            "mean_set_size": sums[:, 2] / sums[:, 0],
            "empty_rate": sums[:, 3] / sums[:, 0],
        }


def coverage_summary(
    engine: Engine, rows: np.ndarray, sets: np.ndarray, y_true: np.ndarray, *, min_n: int = 10
) -> dict[str, Any]:
    """Return coverage, mean set size and empty-set rate of ``rows`` (Estimates, bootstrap CIs) and n.

    ``sets`` and ``y_true`` are aligned with ``rows`` (table rows the engine's
    resamples cover). Fewer than ``min_n`` images: undefined, with the reason.
    """
    rows = np.asarray(rows, dtype=np.int64)
    n = len(rows)
    if n < min_n:
        reason = f"{n} images, fewer than the {min_n} a coverage estimate needs"
        return {"n": n, **{k: Estimate.undefined(reason) for k in ("coverage", "mean_set_size", "empty_rate")}}
    view = LinearView(rows, np.ascontiguousarray(_set_features(sets, y_true)))
    dists = engine.evaluate(view, _coverage_statistic)
    method = "proportion of images whose set holds the true class; patient-clustered bootstrap interval"
    return {
        "n": n,
        "coverage": engine.estimate(dists["coverage"], method=method),
        "mean_set_size": engine.estimate(dists["mean_set_size"]),
        "empty_rate": engine.estimate(dists["empty_rate"]),
    }
