"""summary.md: the headline numbers of results.json with their intervals, and every warning.

A pure function of the results document (no recomputation): the report
and the gate read results.json; this file is for a person skimming a CI log.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from auditkit.fileio import to_jsonable
from auditkit.results import format as results_format
from auditkit.stats import metrics as metric_registry
from auditkit.textsafe import md_text

#: the fairness gaps a person skimming a CI log sees first (a selection; the report has them all).
_FAIRNESS_GAPS = ("fnr", "fpr", "auroc", "ece", "equalized_odds")


def format_estimate(value: Any, *, digits: int = 3) -> str:
    """Return ``x (lo–hi)`` for an estimate dict or Estimate (the report's wording, without the CI label)."""
    return results_format.format_estimate(value, digits=digits, label=False)


def _p(value: Mapping[str, Any]) -> str:
    parts = []
    if value.get("p_value") is not None:
        parts.append(f"p={value['p_value']:.3g}")
    if value.get("p_adjusted") is not None:
        parts.append(f"adj. p={value['p_adjusted']:.3g}")
    return ", ".join(parts) or "—"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    # cohort, site, attribute and group names are the user's text: escaped like every other value
    out = ["| " + " | ".join(map(md_text, header)) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(map(md_text, r)) + " |" for r in rows]
    return [*out, ""]


def render_summary(doc: Mapping[str, Any]) -> str:
    """Return the Markdown summary of a results.json document (dict form, or with Estimate objects)."""
    doc = to_jsonable(doc)
    run = doc.get("run", {})
    level = round(100 * run.get("ci_level", 0.95))
    lines = [
        f"# Audit summary: {md_text(doc.get('model', {}).get('name', 'model'))}",
        "",
        f"- date: {doc.get('created')}; auditkit {doc.get('tool', {}).get('version')}; schema {doc.get('schema_version')}",
        f"- task: {run.get('task')} (classes: {md_text(', '.join(map(str, run.get('classes', []))))}; "
        f"positive: {md_text(run.get('positive_class'))})",
        f"- intervals: {level}% {run.get('ci_method')} bootstrap, {run.get('n_boot')} resamples, seed {run.get('seed')}; "
        f"{run.get('resampling', '')}",
        "",
        "## Cohorts",
        "",
    ]
    rows = []
    for name, c in doc.get("cohorts", {}).items():
        rows.append(
            [
                name,
                str(c.get("role")),
                str(c.get("n_images")),
                str(c.get("n_patients")),
                str(c.get("n_positive")),
                format_estimate(c.get("prevalence")),
            ]
        )
    lines += _table(["cohort", "role", "images", "patients", "positives", "prevalence"], rows)
    op = doc.get("operating_point")
    if op:
        target = f" (target {op['target']:g})" if isinstance(op.get("target"), (int, float)) else ""
        threshold = op.get("threshold")
        shown = f"{threshold:.4f}" if isinstance(threshold, (int, float)) else "not recorded"
        lines += [
            "## Operating point",
            "",
            f"rule {op.get('rule')}{target}, threshold {shown} on the positive-class score, "
            f"chosen on {op.get('chosen_on')} and frozen.",
            "",
        ]
    lines += [f"## Discrimination ({level}% CI)", ""]
    cohorts = list(doc.get("discrimination", {}))
    external = doc.get("external", {})
    header = ["metric", *cohorts, *external]
    rows = []
    for m in metric_registry.keys("discrimination", summary=True):
        row = [m] + [format_estimate(doc["discrimination"][c].get(m)) for c in cohorts]
        row += [format_estimate(external[s].get("discrimination", {}).get(m)) for s in external]
        rows.append(row)
    lines += _table(header, rows)
    lines += [f"## Calibration ({level}% CI)", ""]
    rows = []
    for m in metric_registry.keys("calibration", summary=True):
        row = [m] + [format_estimate(doc.get("calibration", {}).get(c, {}).get(m)) for c in cohorts]
        row += [format_estimate(external[s].get("calibration", {}).get(m)) for s in external]
        rows.append(row)
    lines += _table(["metric", *cohorts, *external], rows)
    if external:
        lines += ["## External sites: difference from the internal test cohort", ""]
        rows = []
        for site, block in external.items():
            for m in ("auroc", "sensitivity", "specificity", "ece"):
                d = block.get("delta", {}).get(m)
                if d is not None:
                    rows.append(
                        [
                            site,
                            m,
                            format_estimate(d),
                            _p(d),
                            str(d.get("method", "bootstrap")) if isinstance(d, Mapping) else "",
                        ]
                    )
        lines += _table(["site", "metric", "site − test", "p-value", "method"], rows)
    fairness = doc.get("fairness", {})
    if fairness:
        lines += ["## Subgroup fairness (internal test)", ""]
        rows = []
        for attr, block in fairness.items():
            for m in _FAIRNESS_GAPS:
                g = block.get("gap", {}).get(m)
                if g is None:
                    continue
                groups = " vs ".join(g.get("groups", []) or [])
                rows.append([attr, f"{m} gap", format_estimate(g), groups, _p(g)])
            w = block.get("worst_group", {}).get("auroc")
            if w is not None:
                rows.append(
                    [
                        attr,
                        "worst-group AUROC",
                        format_estimate(w),
                        " ".join(w.get("groups", []) or []),
                        "—",
                    ]
                )
        lines += _table(["attribute", "quantity", "estimate", "groups", "p-value"], rows)
    rec = doc.get("recalibration")
    if rec:
        lines += ["## Recalibration (fitted on val, evaluated on test)", ""]
        rows = []
        for method in ("temperature", "platt"):
            block = rec.get(method)
            if not block or "test" not in block:
                continue
            params = ", ".join(
                f"{k}={v:.3g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else f"{k}=not fitted"
                for k, v in block["parameters"].items()
            )
            rows.append(
                [
                    method,
                    params,
                    format_estimate(block["test"].get("ece")),
                    format_estimate(block["test"].get("slope")),
                ]
            )
        lines += _table(["method", "parameters", "ECE after", "slope after"], rows)
    warnings = doc.get("warnings", [])
    lines += ["## Warnings", ""]
    lines += [
        f"- \\[{md_text(w.get('code'))}\\] {md_text(w.get('message'))}"
        + (f" ({md_text(w['where'])})" if w.get("where") else "")
        for w in warnings
    ] or ["- none"]
    return "\n".join(lines) + "\n"
