"""Tagged PDF/A-3b output: the report plus its evidence (results.json, policy, fingerprints) as attachments.

PDF/A-3 allows arbitrary embedded files as "associated files", so the single
PDF carries the machine-readable record it was rendered from and can be
verified without anything else. Metadata dates come from ``results["created"]``
(never the wall clock) so the same results give the same PDF.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditkit.errors import InvalidInputError, ResultsError
from auditkit.fileio import dumps_json, sha256_bytes
from auditkit.report.assets import AssetRegistry

PDF_VARIANT = "pdf/a-3b"
#: Tagged (logical structure, alt text, reading order, /Lang, DisplayDocTitle): WeasyPrint's PDF/UA
#: tagging. WeasyPrint takes one variant, and "pdf/ua-1" would drop PDF/A-3b (its identification,
#: output intent and the associated-file attachments), so the report is PDF/A-3b *with* the
#: PDF/UA tag tree; it does not claim PDF/UA conformance, which no validator here has checked.
PDF_TAGS = True


@dataclass(frozen=True)
class EvidenceFile:
    """A file embedded in the PDF: its name, bytes, description and PDF/A-3 relationship."""

    name: str
    data: bytes
    description: str
    relationship: str = "Data"

    @property
    def sha256(self) -> str:
        """Return the hex SHA-256 of the file's bytes."""
        return sha256_bytes(self.data)

    def summary(self) -> dict[str, str]:
        """Return ``{name, description, sha256}`` for listing in the report."""
        return {"name": self.name, "description": self.description, "sha256": self.sha256}


def audit_datetime(results: Mapping[str, Any]) -> dt.datetime:
    """Return the audit date of ``results["created"]`` as midnight UTC (the PDF's fixed timestamp)."""
    created = results.get("created")
    try:
        day = dt.date.fromisoformat(str(created)[:10])
    except ValueError:
        raise ResultsError(
            f"results.json: field created is {created!r}, expected a date YYYY-MM-DD; re-run the audit"
        ) from None
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)


def evidence_files(
    results: Mapping[str, Any], *, results_bytes: bytes, policy_path: str | os.PathLike[str] | None = None
) -> list[EvidenceFile]:
    """Return the attachments of the evidence package: results.json, fingerprints and the policy file.

    The policy file is attached only when given, and only if its SHA-256
    matches the one the gate recorded (a different policy would make the
    package contradict itself).
    """
    results_sha = sha256_bytes(results_bytes)
    gate = results.get("gate") if isinstance(results.get("gate"), Mapping) else None
    files = [
        EvidenceFile("results.json", results_bytes, "The audit results this report was rendered from", "Source")
    ]
    policy_entry: dict[str, Any] | None = None
    policy_file: EvidenceFile | None = None
    if policy_path is not None:
        path = Path(policy_path)
        if not path.is_file():
            raise InvalidInputError(f"{path}: no such policy file; give the policy YAML the audit was gated with")
        data = path.read_bytes()
        from auditkit.gate import parse_policy

        parse_policy(data, source=str(path))  # a file that is not a valid policy is never attached
        digest = sha256_bytes(data)
        recorded = gate.get("policy_sha256") if gate else None
        if recorded and recorded != digest:
            raise InvalidInputError(
                f"{path}: SHA-256 {digest} differs from the policy the gate recorded in results.json "
                f"({recorded}); attach the policy file that was used for the audit"
            )
        description = "The release policy applied by the gate" if gate else (
            "A release policy given to the renderer (not applied in this audit)")
        policy_file = EvidenceFile(path.name if path.suffix else "policy.yaml", data, description, "Supplement")
        policy_entry = {"file": policy_file.name, "sha256": digest}
    fingerprints = {
        "results.json": {"sha256": results_sha},
        "model": {k: (results.get("model") or {}).get(k) for k in ("name", "version", "arch", "sha256")},
        "inputs": results.get("inputs") or {},
        "policy": policy_entry or ({"name": gate.get("policy_name"), "sha256": gate.get("policy_sha256")}
                                   if gate else None),
        "config_sha256": (results.get("run") or {}).get("config_sha256"),
        "created": results.get("created"),
        "tool": results.get("tool"),
    }
    files.append(EvidenceFile("fingerprints.json", dumps_json(fingerprints).encode("utf-8"),
                              "SHA-256 fingerprints of the model weights, data manifest, predictions, "
                              "configuration and policy", "Data"))
    if policy_file is not None:
        files.append(policy_file)
    return files


def html_to_pdf(
    html: str,
    *,
    report_dir: str | os.PathLike[str],
    assets: AssetRegistry,
    attachments: Sequence[EvidenceFile],
    created: dt.datetime,
) -> bytes:
    """Return the tagged PDF/A-3b bytes of ``html``, fetching only through the safe fetcher, with attachments.

    Relative URLs resolve against ``report_dir``; ``auditkit-asset:`` URLs are
    served from ``assets``; everything else is refused by the fetcher.
    """
    from weasyprint import HTML, Attachment

    from auditkit.report.fetcher import SafeURLFetcher

    root = Path(report_dir).resolve()
    fetcher = SafeURLFetcher(root, assets=assets)
    document = HTML(string=html, base_url=root.as_uri() + "/", url_fetcher=fetcher)
    pdf_attachments = [
        Attachment(string=item.data, name=item.name, description=item.description, created=created,
                   modified=created, relationship=item.relationship, url_fetcher=fetcher)
        for item in attachments
    ]
    with _source_date_epoch(created):
        return document.write_pdf(pdf_variant=PDF_VARIANT, pdf_tags=PDF_TAGS, attachments=pdf_attachments,
                                  optimize_images=False)


@contextmanager
def _source_date_epoch(when: dt.datetime) -> Iterator[None]:
    """Set SOURCE_DATE_EPOCH while the PDF is written, restoring the caller's value afterwards.

    fontTools stamps every subsetted font's ``head.modified`` with the current
    time unless SOURCE_DATE_EPOCH is set (reproducible-builds convention);
    the audit date keeps the embedded fonts, hence the PDF bytes, identical
    across renderings.
    """
    previous = os.environ.get("SOURCE_DATE_EPOCH")
    os.environ["SOURCE_DATE_EPOCH"] = str(int(when.timestamp()))
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("SOURCE_DATE_EPOCH", None)
        else:
            os.environ["SOURCE_DATE_EPOCH"] = previous
