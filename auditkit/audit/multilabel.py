"""Multi-label findings: per-finding label columns with an uncertainty policy, and the audit run per finding.

A multi-label predictions table has, per finding ``<f>``, a label column
``label_<f>`` and a score column ``score_<f>`` (the sigmoid probability of
that finding, as a sigmoid head trained with BCE gives). Label cells are
``1`` (present), ``0`` (absent), blank (unlabelled) or ``-1`` (uncertain, as
CheXpert's labeller writes). The policy for blank and ``-1`` is declared
(CheXpert, Irvin et al. AAAI 2019, U-Ignore / U-Zeros / U-Ones):

- ``ignore`` (default): the row is left out of that finding's analyses only;
- ``zeros``: uncertain counts as absent;  ``ones``: uncertain counts as present.
  Blank cells are always left out (nothing was said about the finding).

:func:`audit_findings` runs every statistical analysis of the single-label
audit once per finding, on that finding's binary table (each with its own
operating point chosen on its own validation rows), nests the sections under
``findings.<f>.…`` (so gate wildcards such as ``findings.*.fairness.sex.gap.fnr``
reach them), adds a macro summary (the mean over findings of each test-cohort
discrimination estimate), and adjusts the fairness-gap and external-delta
p-values jointly across findings x subgroups (Holm), recording that it did.
A single-label audit is untouched: its paths stay as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from auditkit.errors import PredictionsError
from auditkit.fileio import to_jsonable
from auditkit.findings import (  # noqa: F401 - re-exported: the audit's multi-label names
    LABEL_PREFIX,
    SCORE_PREFIX,
    UNCERTAIN_POLICIES,
    encode_finding,
    finding_names,
)
from auditkit.stats.multiplicity import adjust_p_values

MACRO_METRICS: tuple[str, ...] = ("auroc", "auprc", "sensitivity", "specificity")


def finding_table(table: pd.DataFrame, finding: str, *, policy: str = "ignore") -> pd.DataFrame:
    """Return the binary predictions table of one finding: rows with a label, ``y_true`` 0/1, ``score``."""
    label, score = f"{LABEL_PREFIX}{finding}", f"{SCORE_PREFIX}{finding}"
    for column in (label, score):
        if column not in table.columns:
            raise PredictionsError(
                f"finding {finding!r} needs columns {label!r} and {score!r}; {column!r} is missing"
            )
    y = encode_finding(table[label].tolist(), policy=policy, where=f"column {label!r}")
    keep = ~np.isnan(y)
    others = [
        c
        for c in table.columns
        if not c.startswith((LABEL_PREFIX, SCORE_PREFIX)) and c not in ("y_true", "score")
    ]
    out = table.loc[keep, others].copy()
    out.insert(1, "y_true", y[keep].astype(np.int64))
    out.insert(2, "score", pd.to_numeric(table.loc[keep, score]).to_numpy(dtype=float))
    return out.reset_index(drop=True)


def _walk(node: Any, path: tuple[str, ...], found: list[tuple[tuple[str, ...], dict]]) -> None:
    if isinstance(node, dict):
        if "p_value" in node and isinstance(node.get("p_value"), (int, float)):
            found.append((path, node))
        for key, value in node.items():
            _walk(value, (*path, str(key)), found)


def adjust_across_findings(
    findings: dict[str, dict[str, Any]], *, method: str = "holm"
) -> dict[str, Any]:
    """Re-adjust every fairness-gap and external-delta p-value jointly across findings (in place); return the record."""
    found: list[tuple[tuple[str, ...], dict]] = []
    for name, sections in findings.items():
        for section in ("fairness", "external"):
            _walk(sections.get(section, {}), (name, section), found)
    tested = [
        (p, n)
        for p, n in found
        if ("gap" in p or "delta" in p) and np.isfinite(float(n["p_value"]))
    ]
    if tested:
        adjusted = adjust_p_values([float(n["p_value"]) for _, n in tested], method=method)
        for (_, node), value in zip(tested, adjusted, strict=True):
            node["p_adjusted_within_finding"] = node.get("p_adjusted")
            node["p_adjusted"] = float(value)
    return {
        "method": method,
        "family": "fairness gaps and external deltas of every finding together (findings x subgroups)",
        "n_tests": len(tested),
    }


def audit_findings(
    table: pd.DataFrame,
    statistics: Callable[[pd.DataFrame], dict[str, Any]],
    *,
    findings: Sequence[str] | None = None,
    policy: str = "ignore",
) -> dict[str, Any]:
    """Return ``{"findings": {f: sections}, "macro": ..., "multiplicity": ..., "label_policy": ...}``.

    ``statistics`` turns one finding's binary table into the single-label
    audit's statistical sections (e.g. ``compute_statistics`` after validation),
    so every analysis and its operating point run per finding.
    """
    names = finding_names(list(table.columns), findings)
    if not names:
        raise PredictionsError(
            "no findings: give label_<finding> and score_<finding> columns, or --labels a,b"
        )
    # JSON-ready (Estimate objects become their dicts) so the sections nest into results.json as they are
    per_finding = {
        name: to_jsonable(statistics(finding_table(table, name, policy=policy))) for name in names
    }
    macro: dict[str, Any] = {}
    for metric in MACRO_METRICS:
        values = [
            per_finding[n].get("discrimination", {}).get("test", {}).get(metric, {}).get("estimate")
            for n in names
        ]
        numbers = [float(v) for v in values if isinstance(v, (int, float))]
        macro[metric] = {
            "estimate": float(np.mean(numbers)) if numbers else None,
            "n_findings": len(numbers),
            **({} if numbers else {"reason": "undefined in every finding"}),
        }
    multiplicity = adjust_across_findings(per_finding)
    return {
        "findings": per_finding,
        "macro": {"discrimination": {"test": macro}},
        "multiplicity": multiplicity,
        "label_policy": {"uncertain": policy, "blank": "left out of that finding"},
    }
