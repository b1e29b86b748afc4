"""Section 7: external validation per site and dataset shift (Zech et al. 2018; Rabanser et al. 2019)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from auditkit.report import figures
from auditkit.report import formatting as fmt
from auditkit.report.sections.common import Source, gate_marks, not_assessed

SITE_METRICS = ("auroc", "auprc", "sensitivity", "specificity", "ppv", "npv")
SITE_CALIBRATION = ("oe", "intercept", "slope", "ece", "brier")


def _shift_rows(source: Source, shift: Mapping[str, Any]) -> list[dict[str, str]]:
    rows = []
    prevalence = shift.get("prevalence")
    if isinstance(prevalence, Mapping):
        rows.append({"test": "Prevalence difference (site \u2212 internal test)",
                     "result": source.est(prevalence, "prevalence"), "p": fmt.format_test(prevalence)})
    ks = shift.get("score_ks")
    if isinstance(ks, Mapping):
        rows.append({"test": "Score distribution, two-sample Kolmogorov\u2013Smirnov (BBSD, Rabanser et al. 2019)",
                     "result": f"D = {fmt.format_number(ks.get('statistic'))}",
                     "p": fmt.format_test(ks, correction="Bonferroni") or "\u2014"})
    domain = shift.get("domain_auroc")
    if isinstance(domain, Mapping):
        rows.append({"test": "Domain classifier AUROC (site vs internal test; 0.5 = indistinguishable)",
                     "result": source.est(domain, "auroc"), "p": fmt.format_test(domain)})
    elif "domain_auroc" in shift:
        rows.append({"test": "Domain classifier AUROC", "result": "not computed (needs model embeddings)", "p": ""})
    mmd = shift.get("mmd")
    if isinstance(mmd, Mapping):
        rows.append({"test": "Maximum mean discrepancy on embeddings",
                     "result": f"MMD\u00b2 = {fmt.format_number(mmd.get('statistic'), digits=4)}",
                     "p": fmt.format_test(mmd) or "\u2014"})
    elif "mmd" in shift:
        rows.append({"test": "Maximum mean discrepancy on embeddings", "result": "not computed (needs model embeddings)",
                     "p": ""})
    return rows


#: the per-subgroup rates of an external site (results.json external.<site>.subgroups).
SUBGROUP_COLUMNS = ("auroc", "sensitivity", "specificity", "ppv", "npv")


def _subgroup_rows(source: Source, subgroups: Any) -> list[dict[str, Any]]:
    """Return one row per attribute and group at a site: sizes and each rate's cell (a reason when undefined)."""
    if not isinstance(subgroups, Mapping):
        return []
    rows = []
    for attribute, block in subgroups.items():
        groups = block.get("groups") if isinstance(block, Mapping) else None
        for value, g in (groups or {}).items():
            if not isinstance(g, Mapping):
                continue
            rows.append({
                "group": f"{attribute} = {value}",
                "size": f"{fmt.format_count(g.get('n_patients'))} pt / {fmt.format_count(g.get('n'))} img, "
                        f"{fmt.format_count(g.get('n_positive'))} positive",
                "cells": [_compact(source, g.get(m), m) for m in SUBGROUP_COLUMNS],
            })  # fmt: skip
    return rows


def _compact(source: Source, estimate: Any, key: str) -> dict[str, str]:
    """Return a narrow cell: ``0.697 (0.541–0.852)`` (the header names the CI level), else the reason."""
    cell = source.cell(estimate, key)
    if cell["css"] != "value" or not isinstance(estimate, Mapping):
        return cell
    lo, hi = estimate.get("ci_low"), estimate.get("ci_high")
    if lo is None or hi is None:
        return cell
    d = fmt.decimals_for(key)
    interval = fmt.format_interval(lo, hi, digits=d, label=False)
    return {"text": f"{fmt.format_number(estimate['estimate'], digits=d)} ({interval})", "css": "value"}


def _site(source: Source, site: str, block: Mapping[str, Any]) -> dict[str, Any]:
    disc = block.get("discrimination") if isinstance(block.get("discrimination"), Mapping) else {}
    calib = block.get("calibration") if isinstance(block.get("calibration"), Mapping) else {}
    delta = block.get("delta") if isinstance(block.get("delta"), Mapping) else {}
    internal = source.mapping("discrimination.test")
    rows = []
    for key in SITE_METRICS:
        if key not in disc and key not in delta:
            continue
        change = delta.get(key)
        method = change.get("method") if isinstance(change, Mapping) else None
        rows.append({
            "metric": fmt.metric_label(key),
            "site": source.cell(disc.get(key), key),
            "internal": source.cell(internal.get(key), key),
            "delta": source.cell(change, key) if key in delta else {"text": "not reported", "css": "absent"},
            "test": (fmt.format_test(change) + (f" ({method})" if method else "")) if isinstance(change, Mapping)
            else "",
            "gate": gate_marks(source, f"external.{site}.delta.{key}") + gate_marks(
                source, f"external.{site}.discrimination.{key}"),
        })
    calibration = [{"metric": fmt.metric_label(k), "value": source.cell(calib.get(k), k),
                    "internal": source.cell(source.mapping("calibration.test").get(k), k)}
                   for k in SITE_CALIBRATION if k in calib]
    cohort = source.mapping(f"cohorts.{site}")
    return {
        "subgroups": _subgroup_rows(source, block.get("subgroups")),
        "name": str(site),
        "counts": (f"{fmt.format_count(cohort.get('n_images'))} images of {fmt.format_count(cohort.get('n_patients'))} "
                   f"patients; {fmt.format_count(cohort.get('n_positive'))} positive; prevalence "
                   f"{source.est(cohort.get('prevalence'), 'prevalence')}") if cohort else "counts not recorded",
        "rows": rows,
        "calibration": calibration,
        "shift": _shift_rows(source, block.get("shift") if isinstance(block.get("shift"), Mapping) else {}),
        "warnings": [str(w) for w in block.get("warnings") or []],
    }


def _score_figure(source: Source) -> str | None:
    panels = []
    for cohort, block in source.mapping("curves").items():
        scores = block.get("scores") if isinstance(block, Mapping) else None
        if isinstance(scores, Mapping) and scores.get("bin_edges"):
            panels.append({"title": source.cohort_label(cohort), **scores})
    return source.assets.svg(figures.score_histogram_svg(panels)) if panels else None


def build_external(source: Source) -> dict[str, Any]:
    """Return one block per external site (internal vs external, shift tests) and score histograms."""
    external = source.mapping("external")
    sites = [_site(source, name, block) for name, block in external.items() if isinstance(block, Mapping)]
    return {
        "available": bool(sites),
        "not_assessed": not_assessed(
            "no site was declared external (--external-site), so performance on data from a site that played no "
            "part in development is unknown; FDA's draft guidance (2025) expects test data from sites different "
            "from those used in development"),
        "sites": sites,
        "subgroup_headers": [fmt.metric_label(m) for m in SUBGROUP_COLUMNS],
        "ci_label": source.ci_label,
        "scores": _score_figure(source),
    }
