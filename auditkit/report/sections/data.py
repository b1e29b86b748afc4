"""Sections 1 and 2: intended use (human-provided, verbatim) and the data the audit saw."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from auditkit.report import formatting as fmt
from auditkit.report.sections.common import TO_BE_COMPLETED, Source, not_assessed

#: Intended-use fields in the order a reviewer reads them (FDA App. E; EU AI Act Annex IV 1(a)).
INTENDED_USE_FIELDS: tuple[tuple[str, str], ...] = (
    ("intended_use", "Intended use"),
    ("indications", "Indications for use (target population, environment)"),
    ("intended_users", "Intended users and their expertise"),
    ("contraindications", "Contraindications"),
    ("limitations", "Known limitations"),
    ("regulatory_status", "Regulatory status"),
    ("manufacturer", "Manufacturer"),
    ("device_version", "Device version"),
)

#: FDA's draft guidance: at least three geographically diverse sites may be appropriate for validation.
MIN_TEST_SITES = 3


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "; ".join(str(v) for v in value)
    return str(value)


def build_intended_use(source: Source) -> dict[str, Any]:
    """Return the manufacturer's intended-use fields verbatim, with placeholders for missing ones."""
    given = source.mapping("intended_use")
    fields = []
    for key, label in INTENDED_USE_FIELDS:
        value = given.get(key)
        provided = value not in (None, "", [])
        fields.append({"label": label, "text": _text(value) if provided else TO_BE_COMPLETED, "provided": provided})
    known = {key for key, _ in INTENDED_USE_FIELDS}
    for key, value in given.items():
        if key not in known and value not in (None, "", []):
            fields.append({"label": key.replace("_", " ").capitalize(), "text": _text(value), "provided": True})
    return {
        "available": bool(given),
        "fields": fields,
        "note": (
            "Provided by the manufacturer in the audit configuration and reproduced verbatim; "
            "auditkit has not verified it."
            if given
            else "No intended-use statement was given in the audit configuration. " + TO_BE_COMPLETED
        ),
    }


def _split_rows(source: Source) -> list[dict[str, str]]:
    rows = []
    for split, counts in source.mapping("data.splits").items():
        if not isinstance(counts, Mapping):
            continue
        n, pos = counts.get("n_images"), counts.get("n_positive")
        share = fmt.format_percent(pos / n) if isinstance(n, int) and n and isinstance(pos, int) else "\u2014"
        rows.append({"split": source.cohort_label(split), "images": fmt.format_count(n),
                     "patients": fmt.format_count(counts.get("n_patients")),
                     "positives": f"{fmt.format_count(pos)} ({share})"})
    return rows


def _cohort_rows(source: Source) -> list[dict[str, Any]]:
    roles = {"validation": "validation (threshold and recalibration)", "internal_test": "internal test",
             "external": "external test"}
    rows = []
    for name, cohort in source.mapping("cohorts").items():
        if not isinstance(cohort, Mapping):
            continue
        n_img, n_pat = cohort.get("n_images"), cohort.get("n_patients")
        per_patient = f"{n_img / n_pat:.2f}" if isinstance(n_img, int) and isinstance(n_pat, int) and n_pat else "\u2014"
        rows.append({
            "cohort": source.cohort_label(name),
            "role": roles.get(str(cohort.get("role")), fmt.plain(cohort.get("role"))),
            "images": fmt.format_count(n_img),
            "patients": fmt.format_count(n_pat),
            "per_patient": per_patient,
            "positives": fmt.format_count(cohort.get("n_positive")),
            "negatives": fmt.format_count(cohort.get("n_negative")),
            "prevalence": source.cell(cohort.get("prevalence"), "prevalence"),
            "warnings": [str(w) for w in cohort.get("warnings") or []],
        })
    return rows


def _attribute_tables(source: Source) -> list[dict[str, Any]]:
    tables = []
    for attribute, per_cohort in source.mapping("data.attributes").items():
        if not isinstance(per_cohort, Mapping):
            continue
        cohorts = [c for c in per_cohort if isinstance(per_cohort[c], Mapping)]
        values: list[str] = []
        for cohort in cohorts:
            for value in per_cohort[cohort]:
                if value not in values:
                    values.append(value)
        totals = {c: sum(int(v) for v in per_cohort[c].values() if isinstance(v, int)) for c in cohorts}
        rows = []
        for value in values:
            cells = []
            for cohort in cohorts:
                count = per_cohort[cohort].get(value)
                share = fmt.format_percent(count / totals[cohort]) if isinstance(count, int) and totals[cohort] else ""
                cells.append(f"{fmt.format_count(count if count is not None else 0)}" + (f" ({share})" if share else ""))
            rows.append({"value": str(value), "cells": cells})
        tables.append({"attribute": str(attribute), "cohorts": [source.cohort_label(c) for c in cohorts], "rows": rows})
    return tables


def _site_table(source: Source) -> dict[str, Any]:
    sites = source.mapping("data.sites")
    splits: list[str] = []
    for per_split in sites.values():
        if isinstance(per_split, Mapping):
            splits.extend(s for s in per_split if s not in splits)
    rows = [{"site": str(site), "cells": [fmt.format_count((per or {}).get(s)) if (per or {}).get(s) is not None
                                          else "\u2014" for s in splits]}
            for site, per in sites.items() if isinstance(per, Mapping)]
    test_sites = [site for site, per in sites.items()
                  if isinstance(per, Mapping) and any(per.get(s) for s in ("test", "external"))]
    note = ""
    if sites:
        n = len(test_sites)
        if n < MIN_TEST_SITES:
            note = (f"The test data come from {n} site{'s' if n != 1 else ''}: fewer than the {MIN_TEST_SITES} "
                    "geographically diverse sites FDA's draft guidance (2025) suggests may be appropriate for "
                    "clinical validation.")
        else:
            note = f"The test data come from {n} sites."
    return {"splits": [source.cohort_label(s) for s in splits], "rows": rows, "note": note,
            "flag": bool(sites) and len(test_sites) < MIN_TEST_SITES}


def _disjointness(source: Source) -> dict[str, Any]:
    check = source.mapping("data.disjointness")
    if not check:
        return {"available": False, "text": not_assessed("the audit recorded no disjointness check"),
                "verdict": fmt.verdict("undefined"), "overlaps": []}
    passed = check.get("passed")
    overlaps = [
        {"a": source.cohort_label(str(o.get("a"))), "b": source.cohort_label(str(o.get("b"))),
         "n": fmt.format_count(o.get("n_patients"))}
        for o in check.get("overlaps") or [] if isinstance(o, Mapping)
    ]
    level = check.get("level") or "unknown"
    text = (f"Checked at the {level} level: no {level} appears in more than one split."
            if passed else f"Checked at the {level} level: some {level}s appear in more than one split (below); "
            "performance estimates on the affected splits may be optimistic.")
    return {"available": True, "text": text, "verdict": fmt.verdict("pass" if passed else "fail"),
            "overlaps": overlaps}


def _flow(source: Source) -> list[dict[str, str]]:
    return [{"stage": str(step.get("stage", "")), "n": fmt.format_count(step.get("n"))}
            for step in source.get("data.flow", []) if isinstance(step, Mapping)]


def _acquisition(source: Source) -> list[dict[str, str]]:
    acquisition = source.mapping("data.acquisition")
    return [{"site": str(site), "text": fmt.plain(info)} for site, info in acquisition.items()]


def build_data(source: Source) -> dict[str, Any]:
    """Return the data section: splits, cohorts, attributes per cohort, sites, disjointness, flow."""
    data = source.mapping("data")
    cohorts = _cohort_rows(source)
    return {
        "available": bool(data) or bool(cohorts),
        "not_assessed": not_assessed("results.json has no data section"),
        "splits": _split_rows(source),
        "cohorts": cohorts,
        "attributes": _attribute_tables(source),
        "attributes_note": "" if source.mapping("data.attributes") else not_assessed(
            "no subgroup attributes were given in the manifest or predictions table"),
        "sites": _site_table(source),
        "disjointness": _disjointness(source),
        "flow": _flow(source),
        "acquisition": _acquisition(source),
        "cluster_column": source.get("run.cluster_column"),
    }
