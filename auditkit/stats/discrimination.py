"""Discrimination of a binary problem at a frozen operating point, per resample.

AUROC (weighted Mann–Whitney), AUPRC (step-wise average precision) and
every confusion-matrix rate at the threshold (:mod:`auditkit.stats.rates`).
Multi-class problems are audited one-vs-rest per class (each class a
BinaryView of its own score column) plus macro averages, with the K×K
confusion matrix of the argmax decision from a LinearView.
"""

from __future__ import annotations

import numpy as np

from auditkit.stats import metrics
from auditkit.stats.rates import rates_from_counts
from auditkit.stats.views import Batch

#: the registry's discrimination metrics (declared in :mod:`auditkit.stats.metrics`).
DISCRIMINATION_METRICS = metrics.discrimination_keys()


def confusion_from_batch(batch: Batch) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return per-resample (tp, fp, tn, fn), each (R,), at the view's threshold (raw or reweighted)."""
    neg, pos = batch.sums("threshold")
    neg_base, pos_base = batch.sums("base")
    tp, fp = pos[:, 0], neg[:, 0]
    return tp, fp, neg_base[:, 0] - fp, pos_base[:, 0] - tp


def threshold_rates(batch: Batch) -> dict[str, np.ndarray]:
    """Return every rate metric at the view's threshold, each (R,)."""
    return rates_from_counts(*confusion_from_batch(batch))


def discrimination_statistic(batch: Batch) -> dict[str, np.ndarray]:
    """Return AUROC, AUPRC and every rate metric at the threshold, each (R,)."""
    out = {"auroc": batch.auroc(), "auprc": batch.average_precision()}
    out.update(threshold_rates(batch))
    return out


def multiclass_confusion_statistic(counts: np.ndarray, n_classes: int) -> dict[str, np.ndarray]:
    """Return one-vs-rest rates of the argmax decision per class and their macro means, each (R,).

    ``counts`` (R, >= K*K): its first K*K columns are the weighted cells
    ``true * K + predicted``.
    Keys: ``<metric>/<k>`` per class index k, ``<metric>/macro``, and
    ``accuracy`` (trace / n).
    """
    cells = counts[:, : n_classes * n_classes].reshape(counts.shape[0], n_classes, n_classes)
    total = cells.sum(axis=(1, 2))
    diag = np.einsum("rkk->rk", cells)
    row = cells.sum(axis=2)
    col = cells.sum(axis=1)
    out: dict[str, np.ndarray] = {}
    per_metric: dict[str, list[np.ndarray]] = {}
    for k in range(n_classes):
        tp = diag[:, k]
        fn = row[:, k] - tp
        fp = col[:, k] - tp
        tn = total - tp - fn - fp
        for name, value in rates_from_counts(tp, fp, tn, fn).items():
            out[f"{name}/{k}"] = value
            per_metric.setdefault(name, []).append(value)
    for name, values in per_metric.items():
        if name == "accuracy":
            continue
        with np.errstate(all="ignore"):
            out[f"{name}/macro"] = np.mean(np.stack(values), axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["accuracy"] = diag.sum(1) / total
    return out
