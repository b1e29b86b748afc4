"""What a reviewer reads: worst cases, saliency verdicts, cover consistency, model card, checklist, tags.

Values are checked against the results document the factory computed with
scikit-learn/SciPy (or planted by hand here), and the PDF through its
extracted text (pypdf), never against the report code's own output.
"""

from __future__ import annotations

import copy

from auditkit.report import build_context, render_html


def _with_failures(doc: dict) -> dict:
    doc = copy.deepcopy(doc)
    gallery_ids = [e["id"] for e in doc["gallery"]]
    doc["failures"] = {
        "threshold": 0.5, "rule": "score >= threshold", "n_worst": 2,
        "cohorts": {
            "site_c": {"false_negative": {"n": 1, "worst": [{"id": "ext1", "score": 0.2, "attributes": {}}]},
                       "false_positive": {"n": 0, "worst": []}},
            "test": {"false_negative": {"n": 7, "worst": [
                {"id": "far1", "score": 0.01, "patient_id": "p9", "attributes": {"sex": "F"}},
                {"id": gallery_ids[1], "score": 0.12, "patient_id": "p3", "attributes": {"sex": "M"}}]},
                     "false_positive": {"n": 3, "worst": [{"id": "fp1", "score": 0.97, "attributes": {}}]}},
        },
    }
    return doc


def test_worst_cases_are_the_recorded_worst_with_links_to_the_gallery(full_doc, full_results):
    context = build_context(_with_failures(full_doc), report_dir=full_results.parent)
    worst = context["failures"]["worst"]
    assert [w["title"] for w in worst][:2] == ["Internal test: false negatives (missed findings)",
                                              "Internal test: false positives"]
    fn = worst[0]["cases"]
    assert [c["id"] for c in fn] == ["far1", full_doc["gallery"][1]["id"]]  # the recorded order: worst first
    assert fn[0]["score"] == "0.010" and fn[0]["anchor"] is None  # not in the gallery: no link
    assert fn[1]["anchor"] == "case-" + full_doc["gallery"][1]["id"].replace("_", "-")
    assert worst[0]["summary"].startswith("7 in this cohort")
    html = render_html(context)
    assert 'href="#case-' in html and "not in the gallery" in html


def test_gallery_caption_names_one_outline_and_the_legend_has_units(full_doc, full_results, full_html):
    assert "green" not in full_html.lower().split('id="explanations"', 1)[1].split("</section>", 1)[0]
    assert "cyan outline" in full_html
    doc = copy.deepcopy(full_doc)
    for entry in doc["gallery"]:
        entry["overlay_scales"] = {"gradcam": {"vmin": 0.0, "vmax": 0.12774, "label": "Grad-CAM, relu, shared scale",
                                               "cmap": "inferno"}}
    legend = build_context(doc, report_dir=full_results.parent)["explanations"]["legend"]
    assert len(legend) == 1  # one shared scale: one legend row, not one per case
    assert (legend[0]["method"], legend[0]["vmin"], legend[0]["vmax"]) == ("Grad-CAM", "0.000", "0.128")
    assert "arbitrary units" in legend[0]["units"]
    # inferno runs from near-black (#000004) to pale yellow (#fcffa4): matplotlib's published end points
    assert legend[0]["gradient"].startswith("linear-gradient(to right, #000004 0%")
    assert legend[0]["gradient"].endswith("#fcffa4 100%)")


def test_failed_saliency_evidence_is_stated_and_marks_the_method(full_doc, full_results):
    doc = copy.deepcopy(full_doc)
    ig = doc["saliency"]["ig"]
    ig["completeness"] = {"tolerance": 0.05, "max_rel_delta": 0.404, "median_rel_delta": 0.2, "n_failed": 9,
                          "passed": False}
    ig["faithfulness"]["deletion_auc"] = {"estimate": 0.766, "ci_low": 0.73, "ci_high": 0.80}
    ig["faithfulness"]["deletion_auc_random"] = {"estimate": 0.735, "ci_low": 0.70, "ci_high": 0.77}
    cam = doc["saliency"]["gradcam"]
    cam["localization"]["hit_rate"] = {"estimate": 0.051, "ci_low": 0.0, "ci_high": 0.11}
    cam["faithfulness"]["deletion_auc"] = {"estimate": 0.2, "ci_low": 0.1, "ci_high": 0.3}
    cam["faithfulness"]["deletion_auc_random"] = {"estimate": 0.5, "ci_low": 0.4, "ci_high": 0.6}
    cam["faithfulness"]["insertion_auc"] = {"estimate": 0.9, "ci_low": 0.8, "ci_high": 0.95}
    cam["faithfulness"]["insertion_auc_random"] = {"estimate": 0.5, "ci_low": 0.4, "ci_high": 0.6}
    cam["sanity"]["passed"] = True
    context = build_context(doc, report_dir=full_results.parent)
    findings = {f["code"]: f for f in context["findings"]}
    assert "0.404" in findings["saliency_completeness"]["message"] and "untrustworthy" in \
        findings["saliency_completeness"]["message"]
    assert findings["saliency_deletion"]["where"] == "saliency.ig"
    assert "5.1%" in findings["saliency_localisation"]["message"]
    trust = {m["method"].split(" (")[0]: m["trust"]["text"] for m in context["explanations"]["methods"]}
    assert trust["Integrated Gradients"] == "UNTRUSTWORTHY"
    assert trust["Grad-CAM"] == "failed evidence: see below"  # a low hit rate is stated, not disqualifying


def test_summary_md_prints_the_threshold_at_four_decimals_and_no_none(full_doc):
    from auditkit.audit.summary import render_summary

    doc = copy.deepcopy(full_doc)
    doc["operating_point"].update({"rule": "youden", "target": None, "threshold": 0.46658194065093994})
    text = render_summary(doc)
    line = next(line for line in text.splitlines() if line.startswith("rule youden"))
    assert line == "rule youden, threshold 0.4666 on the positive-class score, chosen on val and frozen."
    doc["operating_point"].update({"rule": "sensitivity", "target": 0.9})
    assert "rule sensitivity (target 0.9), threshold 0.4666" in render_summary(doc)


def _structure_types(node, out: dict) -> None:
    node = node.get_object()
    if isinstance(node, list):
        for child in node:
            _structure_types(child, out)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("/S")
    if kind is not None:
        out.setdefault(str(kind), []).append(node)
    if node.get("/K") is not None:
        _structure_types(node["/K"], out)


def test_pdf_is_tagged_and_stays_pdf_a_3b_with_its_attachments(full_pdf):
    import io
    import re

    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(full_pdf.read_bytes()))
    root = reader.trailer["/Root"]
    assert bool(root["/MarkInfo"]["/Marked"]) and str(root["/Lang"]) == "en"
    assert bool(root["/ViewerPreferences"]["/DisplayDocTitle"])
    xmp = root["/Metadata"].get_object().get_data().decode("utf-8")
    assert re.search(r'pdfaid:part="3"', xmp) and re.search(r'pdfaid:conformance="B"', xmp)
    assert {"results.json", "fingerprints.json"} <= set(reader.attachments)
    kinds: dict = {}
    _structure_types(root["/StructTreeRoot"], kinds)
    assert {"/H2", "/Table", "/TH", "/TD", "/Figure", "/Link"} <= set(kinds)
    assert all(str(figure.get("/Alt") or "").strip() for figure in kinds["/Figure"])  # every image has alt text


def test_every_checklist_cross_reference_lands_on_the_content_it_names(full_pdf_text):
    """From the PDF's text: each "Title (p. N)" link has Title printed on page N as a heading, not only as a link."""
    import re

    from auditkit.report.checklist import SUBSECTIONS
    from auditkit.report.sections.common import SECTION_TITLES

    pages = [" ".join(page.split()) for page in full_pdf_text.split("\f")]  # pypdf's text, one entry per page
    titles = set(SUBSECTIONS.values()) | set(SECTION_TITLES.values())
    checked, wrong = 0, []
    for text in pages:
        for title in titles:
            for match in re.finditer(re.escape(title) + r" \(p\. (\d+)\)", text):
                checked += 1
                page = int(match.group(1))
                target = re.sub(re.escape(title) + r" \(p\. \d+\)", "", pages[page - 1])  # links are not content
                if title not in target:
                    wrong.append((title, page))
    assert checked >= 60 and wrong == []
    flat = " ".join(pages)
    assert "Model card (FDA draft guidance 2025, Appendix E) (p." in flat  # the model card item has a real target
    assert "EU AI Act Annex IV (technical documentation)" in flat and "FDA draft guidance 2025 (AI-enabled" in flat
    assert "STARD-AI 2025" in flat and "To be provided by the manufacturer." in flat


def test_model_card_json_follows_appendix_e_with_numbers_from_results(full_results, full_doc, tmp_path):
    import json
    import shutil

    from auditkit.report import render_report

    folder = tmp_path / "card"
    shutil.copytree(full_results.parent, folder)
    written = render_report(folder / "results.json", out_html=folder / "report.html")
    card = json.loads((folder / "model_card.json").read_text())
    assert folder / "model_card.json" in written
    assert list(card)[:5] == ["format", "device_information", "regulatory_status", "description", "data"]
    assert card["performance"]["overall"]["internal_test"]["auroc"] == full_doc["discrimination"]["test"]["auroc"]
    groups = full_doc["fairness"]["sex"]["groups"]
    card_f = card["performance"]["subgroups"]["sex"]["groups"]["F"]
    assert card_f["sensitivity"] == groups["F"]["sensitivity"] and card_f["n_images"] == groups["F"]["n"]
    requested = {r["variable"]: r["status"] for r in card["data"]["requested_subgroups"]}
    assert requested["race"].startswith("absent") and requested["acquisition equipment"].startswith("absent")
    assert requested["sex"].startswith("analysed")
    assert card["risk_management"]["software_quality"] == "To be provided by the manufacturer."
    # the CHAI Applied Model Card v0.2: the root's children in the schema's xs:sequence order (transcribed
    # from github.com/coalition-for-health-ai/mc-schema v0.2/schema.xsd), numbers from results.json
    from xml.etree import ElementTree

    assert folder / "model_card_chai.xml" in written
    ns = "{https://mc.chai.org/v0.2/schema.xsd}"
    root = ElementTree.parse(folder / "model_card_chai.xml").getroot()
    assert root.tag == ns + "AppliedModelCard"
    assert [c.tag.removeprefix(ns) for c in root] == [
        "BasicInfo", "ReleaseInfo", "ModelSummary", "UsesAndDirections", "Warnings", "TrustIngredients",
        "KeyMetrics", "Resources", "Bibliography",
    ]
    assert [c.tag.removeprefix(ns) for c in root.find(ns + "KeyMetrics")] == [
        "UsefulnessUsabilityEfficacy", "FairnessEquity", "SafetyReliability",
    ]
    results = {r.findtext(ns + "Label"): json.loads(r.findtext(ns + "ValueJson")) for r in root.iter(ns + "MetricResult")}
    sens = full_doc["discrimination"]["test"]["sensitivity"]
    assert results["Sensitivity (internal test)"] == {
        "kind": "estimate_ci", "estimate": sens["estimate"], "lower": sens["ci_low"], "upper": sens["ci_high"],
        "level": 95.0, "unit": "",
    }
    gap = full_doc["fairness"]["sex"]["gap"]["fnr"]
    assert results["FNR gap across sex (highest minus lowest group)"]["estimate"] == gap["estimate"]
    assert root.findtext(f"{ns}BasicInfo/{ns}ModelDeveloper") == full_doc["intended_use"]["manufacturer"]
    funding = root.findtext(f"{ns}TrustIngredients/{ns}TransparencyInformation/{ns}FundingSource")
    assert funding == "To be provided by the manufacturer."


def test_calibration_chain_shows_raw_delivered_and_refit_and_yes_no_checks_read_as_such(full_doc, full_results):
    doc = copy.deepcopy(full_doc)
    raw_intercept = {"estimate": -1.22, "ci_low": -1.54, "ci_high": -0.93}
    doc["calibration_chain"] = {
        "steps": ["raw", "as_delivered", "audit_recalibration"],
        "raw": {"description": "softmax before the checkpoint's calibration", "test": {"intercept": raw_intercept}},
        "as_delivered": {"calibration": {"method": "temperature", "temperature": 0.9336, "logit_offset": [0.34, -0.34],
                                         "fitted_on": "val"}, "description": "the released scores"},
        "audit_recalibration": {"temperature": {"temperature": 1.0}, "platt": None},
        "warnings": ["temperature clamped at 0.01 on a separated validation split"],
    }
    doc["gate"]["rules"].append({"id": "sanity", "metric": "saliency.gradcam.sanity.passed", "op": "equals",
                                 "threshold": True, "use": "estimate", "severity": "error", "verdict": "pass",
                                 "blocking": False, "value": True, "estimate": True, "ci_low": None, "ci_high": None,
                                 "message": "true as required"})
    context = build_context(doc, report_dir=full_results.parent)
    chain = context["calibration"]["chain"]
    headers = chain["headers"]
    raw_row, delivered_row, refit_row = chain["rows"]
    column = headers.index("Calibration intercept")
    assert raw_row["cells"][column]["text"] == "\u22121.22 (95% CI \u22121.54 to \u22120.93)"  # intercept: 2 decimals
    assert "T = 0.934" in delivered_row["what"] and "T = 1.000" in refit_row["what"]
    assert chain["warnings"] == ["temperature clamped at 0.01 on a separated validation split"]
    sanity = next(r for r in context["cover"]["verdict"]["rules"] if r["id"] == "sanity")
    assert sanity["condition"] == "estimate = true"
    assert sanity["estimate"] == "yes (a yes/no check: no interval)"


def test_a_one_point_interval_reads_not_estimable_and_no_machine_path_is_printed(full_pdf_text, full_results):
    from auditkit.report.sections.common import Source

    source = Source({"run": {"ci_level": 0.95}}, full_results.parent)
    text = source.cell({"estimate": 1.0, "ci_low": 1.0, "ci_high": 1.0}, "auroc")["text"]
    assert text.startswith("1.000 (") and "not estimable: every resample gave the same value" in text
    assert source.cell({"estimate": 0.9, "ci_low": 0.8, "ci_high": 1.0}, "auroc")["text"] == "0.900 (95% CI 0.800\u20131.000)"
    assert str(full_results.parent) not in " ".join(full_pdf_text.split())


def test_external_section_lists_each_sites_subgroup_rates_from_results(full_context, full_doc):
    site = full_context["external"]["sites"][0]
    groups = full_doc["external"]["site_c"]["subgroups"]["sex"]["groups"]
    row = next(r for r in site["subgroups"] if r["group"] == "sex = F")
    sens = groups["F"]["sensitivity"]
    assert row["cells"][1]["text"] == f"{sens['estimate']:.3f} ({sens['ci_low']:.3f}\u2013{sens['ci_high']:.3f})"
    assert row["size"].startswith(f"{groups['F']['n_patients']} pt / {groups['F']['n']} img")
    card = full_context["model_card"]["external_subgroups"]
    assert "per-subgroup rates with CIs at site_c" in card
