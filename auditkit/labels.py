"""Class lists and label encoding shared by manifests and predictions tables.

A label column holds class indices or class names. For a binary task given as
names, the positive class is the one named by ``positive_class`` or else the
one that is not a recognised negative (``normal``, ``negative``, ``no
finding``, ``healthy``, ``benign``); anything else is ambiguous and refused.
The resulting :class:`ClassSpec` is stored with the model so that train,
predict and audit agree on what index 1 means.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from auditkit.errors import AuditkitError

RECOGNISED_NEGATIVES: frozenset[str] = frozenset(
    {"normal", "negative", "no finding", "no_finding", "healthy", "benign", "absent", "none"}
)


class LabelError(AuditkitError):
    """A label column cannot be turned into a class list."""


@dataclass(frozen=True)
class ClassSpec:
    """The ordered class names of a task; for a binary task, index 1 is the positive class."""

    classes: tuple[str, ...]
    positive_class: str | None = None

    @property
    def task(self) -> str:
        """Return ``"binary"`` for two classes, else ``"multiclass"``."""
        return "binary" if len(self.classes) == 2 else "multiclass"

    @property
    def n_classes(self) -> int:
        """Return the number of classes."""
        return len(self.classes)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form stored in checkpoints and results."""
        return {"classes": list(self.classes), "positive_class": self.positive_class}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClassSpec:
        """Return the ClassSpec encoded by :meth:`to_dict`."""
        return cls(tuple(str(c) for c in data["classes"]), data.get("positive_class"))


def _as_integer_labels(values: pd.Series) -> np.ndarray | None:
    """Return the labels as int64 if every value is an integer (or integer-like string)."""
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.isna().any():
        return None
    as_float = numeric.to_numpy(dtype=float)
    if not np.all(np.isfinite(as_float)) or not np.all(as_float == np.round(as_float)):
        return None
    return as_float.astype(np.int64)


def infer_class_spec(
    values: Sequence[Any] | pd.Series,
    *,
    positive_class: str | None = None,
    where: str = "label column",
) -> ClassSpec:
    """Return the ClassSpec implied by a label column.

    Integer labels must be ``0..K-1`` (``0/1`` for a binary task, positive = 1).
    Named labels are sorted, except that a binary task puts the positive class
    second. ``where`` names the file and column in error messages.
    """
    series = pd.Series(values)
    if series.isna().any():
        row = int(np.flatnonzero(series.isna().to_numpy())[0])
        raise LabelError(f"{where}: row {row + 1} has an empty label; give every row a class")
    if len(series) == 0:
        raise LabelError(f"{where}: there are no labels")
    ints = _as_integer_labels(series)
    if ints is not None:
        present = sorted(set(ints.tolist()))
        if present[0] < 0:
            raise LabelError(f"{where}: class indices must be 0 or more, found {present[0]}")
        k = max(present[-1] + 1, 2)
        if k == 2 and positive_class not in (None, "1", 1):
            raise LabelError(
                f"{where}: labels are 0/1, so the positive class is 1; "
                f"--positive-class {positive_class!r} does not apply"
            )
        return ClassSpec(tuple(str(i) for i in range(k)), "1" if k == 2 else None)
    names = sorted({str(v).strip() for v in series})
    if len(names) < 2:
        raise LabelError(
            f"{where}: only one class ({names[0]!r}) is present; a classifier needs at least two"
        )
    if len(names) == 2:
        if positive_class is not None:
            positive = str(positive_class)
            if positive not in names:
                raise LabelError(
                    f"{where}: --positive-class {positive!r} is not one of the labels {names}"
                )
            negative = next(n for n in names if n != positive)
            return ClassSpec((negative, positive), positive)
        negatives = [n for n in names if n.lower() in RECOGNISED_NEGATIVES]
        if len(negatives) != 1:
            raise LabelError(
                f"{where}: cannot tell which of {names} is the positive class; "
                "name it with --positive-class"
            )
        positive = next(n for n in names if n != negatives[0])
        return ClassSpec((negatives[0], positive), positive)
    if positive_class is not None:
        raise LabelError(
            f"{where}: --positive-class applies to binary tasks, but there are "
            f"{len(names)} classes {names}"
        )
    return ClassSpec(tuple(names))


def _integer_or_none(text: str) -> int | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() else None


def encode_labels(
    values: Sequence[Any] | pd.Series, spec: ClassSpec, *, where: str = "label column"
) -> np.ndarray:
    """Return the labels as class indices (int64, shape ``(n,)``) under ``spec``.

    Accepts class names or indices; a value that is neither a class name nor a
    valid index raises LabelError naming the row.
    """
    series = pd.Series(values).reset_index(drop=True)
    lookup = {name: i for i, name in enumerate(spec.classes)}
    out = np.empty(len(series), dtype=np.int64)
    for row, value in enumerate(series.tolist()):
        key = str(value).strip()
        if key in lookup:
            out[row] = lookup[key]
            continue
        index = _integer_or_none(key)
        if index is not None and 0 <= index < spec.n_classes:
            out[row] = index
            continue
        raise LabelError(
            f"{where}: row {row + 1} has label {value!r}, which is not one of the classes "
            f"{list(spec.classes)}"
        )
    return out
