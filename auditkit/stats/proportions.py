"""Proportions: Wilson intervals, patient-clustered design effects, and the two-proportion test.

Prevalence is not resampled by the class-stratified bootstrap (stratification
holds each cohort's class counts fixed), so its interval is analytic: the
Wilson score interval (Wilson 1927; Newcombe 1998), on an effective sample
size n / deff when images are clustered in patients (Kish 1965 design effect
from the cluster-robust variance of a ratio estimator). Two prevalences are
compared with the Pearson chi-square test of the 2x2 table, divided by the
average design effect when clustered (first-order Rao–Scott correction, Rao &
Scott 1981).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri
from scipy.stats import chi2


def z_value(level: float) -> float:
    """Return the two-sided standard-normal quantile of a confidence level (1.96 for 0.95)."""
    return float(ndtri(0.5 + level / 2.0))


def wilson_interval(
    successes: np.ndarray | float, n: np.ndarray | float, *, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Return the Wilson score interval (lower, upper) of successes/n, elementwise; NaN where n == 0."""
    k = np.asarray(successes, dtype=np.float64)
    m = np.asarray(n, dtype=np.float64)
    z = z_value(level)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / m
        denom = 1.0 + z**2 / m
        centre = (p + z**2 / (2.0 * m)) / denom
        half = z * np.sqrt(p * (1.0 - p) / m + z**2 / (4.0 * m**2)) / denom
        lo = np.where(m > 0, np.clip(centre - half, 0.0, 1.0), np.nan)
        hi = np.where(m > 0, np.clip(centre + half, 0.0, 1.0), np.nan)
    return lo, hi


def design_effect(y: np.ndarray, clusters: np.ndarray | None) -> float:
    """Return the design effect of the proportion mean(y) under clustering (1.0 when unclustered).

    deff = cluster-robust variance of the ratio estimator / binomial variance,
    with the robust variance Σ_c (y_c − p·n_c)² / n² · C/(C − 1); floored at 1.
    """
    y = np.asarray(y, dtype=np.float64)
    n = y.size
    if clusters is None or n < 2:
        return 1.0
    codes, inverse = np.unique(np.asarray(clusters), return_inverse=True)
    n_clusters = len(codes)
    if n_clusters == n or n_clusters < 2:
        return 1.0
    p = y.mean()
    if p <= 0.0 or p >= 1.0:
        return 1.0
    y_c = np.bincount(inverse, weights=y)
    n_c = np.bincount(inverse).astype(np.float64)
    robust = np.sum((y_c - p * n_c) ** 2) / n**2 * n_clusters / (n_clusters - 1)
    return max(1.0, float(robust / (p * (1.0 - p) / n)))


@dataclass(frozen=True)
class Proportion:
    """A proportion with its Wilson interval on the design-effect-adjusted sample size."""

    estimate: float
    ci_low: float
    ci_high: float
    n: int
    design_effect: float
    method: str


def proportion(
    y: np.ndarray, *, clusters: np.ndarray | None = None, level: float = 0.95
) -> Proportion:
    """Return mean(y) of 0/1 ``y`` (n,) with a Wilson interval (clustered: on n / deff)."""
    y = np.asarray(y, dtype=np.float64)
    n = y.size
    if n == 0:
        return Proportion(float("nan"), float("nan"), float("nan"), 0, 1.0, "wilson")
    deff = design_effect(y, clusters)
    n_eff = n / deff
    p = float(y.mean())
    lo, hi = wilson_interval(p * n_eff, n_eff, level=level)
    method = (
        "wilson"
        if deff == 1.0
        else f"wilson on n/deff (patient-clustered design effect {deff:.2f})"
    )
    return Proportion(p, float(lo), float(hi), n, deff, method)


@dataclass(frozen=True)
class ProportionComparison:
    """Difference p_a − p_b with a Wald interval and a (Rao–Scott corrected) chi-square p-value."""

    difference: float
    ci_low: float
    ci_high: float
    statistic: float
    p_value: float
    method: str


def compare_proportions(
    y_a: np.ndarray,
    y_b: np.ndarray,
    *,
    clusters_a: np.ndarray | None = None,
    clusters_b: np.ndarray | None = None,
    level: float = 0.95,
) -> ProportionComparison:
    """Return the comparison of two independent proportions mean(y_a) − mean(y_b).

    Test: Pearson chi-square of the 2x2 table without continuity correction
    (equal to the pooled two-proportion z-test squared), divided by the
    n-weighted mean design effect when clustered (Rao & Scott 1981). Interval:
    Wald on the unpooled, design-effect-inflated variances.
    """
    y_a = np.asarray(y_a, dtype=np.float64)
    y_b = np.asarray(y_b, dtype=np.float64)
    n_a, n_b = y_a.size, y_b.size
    if n_a == 0 or n_b == 0:
        nan = float("nan")
        return ProportionComparison(nan, nan, nan, nan, nan, "chi-square")
    p_a, p_b = y_a.mean(), y_b.mean()
    d_a, d_b = design_effect(y_a, clusters_a), design_effect(y_b, clusters_b)
    pooled = (y_a.sum() + y_b.sum()) / (n_a + n_b)
    if 0.0 < pooled < 1.0:
        stat = (p_a - p_b) ** 2 / (pooled * (1.0 - pooled) * (1.0 / n_a + 1.0 / n_b))
    else:
        stat = 0.0
    deff = (n_a * d_a + n_b * d_b) / (n_a + n_b)
    stat /= deff
    p_value = float(chi2.sf(stat, df=1))
    se = np.sqrt(d_a * p_a * (1 - p_a) / n_a + d_b * p_b * (1 - p_b) / n_b)
    z = z_value(level)
    method = "chi-square (Pearson, no continuity correction)"
    if deff > 1.0:
        method += f", Rao–Scott corrected for patient clustering (deff {deff:.2f})"
    return ProportionComparison(
        float(p_a - p_b),
        float(p_a - p_b - z * se),
        float(p_a - p_b + z * se),
        float(stat),
        p_value,
        method,
    )
