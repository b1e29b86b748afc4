"""The numbers training decides on: validation AUROC and class weights.

The audit's own statistics (with confidence intervals) live in
``auditkit.stats``; these are only the model-selection criteria.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import roc_auc_score


def selection_auroc(y_true: np.ndarray, prob: np.ndarray) -> float:
    """Return the validation AUROC that picks the best epoch (NaN when ``y_true`` is empty or lacks a class).

    ``y_true`` (N,) labels in 0..K-1, ``prob`` (N, K). K = 2: AUROC of
    ``prob[:, 1]``. K > 2: the unweighted mean of the K one-vs-rest AUROCs
    (scikit-learn ``multi_class="ovr", average="macro"``; Fawcett 2006), not
    Hand & Till's one-vs-one M.
    """
    y_true = np.asarray(y_true)
    n_classes = prob.shape[1]
    if len(y_true) == 0 or len(np.unique(y_true)) < n_classes:
        return math.nan
    if n_classes == 2:
        return float(roc_auc_score(y_true, prob[:, 1]))
    return float(roc_auc_score(y_true, prob, multi_class="ovr", average="macro"))


def balanced_class_weights(y_train: np.ndarray, n_classes: int) -> np.ndarray:
    """Return ``n / (K * n_k)`` per class (shape ``(K,)``): scikit-learn's ``"balanced"`` rule (King & Zeng 2001).

    Weighting the cross-entropy this way gives each class equal total weight,
    so the minority class (often the finding) is not ignored.
    """
    counts = np.bincount(np.asarray(y_train, dtype=np.int64), minlength=n_classes).astype(float)
    if np.any(counts == 0):
        missing = [k for k in range(n_classes) if counts[k] == 0]
        raise ValueError(f"class(es) {missing} absent from the training split")
    return counts.sum() / (n_classes * counts)
