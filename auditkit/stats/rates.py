"""Confusion-matrix metrics at an operating point, from (weighted) cell counts.

Definitions follow the diagnostic-accuracy vocabulary (STARD; Altman & Bland
1994): sensitivity = TP/(TP+FN), specificity = TN/(TN+FP), PPV = TP/(TP+FP),
NPV = TN/(TN+FN), FNR = 1 − sensitivity (underdiagnosis, Seyyed-Kalantari et
al. 2021), FPR = 1 − specificity, LR+ = sens/(1 − spec), LR− = (1 − sens)/spec,
F1 = 2TP/(2TP+FP+FN), balanced accuracy = (sens + spec)/2, accuracy =
(TP+TN)/n. A ratio with a zero denominator is NaN (undefined), never 0.
Each rate is declared once, with its formula, in :mod:`auditkit.stats.metrics`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from auditkit.stats import metrics
from auditkit.stats.validation import binary_inputs


def rates_from_counts(tp: Any, fp: Any, tn: Any, fn: Any) -> dict[str, np.ndarray]:
    """Return every rate metric of the registry from cell counts (arrays of one shape; NaN where undefined)."""
    return metrics.rates_from_counts(tp, fp, tn, fn)


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
