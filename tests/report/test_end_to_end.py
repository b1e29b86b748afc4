"""The phantom audit end to end: real audit and saliency results rendered, planted flaws' numbers in the PDF.

Uses the session fixtures of tests/conftest.py (a phantom with every flaw
planted, a smallcnn trained on it, its predictions). The statistics come from
``auditkit.audit.run_audit`` and the saliency section from
``auditkit.audit.saliency.run_saliency``; the numbers checked in the PDF text
are recomputed here with scikit-learn from the predictions table (the
oracle), using the operating point the audit froze on the validation split.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, roc_auc_score

pytestmark = pytest.mark.slow


def _flat(text: str) -> str:
    return " ".join(text.split())


def _fmt(x: float) -> str:
    return f"{x:.3f}".replace("-", "\u2212")


@pytest.fixture(scope="module")
def phantom_report(quick_phantom, trained_smallcnn, quick_predictions, tmp_path_factory):
    """(results document, predictions frame, PDF text) of the audited phantom."""
    from pypdf import PdfReader

    from auditkit.audit.config import AuditConfig, AuditSettings
    from auditkit.audit.predictions import read_predictions
    from auditkit.audit.run import run_audit
    from auditkit.audit.saliency import run_saliency
    from auditkit.nets.checkpoint import load_checkpoint
    from auditkit.report import render_report
    from auditkit.results import save_results

    out = tmp_path_factory.mktemp("phantom_audit")
    settings = AuditSettings(attributes=["sex", "age_group"], intersections=["sex+age_group"], n_boot=50, seed=0)
    audit = run_audit(AuditConfig(predictions=quick_predictions, out=out, settings=settings, force=True))
    doc = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert audit.path is not None
    table = read_predictions(quick_predictions)
    saliency, gallery = run_saliency(
        load_checkpoint(trained_smallcnn, device="cpu"),
        table,
        out_dir=out,
        data_root=quick_phantom.manifest_path.parent,  # the table and the images are in different folders
        # the smallest real run: a few images per cohort, few IG steps and randomisation blocks
        config={"methods": ["gradcam", "ig"], "max_images": 6, "max_val_images": 0, "ig_steps": 4,
                "sanity_images": 2, "sanity_blocks": 1, "faithfulness_images": 2, "faithfulness_steps": 3,
                "stability_images": 1, "gallery_per_category": 1, "gallery_max": 4, "n_boot": 50,
                "overlay_format": "png"},
    )
    doc["saliency"], doc["gallery"] = saliency, gallery
    results = save_results(out / "results.json", doc)
    pdf = out / "report.pdf"
    render_report(results, out_pdf=pdf, force=True)
    text = _flat(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.read_bytes())).pages))
    return doc, table.frame, text


def test_underdiagnosis_gap_is_in_the_pdf(phantom_report, quick_phantom):
    doc, frame, text = phantom_report
    truth = json.loads(quick_phantom.truth_path.read_text())
    attribute = truth["flaws"]["underdiagnosis"]["attribute"]
    threshold = doc["operating_point"]["threshold"]
    test = frame[frame["split"] == "test"]
    y = test["y_true"].to_numpy().astype(int)
    pred = (test["score"].to_numpy() >= threshold).astype(int)
    fnr = {}
    for group in sorted(test[attribute].astype(str).unique()):
        mask = (test[attribute].astype(str) == group).to_numpy()
        _tn, _fp, fn, tp = confusion_matrix(y[mask], pred[mask], labels=[0, 1]).ravel()
        fnr[group] = fn / (fn + tp)
    hi, lo = max(fnr, key=fnr.get), min(fnr, key=fnr.get)
    gap = doc["fairness"][attribute]["gap"]["fnr"]
    assert gap["estimate"] == pytest.approx(fnr[hi] - fnr[lo], abs=1e-9)
    assert f"FNR {hi} \u2212 {lo} {_fmt(fnr[hi] - fnr[lo])} (95% CI" in text
    assert f"{_fmt(fnr[hi])} (" in text  # the group's own FNR in the per-group table


def test_external_site_auroc_is_in_the_pdf(phantom_report):
    doc, frame, text = phantom_report
    site = next(iter(doc["external"]))
    rows = frame[(frame["split"] == "external") & (frame["site"].astype(str) == site)]
    auroc = roc_auc_score(rows["y_true"].astype(int), rows["score"])
    assert doc["external"][site]["discrimination"]["auroc"]["estimate"] == pytest.approx(auroc, abs=1e-9)
    assert f"AUROC, external site {site} {_fmt(auroc)} (95% CI" in text


def test_saliency_evidence_and_gallery_are_rendered(phantom_report):
    doc, _, text = phantom_report
    for block in doc["saliency"].values():
        score = block.get("shortcut_score") or {}
        if score.get("estimate") is not None:
            assert _fmt(score["estimate"]) in text
    assert "not validated localisation" in text
    assert "Gallery" in text and "Not assessed: results.json names no gallery images" not in text
    assert len(doc["gallery"]) >= 1
    assert all(e["id"] in text for e in doc["gallery"])
    assert np.isfinite(doc["discrimination"]["test"]["auroc"]["estimate"])
