"""DeLong's nonparametric AUROC variance and tests, in O(n log n).

DeLong, DeLong & Clarke-Pearson 1988 (Biometrics 44:837) estimate the
variance of the Mann–Whitney AUROC from its structural components: for each
positive i, V10(i) = P(negative scores below it) (ties one half); for each
negative j, V01(j) = P(positive scores above it). Var(AUC) = S10/m + S01/n
with S the sample (co)variances over positives and negatives. Sun & Xu 2014
(IEEE Signal Process. Lett. 21:1389) compute the components from midranks in
O(n log n); here one stable sort of all scores gives every tie group's class
counts, from which both components follow by cumulative sums (the same
quantities as Sun & Xu's midrank differences).

Tests: *paired* (two score columns on the same cases: the covariance enters),
*unpaired* (two independent samples: z = Δ / √(v1 + v2)), and the
chi-square test of homogeneity of K independent AUROCs (inverse-variance
weighted, K − 1 df). These assume independent cases: with several images per
patient the audit uses the patient-clustered bootstrap instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit, logit
from scipy.stats import chi2, norm

from auditkit.stats.proportions import z_value
from auditkit.stats.validation import as_1d_float, binary_inputs, check_finite, check_same_length


@dataclass(frozen=True)
class StructuralComponents:
    """AUROC and its DeLong structural components for one score column."""

    auc: float
    v10: np.ndarray
    """(m,) for each positive: share of negatives below it (ties 1/2)."""
    v01: np.ndarray
    """(n,) for each negative: share of positives above it (ties 1/2)."""


def structural_components(y_true: Any, y_score: Any) -> StructuralComponents:
    """Return the AUROC and the DeLong components V10 (positives) and V01 (negatives).

    Positives and negatives keep their order of appearance in the input.
    """
    y, s, _ = binary_inputs(y_true, y_score, probabilities=False)
    return _components(y, s)


def _components(y: np.ndarray, s: np.ndarray) -> StructuralComponents:
    m = int(y.sum())
    n = len(y) - m
    if m == 0 or n == 0:
        return StructuralComponents(float("nan"), np.full(m, np.nan), np.full(n, np.nan))
    order = np.argsort(s, kind="stable")
    s_sorted = s[order]
    is_pos = y[order].astype(bool)
    new_group = np.r_[True, s_sorted[1:] != s_sorted[:-1]]
    group = np.cumsum(new_group) - 1
    n_groups = group[-1] + 1
    pos_in = np.bincount(group, weights=is_pos, minlength=n_groups)
    neg_in = np.bincount(group, minlength=n_groups) - pos_in
    neg_below = np.cumsum(neg_in) - neg_in
    pos_above = m - np.cumsum(pos_in)
    # V10: negatives strictly below plus half the tied ones; V01 symmetric.
    v10_group = (neg_below + 0.5 * neg_in) / n
    v01_group = (pos_above + 0.5 * pos_in) / m
    v10 = np.empty(m)
    v01 = np.empty(n)
    pos_rows = np.flatnonzero(y == 1)
    neg_rows = np.flatnonzero(y == 0)
    # back to the input order of the positives and of the negatives
    pos_index = np.empty(len(y), np.int64)
    pos_index[pos_rows] = np.arange(m)
    neg_index = np.empty(len(y), np.int64)
    neg_index[neg_rows] = np.arange(n)
    v10[pos_index[order[is_pos]]] = v10_group[group[is_pos]]
    v01[neg_index[order[~is_pos]]] = v01_group[group[~is_pos]]
    auc = float(v10.mean())
    return StructuralComponents(auc, v10, v01)


def _cov(a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 2:
        return float("nan")
    return float(np.sum((a - a.mean()) * (b - b.mean())) / (a.size - 1))


@dataclass(frozen=True)
class DelongResult:
    """An AUROC (or a difference of two) with its DeLong variance, interval and test."""

    estimate: float
    variance: float
    ci_low: float
    ci_high: float
    z: float
    p_value: float
    method: str


def delong_variance(y_true: Any, y_score: Any) -> tuple[float, float]:
    """Return (AUROC, DeLong variance) of one score column (Sun & Xu 2014 fast algorithm)."""
    y, s, _ = binary_inputs(y_true, y_score, probabilities=False)
    comp = _components(y, s)
    return comp.auc, _variance(comp)


def _variance(comp: StructuralComponents) -> float:
    return _cov(comp.v10, comp.v10) / comp.v10.size + _cov(comp.v01, comp.v01) / comp.v01.size


def delong_interval(
    y_true: Any, y_score: Any, *, level: float = 0.95, transform: str = "logit"
) -> DelongResult:
    """Return the AUROC with a DeLong interval and the test of AUROC = 0.5.

    ``transform="logit"`` builds the interval on the logit scale and maps it
    back (it stays inside (0, 1), Pepe 2003 §5.2.3); ``"none"`` is AUC ± z·SE.
    """
    auc, var = delong_variance(y_true, y_score)
    se = float(np.sqrt(var)) if var >= 0 else float("nan")
    z_crit = z_value(level)
    if transform == "logit" and 0.0 < auc < 1.0:
        se_logit = se / (auc * (1.0 - auc))
        lo, hi = expit(logit(auc) - z_crit * se_logit), expit(logit(auc) + z_crit * se_logit)
        method = "DeLong (logit-transformed interval)"
    else:
        lo, hi = auc - z_crit * se, auc + z_crit * se
        method = "DeLong"
    z = (auc - 0.5) / se if se > 0 else float("nan")
    p = float(2 * norm.sf(abs(z))) if np.isfinite(z) else float("nan")
    return DelongResult(auc, var, float(lo), float(hi), float(z), p, method)


def delong_paired_test(
    y_true: Any, y_score_a: Any, y_score_b: Any, *, level: float = 0.95
) -> DelongResult:
    """Return AUROC(a) − AUROC(b) on the same cases with DeLong's paired variance, interval and test."""
    y, s_a, _ = binary_inputs(y_true, y_score_a, probabilities=False)
    s_b = as_1d_float(y_score_b, name="y_score_b")
    check_finite(s_b, name="y_score_b")
    check_same_length([("y_true", y), ("y_score_b", s_b)])
    a, b = _components(y, s_a), _components(y, s_b)
    diff = a.auc - b.auc
    var = (_cov(a.v10, a.v10) + _cov(b.v10, b.v10) - 2 * _cov(a.v10, b.v10)) / a.v10.size + (
        _cov(a.v01, a.v01) + _cov(b.v01, b.v01) - 2 * _cov(a.v01, b.v01)
    ) / a.v01.size
    return _difference_result(diff, var, level, "DeLong paired")


def delong_unpaired_test(
    y_true_a: Any, y_score_a: Any, y_true_b: Any, y_score_b: Any, *, level: float = 0.95
) -> DelongResult:
    """Return AUROC(a) − AUROC(b) of two independent samples: z = Δ / √(v_a + v_b)."""
    auc_a, var_a = delong_variance(y_true_a, y_score_a)
    auc_b, var_b = delong_variance(y_true_b, y_score_b)
    return _difference_result(auc_a - auc_b, var_a + var_b, level, "DeLong unpaired")


def _difference_result(diff: float, var: float, level: float, method: str) -> DelongResult:
    se = float(np.sqrt(var)) if np.isfinite(var) and var >= 0 else float("nan")
    z_crit = z_value(level)
    z = diff / se if se > 0 else float("nan")
    p = float(2 * norm.sf(abs(z))) if np.isfinite(z) else float("nan")
    return DelongResult(
        float(diff), float(var), diff - z_crit * se, diff + z_crit * se, float(z), p, method
    )


@dataclass(frozen=True)
class HomogeneityTest:
    """Chi-square test that K independent AUROCs are equal."""

    statistic: float
    df: int
    p_value: float
    method: str = "DeLong chi-square homogeneity test of independent AUROCs"


def delong_homogeneity_test(aucs: Sequence[float], variances: Sequence[float]) -> HomogeneityTest:
    """Return the inverse-variance chi-square test of equal AUROCs across K independent groups.

    χ² = Σ_k (A_k − Ā)² / v_k with Ā the inverse-variance weighted mean, K − 1
    degrees of freedom; for K = 2 it is the unpaired DeLong z-test squared.
    """
    a = np.asarray(aucs, dtype=np.float64)
    v = np.asarray(variances, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(v) & (v > 0)
    a, v = a[ok], v[ok]
    if a.size < 2:
        return HomogeneityTest(float("nan"), 0, float("nan"))
    w = 1.0 / v
    mean = np.sum(w * a) / np.sum(w)
    stat = float(np.sum(w * (a - mean) ** 2))
    df = int(a.size - 1)
    return HomogeneityTest(stat, df, float(chi2.sf(stat, df)))
