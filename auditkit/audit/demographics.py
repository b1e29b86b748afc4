"""Who is in each split, in images and in patients, and how the internal sites compare (results.json ``data``).

FDA's draft guidance (2025, section VIII) asks for the size of each dataset
and its demographics for the training and the test data alike, subgroup
sizes that count patients (not images), and a comparison across clinical
sites. :func:`describe_subgroups` counts, for every split (training,
validation, internal test) and every external site, the images, patients
and positives of each value of each attribute; :func:`compare_sites`
compares the internal sites of one cohort with each other at the frozen
operating point. Pure functions of the predictions table.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from auditkit.stats.delong import delong_interval, delong_unpaired_test
from auditkit.stats.proportions import compare_proportions, proportion

#: a site needs this many positives and negatives for its AUROC and rates to be estimated.
MIN_CLASS_SIZE = 5


def _counts(frame: pd.DataFrame, mask: np.ndarray, y_pos: np.ndarray) -> dict[str, int]:
    out = {"n_images": int(mask.sum()), "n_positive": int(y_pos[mask].sum())}
    if "patient_id" in frame.columns:
        out["n_patients"] = int(frame.loc[mask, "patient_id"].nunique())
    return out


def split_groups(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Return ``{name: row mask}``: ``train``, ``val``, ``test`` and one entry per external site, in that order."""
    split = frame["split"].astype(str) if "split" in frame.columns else pd.Series("test", index=frame.index)
    groups: dict[str, np.ndarray] = {}
    for name in ("train", "val", "test"):
        mask = (split == name).to_numpy()
        if mask.any():
            groups[name] = mask
    external = (split == "external").to_numpy()
    if external.any() and "site" in frame.columns:
        for site in sorted(frame.loc[external, "site"].astype(str).unique()):
            groups[site] = external & (frame["site"].astype(str) == site).to_numpy()
    return groups


def describe_subgroups(frame: pd.DataFrame, y_pos: np.ndarray, attributes: list[str]) -> dict[str, Any]:
    """Return ``{split: {"total": counts, attribute: {value: counts}}}``; counts are images, patients, positives.

    ``y_pos`` (n,) bool marks the rows of the positive class. A missing
    attribute value is counted under ``"missing"`` so every split's groups
    add up to its total.
    """
    y_pos = np.asarray(y_pos, dtype=bool)
    out: dict[str, Any] = {}
    for name, mask in split_groups(frame).items():
        block: dict[str, Any] = {"total": _counts(frame, mask, y_pos)}
        for attribute in attributes:
            if attribute not in frame.columns:
                continue
            values = frame[attribute].astype(object).where(frame[attribute].notna(), "missing").astype(str)
            block[attribute] = {value: _counts(frame, mask & (values == value).to_numpy(), y_pos)
                                for value in sorted(values[mask].unique())}
        out[name] = block
    return out


def _estimate(value: float, low: float, high: float, method: str) -> dict[str, Any]:
    finite = all(np.isfinite(x) for x in (value, low, high))
    if not finite:
        return {"estimate": None, "ci_low": None, "ci_high": None, "reason": "not estimable at this site",
                "method": method}
    return {"estimate": float(value), "ci_low": float(low), "ci_high": float(high), "method": method}


def compare_sites(
    frame: pd.DataFrame,
    rows: np.ndarray,
    y_pos: np.ndarray,
    score: np.ndarray,
    *,
    threshold: float,
    level: float = 0.95,
) -> dict[str, Any]:
    """Return each internal site's AUROC, sensitivity and specificity in ``rows`` and each site against the rest.

    AUROC: DeLong interval (logit scale) and the unpaired DeLong test of the
    site against the other internal sites pooled; sensitivity and
    specificity at ``threshold``: Wilson intervals on the design-effect
    adjusted size when there is a ``patient_id`` (images of one patient are
    correlated) and a chi-square test (Rao-Scott corrected) against the rest.
    A site with fewer than :data:`MIN_CLASS_SIZE` positives or negatives
    gets a reason instead of numbers.
    """
    y_pos = np.asarray(y_pos, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    if "site" not in frame.columns:
        return {}
    sites = frame["site"].astype(str).to_numpy()
    clusters = frame["patient_id"].astype(str).to_numpy() if "patient_id" in frame.columns else None
    called = score >= threshold
    present = sorted(set(sites[rows]))
    if len(present) < 2:
        return {}
    out: dict[str, Any] = {"threshold": float(threshold), "sites": {}}
    for site in present:
        here = rows & (sites == site)
        rest = rows & (sites != site)
        n_pos, n_neg = int(y_pos[here].sum()), int((~y_pos[here]).sum())
        entry: dict[str, Any] = _counts(frame, here, y_pos)
        if min(n_pos, n_neg) < MIN_CLASS_SIZE:
            entry["reason"] = (f"{n_pos} positives and {n_neg} negatives: fewer than {MIN_CLASS_SIZE} of a class, "
                               "not estimated")
            out["sites"][site] = entry
            continue
        auc = delong_interval(y_pos[here].astype(int), score[here], level=level)
        entry["auroc"] = _estimate(auc.estimate, auc.ci_low, auc.ci_high, "DeLong (logit scale)")
        versus = delong_unpaired_test(y_pos[here].astype(int), score[here], y_pos[rest].astype(int), score[rest],
                                      level=level)
        entry["auroc_vs_rest"] = {**_estimate(versus.estimate, versus.ci_low, versus.ci_high, versus.method),
                                  "p_value": float(versus.p_value) if np.isfinite(versus.p_value) else None}
        for name, members, hit in (("sensitivity", y_pos, called), ("specificity", ~y_pos, ~called)):
            mask_here, mask_rest = here & members, rest & members
            p = proportion(hit[mask_here].astype(float), level=level,
                           clusters=clusters[mask_here] if clusters is not None else None)
            entry[name] = _estimate(p.estimate, p.ci_low, p.ci_high, f"Wilson (design effect {p.design_effect:.2f})")
            if mask_rest.any():
                diff = compare_proportions(hit[mask_here].astype(float), hit[mask_rest].astype(float), level=level,
                                           clusters_a=clusters[mask_here] if clusters is not None else None,
                                           clusters_b=clusters[mask_rest] if clusters is not None else None)
                entry[f"{name}_vs_rest"] = {**_estimate(diff.difference, diff.ci_low, diff.ci_high, diff.method),
                                            "p_value": float(diff.p_value) if np.isfinite(diff.p_value) else None}
        out["sites"][site] = entry
    return out
