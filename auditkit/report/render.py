"""Rendering: Jinja2 (autoescape always on, StrictUndefined) to HTML, WeasyPrint to PDF/A-3b.

Templates live in the top-level ``templates/`` folder, shipped as the package
``auditkit.templates`` and loaded through importlib.resources. Every template
is autoescaped whatever its file extension, so nothing in a manifest, a
config or a class name can inject markup.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from auditkit.errors import OutputExistsError
from auditkit.fileio import atomic_write_bytes, atomic_write_text, dumps_json, sha256_bytes
from auditkit.progress import status
from auditkit.report.chai_card import CHAI_CARD_NAME, chai_card_bytes
from auditkit.report.context import build_context
from auditkit.report.model_card import build_model_card
from auditkit.report.pdf import EvidenceFile, audit_datetime, evidence_files, html_to_pdf
from auditkit.report.sections.common import Source
from auditkit.results import read_results_file

BASE_TEMPLATE = "base.html"
#: written next to the report (and attached to the PDF): the model card as JSON.
MODEL_CARD_NAME = "model_card.json"


def _load_template(name: str) -> tuple[str, str, Any]:
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise jinja2.TemplateNotFound(name)
    resource = resources.files("auditkit.templates").joinpath(*parts)
    if not resource.is_file():
        raise jinja2.TemplateNotFound(name)
    return resource.read_text("utf-8"), name, lambda: True


def template_environment() -> jinja2.Environment:
    """Return the report's Jinja2 environment: autoescape forced on, undefined names are errors."""
    return jinja2.Environment(
        loader=jinja2.FunctionLoader(_load_template),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
        lstrip_blocks=False,
        keep_trailing_newline=True,
    )


def render_html(context: Mapping[str, Any], *, inline_assets: bool = True) -> str:
    """Return the report as HTML; with ``inline_assets`` a self-contained file (images as data: URLs).

    Without ``inline_assets`` images stay ``auditkit-asset:`` URLs, for the
    PDF renderer whose fetcher serves them from ``context["assets"]``.
    """
    html = template_environment().get_template(BASE_TEMPLATE).render(**context)
    return context["assets"].inline(html) if inline_assets else html


def render_pdf(
    context: Mapping[str, Any],
    *,
    report_dir: str | os.PathLike[str],
    results: Mapping[str, Any],
    results_bytes: bytes,
    policy_path: str | os.PathLike[str] | None = None,
) -> bytes:
    """Return the PDF/A-3b bytes of the report with results.json, fingerprints (and policy) attached."""
    attachments = evidence_files(results, results_bytes=results_bytes, policy_path=policy_path)
    return html_to_pdf(render_html(context, inline_assets=False), report_dir=report_dir, assets=context["assets"],
                       attachments=attachments, created=audit_datetime(results))


def read_results(path: str | os.PathLike[str]) -> tuple[Path, bytes, dict[str, Any]]:
    """Return (path, raw bytes, validated document) of a results.json file (a folder means its results.json).

    The reading and validation are :func:`auditkit.results.read_results_file`'s.
    """
    loaded = read_results_file(path)
    return loaded.path, loaded.raw, loaded.data


def render_report(
    results_path: str | os.PathLike[str],
    *,
    out_pdf: str | os.PathLike[str] | None = None,
    out_html: str | os.PathLike[str] | None = None,
    force: bool = False,
    policy: str | os.PathLike[str] | None = None,
    review: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """Render the report of ``results_path``; return the paths written (PDF, HTML, model_card.json, model_card_chai.xml).

    With neither output given, writes ``report.pdf`` next to results.json.
    Existing outputs are refused (OutputExistsError) unless ``force``; both
    files are written atomically. ``policy`` is the gate policy file to embed
    in the PDF (its SHA-256 must match the one results.json recorded). ``review`` is a
    reviewer-verdict file exported by ``auditkit view`` (section 10, clinician review).
    """
    from auditkit.report.sections.review import read_review

    verdicts = read_review(review) if review is not None else None
    path, raw, results = read_results(results_path)
    if out_pdf is None and out_html is None:
        out_pdf = path.parent / "report.pdf"
    targets = [Path(p) for p in (out_pdf, out_html) if p is not None]
    if not force:
        for target in targets:
            if target.exists():
                raise OutputExistsError(
                    f"{target}: a report already exists; pass --force to overwrite it or choose another --out"
                )
    report_dir = path.parent
    results_sha = sha256_bytes(raw)
    card_path = Path(out_pdf if out_pdf is not None else out_html).parent / MODEL_CARD_NAME
    card_source = Source(results, report_dir)
    card_data = build_model_card(card_source)
    card = dumps_json(card_data).encode("utf-8")
    chai_path = card_path.parent / CHAI_CARD_NAME
    chai = chai_card_bytes(card_data, card_source)
    # the cards are pure functions of results.json: the same bytes may be rewritten, different ones may not
    for existing, content in ((card_path, card), (chai_path, chai)):
        if not force and existing.exists() and existing.read_bytes() != content:
            raise OutputExistsError(
                f"{existing}: a different model card already exists; pass --force to overwrite it"
            )
    attachments = evidence_files(results, results_bytes=raw, policy_path=policy) if out_pdf is not None else []
    if out_pdf is not None:
        attachments.append(EvidenceFile(MODEL_CARD_NAME, card, "The model card (FDA draft guidance 2025, "
                                        "Appendix E layout) as JSON", "Supplement"))
        attachments.append(EvidenceFile(CHAI_CARD_NAME, chai, "The model card in the CHAI Applied Model Card "
                                        "v0.2 XML schema", "Supplement"))
    if out_pdf is not None and review is not None:
        # the reader's verdicts are evidence too: attached as given, next to the section that reports them
        attachments.append(EvidenceFile("review.json", Path(review).read_bytes(),
                                        "The clinician's verdicts on the saliency maps (auditkit view)", "Supplement"))
    status(f"report: building figures and tables from {path}")
    context = build_context(results, report_dir=report_dir, results_sha256=results_sha,
                            attachments=[a.summary() for a in attachments], review=verdicts)
    html = render_html(context, inline_assets=False)
    written: list[Path] = []
    if out_pdf is not None:
        status("report: laying out the PDF")
        pdf = html_to_pdf(html, report_dir=report_dir, assets=context["assets"],
                          attachments=attachments, created=audit_datetime(results))
        written.append(atomic_write_bytes(out_pdf, pdf))
    if out_html is not None:
        written.append(atomic_write_text(out_html, context["assets"].inline(html)))
    written.append(atomic_write_bytes(card_path, card))
    written.append(atomic_write_bytes(chai_path, chai))
    return written
