"""Section 3: the model as audited -- architecture, training, loss curves, operating point, recalibration."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

from auditkit.report import figures
from auditkit.report import formatting as fmt
from auditkit.report.sections.common import Source, not_assessed
from auditkit.report.sections.summary import model_version

OPERATING_RULES = {
    "youden": "maximum Youden index (sensitivity + specificity \u2212 1)",
    "sensitivity": "the highest threshold reaching the target sensitivity",
    "specificity": "the lowest threshold reaching the target specificity",
    "fixed": "a fixed threshold given in the audit configuration",
    "f1": "maximum F1 score",
}


def _describe_model(model: Mapping[str, Any], version: str) -> list[dict[str, str]]:
    size = model.get("input_size")
    normalization = model.get("normalization") or {}
    rows = [
        ("Name", model.get("name")),
        ("Version", version),
        ("Architecture", model.get("arch")),
        ("Parameters", fmt.format_count(model.get("n_parameters")) if model.get("n_parameters") is not None else None),
        ("Input size (height \u00d7 width)", f"{size[0]} \u00d7 {size[1]}" if isinstance(size, list) and len(size) == 2
         else None),
        ("Input channels", model.get("in_channels")),
        ("Intensity normalisation", (f"mean {fmt.plain(normalization.get('mean'))}, "
                                     f"std {fmt.plain(normalization.get('std'))}") if normalization else None),
        ("Grad-CAM target layer", model.get("target_layer")),
        ("Weights SHA-256", model.get("sha256")),
    ]
    return [{"label": label, "value": fmt.plain(value) if value is not None else "not recorded"}
            for label, value in rows]


def _training_rows(training: Mapping[str, Any]) -> list[dict[str, str]]:
    rows = []
    for key, value in training.items():
        if key == "data_fingerprint" and isinstance(value, Mapping):
            # the machine's folders are not the reader's business; the full record is in Appendix A
            value = (f"{PurePath(str(value.get('manifest_path') or '')).name or 'manifest'}, SHA-256 "
                     f"{value.get('manifest_sha256')}, {fmt.format_count(value.get('n_images'))} images "
                     "(per split: Appendix A)")
        rows.append({"label": str(key).replace("_", " "), "value": fmt.plain(value)})
    return rows


def _operating_point(source: Source) -> dict[str, Any]:
    point = source.mapping("operating_point")
    if not point:
        return {"available": False, "text": not_assessed("results.json records no operating point"), "rows": [],
                "css": ""}
    rule = str(point.get("rule") or "unknown")
    chosen_on = str(point.get("chosen_on") or "unknown")
    rows = [
        {"label": "Rule", "value": OPERATING_RULES.get(rule, rule)},
        {"label": "Target", "value": fmt.plain(point.get("target"))},
        {"label": "Threshold on the positive-class score", "value": fmt.format_number(point.get("threshold"), digits=4)},
        {"label": "Chosen on", "value": source.cohort_label(chosen_on)},
    ]
    at_val = point.get("val") or {}
    for key in ("sensitivity", "specificity"):
        if key in at_val:
            value = at_val[key]
            shown = source.est(value, key) if isinstance(value, Mapping) else fmt.format_number(value)
            rows.append({"label": f"{fmt.metric_label(key)} on the validation split", "value": shown})
    if chosen_on == "val":
        text = ("The operating point was chosen on the validation split only and then frozen; the test and external "
                "data played no part in choosing it.")
        css = "ok"
    else:
        text = (f"The operating point was chosen on '{chosen_on}', not on the validation split alone: results at "
                "this threshold on that cohort are optimistic.")
        css = "problem"
    return {"available": True, "text": text, "rows": rows, "css": css}


def _recalibration(source: Source) -> dict[str, Any]:
    recal = source.mapping("recalibration")
    methods = []
    for name, block in recal.items():
        if not isinstance(block, Mapping) or "parameters" not in block:
            continue
        methods.append({"name": {"temperature": "Temperature scaling (Guo et al. 2017)",
                                 "platt": "Platt (logistic) scaling (Platt 1999)"}.get(name, name),
                        "parameters": fmt.plain(block.get("parameters"))})
    if not methods:
        return {"available": False, "methods": [], "text": (
            "No recalibration was fitted: the report shows the model's probabilities as delivered.")}
    fitted_on = source.cohort_label(str(recal.get("fitted_on") or "unknown"))
    return {"available": True, "methods": methods, "text": (
        f"Recalibration maps were fitted on the {fitted_on.lower()} split, disjoint from the test data, and are "
        "reported in section 5 as model updating. All other results describe the model's probabilities as delivered.")}


def build_model(source: Source) -> dict[str, Any]:
    """Return the model section (or why it is not assessed for a predictions-only audit)."""
    model = source.mapping("model")
    has_details = bool(model.get("arch"))
    history = [row for row in model.get("history") or [] if isinstance(row, Mapping)]
    training = model.get("training") if isinstance(model.get("training"), Mapping) else {}
    curves = None
    if history:
        best = training.get("best_epoch") if isinstance(training.get("best_epoch"), int) else None
        curves = source.assets.svg(figures.training_curves_svg(history, best_epoch=best))
    return {
        "available": has_details,
        "not_assessed": not_assessed(
            "this audit read a predictions table without the model checkpoint, so architecture, training settings "
            "and loss curves are unknown to auditkit; the manufacturer must describe them"),
        "description": _describe_model(model, model_version(source)),
        "training": _training_rows(training),
        "training_note": "" if training else not_assessed("no training record was found with the model"),
        "curves": curves,
        "curves_note": "" if history else not_assessed("no per-epoch training history was recorded"),
        "operating_point": _operating_point(source),
        "recalibration": _recalibration(source),
    }
