"""ROC and precision–recall curves on fixed grids, per resample, for plots with pointwise bands.

ROC: at each false-positive-rate grid value x, the highest sensitivity of a
threshold whose FPR does not exceed x (the empirical step ROC read at x;
vertical averaging of Fawcett 2006 over resamples gives the band).
PR: at each recall grid value x, the precision at the highest threshold
whose recall reaches x. Both are vectorised over resamples: per-resample
cumulative weights are searched all at once by offsetting each resample's
monotone column into its own range.
"""

from __future__ import annotations

import numpy as np

from auditkit.stats.views import Batch

FPR_GRID = np.linspace(0.0, 1.0, 101)
RECALL_GRID = np.linspace(0.01, 1.0, 100)
HIST_EDGES = np.linspace(0.0, 1.0, 21)


def _cumsum0(w: np.ndarray) -> np.ndarray:
    """Return (n+1, R) float64 cumulative sums with a leading zero row."""
    out = np.zeros((w.shape[0] + 1, w.shape[1]))
    np.cumsum(w, axis=0, out=out[1:])
    return out


def _search_columns(cum: np.ndarray, targets: np.ndarray, side: str) -> np.ndarray:
    """Return for each column r and target t_j the searchsorted index into cum[:, r]; shape (m, R).

    ``cum`` (n+1, R) is non-decreasing down each column and starts at 0;
    ``targets`` (m, R). Columns are offset into disjoint ranges and searched
    in one call.
    """
    n1, r = cum.shape
    span = np.maximum(cum[-1], 0.0) + 1.0
    offsets = np.concatenate([[0.0], np.cumsum(span)[:-1]])
    flat = (cum + offsets[None, :]).T.ravel()  # column-major concatenation
    idx = np.searchsorted(flat, (targets + offsets[None, :]).T.ravel(), side=side)
    idx = idx.reshape(r, -1).T - (np.arange(r) * n1)[None, :]
    return np.clip(idx, 0, n1 - 1)


def roc_statistic(batch: Batch, *, grid: np.ndarray = FPR_GRID) -> dict[str, np.ndarray]:
    """Return ``tpr`` (R, len(grid)): the best sensitivity at false-positive rate <= each grid value."""
    view = batch.view
    r = batch.size
    if view.n_pos == 0 or view.n_neg == 0:
        return {"tpr": np.full((r, grid.size), np.nan)}
    w_neg_desc = np.asarray(batch.w_neg, dtype=np.float64)[::-1]
    top = _cumsum0(w_neg_desc)  # weight of the k highest-scored negatives
    n_tot = top[-1]
    targets = grid[:, None] * n_tot[None, :] * (1.0 + 1e-12)
    k = _search_columns(top, targets, "right") - 1  # most negatives allowed above threshold
    # the next negative (k-th from the top, 0-based) must stay below: positives strictly above it pass
    s_desc = view.s_neg[::-1]
    pos_cum = _cumsum0(np.asarray(batch.w_pos, dtype=np.float64))
    p_tot = pos_cum[-1]
    all_negatives = k >= view.n_neg
    s_next = s_desc[np.minimum(k, view.n_neg - 1)]
    pos_at_or_below = np.searchsorted(view.s_pos, s_next, side="right")
    cols = np.broadcast_to(np.arange(r)[None, :], k.shape)
    tp = np.where(all_negatives, p_tot[None, :], p_tot[None, :] - pos_cum[pos_at_or_below, cols])
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"tpr": (tp / p_tot[None, :]).T}


def pr_statistic(batch: Batch, *, grid: np.ndarray = RECALL_GRID) -> dict[str, np.ndarray]:
    """Return ``precision`` (R, len(grid)): precision at the highest threshold reaching each recall."""
    view = batch.view
    r = batch.size
    if view.n_pos == 0:
        return {"precision": np.full((r, grid.size), np.nan)}
    w_pos_desc = np.asarray(batch.w_pos, dtype=np.float64)[::-1]
    top = _cumsum0(w_pos_desc)
    p_tot = top[-1]
    targets = grid[:, None] * p_tot[None, :] * (1.0 - 1e-12)
    k = _search_columns(top, targets, "left")  # positives needed from the top (1-based count)
    k = np.clip(k, 1, view.n_pos)
    # threshold = score of the k-th positive from the top; include its ties
    idx_asc = view.n_pos - k
    start = view.pos_group_start[idx_asc]
    cols = np.broadcast_to(np.arange(r)[None, :], k.shape)
    pos_cum = _cumsum0(np.asarray(batch.w_pos, dtype=np.float64))
    neg_cum = _cumsum0(np.asarray(batch.w_neg, dtype=np.float64))
    tp = p_tot[None, :] - pos_cum[start, cols]
    fp = neg_cum[-1][None, :] - neg_cum[view.neg_below[idx_asc], cols]
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"precision": (tp / (tp + fp)).T}


def score_histogram(
    y: np.ndarray, s: np.ndarray, *, edges: np.ndarray = HIST_EDGES
) -> dict[str, list]:
    """Return score histogram counts per class: {bin_edges, positive, negative} (equal-width bins)."""
    pos, _ = np.histogram(s[y == 1], bins=edges)
    neg, _ = np.histogram(s[y == 0], bins=edges)
    return {"bin_edges": edges.tolist(), "positive": pos.tolist(), "negative": neg.tolist()}
