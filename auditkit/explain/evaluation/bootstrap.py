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
