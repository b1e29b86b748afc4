"""Cohorts of an audit and results.json's ``data`` section: which rows are val, test or an external site, and their counts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from auditkit.analysis.sections import DataSection
from auditkit.errors import PredictionsError
from auditkit.predictions_table import RESERVED_SITE_NAMES, PredictionsTable
from auditkit.stats.fairness import (
    group_labels,
)

# --------------------------------------------------------------------------- cohorts & data


def assign_cohorts(table: PredictionsTable) -> pd.Series:
    """Return each row's cohort (``val``, ``test``, an external site's name, or None for training rows).

    Without a ``split`` column every row is internal test (there is then no
    validation split).
    """
    frame = table.frame
    split = frame["split"] if "split" in frame.columns else pd.Series("test", index=frame.index)
    cohort = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    cohort[split == "val"] = "val"
    cohort[split == "test"] = "test"
    external = split == "external"
    if external.any():
        if "site" not in frame.columns:
            row = int(np.flatnonzero(external.to_numpy())[0])
            raise PredictionsError(
                f"{table.path}: row {row + 1} is in split 'external' but the table has no 'site' column; "
                "name each external site in a 'site' column"
            )
        names = frame.loc[external, "site"].astype(str)
        reserved = names.isin(RESERVED_SITE_NAMES)
        if reserved.any():
            raise PredictionsError(
                f"{table.path}: an external site may not be named {names[reserved].iloc[0]!r}; rename it in column 'site'"
            )
        cohort[external] = names
    return cohort


def _split_counts(frame: pd.DataFrame, y_pos: np.ndarray, mask: np.ndarray) -> dict[str, int]:
    patients = (
        frame.loc[mask, "patient_id"] if "patient_id" in frame.columns else frame.loc[mask, "id"]
    )
    return {
        "n_images": int(mask.sum()),
        "n_patients": int(patients.nunique()),
        "n_positive": int(y_pos[mask].sum()),
    }


def describe_data(
    table: PredictionsTable, cohort: pd.Series, attributes: list[list[str]]
) -> dict[str, Any]:
    """Return results.json's ``data`` section as a dict (:func:`data_section`'s ``to_dict``)."""
    return data_section(table, cohort, attributes).to_dict()


def data_section(table: PredictionsTable, cohort: pd.Series, attributes: list[list[str]]) -> DataSection:
    """Return results.json's ``data`` section: split counts, patient disjointness, attributes, sites, flow."""
    frame = table.frame
    y_pos = (
        (frame["y_true"].to_numpy() == 1)
        if table.classes.task == "binary"
        else np.zeros(len(frame), bool)
    )
    split = frame["split"] if "split" in frame.columns else pd.Series("test", index=frame.index)
    splits = {
        s: _split_counts(frame, y_pos, (split == s).to_numpy())
        for s in ("train", "val", "test", "external")
        if (split == s).any()
    }
    if "patient_id" in frame.columns:
        level = "patient"
        members = {s: set(frame.loc[split == s, "patient_id"]) for s in splits}
        overlaps = []
        names = list(splits)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                n = len(members[a] & members[b])
                if n:
                    overlaps.append({"a": a, "b": b, "n_patients": n})
    else:
        level, overlaps = "image", []
    audited = cohort.notna()
    attr_counts: dict[str, Any] = {}
    for columns in attributes:
        labels = group_labels(frame.loc[audited], columns)
        per_cohort: dict[str, dict[str, int]] = {}
        for name in _cohort_order(cohort):
            counts = labels[cohort[audited] == name].value_counts()
            per_cohort[name] = {str(k): int(counts[k]) for k in sorted(counts.index)}
        attr_counts["+".join(columns)] = per_cohort
    sites: dict[str, dict[str, int]] = {}
    if "site" in frame.columns:
        for site in sorted(frame["site"].unique()):
            counts = split[frame["site"] == site].value_counts()
            sites[str(site)] = {str(k): int(counts[k]) for k in sorted(counts.index)}
    flow = [{"stage": "rows in the predictions table", "n": len(frame)}]
    if "train" in splits:
        flow.append({"stage": "training rows (not audited)", "n": splits["train"]["n_images"]})
    for name in _cohort_order(cohort):
        label = {"val": "validation (operating point, recalibration)", "test": "internal test"}.get(
            name, f"external site {name}"
        )
        flow.append({"stage": label, "n": int((cohort == name).sum())})
    return DataSection(
        splits=splits,
        disjointness={"level": level, "overlaps": overlaps, "passed": not overlaps},
        attributes=attr_counts,
        sites=sites,
        flow=tuple(flow),
    )


def _cohort_order(cohort: pd.Series) -> list[str]:
    present = set(cohort.dropna())
    fixed = [c for c in ("val", "test") if c in present]
    return fixed + sorted(present - {"val", "test"})
