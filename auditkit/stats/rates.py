"""Confusion-matrix metrics at an operating point, from (weighted) cell counts.

Definitions follow the diagnostic-accuracy vocabulary (STARD; Altman & Bland
1994): sensitivity = TP/(TP+FN), specificity = TN/(TN+FP), PPV = TP/(TP+FP),
NPV = TN/(TN+FN), FNR = 1 − sensitivity (underdiagnosis, Seyyed-Kalantari et
al. 2021), FPR = 1 − specificity, LR+ = sens/(1 − spec), LR− = (1 − sens)/spec,
F1 = 2TP/(2TP+FP+FN), balanced accuracy = (sens + spec)/2, accuracy =
(TP+TN)/n. A ratio with a zero denominator is NaN (undefined), never 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from auditkit.stats.validation import binary_inputs

RATE_METRICS = (
    "sensitivity",
    "specificity",
    "ppv",
    "npv",
    "fnr",
    "fpr",
    "lr_positive",
    "lr_negative",
    "f1",
    "balanced_accuracy",
    "accuracy",
)
#: rate metrics whose value depends on prevalence (the others condition on the true class).
PREVALENCE_DEPENDENT_RATES = ("ppv", "npv", "f1", "accuracy")


def rates_from_counts(tp: Any, fp: Any, tn: Any, fn: Any) -> dict[str, np.ndarray]:
    """Return every rate metric from cell counts (arrays of one shape; NaN where undefined)."""
    tp, fp, tn, fn = (np.asarray(a, dtype=np.float64) for a in (tp, fp, tn, fn))
    with np.errstate(divide="ignore", invalid="ignore"):
        sens = tp / (tp + fn)
        spec = tn / (tn + fp)
        out = {
            "sensitivity": sens,
            "specificity": spec,
            "ppv": tp / (tp + fp),
            "npv": tn / (tn + fn),
            "fnr": fn / (tp + fn),
            "fpr": fp / (tn + fp),
            "lr_positive": np.where(spec < 1.0, sens / (1.0 - spec), np.nan),
            "lr_negative": np.where(spec > 0.0, (1.0 - sens) / spec, np.nan),
            "f1": 2 * tp / (2 * tp + fp + fn),
            "balanced_accuracy": (sens + spec) / 2.0,
            "accuracy": (tp + tn) / (tp + fp + tn + fn),
        }
    return out


def confusion_counts(
    y_true: Any, y_prob: Any, *, threshold: float, sample_weight: Any = None
) -> dict[str, float]:
    """Return {tp, fp, tn, fn} of the decisions ``y_prob >= threshold`` against 0/1 ``y_true``."""
    y, s, w = binary_inputs(y_true, y_prob, probabilities=False, sample_weight=sample_weight)
    call = s >= threshold
    return {
        "tp": float(w[call & (y == 1)].sum()),
        "fp": float(w[call & (y == 0)].sum()),
        "tn": float(w[~call & (y == 0)].sum()),
        "fn": float(w[~call & (y == 1)].sum()),
    }


def binary_rates(
    y_true: Any, y_prob: Any, *, threshold: float, sample_weight: Any = None
) -> dict[str, float]:
    """Return every rate metric (sensitivity ... accuracy) of the decisions ``y_prob >= threshold``."""
    c = confusion_counts(y_true, y_prob, threshold=threshold, sample_weight=sample_weight)
    return {k: float(v) for k, v in rates_from_counts(c["tp"], c["fp"], c["tn"], c["fn"]).items()}
