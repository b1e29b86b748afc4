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
    level = round(100 * doc.get("run", {}).get("ci_level", 0.95))
    lines = _header(doc, level)
    lines += _cohorts(doc)
    lines += _operating_point(doc.get("operating_point"))
    lines += _metric_tables(doc, level)
    lines += _external(doc.get("external", {}))
    lines += _fairness(doc.get("fairness", {}))
    lines += _recalibration(doc.get("recalibration"))
    lines += ["## Warnings", ""]
    lines += [
        f"- \\[{md_text(w.get('code'))}\\] {md_text(w.get('message'))}"
        + (f" ({md_text(w['where'])})" if w.get("where") else "")
        for w in doc.get("warnings", [])
    ] or ["- none"]
    return "\n".join(lines) + "\n"


def _header(doc: Mapping[str, Any], level: int) -> list[str]:
    """Return the title and the run's date, task and interval lines."""
    run = doc.get("run", {})
    return [
        f"# Audit summary: {md_text(doc.get('model', {}).get('name', 'model'))}",
        "",
        f"- date: {doc.get('created')}; auditkit {doc.get('tool', {}).get('version')}; schema {doc.get('schema_version')}",
        f"- task: {run.get('task')} (classes: {md_text(', '.join(map(str, run.get('classes', []))))}; "
        f"positive: {md_text(run.get('positive_class'))})",
        f"- intervals: {level}% {run.get('ci_method')} bootstrap, {run.get('n_boot')} resamples, seed {run.get('seed')}; "
        f"{run.get('resampling', '')}",
        "",
    ]


def _cohorts(doc: Mapping[str, Any]) -> list[str]:
    """Return the cohorts table: role, images, patients, positives and prevalence."""
    rows = [
        [name, str(c.get("role")), str(c.get("n_images")), str(c.get("n_patients")), str(c.get("n_positive")),
         format_estimate(c.get("prevalence"))]
        for name, c in doc.get("cohorts", {}).items()
    ]  # fmt: skip
    return ["## Cohorts", "", *_table(["cohort", "role", "images", "patients", "positives", "prevalence"], rows)]


def _operating_point(op: Mapping[str, Any] | None) -> list[str]:
    """Return the operating point's sentence (nothing without one)."""
    if not op:
        return []
    target = f" (target {op['target']:g})" if isinstance(op.get("target"), (int, float)) else ""
    threshold = op.get("threshold")
    shown = f"{threshold:.4f}" if isinstance(threshold, (int, float)) else "not recorded"
    return [
        "## Operating point",
        "",
        f"rule {op.get('rule')}{target}, threshold {shown} on the positive-class score, "
        f"chosen on {op.get('chosen_on')} and frozen.",
        "",
    ]


def _metric_tables(doc: Mapping[str, Any], level: int) -> list[str]:
    """Return the discrimination and calibration tables: the registry's summary metrics per cohort and site."""
    cohorts = list(doc.get("discrimination", {}))
    external = doc.get("external", {})
    lines: list[str] = []
    for family, title in (("discrimination", "Discrimination"), ("calibration", "Calibration")):
        lines += [f"## {title} ({level}% CI)", ""]
        rows = []
        for m in metric_registry.keys(family, summary=True):
            row = [m] + [format_estimate(doc.get(family, {}).get(c, {}).get(m)) for c in cohorts]
            row += [format_estimate(external[s].get(family, {}).get(m)) for s in external]
            rows.append(row)
        lines += _table(["metric", *cohorts, *external], rows)
    return lines


def _external(external: Mapping[str, Any]) -> list[str]:
    """Return the sites' differences from internal test (the registry's ``summary_delta`` metrics)."""
    if not external:
        return []
    rows = []
    for site, block in external.items():
        for m in metric_registry.keys(summary_delta=True):
            d = block.get("delta", {}).get(m)
            if d is not None:
                method = str(d.get("method", "bootstrap")) if isinstance(d, Mapping) else ""
                rows.append([site, m, format_estimate(d), _p(d), method])
    return [
        "## External sites: difference from the internal test cohort", "",
        *_table(["site", "metric", "site − test", "p-value", "method"], rows),
    ]  # fmt: skip


def _fairness(fairness: Mapping[str, Any]) -> list[str]:
    """Return the internal test's gaps (the registry's ``summary_gap`` metrics) and worst-group AUROC."""
    if not fairness:
        return []
    rows = []
    for attr, block in fairness.items():
        for m in metric_registry.keys(summary_gap=True):  # a selection; the report has them all
            g = block.get("gap", {}).get(m)
            if g is None:
                continue
            groups = " vs ".join(g.get("groups", []) or [])
            rows.append([attr, f"{m} gap", format_estimate(g), groups, _p(g)])
        w = block.get("worst_group", {}).get("auroc")
        if w is not None:
            rows.append([attr, "worst-group AUROC", format_estimate(w), " ".join(w.get("groups", []) or []), "—"])
    return [
        "## Subgroup fairness (internal test)", "",
        *_table(["attribute", "quantity", "estimate", "groups", "p-value"], rows),
    ]  # fmt: skip


def _recalibration(rec: Mapping[str, Any] | None) -> list[str]:
    """Return the recalibration maps' parameters and their test ECE and slope."""
    if not rec:
        return []
    rows = []
    for method in ("temperature", "platt"):
        block = rec.get(method)
        if not block or "test" not in block:
            continue
        params = ", ".join(
            f"{k}={v:.3g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else f"{k}=not fitted"
            for k, v in block["parameters"].items()
        )
        rows.append([method, params, format_estimate(block["test"].get("ece")), format_estimate(block["test"].get("slope"))])
    return [
        "## Recalibration (fitted on val, evaluated on test)", "",
        *_table(["method", "parameters", "ECE after", "slope after"], rows),
    ]  # fmt: skip
