"""Multiple-comparison adjustment of a family of p-values: Holm and Benjamini–Hochberg.

Holm 1979 (step-down, controls the family-wise error rate) and Benjamini &
Hochberg 1995 (step-up, controls the false discovery rate). NaN p-values
(untestable comparisons) stay NaN and do not count in the family.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

METHODS = ("holm", "bh")


def adjust_p_values(p_values: Sequence[float] | np.ndarray, *, method: str = "holm") -> np.ndarray:
    """Return adjusted p-values (same shape as ``p_values``), monotone as the method requires."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0:
        return out
    values = p[ok]
    order = np.argsort(values, kind="stable")
    ranked = values[order]
    if method == "holm":
        adjusted = np.maximum.accumulate((m - np.arange(m)) * ranked)
    elif method == "bh":
        adjusted = np.minimum.accumulate(m / np.arange(m, 0, -1) * ranked[::-1])[::-1]
    else:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    result = np.empty(m)
    result[order] = np.minimum(adjusted, 1.0)
    out[ok] = result
    return out
