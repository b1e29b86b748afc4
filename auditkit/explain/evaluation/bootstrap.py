"""Percentile-bootstrap confidence intervals over images for per-image saliency scores.

Saliency metrics are averages of per-image scores; their uncertainty comes
from which images were sampled, so the bootstrap resamples images (Saporta et
al. 2022 use 1000 bootstrap samples for CheXlocalize). An image whose score is
undefined (NaN: e.g. a map with no positive mass) is left out and counted.
"""

from __future__ import annotations

import numpy as np

from auditkit.results import Estimate

N_BOOT = 1000
CI_LEVEL = 0.95


def bootstrap_mean(
    values: np.ndarray,
    *,
    n_boot: int = N_BOOT,
    ci_level: float = CI_LEVEL,
    random_state: int = 0,
    min_n: int = 2,
) -> Estimate:
    """Return the mean of the finite ``values`` (n,) with a percentile-bootstrap CI over them.

    Fewer than ``min_n`` finite values: the mean without an interval (one
    value) or an undefined Estimate with its reason (none).
    """
    values = np.asarray(values, dtype=float).reshape(-1)
    finite = values[np.isfinite(values)]
    n = finite.size
    if n == 0:
        reason = "no images" if values.size == 0 else f"undefined for all {values.size} images"
        return Estimate.undefined(reason)
    point = float(finite.mean())
    if n < min_n:
        return Estimate(point, reason=f"only {n} image(s): no confidence interval")
    rng = np.random.default_rng(random_state)
    means = finite[rng.integers(0, n, size=(int(n_boot), n))].mean(axis=1)
    alpha = (1 - ci_level) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return Estimate(point, float(low), float(high), method="percentile bootstrap over images")


def bootstrap_ratio(
    numerator: np.ndarray,
    denominator: np.ndarray,
    *,
    n_boot: int = N_BOOT,
    ci_level: float = CI_LEVEL,
    random_state: int = 0,
    min_n: int = 2,
) -> Estimate:
    """Return sum(numerator) / sum(denominator) over images (n,) with a percentile-bootstrap CI over images.

    Pairs with a non-finite value or a zero denominator are left out; the
    resamples draw whole images, numerator and denominator together.
    """
    num = np.asarray(numerator, dtype=float).reshape(-1)
    den = np.asarray(denominator, dtype=float).reshape(-1)
    keep = np.isfinite(num) & np.isfinite(den) & (den > 0)
    num, den = num[keep], den[keep]
    n = num.size
    if n == 0:
        return Estimate.undefined("no images with positive saliency mass")
    point = float(num.sum() / den.sum())
    if n < min_n:
        return Estimate(point, reason=f"only {n} image(s): no confidence interval")
    rng = np.random.default_rng(random_state)
    draws = rng.integers(0, n, size=(int(n_boot), n))
    ratios = num[draws].sum(axis=1) / den[draws].sum(axis=1)
    alpha = (1 - ci_level) / 2
    low, high = np.quantile(ratios, [alpha, 1 - alpha])
    return Estimate(point, float(low), float(high), method="percentile bootstrap over images (ratio of sums)")
