"""Intervals that need more than a percentile of the replicates, and the power of a comparison.

* :func:`normal_estimate`: point ± z·SE* with the bootstrap standard error.
  Used for the debiased L1 calibration error, whose replicates centre on the
  bootstrap world's (biased, plug-in) value rather than on the debiased
  point, so a percentile interval would put the bias back.
* :func:`range_estimate`: the largest between-group difference (a max − min
  statistic, ≥ 0) with the projection of simultaneous max-|t| bootstrap
  intervals of all pairwise differences (Hothorn, Bretz & Westfall 2008 for
  the max-t family; Efron & Tibshirani 1993 §12 for the studentised
  bootstrap). If every pairwise interval covers, the true range lies in
  [max_ij lower |d_ij|, max_ij upper |d_ij|]; the estimate always lies inside,
  both bounds are ≥ 0, and the percentile interval of the resampled range —
  biased upward when groups are close, so that it can exclude its own
  estimate — is not used. ``log=True`` gives the lowest/highest ratio on the
  log scale: exp(−range of log θ) in (0, 1].
* :func:`exact_proportion_estimate`: a Clopper–Pearson interval for a
  proportion at 0 or 1, where every resample repeats the estimate and the
  bootstrap interval collapses to a point.
* :func:`minimum_detectable`: the smallest true difference a two-sided
  level-α test detects with 80% power at the observed standard error,
  (z_{1−α/2} + z_{power})·SE (e.g. Chow, Shao & Wang 2008 §3.2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import brentq
from scipy.special import ndtr, ndtri
from scipy.stats import beta
from scipy.stats import t as student_t

from auditkit.results import Estimate
from auditkit.stats.bootstrap import Distribution

#: the gated metrics whose interval is the normal interval with the bootstrap SE (floored at 0).
NORMAL_INTERVAL_METRICS = ("ece_l1_debiased",)
#: proportions whose bootstrap interval collapses at 0 or 1 (their denominator's class is named).
PROPORTION_METRICS = ("sensitivity", "specificity", "fnr", "fpr", "ppv", "npv", "accuracy")
POWER = 0.80


def _z(level: float) -> float:
    return float(ndtri(0.5 + level / 2.0))


def normal_estimate(
    dist: Distribution,
    *,
    level: float = 0.95,
    min_defined: float = 0.95,
    floor: float | None = None,
    reason: str | None = None,
    method: str | None = None,
    p_value: float | None = None,
    groups: Sequence[str] | None = None,
) -> Estimate:
    """Return the Estimate point ± z·SE* (SE* the SD of the finite replicates), bounds floored at ``floor``."""
    if not np.isfinite(dist.point):
        return Estimate.undefined(reason or "not computable from the data given")
    finite = dist.boot[np.isfinite(dist.boot)]
    share = finite.size / dist.boot.size if dist.boot.size else 0.0
    g = tuple(groups) if groups is not None else None
    if share < min_defined or finite.size < 2:
        return Estimate(
            dist.point,
            p_value=p_value,
            method=method,
            groups=g,
            reason=f"no interval: the statistic is undefined in {100 * (1 - share):.0f}% of bootstrap resamples",
        )
    half = _z(level) * float(np.std(finite, ddof=1))
    lo, hi = dist.point - half, dist.point + half
    if floor is not None:
        lo, hi = max(lo, floor), max(hi, floor)
    return Estimate(dist.point, lo, hi, p_value=p_value, method=method, groups=g)


def bootstrap_se(dist: Distribution) -> float:
    """Return the bootstrap standard error (SD of the finite replicates), NaN with fewer than two."""
    finite = dist.boot[np.isfinite(dist.boot)]
    return float(np.std(finite, ddof=1)) if finite.size >= 2 else float("nan")


def exact_proportion_estimate(
    point: float, n: int, *, level: float = 0.95, unit: str = "cases"
) -> Estimate:
    """Return a proportion at 0 or 1 with its Clopper–Pearson interval on ``n`` independent units."""
    alpha = 1.0 - level
    if n <= 0:
        return Estimate(point, reason="no interval: the denominator is empty")
    if point <= 0.0:
        lo, hi = 0.0, float(beta.ppf(1.0 - alpha / 2.0, 1, n))
    else:
        lo, hi = float(beta.ppf(alpha / 2.0, n, 1)), 1.0
    return Estimate(
        point,
        lo,
        hi,
        method=f"Clopper–Pearson exact interval on {n} {unit} (every bootstrap resample gives "
        f"{point:.0f}, so the bootstrap interval is a single point)",
    )


def is_degenerate(dist: Distribution) -> bool:
    """Return whether every finite replicate equals the point (the bootstrap interval is one point)."""
    finite = dist.boot[np.isfinite(dist.boot)]
    return bool(finite.size) and np.isfinite(dist.point) and bool(np.all(finite == dist.point))


def _folded_cdf(a: float, theta: float, se: float) -> float:
    """Return P(|X| <= a) for X ~ N(theta, se²): the folded normal's CDF."""
    return float(ndtr((a - theta) / se) - ndtr((-a - theta) / se))


def folded_interval(d: float, se: float, alpha: float) -> tuple[float, float]:
    """Return the level 1 − α interval for |δ| from d ~ N(δ, se²), by inverting the folded normal.

    {θ ≥ 0 : α/2 ≤ P_θ(|X| ≤ |d|) ≤ 1 − α/2}; unlike |[d − z·se, d + z·se]|
    (which also counts the reverse ordering's tail and over-covers when |δ|/se
    is small) it covers |δ| with probability 1 − α for every δ ≠ 0.
    """
    a = abs(d)
    if not (np.isfinite(a) and np.isfinite(se)) or se <= 0:
        return a, a
    top = a + 10.0 * se

    def root(target: float) -> float:
        return brentq(lambda th: _folded_cdf(a, th, se) - target, 0.0, top, xtol=1e-12 * max(se, 1e-300))

    lower = 0.0 if _folded_cdf(a, 0.0, se) <= 1.0 - alpha / 2.0 else root(1.0 - alpha / 2.0)
    if _folded_cdf(a, 0.0, se) <= alpha / 2.0:
        # |d| so small that even δ = 0 makes it a lower-tail event: the strict inversion is
        # empty above 0 (the problem Feldman & Cousins 1998 solve by ordering); fall back to the
        # plain bound z·se, which only adds coverage in this region of probability <= α/2
        return lower, max(a, float(ndtri(1.0 - alpha / 2.0)) * se)
    return lower, max(root(alpha / 2.0), a)


@dataclass(frozen=True)
class _Pair:
    family: int
    i: int
    j: int


def range_estimate(
    families: Sequence[Sequence[Distribution]],
    names: Sequence[Sequence[str]],
    *,
    level: float = 0.95,
    min_defined: float = 0.95,
    log: bool = False,
    p_value: float | None = None,
    method: str | None = None,
    df: float | None = None,
) -> Estimate:
    """Return max over families of (max − min over groups) with a simultaneous-projection interval.

    ``families`` holds, per metric, the groups' Distributions (``names`` their
    group names); the gap of equalized odds has two families (sensitivity,
    FPR). With ``log=True`` the values are logged first and the result is the
    ratio lowest / highest = exp(−range), interval [exp(−upper), exp(−lower)].
    ``groups`` of the Estimate: (highest, lowest) of the maximising pair, or
    (lowest, highest) for a ratio. Each pair's |difference| gets the folded
    normal interval (:func:`folded_interval`) at the per-pair level of the
    max-|t| critical value; ``df`` (e.g. the fewest independent units of a
    group, minus one) widens the critical value by t_df/z for few patients.
    """
    pairs: list[_Pair] = []
    points: list[float] = []
    reps: list[np.ndarray] = []
    for f, dists in enumerate(families):
        vals = [d.point for d in dists]
        boots = [d.boot for d in dists]
        if log:
            with np.errstate(divide="ignore", invalid="ignore"):
                vals = [np.log(v) if v > 0 else np.nan for v in vals]
                boots = [np.where(b > 0, np.log(np.where(b > 0, b, 1.0)), np.nan) for b in boots]
        for i in range(len(dists)):
            for j in range(i + 1, len(dists)):
                pairs.append(_Pair(f, i, j))
                points.append(float(vals[i] - vals[j]))
                reps.append(np.asarray(boots[i] - boots[j], dtype=np.float64))
    if not pairs:
        return Estimate.undefined("fewer than two groups")
    d_hat = np.array(points)
    if not np.all(np.isfinite(d_hat)):
        return Estimate.undefined(
            "a group's value is 0, so the ratio is 0 or undefined"
            if log
            else "the metric is undefined in a group"
        )
    best = int(np.argmax(np.abs(d_hat)))
    estimate = float(np.abs(d_hat[best]))
    p = pairs[best]
    hi_name, lo_name = (
        (names[p.family][p.i], names[p.family][p.j])
        if d_hat[best] >= 0
        else (names[p.family][p.j], names[p.family][p.i])
    )
    groups = (lo_name, hi_name) if log else (hi_name, lo_name)
    point = float(np.exp(-estimate)) if log else estimate
    boot = np.stack(reps)  # (n_pairs, B)
    complete = np.all(np.isfinite(boot), axis=0)
    share = float(complete.mean()) if boot.shape[1] else 0.0
    if share < min_defined or complete.sum() < 3:
        return Estimate(
            point,
            p_value=p_value,
            method=method,
            groups=groups,
            reason=f"no interval: the statistic is undefined in {100 * (1 - share):.0f}% of bootstrap resamples",
        )
    boot = boot[:, complete]
    se = np.std(boot, axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se[:, None] > 0, np.abs(boot - d_hat[:, None]) / se[:, None], 0.0)
    crit = float(np.quantile(t.max(axis=0), level)) if t.size else 0.0
    if df is not None and np.isfinite(df) and df >= 1:
        crit *= float(student_t.ppf(0.5 + level / 2.0, df)) / _z(level)
    alpha_pair = 2.0 * float(ndtr(-crit)) if crit > 0 else 1.0 - level
    bounds = [folded_interval(float(d), float(e), alpha_pair) for d, e in zip(d_hat, se, strict=True)]
    lower = max(b[0] for b in bounds)
    upper = max(b[1] for b in bounds)
    text = (
        f"folded-normal intervals of the {len(pairs)} pairwise |differences|"
        f"{' of log values' if log else ''} (simultaneous max-|t| bootstrap critical value {crit:.2f}), projected onto the "
        + ("lowest/highest ratio" if log else "largest difference")
    )
    method = f"{method}; CI: {text}" if method else f"CI: {text}"
    if log:
        return Estimate(
            point, float(np.exp(-upper)), float(np.exp(-lower)), p_value=p_value, method=method, groups=groups
        )
    return Estimate(point, lower, upper, p_value=p_value, method=method, groups=groups)


def minimum_detectable(se: float, *, level: float = 0.95, power: float = POWER) -> float:
    """Return (z_{1−α/2} + z_power)·SE: the smallest true difference detected with this power."""
    if not np.isfinite(se):
        return float("nan")
    return float((_z(level) + float(ndtri(power))) * se)


def power_record(
    se: float,
    *,
    level: float,
    threshold: float | None = None,
    sizes: dict[str, Any] | None = None,
    what: str = "difference",
) -> dict[str, Any]:
    """Return the sample-size statement of one gated comparison (results.json ``power.<metric>``)."""
    mdd = minimum_detectable(se, level=level)
    finite = np.isfinite(mdd)
    out: dict[str, Any] = {
        "se": se if np.isfinite(se) else None,
        "minimum_detectable": mdd if finite else None,
        "alpha": round(1.0 - level, 10),
        "power": POWER,
        "sizes": sizes or {},
    }
    if finite:
        text = (
            f"at the observed sample sizes a true {what} of {mdd:.3f} or more is detected with "
            f"{100 * POWER:.0f}% power (two-sided α = {1 - level:.2f}; bootstrap SE {se:.3f})"
        )
        if threshold is not None:
            text += (
                "; the policy threshold "
                + (f"{threshold:g} is below it: the comparison is not powered for it" if mdd > abs(threshold)
                   else f"{threshold:g} is above it")
            )
        out["statement"] = text
    else:
        out["statement"] = "not computable: the comparison has no bootstrap standard error"
    return out
