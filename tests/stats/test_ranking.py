"""AUROC and average precision: scikit-learn and a brute-force pairwise count as oracles."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score

from auditkit.stats.bootstrap import make_resamples
from auditkit.stats.ranking import average_precision, roc_auc
from auditkit.stats.views import BinaryView


def brute_force_auroc(y, s):
    """Mann–Whitney by enumerating every positive–negative pair (ties count 1/2)."""
    pos, neg = s[y == 1], s[y == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (len(pos) * len(neg))


def test_auroc_and_ap_match_sklearn_with_ties(tied_binary):
    y, s = tied_binary
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert roc_auc(y, s) == pytest.approx(brute_force_auroc(y, s), abs=1e-12)
    assert average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)


def test_every_resample_equals_sklearn_on_the_resampled_rows(tied_binary):
    """The vectorised all-resamples AUROC/AP equal sklearn on each resample's repeated rows."""
    y, s = tied_binary
    res = make_resamples(y, n_boot=40, random_state=3)
    view = BinaryView.from_arrays(np.arange(len(y)), y, s)
    counts = res.counts[res.unit_of_row]  # (n, B)
    batch = view.batch(counts[view.rows_neg], counts[view.rows_pos])
    auroc, ap = batch.auroc(), batch.average_precision()
    for r in range(0, 40, 5):
        idx = np.repeat(np.arange(len(y)), counts[:, r])
        assert auroc[r] == pytest.approx(roc_auc_score(y[idx], s[idx]), abs=1e-12)
        assert ap[r] == pytest.approx(average_precision_score(y[idx], s[idx]), abs=1e-12)


def test_float_sample_weights_match_sklearn(tied_binary):
    y, s = tied_binary
    w = np.random.default_rng(2).random(len(y)) * 3
    assert roc_auc(y, s, sample_weight=w) == pytest.approx(
        roc_auc_score(y, s, sample_weight=w), abs=1e-12
    )
    assert average_precision(y, s, sample_weight=w) == pytest.approx(
        average_precision_score(y, s, sample_weight=w), abs=1e-12
    )


def test_one_class_gives_nan_not_an_error():
    assert np.isnan(roc_auc(np.zeros(5, int), np.linspace(0, 1, 5)))
    assert np.isnan(average_precision(np.zeros(5, int), np.linspace(0, 1, 5)))


labels = st.lists(st.integers(0, 1), min_size=4, max_size=60).filter(lambda v: 0 < sum(v) < len(v))


@settings(max_examples=40, deadline=None)
@given(y=labels, data=st.data())
def test_auroc_invariant_to_monotone_transform_and_order(y, data):
    y = np.array(y)
    s = np.array(data.draw(st.lists(st.integers(0, 6), min_size=len(y), max_size=len(y)))) / 6.0
    base = roc_auc(y, s)
    assert base == pytest.approx(brute_force_auroc(y, s), abs=1e-12)
    # strictly monotone transforms keep every pairwise order (and every tie)
    assert roc_auc(y, np.exp(3 * s) - 7) == pytest.approx(base, abs=1e-12)
    perm = np.random.default_rng(len(y)).permutation(len(y))
    assert roc_auc(y[perm], s[perm]) == pytest.approx(base, abs=1e-12)
    # symmetry: reversing the scores, or swapping the classes, reflects the AUROC
    assert roc_auc(y, -s) == pytest.approx(1 - base, abs=1e-12)
    assert roc_auc(1 - y, s) == pytest.approx(1 - base, abs=1e-12)
