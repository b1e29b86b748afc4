"""Ranking metrics of a single sample: AUROC (Mann–Whitney) and average precision.

The same code computes them for every bootstrap resample at once
(:meth:`auditkit.stats.views.Batch.auroc`): here it is called with one weight
vector. AUROC is the Mann–Whitney probability that a positive outscores a
negative, ties counting one half (Bamber 1975; Hanley & McNeil 1982); average
precision is scikit-learn's step-wise definition Σ_k (R_k − R_{k−1}) P_k.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from auditkit.stats.validation import binary_inputs
from auditkit.stats.views import Batch, BinaryView


def _batch(y_true: Any, y_score: Any, sample_weight: Any) -> Batch:
    y, s, w = binary_inputs(y_true, y_score, probabilities=False, sample_weight=sample_weight)
    view = BinaryView.from_arrays(np.arange(len(y)), y, s)
    if sample_weight is None:
        return view.batch(np.ones((view.n_neg, 1), np.int64), np.ones((view.n_pos, 1), np.int64))
    return view.batch(w[view.rows_neg][:, None], w[view.rows_pos][:, None])


def roc_auc(y_true: Any, y_score: Any, *, sample_weight: Any = None) -> float:
    """Return the AUROC of scores ``y_score`` (n,) for 0/1 labels ``y_true`` (n,); NaN if one class.

    With integer ``sample_weight`` (bootstrap counts) it equals
    ``sklearn.metrics.roc_auc_score`` on the sample with each row repeated.
    """
    return float(_batch(y_true, y_score, sample_weight).auroc()[0])


def average_precision(y_true: Any, y_score: Any, *, sample_weight: Any = None) -> float:
    """Return the average precision (area under the step-wise PR curve); NaN without positives."""
    return float(_batch(y_true, y_score, sample_weight).average_precision()[0])
