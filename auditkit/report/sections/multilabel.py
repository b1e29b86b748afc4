"""The multi-label section: an overview table of every finding, the macro summary, and one subsection per finding.

Each finding's subsection also shows its saliency evidence and a small gallery
when the model was explained (:mod:`auditkit.report.sections.multilabel_saliency`).

Reads ``findings.<f>.…``, ``macro``, ``multiplicity`` and ``label_policy`` of a
multi-label results.json (``run.task == "multilabel"``); absent for any other
audit (the section and its table-of-contents entry are then left out).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from auditkit.report import formatting as fmt
from auditkit.report.sections.common import Source, gate_marks
from auditkit.report.sections.multilabel_saliency import build_finding_saliency

ANCHOR = "sec-multilabel"
TITLE = "Findings of a multi-label model"
OVERVIEW = ("auroc", "sensitivity", "specificity")
CALIBRATION = ("ece_l1_debiased", "intercept", "slope")
GAPS = ("fnr", "fpr", "auroc")


def is_multilabel(source: Source) -> bool:
    """Return whether the results are a multi-label audit."""
    return source.get("run.task") == "multilabel" and bool(source.mapping("findings"))


def multilabel_toc(source: Source, toc: list[dict[str, str]]) -> list[dict[str, str]]:
    """Return ``toc`` with this section's entry after Discrimination when the audit is multi-label."""
    if not is_multilabel(source):
        return toc
    at = next((i + 1 for i, e in enumerate(toc) if e["anchor"] == "sec-discrimination"), len(toc))
    return [*toc[:at], {"anchor": ANCHOR, "number": "", "title": TITLE}, *toc[at:]]


def _overview(source: Source, name: str, section: Mapping[str, Any]) -> dict[str, Any]:
    test = section.get("cohorts", {}).get("test", {}) if isinstance(section.get("cohorts"), Mapping) else {}
    disc = (section.get("discrimination") or {}).get("test", {})
    cal = (section.get("calibration") or {}).get("test", {})
    return {
        "finding": name,
        "n": fmt.format_count(test.get("n_images")),
        "n_positive": fmt.format_count(test.get("n_positive")),
        "threshold": fmt.format_number((section.get("operating_point") or {}).get("threshold")),
        "discrimination": [source.cell(disc.get(m), m) for m in OVERVIEW],
        "calibration": [source.cell(cal.get(m), m) for m in CALIBRATION],
    }


def _fairness_rows(source: Source, name: str, section: Mapping[str, Any], correction: Any) -> list[dict[str, Any]]:
    rows = []
    for attribute, block in (section.get("fairness") or {}).items():
        gaps = block.get("gap", {}) if isinstance(block, Mapping) else {}
        for metric in GAPS:
            gap = gaps.get(metric)
            if not isinstance(gap, Mapping):
                continue
            rows.append({
                "attribute": attribute, "metric": fmt.metric_label(metric), "gap": source.est(gap, metric),
                "groups": " vs ".join(str(g) for g in gap.get("groups") or []),
                "p": fmt.format_test(gap, correction=correction) or "\u2014",
                "marks": gate_marks(source, f"findings.{name}.fairness.{attribute}.gap.{metric}"),
            })  # fmt: skip
    return rows


def _external_rows(source: Source, name: str, section: Mapping[str, Any], correction: Any) -> list[dict[str, Any]]:
    rows = []
    for site, block in (section.get("external") or {}).items():
        delta = (block.get("delta") or {}).get("auroc") if isinstance(block, Mapping) else None
        if not isinstance(delta, Mapping):
            continue
        rows.append({
            "site": site, "auroc": source.est((block.get("discrimination") or {}).get("auroc"), "auroc"),
            "delta": source.est(delta, "auroc"), "p": fmt.format_test(delta, correction=correction) or "\u2014",
            "marks": gate_marks(source, f"findings.{name}.external.{site}.delta.auroc"),
        })  # fmt: skip
    return rows


def build_multilabel(source: Source) -> dict[str, Any]:
    """Return the multi-label section's context (``available`` False for a single-label audit)."""
    if not is_multilabel(source):
        return {"available": False}
    findings = source.mapping("findings")
    multiplicity = source.mapping("multiplicity")
    correction = multiplicity.get("method") or "holm"
    macro = source.mapping("macro.discrimination.test")
    policy = source.mapping("label_policy")
    return {
        "available": True,
        "columns": [fmt.metric_label(m) for m in OVERVIEW],
        "calibration_columns": [fmt.metric_label(m) for m in CALIBRATION],
        "overview": [_overview(source, name, section) for name, section in findings.items()],
        "macro": [
            {"metric": fmt.metric_label(m), "value": fmt.format_number((macro.get(m) or {}).get("estimate")),
             "n_findings": fmt.format_count((macro.get(m) or {}).get("n_findings"))}
            for m in macro
        ],
        "findings": [
            {"name": name, "fairness": _fairness_rows(source, name, section, correction),
             "external": _external_rows(source, name, section, correction),
             "saliency": build_finding_saliency(source, name, section)}
            for name, section in findings.items()
        ],
        "multiplicity": (
            f"p-values of the fairness gaps and external AUROC deltas are {fmt.correction_name(correction)}-adjusted "
            f"jointly across findings \u00d7 subgroups ({multiplicity.get('n_tests', 0)} tests: "
            f"{multiplicity.get('family', '')}); the intervals are per-comparison {source.ci_label}."
        ),
        "policy": (
            f"Uncertain (\u22121) labels: {policy.get('uncertain', 'ignore')} (CheXpert U-policies); blank labels: "
            f"{policy.get('blank', 'left out of that finding')}. Each finding is audited on its labelled rows with its "
            "own operating point, chosen on its own validation rows."
        ),
    }
