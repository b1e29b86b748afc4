"""Dataset-shift tests between the internal test cohort and an external site.

* score-distribution shift: two-sample Kolmogorov–Smirnov test per score
  dimension, Bonferroni-combined (black-box shift detection, Rabanser,
  Günnemann & Lipton 2019);
* domain classifier: cross-validated logistic regression on embeddings that
  tries to tell the two cohorts apart; its out-of-fold AUROC (0.5 = no
  detectable shift) with a DeLong interval (Rabanser et al. 2019 §3);
* MMD: the unbiased squared maximum mean discrepancy with a Gaussian kernel
  whose bandwidth is the median pairwise distance (Gretton et al. 2012), with
  a permutation p-value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.spatial.distance import cdist, pdist
from scipy.stats import ks_2samp

from auditkit.stats.delong import DelongResult, delong_interval


@dataclass(frozen=True)
class KSResult:
    """Per-dimension KS statistics and p-values, and the Bonferroni-adjusted minimum."""

    statistics: tuple[float, ...]
    p_values: tuple[float, ...]
    statistic: float
    """The largest KS statistic over dimensions."""
    p_value: float
    """The smallest per-dimension p-value."""
    p_adjusted: float
    """Bonferroni: min(1, n_dims · smallest p)."""

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "statistic": self.statistic,
            "p_value": self.p_value,
            "p_adjusted": self.p_adjusted,
            "method": "two-sample Kolmogorov–Smirnov per score dimension, Bonferroni (Rabanser et al. 2019)",
            "per_dimension": {"statistic": list(self.statistics), "p_value": list(self.p_values)},
        }


def ks_shift(scores_a: np.ndarray, scores_b: np.ndarray) -> KSResult:
    """Return KS tests of each score column between ``scores_a`` (n_a, d) and ``scores_b`` (n_b, d)."""
    a = np.asarray(scores_a, dtype=np.float64).reshape(len(scores_a), -1)
    b = np.asarray(scores_b, dtype=np.float64).reshape(len(scores_b), -1)
    stats, ps = [], []
    for j in range(a.shape[1]):
        res = ks_2samp(a[:, j], b[:, j])
        stats.append(float(res.statistic))
        ps.append(float(res.pvalue))
    p_min = min(ps)
    return KSResult(tuple(stats), tuple(ps), max(stats), p_min, min(1.0, p_min * len(ps)))


def domain_classifier_auroc(
    features_a: np.ndarray,
    features_b: np.ndarray,
    *,
    groups_a: np.ndarray | None = None,
    groups_b: np.ndarray | None = None,
    n_splits: int = 5,
    random_state: int = 0,
    level: float = 0.95,
) -> DelongResult:
    """Return the out-of-fold AUROC of a logistic regression telling ``features_b`` from ``features_a``.

    Features are standardised inside each fold; folds are stratified and,
    when patient ``groups`` are given, keep a patient's images together.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.vstack([features_a, features_b]).astype(np.float64)
    y = np.r_[np.zeros(len(features_a), np.int64), np.ones(len(features_b), np.int64)]
    k = int(min(n_splits, np.bincount(y).min()))
    if k < 2:
        nan = float("nan")
        return DelongResult(nan, nan, nan, nan, nan, nan, "domain classifier: too few cases")
    oof = np.empty(len(y))
    if groups_a is not None and groups_b is not None:
        groups = np.r_[
            np.asarray(groups_a, dtype=str), np.char.add("b:", np.asarray(groups_b, dtype=str))
        ]
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=random_state)
        splits = splitter.split(x, y, groups)
    else:
        splits = StratifiedKFold(n_splits=k, shuffle=True, random_state=random_state).split(x, y)
    for train, test in splits:
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        model.fit(x[train], y[train])
        oof[test] = model.decision_function(x[test])
    return delong_interval(y, oof, level=level)


@dataclass(frozen=True)
class MMDResult:
    """Unbiased MMD² with a Gaussian kernel and its permutation p-value."""

    statistic: float
    p_value: float
    bandwidth: float
    n_permutations: int
    n_a: int
    n_b: int

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "statistic": self.statistic,
            "p_value": self.p_value,
            "bandwidth": self.bandwidth,
            "n_permutations": self.n_permutations,
            "n_a": self.n_a,
            "n_b": self.n_b,
            "method": "unbiased MMD², Gaussian kernel, median-heuristic bandwidth, permutation test (Gretton et al. 2012)",
        }


def _mmd2_unbiased(k: np.ndarray, in_a: np.ndarray) -> np.ndarray:
    """Return the unbiased MMD² for each labelling column of ``in_a`` (n, P) bool, shape (P,)."""
    ind_a = in_a.astype(np.float64)
    ind_b = 1.0 - ind_a
    n_a, n_b = ind_a.sum(0), ind_b.sum(0)
    ka = k @ ind_a
    kb = k @ ind_b
    diag = np.diag(k)
    sum_aa = np.einsum("ij,ij->j", ind_a, ka) - diag @ ind_a
    sum_bb = np.einsum("ij,ij->j", ind_b, kb) - diag @ ind_b
    sum_ab = np.einsum("ij,ij->j", ind_a, kb)
    return sum_aa / (n_a * (n_a - 1)) + sum_bb / (n_b * (n_b - 1)) - 2.0 * sum_ab / (n_a * n_b)


def mmd_test(
    features_a: np.ndarray,
    features_b: np.ndarray,
    *,
    n_permutations: int = 500,
    max_per_sample: int = 500,
    random_state: int = 0,
) -> MMDResult:
    """Return the MMD permutation test between two samples of feature vectors (rows).

    Each sample is subsampled (seeded) to at most ``max_per_sample`` rows to
    bound the O(n²) kernel; p = (1 + #{MMD²_perm >= MMD²}) / (1 + n_permutations).
    """
    rng = np.random.default_rng(random_state)
    a = np.asarray(features_a, dtype=np.float64)
    b = np.asarray(features_b, dtype=np.float64)
    if len(a) > max_per_sample:
        a = a[np.sort(rng.choice(len(a), max_per_sample, replace=False))]
    if len(b) > max_per_sample:
        b = b[np.sort(rng.choice(len(b), max_per_sample, replace=False))]
    if len(a) < 2 or len(b) < 2:
        nan = float("nan")
        return MMDResult(nan, nan, nan, 0, len(a), len(b))
    x = np.vstack([a, b])
    bandwidth = float(np.median(pdist(x)))
    if bandwidth <= 0:
        bandwidth = 1.0
    k = np.exp(-cdist(x, x, "sqeuclidean") / (2.0 * bandwidth**2))
    in_a = np.r_[np.ones(len(a), bool), np.zeros(len(b), bool)]
    observed = float(_mmd2_unbiased(k, in_a[:, None])[0])
    exceed = 0
    for p0 in range(0, n_permutations, 100):
        labels = np.stack(
            [rng.permutation(in_a) for _ in range(min(100, n_permutations - p0))], axis=1
        )
        exceed += int(np.count_nonzero(_mmd2_unbiased(k, labels) >= observed - 1e-15))
    return MMDResult(
        observed, (1 + exceed) / (1 + n_permutations), bandwidth, n_permutations, len(a), len(b)
    )
