"""Label-free performance estimates for an unlabelled batch, and the prevalence check they depend on.

* **Average thresholded confidence** (ATC; Garg et al. 2022, ICLR): on the
  labelled reference, find the confidence t below which the share of images
  equals the error rate; the new batch's accuracy is estimated as its share
  of confidences at or above t. The confidence of a call at operating point
  θ is p̂ when the call is positive and 1 − p̂ when negative.
* **Confidence-based performance estimation** (CBPE; NannyML 2022): with a
  calibrated probability p̂, the expected confusion matrix of the calls is
  E[TP] = Σ_{call+} p̂, E[FP] = Σ_{call+} (1 − p̂), E[FN] = Σ_{call−} p̂,
  E[TN] = Σ_{call−} (1 − p̂), and sensitivity, specificity and accuracy follow.
* **Prevalence**: adjusted classify-and-count (ACC; Forman 2008) corrects the
  batch's positive-call rate q with the reference sensitivity and false
  positive rate: π̂ = (q − FPR) / (TPR − FPR), clipped to [0, 1].

Both estimators assume the relation between image and label is that of the
reference. ATC and CBPE are biased under prevalence (label) shift: a
probability calibrated at the reference prevalence is not calibrated at
another (Saerens et al. 2002), so a significant change of the ACC prevalence
is reported as a warning that the estimates may be wrong, not corrected.
Intervals resample the new batch only (the reference quantities are treated
as fixed), by patient when patients are known.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from auditkit.errors import InvalidInputError
from auditkit.results import Estimate
from auditkit.stats.engine import Engine
from auditkit.stats.views import LinearView


def call_confidence(p: np.ndarray, threshold: float) -> np.ndarray:
    """Return the confidence of each call at ``threshold``: p̂ for a positive call, 1 − p̂ for a negative one."""
    p = np.asarray(p, dtype=np.float64)
    return np.where(p >= threshold, p, 1.0 - p)


def atc_threshold(confidence: np.ndarray, correct: np.ndarray) -> float:
    """Return the ATC threshold t: the share of reference confidences below t equals the error rate."""
    c = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct, dtype=bool)
    if c.size == 0 or c.shape != ok.shape:
        raise InvalidInputError(f"ATC needs matching non-empty confidence and correctness, got {c.shape}, {ok.shape}")
    ordered = np.sort(c)
    k = round((1.0 - ok.mean()) * c.size)  # this many reference confidences lie below t
    return float(ordered[k]) if k < c.size else float(np.nextafter(ordered[-1], np.inf))


@dataclass(frozen=True)
class Reference:
    """What the labelled reference (the audit's internal test split) fixes for the estimators."""

    threshold: float
    """the operating point: score >= threshold is a positive call."""
    atc_threshold: float
    prevalence: float
    sensitivity: float
    false_positive_rate: float
    accuracy: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        """Return the reference as plain JSON types."""
        return {k: (float(v) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def fit_reference(y_true: np.ndarray, p: np.ndarray, *, threshold: float) -> Reference:
    """Return the reference quantities from labelled scores (positive-class probabilities ``p``)."""
    y = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(p, dtype=np.float64)
    if y.sum() == 0 or y.sum() == len(y):
        raise InvalidInputError("the reference needs both classes to fix sensitivity and false-positive rate")
    call = p >= threshold
    correct = call == (y == 1)
    return Reference(
        threshold=float(threshold),
        atc_threshold=atc_threshold(call_confidence(p, threshold), correct),
        prevalence=float(y.mean()),
        sensitivity=float(call[y == 1].mean()),
        false_positive_rate=float(call[y == 0].mean()),
        accuracy=float(correct.mean()),
        n=len(y),
    )


def _features(p: np.ndarray, ref: Reference) -> np.ndarray:
    call = (p >= ref.threshold).astype(np.float64)
    conf = call_confidence(p, ref.threshold)
    return np.vstack(
        [
            np.ones_like(p),
            (conf >= ref.atc_threshold).astype(np.float64),
            call * p,  # expected TP
            call * (1 - p),  # expected FP
            (1 - call) * p,  # expected FN
            (1 - call) * (1 - p),  # expected TN
            call,
            p,
        ]
    )


def _statistic(ref: Reference):  # type: ignore[no-untyped-def]
    def statistic(sums: np.ndarray) -> dict[str, np.ndarray]:
        n, atc, tp, fp, fn, tn, calls, psum = (sums[:, i] for i in range(8))
        with np.errstate(divide="ignore", invalid="ignore"):
            q = calls / n
            denom = ref.sensitivity - ref.false_positive_rate
            acc_prev = np.clip((q - ref.false_positive_rate) / denom, 0.0, 1.0) if denom > 0 else q * np.nan
            return {
                "atc_accuracy": atc / n,
                "cbpe_accuracy": (tp + tn) / n,
                "cbpe_sensitivity": tp / (tp + fn),
                "cbpe_specificity": tn / (tn + fp),
                "positive_call_rate": q,
                "mean_probability": psum / n,
                "acc_prevalence": acc_prev,
                "prevalence_change": acc_prev - ref.prevalence,
            }

    return statistic


def label_free_estimates(engine: Engine, rows: np.ndarray, p: np.ndarray, ref: Reference) -> dict[str, Estimate]:
    """Return ATC and CBPE estimates, the call rate and the ACC prevalence of a batch, with bootstrap CIs.

    ``p`` (calibrated positive-class probabilities) is aligned with ``rows``,
    the table rows the engine's resamples cover. ``prevalence_change`` is
    the ACC prevalence minus the reference prevalence.
    """
    p = np.asarray(p, dtype=np.float64)
    view = LinearView(np.asarray(rows, np.int64), np.ascontiguousarray(_features(p, ref)))
    dists = engine.evaluate(view, _statistic(ref))
    methods = {
        "atc_accuracy": "average thresholded confidence (Garg et al. 2022)",
        "cbpe_accuracy": "expected confusion matrix from calibrated probabilities (CBPE)",
        "cbpe_sensitivity": "expected confusion matrix from calibrated probabilities (CBPE)",
        "cbpe_specificity": "expected confusion matrix from calibrated probabilities (CBPE)",
        "acc_prevalence": "adjusted classify-and-count (Forman 2008)",
        "prevalence_change": "adjusted classify-and-count minus reference prevalence",
    }
    return {k: engine.estimate(d, method=methods.get(k)) for k, d in dists.items()}
