"""Patient-level assignment of images to train / val / test / external.

Images of one patient are correlated, so a patient whose images sit in both
training and test inflates every test metric (Zech et al., PLoS Med 2018;
CLAIM item 20; GMLP principle 4). Splits are therefore drawn over patients,
never images; stratified by the patient's label so validation and test both
get positives; deterministic by seed and independent of row order (patients
are sorted before the seeded shuffle). Sites declared external are never
trained on, validated on or used to choose a threshold: their rows are
``external``. A ``split`` column given in the manifest is respected row by
row; empty cells are filled by patient.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from auditkit.errors import InvalidInputError

SPLITS: tuple[str, ...] = ("train", "val", "test", "external")
ASSIGNABLE: tuple[str, ...] = ("train", "val", "test")
DEFAULT_FRACTIONS: Mapping[str, float] = {"train": 0.7, "val": 0.15, "test": 0.15}


def _check_fractions(fractions: Mapping[str, float]) -> dict[str, float]:
    unknown = [k for k in fractions if k not in ASSIGNABLE]
    if unknown:
        raise InvalidInputError(
            f"split fractions: unknown split(s) {unknown}; use keys among {list(ASSIGNABLE)}"
        )
    values = {k: float(fractions.get(k, 0.0)) for k in ASSIGNABLE}
    if any(not np.isfinite(v) or v < 0 for v in values.values()):
        raise InvalidInputError(f"split fractions must be finite and >= 0, got {dict(fractions)}")
    total = sum(values.values())
    if abs(total - 1.0) > 1e-6:
        raise InvalidInputError(f"split fractions must sum to 1, got {dict(fractions)} (sum {total:g})")
    return values


def allocate(n: int, fractions: Mapping[str, float]) -> dict[str, int]:
    """Return how many of ``n`` patients each split gets: largest remainder, >= 1 where possible.

    Every split with a positive fraction gets at least one patient when
    ``n`` is at least the number of such splits, taken from the largest
    allocation, so a small stratum (e.g. few positive patients) still reaches
    validation and test.
    """
    names = [k for k in ASSIGNABLE if fractions.get(k, 0.0) > 0]
    exact = {k: n * fractions[k] for k in names}
    counts = {k: int(np.floor(exact[k])) for k in names}
    remainder = n - sum(counts.values())
    order = sorted(names, key=lambda k: (-(exact[k] - counts[k]), ASSIGNABLE.index(k)))
    for k in order[:remainder]:
        counts[k] += 1
    if n >= len(names):
        for k in names:
            if counts[k] == 0:
                donor = max(names, key=lambda d: (counts[d], -ASSIGNABLE.index(d)))
                counts[donor] -= 1
                counts[k] += 1
    return {k: counts.get(k, 0) for k in ASSIGNABLE}


def _given_splits(frame: pd.DataFrame) -> list[str | None]:
    if "split" not in frame.columns:
        return [None] * len(frame)
    out: list[str | None] = []
    for position, value in enumerate(frame["split"].tolist()):
        if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
            out.append(None)
            continue
        text = str(value).strip().lower()
        if text not in SPLITS:
            raise InvalidInputError(
                f"row {position + 1}, column 'split': unknown split {value!r}; use one of "
                f"{', '.join(SPLITS)} or leave it empty"
            )
        out.append(text)
    return out


def assign_splits(
    frame: pd.DataFrame,
    *,
    seed: int,
    fractions: Mapping[str, float] | None = None,
    external_sites: Iterable[str] = (),
) -> pd.Series:
    """Return each row's split (``train|val|test|external``), indexed like ``frame``.

    ``frame`` needs ``patient_id``, ``y_true`` and ``site`` (a Manifest frame);
    an optional ``split`` column is respected row by row. Patients are
    stratified by their highest label and shuffled with ``seed`` in sorted
    order, so the result does not depend on row order. Raises
    InvalidInputError when a patient would span two splits or both an
    external and an internal site, or when an external site is unknown.
    """
    for needed in ("patient_id", "y_true", "site"):
        if needed not in frame.columns:
            raise InvalidInputError(
                f"assign_splits needs a '{needed}' column (a Manifest frame), got {list(frame.columns)}"
            )
    shares = _check_fractions(DEFAULT_FRACTIONS if fractions is None else fractions)
    patients = frame["patient_id"].astype(str).tolist()
    sites = frame["site"].astype(str).tolist()
    labels = frame["y_true"].to_numpy(dtype=np.int64)
    external = {str(s) for s in external_sites}
    unknown = sorted(external - set(sites))
    if unknown:
        raise InvalidInputError(
            f"external site(s) {unknown} are not sites of the data (sites: {sorted(set(sites))}); "
            "check the --external-site spelling"
        )
    result = _given_splits(frame)
    _mark_external(result, sites, external)
    by_patient: dict[str, list[int]] = {}
    for position, patient in enumerate(patients):
        by_patient.setdefault(patient, []).append(position)
    pending = _spread_given_splits(result, by_patient, sites, labels, external)
    _assign_pending(result, pending, by_patient, shares, seed)
    return pd.Series(result, index=frame.index, name="split", dtype=object)


def _mark_external(result: list[str | None], sites: list[str], external: set[str]) -> None:
    """Mark the rows of external sites in ``result``; a site with a row split external joins them."""
    for position, site in enumerate(sites):
        if site in external:
            if result[position] not in (None, "external"):
                raise InvalidInputError(
                    f"row {position + 1}: site {site!r} is declared external but its split is "
                    f"{result[position]!r}; an external site is never trained, validated or "
                    "tested internally, so clear that split or do not declare the site external"
                )
            result[position] = "external"
        elif result[position] == "external":
            external.add(site)


def _spread_given_splits(
    result: list[str | None],
    by_patient: dict[str, list[int]],
    sites: list[str],
    labels: np.ndarray,
    external: set[str],
) -> dict[str, int]:
    """Return {patient: stratum (highest label)} of the patients without a split yet.

    A patient with a split on any row gets it on all rows (in ``result``);
    a patient across external and internal sites, or across two given
    splits, is refused.
    """
    pending: dict[str, int] = {}
    for patient in sorted(by_patient):
        rows = by_patient[patient]
        patient_sites = {sites[r] for r in rows}
        if patient_sites & external and patient_sites - external:
            raise InvalidInputError(
                f"patient {patient!r} has images at external site(s) "
                f"{sorted(patient_sites & external)} and internal site(s) "
                f"{sorted(patient_sites - external)}; an external cohort must hold patients never "
                "seen in development (if the ids merely collide across sites, make them unique, "
                "e.g. prefix the site)"
            )
        given = {result[r] for r in rows} - {None}
        if len(given) > 1:
            raise InvalidInputError(
                f"patient {patient!r} spans splits {sorted(given)} in the split column; images of "
                "one patient must stay in one split, so give them the same split"
            )
        if given:
            value = given.pop()
            for r in rows:
                result[r] = value
        else:
            pending[patient] = int(labels[rows].max())
    return pending


def _assign_pending(
    result: list[str | None],
    pending: dict[str, int],
    by_patient: dict[str, list[int]],
    shares: Mapping[str, float],
    seed: int,
) -> None:
    """Assign pending patients to train/val/test in ``result`` per stratum, shuffled by ``seed``."""
    rng = np.random.default_rng(seed)
    for stratum in sorted(set(pending.values())):
        members = np.array(sorted(p for p, s in pending.items() if s == stratum), dtype=object)
        members = members[rng.permutation(len(members))]
        counts = allocate(len(members), shares)
        start = 0
        for split in ASSIGNABLE:
            for patient in members[start : start + counts[split]]:
                for r in by_patient[patient]:
                    result[r] = split
            start += counts[split]
