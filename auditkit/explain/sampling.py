"""Which images to explain: a seeded sample stratified by label and prediction, or a selection.

Explaining every image of a large test set is slow and unnecessary for the
saliency statistics; a sample of up to a few hundred images per cohort,
stratified by (true label, predicted label), keeps true/false positives and
negatives represented even when errors are rare. The command line can also
pick the errors (most confident first), the top-scored images, or a random
set.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from auditkit.errors import InvalidInputError

SELECTIONS: tuple[str, ...] = ("all", "random", "errors", "top", "stratified")


def allocate(sizes: Sequence[int], n: int) -> list[int]:
    """Return how many of ``n`` draws each stratum of ``sizes`` gets: proportional, at least one each if possible.

    Largest-remainder rounding of ``n * size / total``, raised to one for a
    non-empty stratum when ``n`` allows, never more than a stratum holds.
    """
    sizes = [int(s) for s in sizes]
    total = sum(sizes)
    n = min(int(n), total)
    if n <= 0:
        return [0] * len(sizes)
    nonempty = sum(1 for s in sizes if s > 0)
    floor_one = 1 if n >= nonempty else 0
    ideal = [n * s / total for s in sizes]
    take = [min(s, max(floor_one if s > 0 else 0, int(np.floor(q)))) for s, q in zip(sizes, ideal, strict=True)]
    while sum(take) < n:
        room = [i for i in range(len(sizes)) if take[i] < sizes[i]]
        best = max(room, key=lambda i: (ideal[i] - take[i], -i))
        take[best] += 1
    while sum(take) > n:
        spare = [i for i in range(len(sizes)) if take[i] > floor_one]
        worst = min(spare, key=lambda i: (ideal[i] - take[i], i))
        take[worst] -= 1
    return take


def stratified_sample(
    frame: pd.DataFrame, *, n: int, strata: Sequence[str], random_state: int = 0
) -> pd.Index:
    """Return the index of up to ``n`` rows of ``frame`` drawn within the strata columns, in frame order."""
    missing = [c for c in strata if c not in frame.columns]
    if missing:
        raise InvalidInputError(f"cannot stratify by missing column(s) {missing}")
    if len(frame) <= n:
        return frame.index
    rng = np.random.default_rng(random_state)
    keys = frame[list(strata)].astype(str).agg("|".join, axis=1) if strata else pd.Series("", index=frame.index)
    groups = sorted(keys.unique())
    members = [frame.index[(keys == g).to_numpy()] for g in groups]
    chosen: list = []
    for rows, k in zip(members, allocate([len(m) for m in members], n), strict=True):
        if k:
            chosen.extend(rows[np.sort(rng.choice(len(rows), size=k, replace=False))])
    keep = frame.index.isin(chosen)
    return frame.index[keep]


def select(
    frame: pd.DataFrame,
    *,
    how: str,
    limit: int | None,
    score: str = "score",
    y_true: str = "y_true",
    y_pred: str = "y_pred",
    random_state: int = 0,
) -> pd.Index:
    """Return the index of the rows to explain: ``all``, ``random``, ``errors``, ``top`` or ``stratified``.

    ``errors``: misclassified rows, the most confident (highest ``score`` of the
    predicted class) first; ``top``: the highest ``score`` first; ``stratified``:
    :func:`stratified_sample` by true and predicted label. ``limit`` caps the count.
    """
    if how not in SELECTIONS:
        raise InvalidInputError(f"--select must be one of {', '.join(SELECTIONS)}, got {how!r}")
    n = len(frame) if limit is None else max(0, int(limit))
    if how == "all":
        return frame.index[:n]
    if how == "random":
        rng = np.random.default_rng(random_state)
        picks = np.sort(rng.choice(len(frame), size=min(n, len(frame)), replace=False))
        return frame.index[picks]
    if how == "stratified":
        return stratified_sample(frame, n=n, strata=[y_true, y_pred], random_state=random_state)
    if how == "errors":
        wrong = frame[frame[y_true].to_numpy() != frame[y_pred].to_numpy()]
        return wrong.sort_values(score, ascending=False, kind="stable").index[:n]
    return frame.sort_values(score, ascending=False, kind="stable").index[:n]
