"""The audit pipeline: predictions -> statistics -> results.json + summary.md.

:func:`run_audit` runs one function per step, so later steps (prediction
from ``--model/--manifest``, explanations, report, gate) slot in between:

1. :func:`prepare_output` — refuse to overwrite a results.json without ``force``;
2. :func:`load_inputs` — read and validate the predictions table (and embeddings);
3. :func:`auditkit.audit.statistics.compute_statistics` — the statistical sections;
4. :func:`assemble_document` — header sections (run, model, inputs, created) + sections;
5. :func:`write_outputs` — results.json (schema-validated, atomic) and summary.md.

Same inputs, settings and seed give a byte-identical results.json: the date
comes from the config, ``SOURCE_DATE_EPOCH`` or today (UTC), never a clock time.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from auditkit import __version__
from auditkit.audit.config import AuditConfig, AuditSettings
from auditkit.audit.predictions import PredictionsTable, read_embeddings, read_predictions
from auditkit.audit.statistics import compute_statistics
from auditkit.audit.summary import render_summary
from auditkit.errors import ConfigError, OutputExistsError
from auditkit.fileio import atomic_write_text, dumps_json, sha256_bytes, sha256_file
from auditkit.progress import status
from auditkit.results import SCHEMA_VERSION, AuditResults, save_results

RESULTS_NAME = "results.json"
SUMMARY_NAME = "summary.md"
_LIBRARIES = ("numpy", "scipy", "pandas", "scikit-learn")


@dataclass(frozen=True, eq=False)
class AuditInputs:
    """The validated inputs of an audit."""

    table: PredictionsTable
    embeddings: np.ndarray | None


def prepare_output(config: AuditConfig) -> Path:
    """Return the output folder, created; raises OutputExistsError if results.json exists and not ``force``."""
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(
            f"--out {str(out)!r} is a file; give a folder for the audit outputs"
        )
    target = out / RESULTS_NAME
    if target.exists() and not config.force:
        raise OutputExistsError(
            f"{target} already exists; pass --force to overwrite it or choose another --out"
        )
    out.mkdir(parents=True, exist_ok=True)
    return out


def load_inputs(config: AuditConfig) -> AuditInputs:
    """Return the validated predictions table (with external sites applied) and aligned embeddings."""
    s = config.settings
    table = read_predictions(
        config.predictions, positive_class=s.positive_class, external_sites=s.external_sites
    )
    embeddings = None
    if config.embeddings is not None:
        embeddings = read_embeddings(config.embeddings, table.frame["id"].tolist())
    return AuditInputs(table, embeddings)


def audit_date(settings: AuditSettings) -> str:
    """Return the audit date: the config's ``date``, else ``SOURCE_DATE_EPOCH``, else today (UTC)."""
    if settings.date:
        return settings.date
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        try:
            return _dt.datetime.fromtimestamp(int(epoch), tz=_dt.timezone.utc).date().isoformat()
        except ValueError:
            raise ConfigError(
                f"SOURCE_DATE_EPOCH={epoch!r} is not an integer number of seconds"
            ) from None
    return _dt.datetime.now(tz=_dt.timezone.utc).date().isoformat()


def library_versions() -> dict[str, str | None]:
    """Return the versions of Python, auditkit and the statistics libraries."""
    out: dict[str, str | None] = {"python": platform.python_version(), "auditkit": __version__}
    for name in _LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _fingerprint(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    return {"path": str(path), "sha256": sha256_file(path)}


def assemble_document(
    config: AuditConfig, inputs: AuditInputs, sections: dict[str, Any]
) -> dict[str, Any]:
    """Return the whole results.json document: header sections followed by the statistical sections."""
    settings = config.settings
    sections = dict(sections)
    run_info = sections.pop("run_info")
    effective = settings.model_dump(mode="json")
    table = inputs.table
    model_meta = table.model or {}
    name = settings.model_name or model_meta.get("name") or table.path.stem
    document: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "auditkit", "version": __version__},
        "created": audit_date(settings),
        "run": {
            "seed": settings.seed,
            "n_boot": settings.n_boot,
            "ci_level": settings.ci_level,
            "ci_method": settings.ci_method,
            "cluster_column": run_info["cluster_column"],
            "clustered": run_info["clustered"],
            "resampling": run_info["resampling"],
            "auroc_ci": settings.auroc_ci,
            "task": run_info["task"],
            "classes": run_info["classes"],
            "positive_class": run_info["positive_class"],
            "config": effective,
            "config_sha256": sha256_bytes(dumps_json(effective).encode("utf-8")),
            "library_versions": library_versions(),
        },
        "intended_use": settings.intended_use,
        "model": {
            "name": str(name),
            "arch": None,
            "sha256": model_meta.get("sha256"),
            "version": None,
            "n_parameters": None,
            "input_size": None,
            "in_channels": None,
            "target_layer": None,
            "normalization": None,
            "training": None,
            "history": None,
        },
        "inputs": {
            "predictions": {"path": str(table.path), "sha256": table.sha256, "n_rows": len(table)},
            "manifest": None,
            "checkpoint": None,
            "config": _fingerprint(config.config_path),
            "embeddings": _fingerprint(config.embeddings),
        },
    }
    document.update(sections)
    return document


def write_outputs(out_dir: Path, document: dict[str, Any]) -> Path:
    """Write results.json (validated against the shipped schema) and summary.md; return results.json's path."""
    path = save_results(out_dir / RESULTS_NAME, document)
    atomic_write_text(out_dir / SUMMARY_NAME, render_summary(document))
    return path


def run_audit(config: AuditConfig) -> AuditResults:
    """Return the results of the audit ``config`` describes, written to ``config.out``."""
    out_dir = prepare_output(config)
    inputs = load_inputs(config)
    status(f"auditing {len(inputs.table)} predictions from {inputs.table.path}")
    sections = compute_statistics(inputs.table, config.settings, embeddings=inputs.embeddings)
    document = assemble_document(config, inputs, sections)
    path = write_outputs(out_dir, document)
    status(f"wrote {path} and {out_dir / SUMMARY_NAME}")
    return AuditResults(document, path)
