"""Slice discovery: a planted latent slice with worse performance is found, a clean table flags nothing."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from auditkit.stats.slices import SliceSettings, candidate_slices, representatives, slice_report


def _table(n, rng, *, planted=True):
    latent = rng.random(n) < 0.2
    centres = rng.normal(0, 1, (4, 32)) * 3
    which = np.where(latent, 3, rng.integers(0, 3, n))
    emb = centres[which] + rng.normal(0, 1, (n, 32))
    y = rng.binomial(1, 0.4, n)
    signal = np.where(latent & planted, 0.3, 2.0)  # the latent slice: a much weaker signal
    score = 1 / (1 + np.exp(-(signal * (2 * y - 1) + rng.normal(0, 1, n))))
    return emb, y, score, latent


def test_planted_slice_is_found(make_engine):
    rng = np.random.default_rng(0)
    emb, y, s, latent = _table(1500, rng)
    labels = candidate_slices(emb, n_slices=5, random_state=0)
    engine = make_engine(1500, n_boot=200)
    records = slice_report(engine, np.arange(1500), y, s, labels, settings=SliceSettings(threshold=0.5))
    flagged = [r for r in records if r["flagged"]]
    assert len(flagged) == 1
    members = flagged[0]["members"]
    # the flagged slice is the planted one (Jaccard overlap), and its AUROC is sklearn's
    overlap = np.sum(latent[members]) / len(set(members) | set(np.flatnonzero(latent)))
    assert overlap > 0.9
    assert flagged[0]["auroc"].estimate == pytest.approx(roc_auc_score(y[members], s[members]))
    assert flagged[0]["auroc_gap"].p_adjusted < 0.05
    assert flagged[0]["error_gap"].estimate > 0
    reps = representatives(emb, members, k=3)
    assert len(reps) == 3 and set(reps) <= set(members)


def test_clean_table_flags_nothing(make_engine):
    rng = np.random.default_rng(1)
    emb, y, s, _ = _table(1200, rng, planted=False)
    labels = candidate_slices(emb, n_slices=5, random_state=0)
    records = slice_report(make_engine(1200, n_boot=200), np.arange(1200), y, s, labels)
    assert not any(r["flagged"] for r in records)
    assert all(r["auroc_gap"].p_adjusted is None or r["auroc_gap"].p_adjusted >= r["auroc_gap"].p_value
               for r in records)
