"""The model card: FDA's draft guidance (2025) Appendix E layout, as JSON and as a report section.

FDA says a model card is not required and its example is not a template;
this card follows the example's headings: device information, regulatory
status, description (users, use, inputs and outputs), performance and
limitations (accuracy with 95% CIs overall, per subgroup and per site; the
test data's sources, sizes and demographics per split; known gaps), and risk
management. Everything comes from results.json; what only the manufacturer
knows is marked "To be provided by the manufacturer." and never invented.
:func:`build_model_card` returns the JSON (raw numbers, estimate objects as
results.json has them); :func:`card_context` the same content as display
strings for the template.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from auditkit.report import formatting as fmt
from auditkit.report.sections.common import Source

TO_BE_PROVIDED = "To be provided by the manufacturer."
CARD_FORMAT = "auditkit-model-card/1 (structure of FDA draft guidance 2025, Appendix E)"

#: the accuracy measures Appendix E names (binary output), each with its 95% CI.
PERFORMANCE_METRICS = ("auroc", "sensitivity", "specificity", "ppv", "npv")
#: the subgroup variables FDA's subgroup analysis plan should generally include (section X), and the
#: column names that hold each; a variable none of whose names is an attribute is declared absent.
REQUESTED_SUBGROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("sex", ("sex", "gender")),
    ("age", ("age", "age_group", "age_band", "agegroup")),
    ("race", ("race",)),
    ("ethnicity", ("ethnicity",)),
    ("disease variables (severity, subtype)", ("severity", "subtype", "stage", "disease_severity")),
    ("acquisition equipment", ("scanner", "manufacturer", "device", "equipment", "scanner_model", "vendor")),
)
SPLIT_ROLES = {"train": "training", "val": "tuning (threshold, recalibration)", "test": "internal test"}


def _get(source: Source, path: str) -> Any:
    value = source.get(path)
    return TO_BE_PROVIDED if value in (None, "", []) else value


def _estimates(block: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    block = block if isinstance(block, Mapping) else {}
    return {k: block.get(k) for k in keys if isinstance(block.get(k), Mapping)}


def _present_attributes(source: Source) -> set[str]:
    names = set(source.mapping("data.attributes")) | set(source.mapping("fairness"))
    for block in source.mapping("data.subgroups").values():
        if isinstance(block, Mapping):
            names |= {k for k in block if k != "total"}
    return {str(n).lower() for n in names}


def absent_subgroups(source: Source) -> list[dict[str, str]]:
    """Return each subgroup variable FDA asks for with whether this audit had it: ``{variable, status}``."""
    present = _present_attributes(source)
    rows = []
    for variable, columns in REQUESTED_SUBGROUPS:
        found = sorted(c for c in columns if c in present)
        rows.append({"variable": variable, "status": f"analysed (column {', '.join(found)})" if found else
                     "absent: no such column in the data; its distribution and subgroup performance are unknown"})
    sites = source.mapping("data.sites")
    rows.append({"variable": "clinical site", "status": f"analysed ({len(sites)} sites)" if sites else
                 "absent: no site column"})
    return rows


def _power_statements(source: Source) -> list[dict[str, Any]]:
    statements = []
    for attribute, block in source.mapping("fairness").items():
        power = block.get("power") if isinstance(block, Mapping) and isinstance(block.get("power"), Mapping) else {}
        for metric, record in power.items():
            if isinstance(record, Mapping):
                statements.append({"comparison": f"fairness.{attribute}.gap.{metric}", **dict(record)})
    for site, block in source.mapping("external").items():
        power = block.get("power") if isinstance(block, Mapping) and isinstance(block.get("power"), Mapping) else {}
        for metric, record in power.items():
            if isinstance(record, Mapping):
                statements.append({"comparison": f"external.{site}.delta.{metric}", **dict(record)})
    return statements


def _limitations(source: Source) -> list[str]:
    from auditkit.report.sections.summary import build_findings

    items: list[str] = []
    given = source.get("intended_use.limitations")
    if given:
        items.append(f"Stated by the manufacturer: {given}")
    for rule in source.gate_rules():
        if rule.get("blocking"):
            items.append(f"Release rule {rule.get('id')} blocks: {rule.get('metric')} ({rule.get('message')}).")
    items += [f["message"] for f in build_findings(source)]
    sites = source.mapping("data.sites")
    test_sites = [s for s, per in sites.items() if isinstance(per, Mapping) and (per.get("test") or per.get("external"))]
    if sites and len(test_sites) < 3:
        items.append(f"Test data from {len(test_sites)} site(s): fewer than the three geographically diverse sites "
                     "FDA's draft guidance suggests may be appropriate.")
    return items


def _external_subgroups(source: Source) -> str:
    """Return whether subgroup performance was computed at each external site (sizes are always listed)."""
    sites = list(source.mapping("external"))
    if not sites:
        return "no external site in this audit"
    analysed = {str(b.get("cohort")) for b in source.mapping("fairness").values() if isinstance(b, Mapping)}
    analysed |= {s for s in sites if isinstance(source.get(f"external.{s}.fairness"), Mapping)}
    rates = [s for s in sites if s not in analysed and isinstance(source.get(f"external.{s}.subgroups"), Mapping)]
    done = [s for s in sites if s in analysed]
    missing = [s for s in sites if s not in analysed and s not in rates]
    parts = []
    if done:
        parts.append(f"subgroup performance computed at {', '.join(done)}")
    if rates:
        parts.append(f"per-subgroup rates with CIs at {', '.join(rates)} in the external validation section "
                     "(descriptive: no gap tests; add the site to fairness_cohorts for those)")
    if missing:
        parts.append(f"subgroup performance at {', '.join(missing)} not computed by this audit (subgroups were "
                     f"analysed on: {', '.join(sorted(analysed)) or 'none'}; add the site to fairness_cohorts); "
                     "its subgroup sizes are in the demographics tables")
    return "; ".join(parts)


def build_model_card(source: Source) -> dict[str, Any]:
    """Return the model card as JSON-serialisable data (estimates as results.json holds them)."""
    from auditkit.report.sections.summary import model_version

    model = source.mapping("model")
    intended = source.mapping("intended_use")
    splits = {}
    for name, counts in source.mapping("data.splits").items():
        if isinstance(counts, Mapping):
            splits[name] = {"role": SPLIT_ROLES.get(name, "external test"), **dict(counts)}
    performance: dict[str, Any] = {"internal_test": _estimates(source.get("discrimination.test"), PERFORMANCE_METRICS)}
    for site, block in source.mapping("external").items():
        performance[f"external:{site}"] = _estimates((block or {}).get("discrimination"), PERFORMANCE_METRICS)
    subgroups: dict[str, Any] = {}
    for attribute, block in source.mapping("fairness").items():
        groups = block.get("groups") if isinstance(block, Mapping) else None
        if not isinstance(groups, Mapping):
            continue
        subgroups[attribute] = {
            "cohort": block.get("cohort"),
            "groups": {value: {"n_images": g.get("n"), "n_patients": g.get("n_patients"),
                               "n_positive": g.get("n_positive"), **_estimates(g, PERFORMANCE_METRICS)}
                       for value, g in groups.items() if isinstance(g, Mapping)},
        }
    return {
        "format": CARD_FORMAT,
        "device_information": {
            "name": model.get("name") or TO_BE_PROVIDED,
            "version": model_version(source),
            "date": source.get("created"),
            "model_architecture": model.get("arch") or TO_BE_PROVIDED,
            "parameters": model.get("n_parameters"),
            "weights_sha256": model.get("sha256"),
        },
        "regulatory_status": _get(source, "intended_use.regulatory_status"),
        "description": {
            "intended_users": intended.get("intended_users") or TO_BE_PROVIDED,
            "intended_use": intended.get("intended_use") or TO_BE_PROVIDED,
            "indications": intended.get("indications") or TO_BE_PROVIDED,
            "instructions_for_use": intended.get("instructions_for_use") or TO_BE_PROVIDED,
            "clinical_benefits_and_limitations": intended.get("clinical_benefits") or TO_BE_PROVIDED,
            "workflow_phase": intended.get("workflow_phase") or TO_BE_PROVIDED,
            "degree_of_automation": intended.get("degree_of_automation") or TO_BE_PROVIDED,
            "inputs": {"input_size": model.get("input_size"), "channels": model.get("in_channels"),
                       "normalisation": model.get("normalization")},
            "outputs": model.get("output") or {"classes": source.get("run.classes"),
                                               "positive_class": source.get("run.positive_class")},
            "operating_point": source.get("operating_point"),
            "output_calibration": model.get("calibration"),
        },
        "data": {
            "splits": splits,
            "sites": source.get("data.sites"),
            "subgroup_sizes": source.get("data.subgroups"),
            "requested_subgroups": absent_subgroups(source),
            "reference_standard": TO_BE_PROVIDED,
            "collection_period_and_sources": TO_BE_PROVIDED,
        },
        "performance": {
            "overall": performance,
            "subgroups": subgroups,
            "internal_sites": source.get("data.site_comparison"),
            "external_subgroups": _external_subgroups(source),
            "sample_size": _power_statements(source),
            "operating_point_threshold": source.get("operating_point.threshold"),
            "ci_level": source.ci_level,
        },
        "limitations": _limitations(source),
        "risk_management": {
            "potential_risks": TO_BE_PROVIDED,
            "compute_required": TO_BE_PROVIDED,
            "deployment_and_monitoring": TO_BE_PROVIDED,
            "software_quality": TO_BE_PROVIDED,
        },
    }


# --- display -------------------------------------------------------------------------------


def _kv(pairs: list[tuple[str, Any]]) -> list[dict[str, str]]:
    return [{"label": label, "value": value if isinstance(value, str) else fmt.plain(value)} for label, value in pairs]


def _size(counts: Any) -> str:
    if not isinstance(counts, Mapping):
        return "\u2014"
    images = fmt.format_count(counts.get("n_images"))
    patients = counts.get("n_patients")
    return f"{fmt.format_count(patients)} pt / {images} img" if patients is not None else f"{images} img"


def card_context(source: Source, card: Mapping[str, Any]) -> dict[str, Any]:
    """Return the model card's display strings: key-value rows and tables the template lays out."""
    sites = card["performance"]["internal_sites"]
    return {
        "format": card["format"],
        **_identity_rows(source, card),
        "splits": _split_rows(source, card),
        "demographics": _demographics(source, card),
        "requested": card["data"]["requested_subgroups"],
        "overall_headers": [fmt.metric_label(m) for m in PERFORMANCE_METRICS],
        "overall": _overall_rows(source, card),
        "subgroups": _subgroup_rows(source, card),
        "sites": _site_rows(source, card),
        "external_subgroups": card["performance"]["external_subgroups"],
        "sites_threshold": fmt.format_number((sites or {}).get("threshold"), digits=4) if sites else "",
        "power": _power_rows(source, card),
        "limitations": card["limitations"],
        "risk": _kv([(k.replace("_", " ").capitalize(), v) for k, v in card["risk_management"].items()]),
        "data_tbp": _kv([("Reference standard", card["data"]["reference_standard"]),
                         ("Collection period and sources", card["data"]["collection_period_and_sources"])]),
        "ci_label": source.ci_label,
    }


def _split_rows(source: Source, card: Mapping[str, Any]) -> list[dict[str, str]]:
    """Return one row per split: its role, images, patients, positives and prevalence."""
    rows = []
    for name, counts in card["data"]["splits"].items():
        n, pos = counts.get("n_images"), counts.get("n_positive")
        rows.append({"split": source.cohort_label(name) if name != "external" else "External",
                     "role": counts.get("role", ""), "images": fmt.format_count(n),
                     "patients": fmt.format_count(counts.get("n_patients")),
                     "positives": fmt.format_count(pos),
                     "prevalence": fmt.format_percent(pos / n) if isinstance(n, int) and n and isinstance(pos, int)
                     else "\u2014"})
    return rows


def _demographics(source: Source, card: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return one table per attribute: each value's size in every split, then the total."""
    demographics = []
    sizes = card["data"]["subgroup_sizes"] if isinstance(card["data"]["subgroup_sizes"], Mapping) else {}
    names = [n for n in sizes if isinstance(sizes[n], Mapping)]
    attributes: list[str] = []
    for name in names:
        attributes += [a for a in sizes[name] if a != "total" and a not in attributes]
    for attribute in attributes:
        values: list[str] = []
        for name in names:
            values += [v for v in (sizes[name].get(attribute) or {}) if v not in values]
        rows = [{"value": value, "cells": [_size((sizes[name].get(attribute) or {}).get(value)) for name in names]}
                for value in values]
        rows.append({"value": "total", "cells": [_size(sizes[name].get("total")) for name in names]})
        demographics.append({"attribute": attribute, "columns": [source.cohort_label(n) if n in SPLIT_ROLES
                                                                 else f"External: {n}" for n in names], "rows": rows})
    return demographics


def _overall_rows(source: Source, card: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return the overall performance rows (internal test, each external site)."""
    overall = []
    for cohort, block in card["performance"]["overall"].items():
        label = "Internal test" if cohort == "internal_test" else f"External: {cohort.split(':', 1)[1]}"
        overall.append({"cohort": label, "cells": [source.cell(block.get(m), m) for m in PERFORMANCE_METRICS]})
    return overall


def _subgroup_rows(source: Source, card: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return one row per subgroup: its size and its AUROC, sensitivity and specificity."""
    rows = []
    for attribute, block in card["performance"]["subgroups"].items():
        for value, group in block["groups"].items():
            rows.append({
                "attribute": attribute, "group": str(value),
                "size": _size({"n_images": group.get("n_images"), "n_patients": group.get("n_patients")}),
                "cells": [source.cell(group.get(m), m) for m in ("auroc", "sensitivity", "specificity")],
                "cohort": source.cohort_label(str(block.get("cohort") or "test")),
            })
    return rows


def _site_rows(source: Source, card: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return one row per internal site: its size, metrics and AUROC against the other sites."""
    rows = []
    sites = card["performance"]["internal_sites"]
    for site, entry in ((sites or {}).get("sites") or {}).items():
        vs = entry.get("auroc_vs_rest") if isinstance(entry.get("auroc_vs_rest"), Mapping) else None
        rows.append({
            "site": site, "size": _size(entry),
            "cells": [source.cell(entry.get(m), m) for m in ("auroc", "sensitivity", "specificity")],
            "versus": (f"{fmt.format_number(vs.get('estimate'))} (p = {fmt.format_number(vs.get('p_value'))})"
                       if vs and vs.get("estimate") is not None else str(entry.get("reason") or "\u2014")),
        })
    return rows


def _power_rows(source: Source, card: Mapping[str, Any]) -> list[dict[str, str]]:
    """Return the sample-size statements of the gated comparisons (all of them when none is gated)."""
    power = []
    gated = {str(rule.get("metric")) for rule in source.gate_rules()}
    records = [r for r in card["performance"]["sample_size"] if r["comparison"] in gated]
    for record in records or card["performance"]["sample_size"]:
        statement = record.get("statement")
        if not statement:
            detectable = record.get("minimum_detectable")
            statement = (f"minimum detectable difference {fmt.format_number(detectable)} at the observed sizes"
                         if isinstance(detectable, (int, float)) else "not recorded")
        power.append({"comparison": record["comparison"].replace(".", ".\u200b"), "statement": str(statement)})
    return power


def _identity_rows(source: Source, card: Mapping[str, Any]) -> dict[str, list[dict[str, str]]]:
    """Return the device, description and input/output key-value rows."""
    device = card["device_information"]
    description = card["description"]
    inputs = description["inputs"]
    size = inputs.get("input_size")
    outputs = description["outputs"] if isinstance(description["outputs"], Mapping) else {}
    point = description["operating_point"] if isinstance(description["operating_point"], Mapping) else {}
    calibration = description["output_calibration"] if isinstance(description["output_calibration"], Mapping) else {}
    return {
        "device": _kv([("Name", device["name"]), ("Version", device["version"]), ("Date (audit)", device["date"]),
                       ("Model architecture", device["model_architecture"]),
                       ("Parameters", fmt.format_count(device["parameters"]) if device["parameters"] else None),
                       ("Weights SHA-256", device["weights_sha256"]),
                       ("Regulatory status", card["regulatory_status"])]),
        "description": _kv([("Intended users", description["intended_users"]),
                            ("Intended use", description["intended_use"]),
                            ("Indications (target population, environment)", description["indications"]),
                            ("Instructions for use", description["instructions_for_use"]),
                            ("Clinical benefits and limitations", description["clinical_benefits_and_limitations"]),
                            ("Workflow phase", description["workflow_phase"]),
                            ("Degree of automation", description["degree_of_automation"])]),
        "io": _kv([("Input", (f"{size[0]} \u00d7 {size[1]} pixels, {inputs.get('channels')} channel(s)"
                              if isinstance(size, list) and len(size) == 2 else "not recorded")),
                   ("Output", str(outputs.get("score") or f"probability of {outputs.get('positive_class')}")),
                   ("Operating point", (f"threshold {fmt.format_number(point.get('threshold'), digits=4)} "
                                        f"({point.get('rule')}, chosen on {source.cohort_label(str(point.get('chosen_on')))})"
                                        if point else "not recorded")),
                   ("Output calibration", (f"{calibration.get('method')} fitted on "
                                           f"{source.cohort_label(str(calibration.get('fitted_on')))} "
                                           f"(temperature {fmt.format_number(calibration.get('temperature'))})"
                                           if calibration else "none recorded"))]),
    }
