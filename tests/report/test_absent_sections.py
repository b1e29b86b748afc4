"""Every section renders when its data are absent: it says "Not assessed" and why, never crashes or invents."""

from __future__ import annotations

import re


def _render(doc, folder):
    from auditkit.report import build_context, render_html

    context = build_context(doc, report_dir=folder)
    return context, render_html(context)


def test_predictions_only_audit_without_model_external_explanations_or_gate(factory, tmp_path):
    doc = factory.build_results(tmp_path, external=False, explanations=False, gate=False, model_details=False,
                                intended_use=False, recalibration=False, fairness=False)
    context, html = _render(doc, tmp_path)
    assert context["cover"]["verdict"]["overall"]["text"] == "NO VERDICT"
    assert not context["model"]["available"]
    assert "predictions table without the model checkpoint" in context["model"]["not_assessed"]
    assert not context["external"]["available"] and "--external-site" in context["external"]["not_assessed"]
    assert not context["explanations"]["available"]
    assert not context["fairness"]["available"] and "--attributes" in context["fairness"]["not_assessed"]
    assert context["intended_use"]["fields"][0]["text"] == "To be provided by the manufacturer."
    assert context["calibration"]["tables"][0]["title"] == "As delivered"
    assert len(context["calibration"]["tables"]) == 1
    assert html.count('class="not-assessed"') >= 6
    # the saliency disclaimer stands even when no maps were computed
    assert "not validated localisation" in html
    # nothing invented: no figure of a section that has no data
    assert context["external"]["sites"] == [] and context["explanations"]["gallery"] == []
    rows = {r["number"]: r for g in context["checklist"]["groups"] for r in g["rows"]}
    assert rows[36]["status"].startswith("Not assessed in this audit: no external site was declared")
    assert rows[1]["status"].startswith("Not assessed in this audit: the model checkpoint was not available")


def test_optional_top_level_sections_may_be_missing(full_doc, tmp_path):
    import copy

    doc = copy.deepcopy(full_doc)
    for missing in ("recalibration", "curves", "operating_point", "data", "warnings", "inputs", "saliency",
                    "gallery"):
        doc.pop(missing)
    context, html = _render(doc, tmp_path)
    assert "</html>" in html
    assert context["model"]["operating_point"]["text"].startswith("Not assessed")
    assert context["discrimination"]["figures"] == {"roc": None, "pr": None}
    assert context["external"]["scores"] is None
    assert context["findings"] == []
    assert context["data"]["disjointness"]["text"].startswith("Not assessed")


def test_undefined_numbers_print_their_reason(full_doc, tmp_path):
    import copy

    doc = copy.deepcopy(full_doc)
    doc.pop("saliency")
    doc.pop("gallery")
    doc["discrimination"]["test"]["auroc"] = {"estimate": None, "ci_low": None, "ci_high": None,
                                              "reason": "only one class present in test"}
    doc["fairness"]["sex"]["groups"]["F"]["fnr"] = {"estimate": None, "ci_low": None, "ci_high": None,
                                                   "reason": "no positive cases in group F"}
    context, html = _render(doc, tmp_path)
    auroc = next(r for r in context["discrimination"]["rows"] if r["metric"] == "AUROC")
    assert auroc["cells"][1] == {"text": "not computable: only one class present in test", "css": "undefined"}
    assert "not computable: no positive cases in group F" in html
    assert not re.search(r"\bnan\b|\bNone\b", html.split("<body>", 1)[1])


def test_missing_gallery_image_is_shown_as_missing_not_fatal(full_doc, full_results, tmp_path):
    import copy

    doc = copy.deepcopy(full_doc)
    doc["gallery"] = doc["gallery"][:2]
    doc["gallery"][0]["overlays"]["ig"] = "explain/overlays/does_not_exist.png"
    doc["gallery"][1]["image"] = "../../../etc/passwd"
    context, _ = _render(doc, full_results.parent)
    cases = [c for g in context["explanations"]["gallery"] for c in g["cases"]]
    problems = {c["id"]: " ".join(c["problems"]) for c in cases}
    assert "no such file" in problems[doc["gallery"][0]["id"]]
    assert "outside the report folder" in problems[doc["gallery"][1]["id"]]


def test_group_too_small_for_every_metric_gets_one_merged_cell(full_doc, tmp_path):
    import copy

    from auditkit.report.sections.common import Source
    from auditkit.report.sections.fairness import build_fairness

    doc = copy.deepcopy(full_doc)
    reason = "group has 7 cases, below the minimum group size of 30"
    group = doc["fairness"]["age_group"]["groups"]["<40"]
    for key in ("auroc", "sensitivity", "specificity", "fnr", "fpr", "ppv", "npv", "ece", "oe"):
        group[key] = {"estimate": None, "ci_low": None, "ci_high": None, "reason": reason}
    for key in doc["fairness"]["age_group"]["gap"]:
        doc["fairness"]["age_group"]["gap"][key] = {"estimate": None, "ci_low": None, "ci_high": None,
                                                    "reason": "fewer than two groups reach the minimum size"}
    attributes = {a["name"]: a for a in build_fairness(Source(doc, tmp_path))["attributes"]}
    row = next(g for g in attributes["age_group"]["groups"] if g["group"] == "<40")
    assert row["discrimination"] == {"merged": f"not computable: {reason}", "cells": []}
    assert row["errors"]["merged"] == f"not computable: {reason}"
    assert attributes["age_group"]["gaps"] == []
    assert attributes["age_group"]["gaps_note"] == (
        "Gaps not computable: fewer than two groups reach the minimum size.")
    other = next(g for g in attributes["age_group"]["groups"] if g["group"] == "60+")
    assert other["discrimination"]["merged"] == "" and len(other["discrimination"]["cells"]) == 3
