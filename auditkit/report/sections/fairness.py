"""Section 6: subgroup fairness -- per-group tables, gaps with tests, forest plots, intersections.

Presents what ``results["fairness"]`` holds: per-group metrics at the global
operating point (Seyyed-Kalantari et al. 2021), between-group gaps with CIs
and multiplicity-corrected tests, worst-group values (Zong et al. 2023), the
prevalence-adjusted re-analysis (Glocker et al. 2023) and small-group flags.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from auditkit.report import figures
from auditkit.report import formatting as fmt
from auditkit.report.sections.common import Source, gate_marks, not_assessed

DISCRIMINATION_COLUMNS = ("prevalence", "auroc", "sensitivity", "specificity")
ERROR_COLUMNS = ("fnr", "fpr", "ppv", "npv", "ece", "oe")
FOREST_METRICS = ("auroc", "fnr", "fpr")
GAP_ORDER = ("auroc", "fnr", "fpr", "sensitivity", "specificity", "equalized_odds", "ppv", "ece", "oe", "brier")


def compact(source: Source, estimate: Any, key: str) -> dict[str, str]:
    """Return a table cell ``0.912 (0.887–0.934)`` (the header states the CI level)."""
    cell = source.cell(estimate, key)
    if cell["css"] == "value":
        cell = dict(cell)
        cell["text"] = cell["text"].replace(f"{source.ci_label} ", "")
    return cell


def _threshold_lines(source: Source, attribute: str, metric: str, groups: list[str]) -> list[dict[str, Any]]:
    lines = []
    for rule in source.gate_rules():
        path = str(rule.get("metric", ""))
        threshold = rule.get("threshold")
        if not isinstance(threshold, (int, float)) or isinstance(threshold, bool):
            continue
        if path == f"fairness.{attribute}.worst_group.{metric}":
            lines.append({"value": float(threshold), "row": None})
            continue
        prefix = f"fairness.{attribute}.groups."
        if path.startswith(prefix) and path.endswith(f".{metric}"):
            group = path[len(prefix): -len(metric) - 1]
            lines.append({"value": float(threshold), "row": groups.index(group) if group in groups else None})
    return lines


def _forest(source: Source, attribute: str, groups: Mapping[str, Any]) -> str | None:
    names = list(groups)
    panels = []
    for metric in FOREST_METRICS:
        if not any(isinstance(g, Mapping) and metric in g for g in groups.values()):
            continue
        rows = []
        for name in names:
            estimate = groups[name].get(metric) if isinstance(groups[name], Mapping) else None
            estimate = estimate if isinstance(estimate, Mapping) else {}
            rows.append({"estimate": estimate.get("estimate"), "low": estimate.get("ci_low"),
                         "high": estimate.get("ci_high")})
        panels.append({"title": fmt.metric_label(metric), "rows": rows,
                       "thresholds": _threshold_lines(source, attribute, metric, names)})
    if not panels:
        return None
    return source.assets.svg(figures.forest_svg(panels, row_labels=names))


def _primary_gaps(gaps: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """Return (gaps shown in the table, descriptive gaps only listed by name).

    The table holds the gaps the audit tested with a multiplicity correction
    (they carry ``p_adjusted``), equalized odds, and any gap a gate rule names;
    the other gaps are descriptive and stay in results.json.
    """
    keys = [k for k in GAP_ORDER if k in gaps] + [k for k in gaps if k not in GAP_ORDER]
    adjusted = [k for k in keys if isinstance(gaps[k], Mapping) and gaps[k].get("p_adjusted") is not None]
    if not adjusted:
        return keys, []
    shown = [k for k in keys if k in adjusted or k == "equalized_odds"]
    return shown, [k for k in keys if k not in shown]


def _gap_rows(source: Source, attribute: str, block: Mapping[str, Any], correction: Any) -> list[dict[str, Any]]:
    gaps = block.get("gap") if isinstance(block.get("gap"), Mapping) else {}
    shown, _ = _primary_gaps(gaps)
    gated = {str(r.get("metric", "")).rsplit(".", 1)[-1] for r in source.gate_rules()
             if str(r.get("metric", "")).startswith(f"fairness.{attribute}.gap.")}
    keys = shown + [k for k in gaps if k in gated and k not in shown]
    rows = []
    for key in keys:
        estimate = gaps[key]
        groups = estimate.get("groups") if isinstance(estimate, Mapping) else None
        rows.append({
            "metric": fmt.metric_label(key),
            "between": " \u2212 ".join(str(g) for g in groups) if groups else "\u2014",
            "gap": source.cell(estimate, key),
            "test": fmt.format_test(estimate, correction=correction) or "no test recorded",
            "gate": gate_marks(source, f"fairness.{attribute}.gap.{key}"),
        })
    return rows


def _gap_forest(source: Source, attributes: Mapping[str, Any]) -> str | None:
    """One forest plot of every attribute's gaps per metric, with the gate thresholds of rules on them."""
    labels: list[str] = []
    keyed: list[tuple[str, Mapping[str, Any]]] = []
    for attribute, block in attributes.items():
        if isinstance(block, Mapping) and isinstance(block.get("gap"), Mapping):
            labels.append(attribute)
            keyed.append((attribute, block["gap"]))
    if not labels:
        return None
    panels = []
    for metric in ("auroc", "fnr", "fpr"):
        if not any(metric in gaps for _, gaps in keyed):
            continue
        rows, thresholds = [], []
        for index, (attribute, gaps) in enumerate(keyed):
            estimate = gaps.get(metric) if isinstance(gaps.get(metric), Mapping) else {}
            rows.append({"estimate": estimate.get("estimate"), "low": estimate.get("ci_low"),
                         "high": estimate.get("ci_high")})
            for rule in source.rules_for(f"fairness.{attribute}.gap.{metric}"):
                if isinstance(rule.get("threshold"), (int, float)):
                    thresholds.append({"value": float(rule["threshold"]), "row": index})
        panels.append({"title": f"{fmt.metric_label(metric)} gap", "rows": rows, "reference": 0.0,
                       "thresholds": thresholds})
    return source.assets.svg(figures.forest_svg(panels, row_labels=labels)) if panels else None


def _shared_reason(estimates: list[Any]) -> str | None:
    """Return the reason when every estimate is undefined for one and the same reason, else None."""
    reasons = {e.get("reason") for e in estimates if isinstance(e, Mapping) and e.get("estimate") is None}
    defined = [e for e in estimates if isinstance(e, Mapping) and e.get("estimate") is not None]
    if defined or len(reasons) != 1:
        return None
    return str(next(iter(reasons)) or "no reason recorded")


def _cells_or_merged(source: Source, values: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """Return a row's cells, or one merged "not computable" cell when they all fail for one reason."""
    estimates = [values.get(k) for k in keys]
    reason = _shared_reason(estimates)
    if reason is not None:
        return {"merged": f"not computable: {reason}", "cells": []}
    return {"merged": "", "cells": [compact(source, values.get(k), k) for k in keys]}


def _attribute(source: Source, attribute: str, block: Mapping[str, Any]) -> dict[str, Any]:
    groups = block.get("groups") if isinstance(block.get("groups"), Mapping) else {}
    multiplicity = block.get("multiplicity") if isinstance(block.get("multiplicity"), Mapping) else {}
    correction = multiplicity.get("method")
    group_rows = []
    for name, values in groups.items():
        values = values if isinstance(values, Mapping) else {}
        group_rows.append({
            "group": str(name),
            "n": fmt.format_count(values.get("n")),
            "positives": fmt.format_count(values.get("n_positive")),
            "discrimination": _cells_or_merged(source, values, DISCRIMINATION_COLUMNS[1:]),
            "prevalence": compact(source, values.get("prevalence"), "prevalence"),
            "errors": _cells_or_merged(source, values, ERROR_COLUMNS),
            "warnings": [str(w) for w in values.get("warnings") or []],
            "small": bool(values.get("warnings")),
        })
    gaps_block = block.get("gap") if isinstance(block.get("gap"), Mapping) else {}
    shown_gaps, descriptive = _primary_gaps(gaps_block)
    gaps_reason = _shared_reason(list(gaps_block.values())) if gaps_block else None
    worst = []
    for key, estimate in (block.get("worst_group") or {}).items():
        groups_named = estimate.get("groups") if isinstance(estimate, Mapping) else None
        worst.append({"metric": fmt.metric_label(key), "group": ", ".join(groups_named or []) or "\u2014",
                      "value": source.cell(estimate, key),
                      "gate": gate_marks(source, f"fairness.{attribute}.worst_group.{key}")})
    ratios = [{"metric": fmt.metric_label(k), "value": source.cell(v, k)}
              for k, v in (block.get("ratio") or {}).items() if k in shown_gaps or not shown_gaps]
    adjusted_block = block.get("prevalence_adjusted") if isinstance(block.get("prevalence_adjusted"), Mapping) else {}
    adjusted = {
        "available": bool(adjusted_block),
        "method": str(adjusted_block.get("method") or ""),
        "rows": [{"metric": fmt.metric_label(k), "value": source.cell(v, k),
                  "between": " \u2212 ".join(v.get("groups") or []) if isinstance(v, Mapping) else ""}
                 for k, v in (adjusted_block.get("gap") or {}).items() if k in shown_gaps or not shown_gaps],
        "note": "" if adjusted_block else not_assessed("the audit recorded no prevalence-adjusted re-analysis"),
        "why_unchanged": (str(adjusted_block["why_unchanged"]).rstrip(".") + ".")
        if adjusted_block.get("why_unchanged") else "",
    }
    family = multiplicity.get("family_size")
    multiplicity_text = (
        f"Adjusted p-values control the family-wise error over a family of "
        f"{family if family is not None else 'several'} gap tests by {fmt.correction_name(correction)}'s method."
        if correction else "No multiplicity correction was recorded: the p-values are unadjusted."
    )
    if multiplicity.get("note"):
        multiplicity_text += f" {str(multiplicity['note']).rstrip('.').capitalize()}."
    columns = block.get("columns") or [attribute]
    return {
        "anchor": "fair-" + "".join(ch if ch.isalnum() else "-" for ch in attribute)[:40],
        "name": str(attribute),
        "title": (" \u00d7 ".join(str(c) for c in columns) if block.get("intersection") else str(attribute)),
        "intersection": bool(block.get("intersection")),
        "cohort": source.cohort_label(str(block.get("cohort") or "test")),
        "groups": group_rows,
        "gaps": [] if gaps_reason else _gap_rows(source, attribute, block, correction),
        "gaps_note": f"Gaps not computable: {gaps_reason}." if gaps_reason else "",
        "descriptive_gaps": ", ".join(fmt.metric_label(k) for k in descriptive),
        "worst": worst,
        "ratios": ratios,
        "adjusted": adjusted,
        "multiplicity": multiplicity_text,
        "warnings": [str(w) for w in block.get("warnings") or []],
        "forest": _forest(source, attribute, groups),
    }


def build_fairness(source: Source) -> dict[str, Any]:
    """Return one block per attribute (intersections last) and a forest plot of all gaps."""
    attributes = source.mapping("fairness")
    if not attributes:
        return {"available": False, "not_assessed": not_assessed(
            "no subgroup attributes were analysed; pass --attributes (e.g. sex,age_group) to 'auditkit audit'"),
            "attributes": [], "gap_forest": None, "discrimination_headers": [], "error_headers": []}
    ordered = sorted(attributes.items(), key=lambda item: bool((item[1] or {}).get("intersection")))
    blocks = [_attribute(source, name, block) for name, block in ordered if isinstance(block, Mapping)]
    return {
        "available": True,
        "not_assessed": "",
        "attributes": blocks,
        "gap_forest": _gap_forest(source, dict(ordered)),
        "discrimination_headers": [fmt.metric_label(k) for k in DISCRIMINATION_COLUMNS[1:]],
        "error_headers": [fmt.metric_label(k).replace(" (equal-width bins)", "") for k in ERROR_COLUMNS],
    }
