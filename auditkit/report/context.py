"""The report's context: a plain dict with every value already formatted (the templates only lay it out).

Like pandas' Styler, Python decides every string the reader sees; the Jinja2
templates loop and fill blocks. The context is built from results.json alone
(plus the gallery images it names); nothing is recomputed. Sections whose
data are absent carry ``available: False`` and a "Not assessed: <why>" line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from auditkit.report import checklist
from auditkit.report.model_card import build_model_card, card_context
from auditkit.report.sections.clinical import CLINICAL_TITLES, build_clinical, clinical_availability
from auditkit.report.sections.common import SECTION_TITLES, SECTIONS, Source
from auditkit.report.sections.data import build_data, build_intended_use
from auditkit.report.sections.explanations import (
    GalleryJobs,
    build_explanations,
    build_failures,
    gallery_workers,
    start_gallery,
)
from auditkit.report.sections.external import build_external
from auditkit.report.sections.fairness import build_fairness
from auditkit.report.sections.model import build_model
from auditkit.report.sections.multilabel import build_multilabel, multilabel_toc
from auditkit.report.sections.performance import build_calibration, build_discrimination
from auditkit.report.sections.reproducibility import build_reproducibility
from auditkit.report.sections.review import build_review
from auditkit.report.sections.summary import (
    build_cover,
    build_expected_findings,
    build_findings,
    build_key_results,
)


def availability(results: Mapping[str, Any]) -> dict[str, bool]:
    """Return which analyses results.json holds (the keys the checklist items depend on)."""
    source = Source(results, Path("."))
    saliency = source.mapping("saliency").values()
    fairness = source.mapping("fairness").values()
    external = source.mapping("external").values()

    def any_method(key: str) -> bool:
        return any(isinstance(m, Mapping) and isinstance(m.get(key), Mapping) for m in saliency)

    intended = source.mapping("intended_use")
    return {
        "always": True,
        "model_identity": bool(source.get("model.sha256")),
        "environment": bool(source.mapping("run.library_versions")),
        "human:intended_use": bool(intended.get("intended_use") or intended.get("indications")),
        "human:regulatory_status": bool(intended.get("regulatory_status")),
        "operating_point": bool(source.mapping("operating_point")),
        "data": bool(source.mapping("data.splits") or source.mapping("cohorts")),
        "disjointness": bool(source.mapping("data.disjointness")),
        "sites": bool(source.mapping("data.sites")),
        "attributes": bool(source.mapping("data.attributes")),
        "power": any(isinstance(b, Mapping) and isinstance(b.get("power"), Mapping) and bool(b["power"])
                     for b in [*fairness, *external]),
        "flow": bool(source.get("data.flow")),
        "training": bool(source.mapping("model.training") or source.get("model.history")),
        "recalibration": any(isinstance(v, Mapping) and "parameters" in v for v in source.mapping("recalibration").values()),
        "discrimination": bool(source.mapping("discrimination")),
        "calibration": bool(source.mapping("calibration")),
        "gate": bool(source.mapping("gate")),
        "fairness": bool(source.mapping("fairness")),
        "intersection": any(isinstance(b, Mapping) and b.get("intersection") for b in fairness),
        "prevalence_adjusted": any(isinstance(b, Mapping) and isinstance(b.get("prevalence_adjusted"), Mapping)
                                   for b in fairness),
        "external": bool(source.mapping("external")),
        "shift": any(isinstance(b, Mapping) and isinstance(b.get("shift"), Mapping) for b in external),
        "domain_probe": any(isinstance(b, Mapping) and isinstance((b.get("shift") or {}).get("domain_auroc"), Mapping)
                            for b in external),
        "explanations": bool(source.mapping("saliency")),
        "sanity": any_method("sanity"),
        "faithfulness": any_method("faithfulness"),
        "localization": any_method("localization"),
        "failures": bool(source.mapping("discrimination")),
        **clinical_availability(results),
    }


def build_context(
    results: Mapping[str, Any],
    *,
    report_dir: str | os.PathLike[str],
    results_sha256: str | None = None,
    attachments: Sequence[Mapping[str, str]] = (),
    panel_format: str = "jpeg",
    review: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the report context: every section's values as display strings, figures as asset URLs.

    ``report_dir`` is the folder of results.json; gallery images are read
    from inside it only. ``results_sha256`` (of the results.json bytes) is
    printed on the cover and in every page footer; ``attachments`` lists the
    files embedded in the PDF (``name``, ``description``, ``sha256``) for the
    reproducibility appendix. ``panel_format`` (``jpeg`` or ``png``) is how
    gallery strips are encoded. Figures and images appear as
    ``auditkit-asset:`` URLs; the key ``assets`` holds the
    :class:`~auditkit.report.assets.AssetRegistry` that resolves them.
    """
    source = Source(results, Path(report_dir), panel_format=panel_format)
    with ThreadPoolExecutor(max_workers=gallery_workers()) as pool:
        # gallery strips are made in threads while the figures below are drawn
        gallery_jobs = start_gallery(source, pool)
        context = _sections(source, results, gallery_jobs, results_sha256=results_sha256, attachments=attachments)
    # the clinician-review section (its own module): reader verdicts from `auditkit view`, when given
    context["review"] = build_review(source, review, results_sha256=results_sha256)
    context["assets"] = source.assets
    return context


def _sections(
    source: Source,
    results: Mapping[str, Any],
    gallery_jobs: GalleryJobs,
    *,
    results_sha256: str | None,
    attachments: Sequence[Mapping[str, str]],
) -> dict[str, Any]:
    cover = build_cover(source, results_sha256=results_sha256)
    available = availability(results)
    sections: dict[str, Any] = {
        "meta": {
            "title": cover["title"],
            "model_name": cover["model_name"],
            "model_version": cover["model_version"],
            "created": str(source.get("created", "")),
            "results_sha256": results_sha256 or "not recorded",
            "generator": f"auditkit {source.get('tool.version', '')}".strip(),
            "description": f"Pre-release audit report of {cover['model_name']} ({cover['model_version']})",
            "keywords": ["audit", "medical imaging", "AI", "validation"],
            "ci_label": source.ci_label,
        },
        "toc": multilabel_toc(source, [{"anchor": anchor, "number": number, "title": title}
                                       for anchor, number, title in SECTIONS]),
        "multilabel": build_multilabel(source),
        "cover": cover,
        "key_results": build_key_results(source),
        "findings": build_findings(source),
        "model_card": card_context(source, build_model_card(source)),
        "expected_findings": build_expected_findings(source),
        "intended_use": build_intended_use(source),
        "data": build_data(source),
        "model": build_model(source),
        "discrimination": build_discrimination(source),
        "calibration": build_calibration(source),
        "fairness": build_fairness(source),
        "external": build_external(source),
        "explanations": build_explanations(source, gallery_jobs),
        "reproducibility": build_reproducibility(source, results_sha256=results_sha256, attachments=attachments),
        "clinical": build_clinical(source),
        "checklist": checklist.build_checklist(available, {**SECTION_TITLES, **CLINICAL_TITLES}),
        "signoff": {
            "date": str(source.get("created", "")),
            "basis": "EU AI Act Annex IV 2(g): test reports dated and signed by the responsible persons.",
            "roles": ["Responsible person (regulatory affairs)", "Clinical reviewer"],
        },
    }
    sections["failures"] = build_failures(source, sections["explanations"]["gallery"])
    return sections
