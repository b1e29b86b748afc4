"""Sections 4 and 5: discrimination (with ROC/PR curves) and calibration (the hierarchy, before/after)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from auditkit.report import figures
from auditkit.report import formatting as fmt
from auditkit.report.sections.common import Source, gate_marks, not_assessed
from auditkit.stats import metrics as metric_registry

#: The calibration hierarchy of Van Calster et al. (2016): mean, weak, then moderate (binned/curve) and overall.
CALIBRATION_LEVELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Mean calibration (calibration-in-the-large)", ("oe", "intercept")),
    ("Weak calibration", ("slope",)),
    ("Moderate calibration (binned)", ("ece", "ece_equal_mass", "ece_debiased", "mce")),
    ("Overall accuracy of probabilities", ("brier", "brier_scaled")),
)


def discrimination_columns(source: Source) -> list[tuple[str, str, Mapping[str, Any]]]:
    """Return ``(key, label, block)`` for every cohort with discrimination: val, test, then external sites."""
    columns = []
    for name, block in source.mapping("discrimination").items():
        if isinstance(block, Mapping):
            columns.append((name, source.cohort_label(name), block))
    for site, block in source.mapping("external").items():
        disc = block.get("discrimination") if isinstance(block, Mapping) else None
        if isinstance(disc, Mapping):
            columns.append((site, source.cohort_label(site), disc))
    return columns


def _metric_table(
    source: Source, columns: list[tuple[str, str, Mapping[str, Any]]], metrics: tuple[str, ...], *, prefix: str
) -> list[dict[str, Any]]:
    rows = []
    for key in metrics:
        if not any(key in block for _, _, block in columns):
            continue
        cells = [source.cell(block.get(key), key) for _, _, block in columns]
        notes = []
        for cohort, _, block in columns:
            method = (block.get(key) or {}).get("method") if isinstance(block.get(key), Mapping) else None
            if method and key == "auroc":
                notes.append(f"{source.cohort_label(cohort)}: {method}")
        marks = []
        for cohort, _, _ in columns:
            path = f"{prefix}.{cohort}.{key}" if cohort in source.mapping(prefix) else f"external.{cohort}.{prefix}.{key}"
            marks.extend(gate_marks(source, path))
        rows.append({"metric": fmt.metric_label(key), "cells": cells, "notes": "; ".join(notes), "gate": marks})
    return rows


def _per_class(source: Source) -> list[dict[str, Any]]:
    tables = []
    for cohort, block in source.mapping("discrimination").items():
        per_class = block.get("per_class") if isinstance(block, Mapping) else None
        if not isinstance(per_class, Mapping):
            continue
        metrics = [m for m in ("auroc", "sensitivity", "specificity", "ppv", "npv")
                   if any(isinstance(v, Mapping) and m in v for v in per_class.values())]
        rows = [{"label": str(cls), "cells": [source.cell(values.get(m), m) for m in metrics]}
                for cls, values in per_class.items() if isinstance(values, Mapping)]
        macro = block.get("macro") if isinstance(block.get("macro"), Mapping) else {}
        if macro:
            rows.append({"label": "macro average", "cells": [source.cell(macro.get(m), m) for m in metrics]})
        tables.append({"cohort": source.cohort_label(cohort), "metrics": [fmt.metric_label(m) for m in metrics],
                       "rows": rows})
    return tables


def _curve_figures(source: Source) -> dict[str, str | None]:
    curves = source.mapping("curves")
    roc_series, pr_series, baselines = [], [], []
    order = [c for c in curves if c == "test"] + [c for c in curves if c not in ("test", "val")]
    for index, cohort in enumerate(order):
        block = curves.get(cohort)
        if not isinstance(block, Mapping):
            continue
        roc = block.get("roc") or {}
        label = source.cohort_label(cohort)
        auroc = _auroc_for(source, cohort)
        if roc.get("fpr") and roc.get("tpr"):
            roc_series.append({"label": f"{label} (AUROC {auroc})" if auroc else label, "x": roc["fpr"],
                               "y": roc["tpr"], "low": roc.get("tpr_low"), "high": roc.get("tpr_high")})
        pr = block.get("pr") or {}
        if pr.get("recall") and pr.get("precision"):
            pr_series.append({"label": label, "x": pr["recall"], "y": pr["precision"],
                              "low": pr.get("precision_low"), "high": pr.get("precision_high")})
            prevalence = (source.mapping(f"cohorts.{cohort}").get("prevalence") or {}).get("estimate")
            if prevalence is not None:
                baselines.append({"y": prevalence, "colour_index": index})
    roc_svg = figures.curve_svg(roc_series, xlabel="1 \u2212 specificity (false-positive rate)",
                                ylabel="sensitivity (true-positive rate)", title="ROC curves",
                                diagonal=True) if roc_series else None
    pr_svg = figures.curve_svg(pr_series, xlabel="recall (sensitivity)", ylabel="precision (PPV)",
                               title="Precision-recall curves", baselines=baselines) if pr_series else None
    return {"roc": source.assets.svg(roc_svg) if roc_svg else None,
            "pr": source.assets.svg(pr_svg) if pr_svg else None}


def _auroc_for(source: Source, cohort: str) -> str:
    estimate = source.mapping(f"discrimination.{cohort}").get("auroc") or source.mapping(
        f"external.{cohort}.discrimination").get("auroc")
    if isinstance(estimate, Mapping) and estimate.get("estimate") is not None:
        return fmt.format_number(estimate["estimate"])
    return ""


def build_discrimination(source: Source) -> dict[str, Any]:
    """Return the discrimination tables (all cohorts side by side), per-class tables and curve figures."""
    columns = discrimination_columns(source)
    if not columns:
        return {"available": False, "not_assessed": not_assessed("results.json has no discrimination results"),
                "columns": [], "rows": [], "per_class": [], "figures": {"roc": None, "pr": None},
                "threshold": ""}
    threshold = source.get("operating_point.threshold")
    return {
        "available": True,
        "not_assessed": "",
        "columns": [label for _, label, _ in columns],
        "rows": _metric_table(source, columns, metric_registry.discrimination_keys(), prefix="discrimination"),
        "per_class": _per_class(source),
        "figures": _curve_figures(source),
        "threshold": fmt.format_number(threshold, digits=4) if threshold is not None else "not recorded",
    }


def _calibration_columns(source: Source) -> list[tuple[str, str, Mapping[str, Any]]]:
    """Return ``(metric path prefix, label, block)`` of every cohort's calibration as delivered."""
    columns = []
    for name, block in source.mapping("calibration").items():
        if isinstance(block, Mapping):
            columns.append((f"calibration.{name}", source.cohort_label(name), block))
    for site, block in source.mapping("external").items():
        calib = block.get("calibration") if isinstance(block, Mapping) else None
        if isinstance(calib, Mapping):
            columns.append((f"external.{site}.calibration", source.cohort_label(site), calib))
    return columns


RECALIBRATION_LABELS = {"temperature": "temperature-scaled", "platt": "Platt-scaled"}


def _recalibrated_columns(source: Source) -> list[tuple[str, str, Mapping[str, Any]]]:
    """Return the calibration of the test and external cohorts after each fitted recalibration map."""
    columns = []
    for method, block in source.mapping("recalibration").items():
        if not isinstance(block, Mapping) or "parameters" not in block:
            continue
        label = RECALIBRATION_LABELS.get(method, method)
        if isinstance(block.get("test"), Mapping):
            columns.append((f"recalibration.{method}.test", f"Internal test, {label}", block["test"]))
        for site, site_block in (block.get("external") or {}).items():
            if isinstance(site_block, Mapping):
                columns.append((f"recalibration.{method}.external.{site}", f"External: {site}, {label}", site_block))
    return columns


def _calibration_levels() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Return the hierarchy's levels, with any registered calibration metric it does not place last."""
    placed = {key for _, keys in CALIBRATION_LEVELS for key in keys}
    other = tuple(k for k in metric_registry.calibration_keys() if k not in placed)
    return (*CALIBRATION_LEVELS, ("Other calibration metrics", other)) if other else CALIBRATION_LEVELS


def _hierarchy(source: Source, columns: list[tuple[str, str, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    levels = []
    for title, keys in _calibration_levels():
        rows = []
        for key in keys:
            if not any(key in block for _, _, block in columns):
                continue
            marks = []
            for prefix, _, _ in columns:
                marks.extend(gate_marks(source, f"{prefix}.{key}"))
            rows.append({"metric": fmt.metric_label(key), "cells": [source.cell(b.get(key), key) for _, _, b in columns],
                         "gate": marks})
        if rows:
            levels.append({"title": title, "rows": rows})
    return levels


def _binning_text(source: Source) -> str:
    binning = source.mapping("calibration.test").get("binning")
    n_bins = source.mapping("calibration.test").get("n_bins") or 15
    if isinstance(binning, Mapping) and binning:
        stated = "; ".join(f"{fmt.metric_label(k)}: {v}" for k, v in binning.items())
    else:
        stated = f"{fmt.metric_label('ece')}: {n_bins} equal-width bins on [0, 1] (Guo et al. 2017)"
    return (f"Binning — {stated}. Binned ECE is biased for small samples and well-calibrated models, so the "
            "equal-mass and debiased estimators are shown beside it (Roelofs et al. 2022). The calibration "
            "intercept and slope come from logistic recalibration of the outcome on the logit of the score "
            "(Van Calster et al. 2016); ideal values are 0 and 1, and O/E 1.")


def _temperature_text(params: Any) -> str:
    value = params.get("temperature") if isinstance(params, Mapping) else None
    return f"T = {fmt.format_number(value)}" if isinstance(value, (int, float)) else ""


def _reliability_figure(source: Source) -> str | None:
    panels = []
    test = source.mapping("calibration.test")
    delivered = _temperature_text(source.mapping("model.calibration"))
    candidates: list[tuple[str, Mapping[str, Any]]] = [
        (f"Internal test, as delivered{f' ({delivered} from training)' if delivered else ''}", test)]
    temperature = source.mapping("recalibration.temperature.test")
    if temperature:
        refit = _temperature_text(source.mapping("recalibration.temperature.parameters"))
        candidates.append((f"Internal test, audit refit{f' ({refit})' if refit else ''}", temperature))
    for site, block in source.mapping("external").items():
        if isinstance(block, Mapping) and isinstance(block.get("calibration"), Mapping):
            candidates.append((f"External: {site}, as delivered", block["calibration"]))
    for title, block in candidates:
        bins = ((block.get("reliability") or {}).get("equal_width")) if isinstance(block, Mapping) else None
        if isinstance(bins, Mapping) and bins.get("mean_predicted"):
            smooth = block.get("smooth") if isinstance(block.get("smooth"), Mapping) else None
            panels.append({"title": title, **bins, "smooth": smooth})
    if not panels:
        return None
    return source.assets.svg(figures.reliability_svg(panels[:3]))


#: the chain's metrics shown per step (the gated L1 error first).
CHAIN_KEYS = ("ece_l1_debiased", "intercept", "slope", "oe", "brier")


def _chain(source: Source) -> dict[str, Any]:
    """Return the calibration chain: raw network output, as delivered (model.json), audit refit; and warnings."""
    chain = source.mapping("calibration_chain")
    if not chain:
        return {"available": False, "rows": [], "headers": [], "warnings": []}
    delivered = chain.get("as_delivered") if isinstance(chain.get("as_delivered"), Mapping) else {}
    record = delivered.get("calibration") if isinstance(delivered.get("calibration"), Mapping) else {}
    raw = chain.get("raw") if isinstance(chain.get("raw"), Mapping) else {}
    refit = chain.get("audit_recalibration") if isinstance(chain.get("audit_recalibration"), Mapping) else {}
    keys = [k for k in CHAIN_KEYS if k in source.mapping("calibration.test")]
    offset = record.get("logit_offset")
    delivered_text = ", ".join(x for x in (
        f"{record.get('method')} fitted on the {source.cohort_label(str(record.get('fitted_on'))).lower()} split"
        if record.get("method") else "", _temperature_text(record),
        f"logit offset {fmt.plain(offset)}" if offset is not None else "") if x) or "no calibration recorded"
    refit_text = _temperature_text(refit.get("temperature")) or "not fitted"
    platt = refit.get("platt") if isinstance(refit.get("platt"), Mapping) else None
    if platt:
        refit_text += "; Platt " + ", ".join(f"{k} = {fmt.format_number(v)}" for k, v in platt.items()
                                             if isinstance(v, (int, float)) and not isinstance(v, bool))
    raw_test = raw.get("test") if isinstance(raw.get("test"), Mapping) else None
    rows = [
        {"step": "1. Raw network output", "what": str(raw.get("reason") or raw.get("description") or ""),
         "cells": [source.cell((raw_test or {}).get(k), k) if raw_test else {"text": "\u2014", "css": "absent"}
                   for k in keys]},
        {"step": "2. As delivered (the released model)", "what": delivered_text,
         "cells": [source.cell(source.mapping("calibration.test").get(k), k) for k in keys]},
        {"step": "3. Audit-time recalibration (not released)", "what": f"temperature scaling refitted by the audit "
         f"on the validation split: {refit_text}",
         "cells": [source.cell(source.mapping("recalibration.temperature.test").get(k), k) for k in keys]},
    ]
    warnings = [str(w) for w in chain.get("warnings") or [] if w]
    return {"available": True, "rows": rows, "headers": [fmt.metric_label(k) for k in keys], "warnings": warnings}


def _gated_text(source: Source) -> str:
    gated = source.mapping("calibration.test.gated_calibration_error")
    if not gated:
        return ""
    parts = [f"{str(k).replace('_', ' ').capitalize()}: {v}" for k, v in gated.items() if isinstance(v, str)]
    return "The gated calibration error. " + " ".join(p.rstrip(".") + "." for p in parts)


def build_calibration(source: Source) -> dict[str, Any]:
    """Return the calibration hierarchy as delivered and after recalibration, and reliability diagrams."""
    columns = _calibration_columns(source)
    if not columns:
        return {"available": False, "not_assessed": not_assessed("results.json has no calibration results"),
                "tables": [], "figure": None, "binning": "", "warnings": [], "decomposition": [],
                "chain": {"available": False, "rows": [], "headers": [], "warnings": []}, "gated": ""}
    tables = [{"title": "As delivered", "columns": [label for _, label, _ in columns],
               "levels": _hierarchy(source, columns)}]
    recalibrated = _recalibrated_columns(source)
    if recalibrated:
        fitted_on = source.cohort_label(str(source.get("recalibration.fitted_on", "val"))).lower()
        tables.append({"title": f"After recalibration (maps fitted on the {fitted_on} split)",
                       "columns": [label for _, label, _ in recalibrated],
                       "levels": _hierarchy(source, recalibrated)})
    warnings = []
    for name, cohort in source.mapping("cohorts").items():
        for warning in (cohort or {}).get("warnings") or []:
            if "calibration" in str(warning):
                warnings.append(f"{source.cohort_label(name)}: {warning}")
    decomposition = []
    for _, label, block in columns:
        parts = block.get("brier_decomposition")
        if isinstance(parts, Mapping):
            decomposition.append({"cohort": label, **{k: fmt.format_number(parts.get(k), digits=4)
                                                      for k in ("reliability", "resolution", "uncertainty")}})
    return {
        "available": True,
        "not_assessed": "",
        "tables": tables,
        "figure": _reliability_figure(source),
        "chain": _chain(source),
        "gated": _gated_text(source),
        "binning": _binning_text(source),
        "warnings": warnings,
        "decomposition": decomposition,
    }
