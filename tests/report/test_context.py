"""The context dict and the HTML: values from results.json formatted as in print, every section present.

The factory computes its numbers with scikit-learn/SciPy; these tests check
the report shows exactly those numbers, formatted by hand here.
"""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET

from auditkit.report.sections.common import SECTIONS

DASH = "\u2013"


def ci_text(e: dict, digits: int = 3) -> str:
    """The expected print form of an estimate, written out by hand."""

    def n(x: float) -> str:
        return f"{x:.{digits}f}".replace("-", "\u2212")

    sep = " to " if e["ci_low"] < 0 or e["ci_high"] < 0 else DASH
    return f"{n(e['estimate'])} (95% CI {n(e['ci_low'])}{sep}{n(e['ci_high'])})"


def test_discrimination_table_shows_every_cohort_with_its_interval(full_context, full_doc):
    disc = full_context["discrimination"]
    assert disc["columns"] == ["Validation", "Internal test", "External: site_c"]
    auroc = next(row for row in disc["rows"] if row["metric"] == "AUROC")
    expected = [ci_text(full_doc["discrimination"]["val"]["auroc"]),
                ci_text(full_doc["discrimination"]["test"]["auroc"]),
                ci_text(full_doc["external"]["site_c"]["discrimination"]["auroc"])]
    assert [c["text"] for c in auroc["cells"]] == expected
    assert "DeLong" in auroc["notes"]
    lr = next(row for row in disc["rows"] if row["metric"] == "LR+")
    assert lr["cells"][1]["text"].startswith(f"{full_doc['discrimination']['test']['lr_positive']['estimate']:.2f}")


def test_gate_rule_on_a_shown_metric_is_noted_next_to_it(full_context):
    auroc = next(row for row in full_context["discrimination"]["rows"] if row["metric"] == "AUROC")
    assert [m["rule"] for m in auroc["gate"]] == ["min-auroc"]
    assert auroc["gate"][0]["condition"] == "lower CI bound \u2265 0.700"


def test_cover_verdict_and_rules(full_context, full_doc):
    verdict = full_context["cover"]["verdict"]
    assert verdict["overall"] == {"text": "FAIL", "css": "verdict-fail"}
    by_id = {rule["id"]: rule for rule in verdict["rules"]}
    assert by_id["fnr-gap-sex"]["verdict"]["text"] == "FAIL"
    assert by_id["fnr-gap-sex"]["blocking"] is True
    assert by_id["worst-group-auroc"]["verdict"]["text"] == "INSUFFICIENT EVIDENCE"
    assert by_id["external-auroc-drop"]["verdict"]["text"] == "WARNING"
    assert by_id["shortcut-external"]["verdict"]["text"] == "NOT APPLICABLE"
    gap = full_doc["fairness"]["sex"]["gap"]["fnr"]
    assert by_id["fnr-gap-sex"]["value"] == f"{gap['ci_high']:.3f}"
    identity = {row["label"]: row["value"] for row in full_context["cover"]["identity"]}
    assert identity["Weights SHA-256"] == "a" * 64
    assert identity["Audit date"] == "2025-03-14"
    assert identity["Produced by"].startswith("auditkit 0.1.0")
    assert "f" * 64 in identity["Release policy"]


def test_calibration_hierarchy_before_and_after_recalibration(full_context, full_doc):
    cal = full_context["calibration"]
    assert cal["tables"][0]["title"] == "As delivered"
    assert cal["tables"][1]["columns"] == ["Internal test, temperature-scaled", "Internal test, Platt-scaled"]
    levels = [lvl["title"] for lvl in cal["tables"][0]["levels"]]
    assert levels[0].startswith("Mean calibration") and levels[1] == "Weak calibration"
    ece_row = next(r for lvl in cal["tables"][1]["levels"] for r in lvl["rows"] if r["metric"].startswith("ECE (equal-width"))
    assert ece_row["cells"][0]["text"] == ci_text(full_doc["recalibration"]["temperature"]["test"]["ece"])
    assert "15 equal-width bins" in cal["binning"]


def test_fairness_groups_gaps_and_tests(full_context, full_doc):
    attributes = {a["name"]: a for a in full_context["fairness"]["attributes"]}
    assert list(attributes) == ["sex", "age_group", "sex+age_group"]  # intersections last
    sex = attributes["sex"]
    fnr = next(g for g in sex["gaps"] if g["metric"] == "FNR")
    gap = full_doc["fairness"]["sex"]["gap"]["fnr"]
    assert fnr["gap"]["text"] == ci_text(gap)
    assert fnr["between"] == " \u2212 ".join(gap["groups"])
    def p_text(p: float) -> str:
        return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"

    assert fnr["test"] == f"{p_text(gap['p_value'])}; Holm-adjusted {p_text(gap['p_adjusted'])}"
    assert fnr["gate"][0]["rule"] == "fnr-gap-sex"
    inter = attributes["sex+age_group"]
    assert inter["intersection"] and inter["title"] == "sex \u00d7 age_group"
    small = [g for g in inter["groups"] if g["small"]]
    assert small and all("fewer than 30 positive" in w for g in small for w in g["warnings"])
    assert "Holm" in sex["multiplicity"]


def test_checklist_maps_items_to_sections_or_to_the_manufacturer(full_context):
    rows = {r["number"]: r for g in full_context["checklist"]["groups"] for r in g["rows"]}
    assert len(rows) == 56
    assert rows[20]["where"]["anchor"] == "sec-discrimination" and rows[20]["kind"] == "AUTO"
    assert rows[12]["status"] == "To be provided by the manufacturer."  # reference standard: HUMAN
    assert rows[3]["status"].startswith("Provided by the manufacturer")
    assert rows[24]["status"].startswith("Not assessed in this audit")  # decision curves: not computed
    assert rows[31]["where"]["anchor"] == "sec-fairness"  # the intersection is present
    claim = next(i for i in full_context["checklist"]["index"] if i["guideline"] == "CLAIM 2024")
    entry = next(e for e in claim["entries"] if e["item"] == "CLAIM 2024 20")
    assert [p["anchor"] for p in entry["places"]] == ["sec-data"]
    assert next(e for e in claim["entries"] if e["item"] == "CLAIM 2024 14")["status"] == (
        "To be provided by the manufacturer.")


def test_html_has_every_section_and_page_references(full_html):
    for anchor, _, title in SECTIONS:
        assert f'id="{anchor}"' in full_html
        assert title.replace("&", "&amp;") in full_html
    assert 'class="pageref" href="#sec-discrimination"' in full_html
    assert "Saliency maps show which pixels influenced the score; they are not validated localisation." in full_html


def test_html_is_self_contained_and_figures_are_valid_deterministic_svg(full_html, full_context):
    sources = re.findall(r'<img src="([^"]+)"', full_html)
    assert sources and all(src.startswith("data:image/") for src in sources)
    assert "auditkit-asset:" not in full_html
    svgs = [base64.b64decode(src.split(",", 1)[1]) for src in sources if src.startswith("data:image/svg+xml")]
    assert len(svgs) >= 6
    for svg in svgs:
        ET.fromstring(svg)  # well-formed
        assert b"<dc:date>" not in svg
    jpegs = [src for src in sources if src.startswith("data:image/jpeg")]
    assert len(jpegs) == 6  # one strip per gallery case


def test_gap_forest_draws_the_gate_threshold_only_when_a_rule_names_the_gap(full_doc, tmp_path):
    import copy

    from auditkit.report.sections.common import Source
    from auditkit.report.sections.fairness import build_fairness

    def gap_forest_svg(doc):
        source = Source(doc, tmp_path)
        mime, data = source.assets.lookup(build_fairness(source)["gap_forest"])
        assert mime == "image/svg+xml"
        return data.decode("utf-8")

    doc = copy.deepcopy(full_doc)
    assert "gate threshold" in gap_forest_svg(doc)
    doc.pop("gate")
    assert "gate threshold" not in gap_forest_svg(doc)


def test_rendering_twice_gives_identical_html(full_doc, full_results, full_html):
    from auditkit.fileio import sha256_file
    from auditkit.report import build_context, render_html

    again = render_html(build_context(full_doc, report_dir=full_results.parent,
                                      results_sha256=sha256_file(full_results)))
    assert again == full_html


def test_confusion_matrices_binary_and_multiclass(full_context, full_doc, tmp_path):
    from auditkit.report.sections.common import Source
    from auditkit.report.sections.explanations import build_failures

    test = next(m for m in full_context["failures"]["matrices"] if m["cohort"] == "Internal test")
    cm = full_doc["discrimination"]["test"]["confusion_matrix"]
    assert test["labels"] == ["true pneumothorax", "true normal"]
    assert [r["cells"] for r in test["rows"]] == [[str(cm["tp"]), str(cm["fp"])], [str(cm["fn"]), str(cm["tn"])]]
    doc = {"run": {"classes": ["a", "b", "c"]},
           "discrimination": {"test": {"confusion_matrix": {"labels": ["a", "b", "c"], "decision": "argmax",
                                                             "matrix": [[5, 1, 0], [2, 7, 1], [0, 0, 9]]}}}}
    matrix = build_failures(Source(doc, tmp_path), [])["matrices"][0]
    assert matrix["labels"] == ["predicted a", "predicted b", "predicted c"]
    assert [r["label"] for r in matrix["rows"]] == ["true a", "true b", "true c"]
    assert matrix["rows"][1]["cells"] == ["2", "7", "1"]
