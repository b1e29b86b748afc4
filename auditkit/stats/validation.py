"""Input checks at the public boundary of ``auditkit.stats``.

Every public function validates its arrays once, here, and raises
:class:`auditkit.errors.InvalidInputError` with one sentence that names the
argument (and the first offending position), what was expected and what was
received. Undefined mathematics (a one-class sample) is not an error: the
metric returns NaN and the caller records why.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from auditkit.errors import InvalidInputError


def _plain(value: Any) -> Any:
    """Return a NumPy scalar as the Python value (so messages read ``2``, not ``np.int64(2)``)."""
    return value.item() if isinstance(value, np.generic) else value


def as_1d_float(values: Any, *, name: str) -> np.ndarray:
    """Return ``values`` as a float64 array of shape ``(n,)``; refuses other shapes and non-numbers."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"{name} must be numeric, got values of type {np.asarray(values).dtype}; "
            "pass numbers (probabilities or scores)"
        ) from None
    if arr.ndim != 1:
        raise InvalidInputError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def check_finite(values: np.ndarray, *, name: str) -> None:
    """Raise if any entry of ``values`` is NaN or infinite, naming the first position."""
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InvalidInputError(
            f"{name}[{i}] is {float(values[i])!r}; every score must be a finite number "
            "(remove or fix that case)"
        )


def check_probabilities(values: np.ndarray, *, name: str) -> None:
    """Raise unless every entry of ``values`` is a finite probability in [0, 1]."""
    check_finite(values, name=name)
    bad = (values < 0.0) | (values > 1.0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InvalidInputError(
            f"{name}[{i}] is {float(values[i])!r}, outside [0, 1]; pass probabilities "
            "(apply a sigmoid/softmax to logits first)"
        )


def check_binary_labels(y_true: Any, *, name: str = "y_true") -> np.ndarray:
    """Return ``y_true`` as an int64 array of 0/1 (shape ``(n,)``); refuses other values."""
    arr = np.asarray(y_true)
    if arr.ndim != 1:
        raise InvalidInputError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr.astype(np.int64)
    try:
        as_float = arr.astype(np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"{name} must hold 0/1 labels, got values of type {arr.dtype}; encode the "
            "positive class as 1"
        ) from None
    bad = ~np.isin(as_float, (0.0, 1.0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InvalidInputError(
            f"{name}[{i}] is {_plain(arr[i])!r}; binary labels must be 0 or 1 (positive class = 1)"
        )
    return as_float.astype(np.int64)


def check_same_length(arrays: Sequence[tuple[str, np.ndarray]]) -> int:
    """Return the common length of the named arrays; raises if they differ."""
    lengths = {name: len(arr) for name, arr in arrays}
    distinct = set(lengths.values())
    if len(distinct) > 1:
        desc = ", ".join(f"{name} has {n}" for name, n in lengths.items())
        raise InvalidInputError(f"arrays must have the same length, but {desc}")
    return distinct.pop() if distinct else 0


def check_sample_weight(sample_weight: Any, n: int) -> np.ndarray:
    """Return non-negative finite sample weights of shape ``(n,)`` (ones when None)."""
    if sample_weight is None:
        return np.ones(n, dtype=np.float64)
    w = as_1d_float(sample_weight, name="sample_weight")
    if len(w) != n:
        raise InvalidInputError(f"sample_weight has {len(w)} entries, expected {n}")
    check_finite(w, name="sample_weight")
    if (w < 0).any():
        i = int(np.flatnonzero(w < 0)[0])
        raise InvalidInputError(f"sample_weight[{i}] is {float(w[i])!r}; weights must be >= 0")
    return w


def binary_inputs(
    y_true: Any, y_prob: Any, *, probabilities: bool = True, sample_weight: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return validated ``(y_true int64 (n,), y_prob float64 (n,), weight float64 (n,))``."""
    y = check_binary_labels(y_true)
    s = as_1d_float(y_prob, name="y_prob" if probabilities else "y_score")
    check_same_length([("y_true", y), ("y_prob" if probabilities else "y_score", s)])
    if probabilities:
        check_probabilities(s, name="y_prob")
    else:
        check_finite(s, name="y_score")
    w = check_sample_weight(sample_weight, len(y))
    return y, s, w
