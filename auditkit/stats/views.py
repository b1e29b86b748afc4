"""Views: the rows of one analysis, pre-ordered so every metric of every resample is cheap.

A :class:`BinaryView` holds the negatives and the positives of one binary
problem (a cohort, a subgroup, one class versus the rest), each sorted by
score once. A :class:`Batch` is that view under R weight vectors at once
(bootstrap resamples, jackknife blocks, or the single all-ones vector of the
point estimate): weights arrive as a ``(n_rows, R)`` matrix, and

* every statistic that is linear in the weights (counts and score sums per
  calibration bin, confusion-matrix cells at a threshold, Brier sums) comes
  from three segment sums (Σ w·s^p, p = 0, 1, 2, over runs of rows that
  share every bin, :class:`FeatureLayout`) and one small matrix product;
* the Mann–Whitney AUROC numerator comes from one integer cumulative sum of
  the negatives' weights, read at each positive's rank — no per-resample
  sort and no loop over resamples (weighted Mann–Whitney; Hanley & McNeil
  1982; ties count one half).

A :class:`LinearView` gives per-resample sums of fixed per-row features
(the cells of a K×K confusion matrix, a multi-class Brier score).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

#: probabilities are clipped to [EPS, 1 - EPS] before a logit.
LOGIT_EPS = 1e-12


def logit(p: np.ndarray) -> np.ndarray:
    """Return log(p / (1 - p)) of probabilities clipped to [1e-12, 1 - 1e-12], same shape."""
    q = np.clip(p, LOGIT_EPS, 1.0 - LOGIT_EPS)
    return np.log(q) - np.log1p(-q)


def uniform_edges(n_bins: int) -> np.ndarray:
    """Return the ``n_bins + 1`` equal-width bin edges on [0, 1] (Guo et al. 2017)."""
    return np.linspace(0.0, 1.0, n_bins + 1)


def mass_edges(scores: np.ndarray, n_bins: int) -> np.ndarray:
    """Return ``n_bins + 1`` equal-mass edges: quantiles of ``scores``, ends fixed at 0 and 1."""
    if scores.size == 0:
        return uniform_edges(n_bins)
    edges = np.quantile(scores, np.linspace(0.0, 1.0, n_bins + 1))
    edges[0], edges[-1] = 0.0, 1.0
    return edges


def bin_index(scores: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Return each score's bin (int64, shape of ``scores``): ``edges[b] <= s < edges[b+1]``, 1.0 in the last.

    The same convention as torchmetrics' ``bucketize(..., right=True) - 1``
    with the top edge folded into the last bin.
    """
    n_bins = len(edges) - 1
    idx = np.searchsorted(edges, scores, side="right") - 1
    return np.clip(idx, 0, n_bins - 1)


@dataclass(frozen=True)
class FeatureSpec:
    """Which linear statistics a view computes: threshold, calibration binnings, fine bins."""

    threshold: float | None = None
    """Decision threshold: score >= threshold is a positive call."""
    uniform_edges: np.ndarray | None = None
    mass_edges: np.ndarray | None = None
    fine_edges: np.ndarray | None = None
    """Edges of the fine bins behind the smooth calibration curve."""


@dataclass(frozen=True, eq=False)
class FeatureLayout:
    """The linear features of one class's sorted scores, as runs of rows ("atoms").

    Every feature is ``s**power`` times the indicator of a set of atoms (an
    atom is a maximal run of rows in the same bin of every binning and on
    the same side of the threshold), so its weighted sum is a sum over atoms
    of the per-atom sums Σ w·s^p, p = 0, 1, 2: three passes over the rows
    instead of one per feature.
    """

    starts: np.ndarray
    """(n_atoms,) first row of each atom."""
    members: np.ndarray
    """(K, n_atoms) float64: 1 where the atom belongs to the feature."""
    powers: np.ndarray
    """(K,) int64: the power of s each feature multiplies."""
    s: np.ndarray
    """(n,) the scores."""

    def sums(self, w: np.ndarray) -> np.ndarray:
        """Return the weighted feature sums (R, K) for weights ``w`` (n, R)."""
        k, r = len(self.powers), w.shape[1]
        out = np.zeros((r, k))
        if self.s.size == 0:
            return out
        # resample-major (R, n): NumPy's reduceat is several times faster along a contiguous axis
        term = np.array(w.T, dtype=np.float64, order="C")  # a copy: scaled in place below
        for p in range(3):
            rows = self.powers == p
            if p:
                term *= self.s
            if rows.any():
                out[:, rows] = np.add.reduceat(term, self.starts, axis=1) @ self.members[rows].T
        return out


def _feature_layout(s: np.ndarray, spec: FeatureSpec) -> tuple[FeatureLayout, dict[str, slice]]:
    """Return the feature layout of the scores ``s`` (n,) of one class and each block's feature rows.

    Blocks: ``base`` = [1, s, s²] (count, score sum, squared-score sum);
    ``threshold`` = [s >= t]; per binning (``uniform``, ``mass``, ``fine``)
    the one-hot bin indicators times s**p for p = 0, 1 (and 2 for ``fine``).
    """
    codes: list[np.ndarray] = []
    if spec.threshold is not None:
        codes.append((s >= spec.threshold).astype(np.int64))
    binnings = [
        (name, edges, powers)
        for name, edges, powers in (
            ("uniform", spec.uniform_edges, (0, 1)),
            ("mass", spec.mass_edges, (0, 1)),
            ("fine", spec.fine_edges, (0, 1, 2)),
        )
        if edges is not None
    ]
    codes += [bin_index(s, edges) for _, edges, _ in binnings]
    if s.size == 0:
        starts = np.zeros(0, np.int64)
    elif codes:
        stacked = np.stack(codes)
        starts = np.flatnonzero(np.r_[True, np.any(stacked[:, 1:] != stacked[:, :-1], axis=0)])
    else:
        starts = np.zeros(1, np.int64)
    atom_codes = [c[starts] for c in codes]
    members: list[np.ndarray] = [np.ones((3, len(starts)))]
    powers: list[int] = [0, 1, 2]
    blocks: dict[str, slice] = {"base": slice(0, 3)}
    height = 3
    if spec.threshold is not None:
        members.append(atom_codes.pop(0)[None, :].astype(np.float64))
        powers.append(0)
        blocks["threshold"] = slice(height, height + 1)
        height += 1
    for (name, edges, pows), code in zip(binnings, atom_codes, strict=True):
        onehot = (code[None, :] == np.arange(len(edges) - 1)[:, None]).astype(np.float64)
        for p in pows:
            members.append(onehot)
            powers += [p] * (len(edges) - 1)
        blocks[name] = slice(height, height + len(pows) * (len(edges) - 1))
        height += len(pows) * (len(edges) - 1)
    layout = FeatureLayout(
        starts=starts,
        members=np.ascontiguousarray(np.concatenate(members, axis=0)),
        powers=np.asarray(powers, np.int64),
        s=s,
    )
    return layout, blocks


@dataclass(frozen=True, eq=False)
class BinaryView:
    """One binary problem's rows, negatives and positives each sorted by score.

    ``rows_neg``/``rows_pos`` index the table; ``s_neg``/``s_pos`` are their
    scores (ascending). Build with :meth:`from_arrays`.
    """

    rows_neg: np.ndarray
    rows_pos: np.ndarray
    s_neg: np.ndarray
    s_pos: np.ndarray
    spec: FeatureSpec
    f_neg: FeatureLayout = field(repr=False)
    """the K linear features of the negatives."""
    f_pos: FeatureLayout = field(repr=False)
    """the K linear features of the positives."""
    blocks: Mapping[str, slice] = field(repr=False)
    neg_below: np.ndarray = field(repr=False)
    """(n_pos,) number of negatives scored strictly below each positive."""
    neg_at_or_below: np.ndarray = field(repr=False)
    """(n_pos,) number of negatives scored at or below each positive."""
    pos_group_start: np.ndarray = field(repr=False)
    """(n_pos,) index of the first positive tied with each positive."""

    @classmethod
    def from_arrays(
        cls, rows: np.ndarray, y: np.ndarray, s: np.ndarray, *, spec: FeatureSpec | None = None
    ) -> BinaryView:
        """Return the view of table ``rows`` with 0/1 labels ``y`` and scores ``s`` (all shape ``(n,)``)."""
        spec = spec or FeatureSpec()
        rows = np.asarray(rows, dtype=np.int64)
        neg, pos = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
        neg = neg[np.argsort(s[neg], kind="stable")]
        pos = pos[np.argsort(s[pos], kind="stable")]
        s_neg, s_pos = s[neg].astype(np.float64), s[pos].astype(np.float64)
        f_neg, blocks = _feature_layout(s_neg, spec)
        f_pos, _ = _feature_layout(s_pos, spec)
        return cls(
            rows_neg=rows[neg],
            rows_pos=rows[pos],
            s_neg=s_neg,
            s_pos=s_pos,
            spec=spec,
            f_neg=f_neg,
            f_pos=f_pos,
            blocks=blocks,
            neg_below=np.searchsorted(s_neg, s_pos, side="left"),
            neg_at_or_below=np.searchsorted(s_neg, s_pos, side="right"),
            pos_group_start=np.searchsorted(s_pos, s_pos, side="left"),
        )

    @property
    def n_neg(self) -> int:
        """Return the number of negative rows."""
        return len(self.rows_neg)

    @property
    def n_pos(self) -> int:
        """Return the number of positive rows."""
        return len(self.rows_pos)

    @property
    def n(self) -> int:
        """Return the number of rows."""
        return self.n_neg + self.n_pos

    @property
    def rows(self) -> np.ndarray:
        """Return all table rows of the view (negatives then positives), int64 ``(n,)``."""
        return np.concatenate([self.rows_neg, self.rows_pos])

    def batch(self, w_neg: np.ndarray, w_pos: np.ndarray) -> Batch:
        """Return the view under weights ``w_neg`` (n_neg, R) and ``w_pos`` (n_pos, R)."""
        return Batch(self, w_neg, w_pos)


class Batch:
    """A view under R weight vectors: per-resample sums, AUROC and AP, all vectorised over R."""

    def __init__(
        self,
        view: BinaryView,
        w_neg: np.ndarray,
        w_pos: np.ndarray,
        *,
        neg_scale: np.ndarray | None = None,
        pos_scale: np.ndarray | None = None,
    ) -> None:
        self.view = view
        self.w_neg = w_neg
        """(n_neg, R) weights of the negatives."""
        self.w_pos = w_pos
        """(n_pos, R) weights of the positives."""
        self.size = int(w_neg.shape[1])
        self._neg_scale = neg_scale
        self._pos_scale = pos_scale

    def reweighted(self, prevalence: float) -> Batch:
        """Return this batch with each resample's classes rescaled to the given prevalence.

        Positives are scaled by π / P and negatives by (1 − π) / N per
        resample (P, N the class totals), so every linear statistic is that of
        a population with prevalence π and the same class-conditional score
        distributions (Glocker et al. 2023, test-set resampling, done by weights).
        """
        with np.errstate(divide="ignore", invalid="ignore"):
            pos_scale = prevalence / self.pos_total
            neg_scale = (1.0 - prevalence) / self.neg_total
        return Batch(self.view, self.w_neg, self.w_pos, neg_scale=neg_scale, pos_scale=pos_scale)

    @cached_property
    def _raw_sums(self) -> tuple[np.ndarray, np.ndarray]:
        return self.view.f_neg.sums(self.w_neg), self.view.f_pos.sums(self.w_pos)

    @cached_property
    def _sums(self) -> tuple[np.ndarray, np.ndarray]:
        neg, pos = self._raw_sums
        with np.errstate(invalid="ignore"):  # an empty class in a resample: NaN, never 0
            if self._neg_scale is not None:
                neg = neg * self._neg_scale[:, None]
            if self._pos_scale is not None:
                pos = pos * self._pos_scale[:, None]
        return neg, pos

    def sums(self, block: str) -> tuple[np.ndarray, np.ndarray]:
        """Return (negatives' sums, positives' sums), each (R, k), of a feature block."""
        if block not in self.view.blocks:
            raise KeyError(f"the view has no feature block {block!r}")
        sl = self.view.blocks[block]
        neg, pos = self._sums
        return neg[:, sl], pos[:, sl]

    @cached_property
    def neg_total(self) -> np.ndarray:
        """Return the total (raw) weight of the negatives per resample, shape (R,)."""
        return self._raw_sums[0][:, 0]

    @cached_property
    def pos_total(self) -> np.ndarray:
        """Return the total (raw) weight of the positives per resample, shape (R,)."""
        return self._raw_sums[1][:, 0]

    @staticmethod
    def _cumsum_rows(w: np.ndarray) -> np.ndarray:
        """Return (R, n + 1) cumulative sums of weights (n, R) along n, with a leading zero column.

        Transposed first: NumPy accumulates along a contiguous axis about twice
        as fast. Integer counts accumulate exactly in int32 (they sum to at
        most the number of draws, far below 2**31).
        """
        dtype = np.int32 if np.issubdtype(w.dtype, np.integer) else np.float64
        out = np.zeros((w.shape[1], w.shape[0] + 1), dtype=dtype)
        np.cumsum(np.ascontiguousarray(w.T), axis=1, dtype=dtype, out=out[:, 1:])
        return out

    @cached_property
    def _neg_cumsum(self) -> np.ndarray:
        """(R, n_neg + 1): cumulative negative weight below each rank."""
        return self._cumsum_rows(self.w_neg)

    def auroc(self) -> np.ndarray:
        """Return the weighted Mann–Whitney AUROC per resample, shape (R,); NaN if a class is empty.

        AUROC = Σ_pos w_i (N_<(i) + N_=(i)/2) / (P·N): the probability that a
        random positive outscores a random negative, ties counting one half.
        """
        view = self.view
        if view.n_pos == 0 or view.n_neg == 0:
            return np.full(self.size, np.nan)
        c = self._neg_cumsum
        below, at_or_below = view.neg_below, view.neg_at_or_below
        # 2 * N_<(i) + N_=(i) = N_<(i) + N_<=(i): integer arithmetic, exact.
        if np.array_equal(below, at_or_below):
            rank_sum = 2 * c[:, below]
        else:
            rank_sum = c[:, below] + c[:, at_or_below]
        # Σ w·rank can pass 2**31: accumulate in int64 (exact), or float64 for float weights
        acc = np.int64 if c.dtype == np.int32 else np.float64
        num2 = np.einsum("ij,ji->j", self.w_pos, rank_sum, dtype=acc)
        with np.errstate(divide="ignore", invalid="ignore"):
            return num2 / (2.0 * self.pos_total * self.neg_total)

    def average_precision(self) -> np.ndarray:
        """Return step-wise average precision per resample (scikit-learn's definition), shape (R,).

        AP = Σ_k (R_k − R_{k−1}) P_k over distinct thresholds k, descending:
        each positive contributes its weight times the precision at its
        score's threshold (ties included), over the positives' total.
        """
        view = self.view
        if view.n_pos == 0:
            return np.full(self.size, np.nan)
        wp = np.ascontiguousarray(self.w_pos.T)  # (R, n_pos)
        cpos = self._cumsum_rows(self.w_pos)
        tp = self.pos_total[:, None] - cpos[:, view.pos_group_start]
        fp = self.neg_total[:, None] - self._neg_cumsum[:, view.neg_below]
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = np.where(wp > 0, tp / (tp + fp), 0.0)
            return np.einsum("ij,ij->i", wp, precision) / self.pos_total


@dataclass(frozen=True, eq=False)
class LinearView:
    """Rows with a fixed feature matrix: per-resample sums ``features @ weights`` (e.g. confusion cells)."""

    rows: np.ndarray
    """(n,) table rows."""
    features: np.ndarray = field(repr=False)
    """(k, n) float64 features of the rows."""

    @classmethod
    def from_codes(
        cls, rows: np.ndarray, codes: np.ndarray, n_codes: int, *, extra: np.ndarray | None = None
    ) -> LinearView:
        """Return the view whose first ``n_codes`` sums count each integer code, then ``extra`` (m, n) sums."""
        onehot = np.zeros((n_codes, len(codes)))
        onehot[np.asarray(codes, np.int64), np.arange(len(codes))] = 1.0
        feats = onehot if extra is None else np.vstack([onehot, np.atleast_2d(extra)])
        return cls(np.asarray(rows, np.int64), np.ascontiguousarray(feats))

    def sums(self, weights: np.ndarray) -> np.ndarray:
        """Return the weighted feature sums per resample, shape (R, k), from weights (n, R)."""
        if self.rows.size == 0:
            return np.zeros((weights.shape[1], len(self.features)))
        return np.ascontiguousarray((self.features @ weights).T)
