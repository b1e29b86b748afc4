"""The PDF: its text (pypdf), its attachments, PDF/A-3b metadata and deterministic output."""

from __future__ import annotations

import hashlib
import io
import json
import re

import pytest

pytestmark = pytest.mark.slow


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_pdf_text_holds_the_numbers_of_results_json(full_pdf_text, full_doc):
    text = _flat(full_pdf_text)
    auroc = full_doc["discrimination"]["test"]["auroc"]
    assert f"{auroc['estimate']:.3f} (95% CI {auroc['ci_low']:.3f}\u2013{auroc['ci_high']:.3f})" in text
    gap = full_doc["fairness"]["sex"]["gap"]["fnr"]
    assert f"{gap['estimate']:.3f} (95% CI {gap['ci_low']:.3f}\u2013{gap['ci_high']:.3f})" in text
    ece = full_doc["calibration"]["test"]["ece"]
    assert f"{ece['estimate']:.3f} (95% CI" in text
    assert "Pre-release audit of cxr-ptx-smallcnn" in text
    assert "FAIL" in text and "INSUFFICIENT EVIDENCE" in text


def test_every_page_has_the_running_header_and_the_results_hash(full_pdf, full_results):
    from pypdf import PdfReader

    from auditkit.fileio import sha256_file

    pages = PdfReader(io.BytesIO(full_pdf.read_bytes())).pages
    digest = sha256_file(full_results)
    n = len(pages)
    assert n > 10
    for number, page in enumerate(pages, start=1):
        text = page.extract_text()
        assert digest in text
        if number > 1:  # the cover has no running header
            assert f"Page {number} of {n}" in text
            assert "cxr-ptx-smallcnn \u00b7 2.3.0-rc1" in text


def test_table_of_contents_and_checklist_carry_page_numbers(full_pdf_text):
    text = _flat(full_pdf_text)
    assert re.search(r"4 Discrimination \.+ ?\d+", text)
    assert re.search(r"Discrimination \(p\. \d+\)", text)


def test_attachments_are_the_evidence_package(full_pdf, full_results, full_doc):
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(full_pdf.read_bytes()))
    attachments = {name: data[0] for name, data in reader.attachments.items()}
    assert set(attachments) == {"results.json", "fingerprints.json", "model_card.json", "model_card_chai.xml"}
    assert attachments["results.json"] == full_results.read_bytes()
    fingerprints = json.loads(attachments["fingerprints.json"])
    assert fingerprints["results.json"]["sha256"] == hashlib.sha256(full_results.read_bytes()).hexdigest()
    assert fingerprints["model"]["sha256"] == full_doc["model"]["sha256"]
    assert fingerprints["inputs"]["predictions"]["sha256"] == full_doc["inputs"]["predictions"]["sha256"]
    assert fingerprints["policy"]["sha256"] == full_doc["gate"]["policy_sha256"]


def test_pdfa3b_identification_and_dates_from_results_json(full_pdf):
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(full_pdf.read_bytes()))
    xmp = reader.trailer["/Root"]["/Metadata"].get_object().get_data().decode("utf-8")
    assert 'pdfaid:part="3"' in xmp and 'pdfaid:conformance="B"' in xmp
    info = reader.metadata
    assert info["/CreationDate"].startswith("D:20250314")
    assert info["/ModDate"].startswith("D:20250314")
    af = reader.trailer["/Root"]["/AF"]
    relationships = {str(spec.get_object()["/UF"]): str(spec.get_object()["/AFRelationship"]) for spec in af}
    assert relationships == {
        "results.json": "/Source", "fingerprints.json": "/Data", "model_card.json": "/Supplement",
        "model_card_chai.xml": "/Supplement",
    }


def test_same_results_render_to_identical_bytes_and_the_policy_is_attached(factory, tmp_path):
    from pypdf import PdfReader

    from auditkit.errors import InvalidInputError
    from auditkit.report import render_report

    policy = tmp_path / "policy.yaml"
    policy.write_text("name: default\nversion: '1.0'\nrules:\n  - id: auroc-floor\n    metric: discrimination.test.auroc\n    min: 0.5\n")
    digest = hashlib.sha256(policy.read_bytes()).hexdigest()
    doc = factory.build_results(tmp_path, external=False, explanations=False, recalibration=False, fairness=False)
    doc["gate"] = {"passed": True, "policy_name": "default", "policy_sha256": digest, "rules": []}
    from auditkit.results import save_results

    results = save_results(tmp_path / "results.json", doc)
    first, second = tmp_path / "a.pdf", tmp_path / "b.pdf"
    render_report(results, out_pdf=first, policy=policy)
    render_report(results, out_pdf=second, policy=policy)
    assert first.read_bytes() == second.read_bytes()
    attachments = PdfReader(io.BytesIO(first.read_bytes())).attachments
    assert attachments["policy.yaml"][0] == policy.read_bytes()
    other = tmp_path / "other.yaml"
    other.write_text(policy.read_text().replace("min: 0.5", "min: 0.6"))  # valid, but not the one applied
    with pytest.raises(InvalidInputError, match="differs from the policy the gate recorded"):
        render_report(results, out_pdf=tmp_path / "c.pdf", policy=other)
    assert not (tmp_path / "c.pdf").exists()
