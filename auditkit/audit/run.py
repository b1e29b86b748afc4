"""The audit pipeline: (model + manifest ->) predictions -> statistics (+ explanations) -> results.json.

:func:`run_audit` runs one function per step:

1. :func:`prepare_output` — refuse to overwrite a results.json without ``force``;
2. :func:`auditkit.audit.inference.score_manifest` — with ``--model/--manifest``:
   predict, writing ``predictions.parquet`` and ``embeddings.parquet`` into the folder;
3. :func:`load_inputs` — read and validate the predictions table (and embeddings);
4. :func:`auditkit.audit.statistics.compute_statistics` — the statistical sections;
5. :func:`auditkit.audit.saliency.run_saliency` — with a model: the explanations
   on a stratified sample, the saliency trust evidence and the gallery;
6. :func:`assemble_document` — header sections (run, model, inputs, created) + sections;
7. :func:`write_outputs` — results.json (schema-validated, atomic) and summary.md.

The gate and the report read results.json afterwards (``auditkit.pipeline``).

Same inputs, settings and seed give a byte-identical results.json: the date
comes from the config, ``SOURCE_DATE_EPOCH`` or today (UTC), never a clock time.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from auditkit import __version__
from auditkit.audit.config import AuditConfig, AuditSettings
from auditkit.audit.inference import (
    ModelRun,
    input_fingerprints,
    load_model,
    model_section,
    score_manifest,
)
from auditkit.audit.predictions import PredictionsTable, read_embeddings, read_predictions
from auditkit.audit.statistics import build_statistics
from auditkit.audit.summary import render_summary
from auditkit.errors import ConfigError, OutputExistsError
from auditkit.fileio import atomic_write_text, dumps_json, sha256_bytes, sha256_file, to_jsonable
from auditkit.progress import status
from auditkit.results import SCHEMA_VERSION, AuditResults, save_results

RESULTS_NAME = "results.json"
SUMMARY_NAME = "summary.md"
_LIBRARIES = ("numpy", "scipy", "pandas", "scikit-learn")


@dataclass(frozen=True, eq=False)
class AuditInputs:
    """The validated inputs of an audit, and what is derived from them once for every step."""

    table: PredictionsTable
    embeddings: np.ndarray | None
    model_run: ModelRun | None = None
    cohorts: pd.Series | None = None
    """each row's cohort (val, test, an external site, or None): :func:`auditkit.analysis.cohorts.assign_cohorts`."""
    images_root: Path | None = None
    """the folder the table's image paths resolve against and may not escape (:func:`images_root`)."""


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


def load_inputs(config: AuditConfig, model_run: ModelRun | None = None) -> AuditInputs:
    """Return the validated predictions table (with external sites applied) and aligned embeddings.

    The table is ``config.predictions`` if given, else the one the model run
    wrote; embeddings likewise (``config.embeddings`` wins).
    """
    s = config.settings
    predictions = config.predictions
    if predictions is None and model_run is not None:
        predictions = model_run.predictions_path
    if predictions is None:  # pragma: no cover - AuditConfig validates this
        raise ConfigError("the audit needs --predictions, or --model and --manifest")
    if config.predictions is None and model_run is not None and model_run.table is not None:
        table = model_run.table  # built and validated in memory by the model run
    else:
        table = read_predictions(
            predictions, positive_class=s.positive_class, external_sites=s.external_sites
        )
    embeddings_path = config.embeddings
    if embeddings_path is None and model_run is not None and config.predictions is None:
        # the model run's embeddings align with its own table, not with a table the user gave
        embeddings_path = model_run.embeddings_path
    embeddings = None
    if embeddings_path is not None:
        embeddings = read_embeddings(embeddings_path, table.frame["id"].tolist())
    from auditkit.analysis.cohorts import assign_cohorts

    return AuditInputs(table, embeddings, model_run, cohorts=assign_cohorts(table), images_root=images_root(config, table))


def images_root(config: AuditConfig, table: PredictionsTable) -> Path | None:
    """Return the root the table's image paths resolve against (once per audit: saliency, slices, robustness).

    A model run writes the table into the output folder while its image paths
    stay relative to the manifest's folder, so the fence is the manifest's
    root (or --data-root); a table ``auditkit predict`` wrote with this very
    model (check_model_matches refuses any other with --model) was fenced by
    the root it recorded. None: the table's own folder.
    """
    from auditkit.data.paths import resolve_root

    root = resolve_root(config.manifest, config.data_root) if config.manifest is not None else config.data_root
    recorded = (table.model or {}).get("data_root")
    if root is None and recorded:
        root = Path(recorded)
    return None if root is None else Path(root)


def audit_date(settings: AuditSettings) -> str:
    """Return the audit date: the config's ``date``, else ``SOURCE_DATE_EPOCH``, else today (UTC)."""
    if settings.date:
        return settings.date
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        try:
            return _dt.datetime.fromtimestamp(int(epoch), tz=_dt.timezone.utc).date().isoformat()
        except (ValueError, OverflowError, OSError):  # not a number, or beyond the years a date holds
            raise ConfigError(
                f"SOURCE_DATE_EPOCH={epoch[:40]!r} is not an integer number of seconds since 1970 "
                "within the years a date can hold; fix or unset it"
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
            **settings.run_context.to_dict(),
            # the method used ('auto' resolves by clustering: benchmarks/RESULTS.md, coverage)
            "ci_method": run_info.get("ci_method", settings.run_context.ci_method),
            "ci_method_requested": settings.run_context.ci_method,
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
    run = inputs.model_run
    if run is not None:
        document["model"] = model_section(run.loaded)
        if settings.model_name:
            document["model"]["name"] = settings.model_name
        document["inputs"].update(input_fingerprints(config, run))
        if config.embeddings is None and config.predictions is None and run.embeddings_path is not None:
            document["inputs"]["embeddings"] = _fingerprint(run.embeddings_path)
        versions = document["run"]["library_versions"]
        for name in ("torch", "torchvision", "captum"):
            versions[name] = _version(name)
    document.update(sections)
    return document


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def write_outputs(out_dir: Path, document: dict[str, Any]) -> Path:
    """Write results.json (validated against the shipped schema) and summary.md; return results.json's path."""
    path = save_results(out_dir / RESULTS_NAME, document)
    atomic_write_text(out_dir / SUMMARY_NAME, render_summary(document))
    return path


def explain_section(
    config: AuditConfig, inputs: AuditInputs, loaded: Any, out_dir: Path, sections: dict[str, Any]
) -> dict[str, Any]:
    """Return the ``saliency`` and ``gallery`` sections (empty when not asked or no model).

    The gallery's categories use the operating point the statistics froze on
    the validation split, so "false negative" means the same thing everywhere.
    """
    if loaded is None or not config.explain:
        return {}
    from auditkit.audit.saliency import run_saliency
    from auditkit.explain.config import SaliencyConfig

    saliency_cfg = SaliencyConfig.from_any(config.settings)
    threshold = (sections.get("operating_point") or {}).get("threshold")
    if saliency_cfg.threshold is None and threshold is not None:
        saliency_cfg = saliency_cfg.model_copy(update={"threshold": float(threshold)})
    if saliency_cfg.attributes is None and config.settings.attributes:
        saliency_cfg = saliency_cfg.model_copy(
            update={"attributes": tuple(config.settings.attributes)}
        )
    saliency, gallery = run_saliency(
        loaded, inputs.table, out_dir=out_dir, config=saliency_cfg,
        data_root=inputs.images_root, allow_outside_root=config.allow_outside_root,
        failures=sections.get("failures"),
    )  # fmt: skip
    if not saliency:
        return {}
    return {"saliency": saliency, "gallery": gallery}


def artifacts_section(out_dir: Path, sections: dict[str, Any]) -> dict[str, Any]:
    """Return ``{"artifacts": {"cases": ...}}`` when this run's saliency step wrote case records ({} otherwise).

    Only a run whose saliency ran points at ``explain/cases.json`` (that step
    rewrites it), so records left in the folder by an earlier run are never
    claimed; the SHA-256 lets their readers refuse a file changed since.
    """
    from auditkit.explain.cases import cases_artifact

    if not sections.get("saliency"):
        return {}
    artifact = cases_artifact(out_dir)
    return {"artifacts": {"cases": artifact}} if artifact is not None else {}


def failures_section(
    table: PredictionsTable, settings: Any, sections: dict[str, Any], *, cohorts: pd.Series | None = None
) -> dict[str, Any]:
    """Return ``{"failures": ...}``: the worst errors per cohort at the operating point (binary tasks only).

    Also adds ``data.subgroups`` (images, patients and positives per split and
    attribute value, training included) and ``data.site_comparison`` (the
    internal sites of the test cohort against each other) to ``sections``.
    ``cohorts``: each row's cohort as the audit derived it (derived here when None).
    """
    threshold = (sections.get("operating_point") or {}).get("threshold")
    if sections.get("run_info", {}).get("task") != "binary" or threshold is None:
        return {}
    from auditkit.audit.demographics import compare_sites, describe_subgroups
    from auditkit.audit.failures import worst_cases
    from auditkit.audit.statistics import assign_cohorts

    y_pos = table.frame["y_true"].to_numpy() == 1  # binary: class index 1 is the positive class
    cohorts = assign_cohorts(table) if cohorts is None else cohorts
    attributes = list(settings.attributes or [])
    data = sections.get("data")
    if isinstance(data, dict):  # sizes in images and patients per split, training included; internal sites
        data["subgroups"] = describe_subgroups(table.frame, y_pos, attributes)
        data["site_comparison"] = compare_sites(table.frame, (cohorts == "test").to_numpy(), y_pos,
                                                table.probs[:, 1], threshold=float(threshold),
                                                level=settings.ci_level)
    return {"failures": worst_cases(table.frame, cohorts, y_pos, table.probs[:, 1],
                                    threshold=float(threshold), attributes=attributes)}


def check_model_matches(table: PredictionsTable, loaded: Any) -> dict[str, Any] | None:
    """Return a warning when ``table`` cannot be tied to ``loaded``; raise when it belongs to another model.

    A Parquet table written by ``auditkit predict`` records the SHA-256 of the
    weights that produced it: auditing it while explaining a different
    checkpoint would put one model's maps beside another's metrics.
    """
    if loaded is None:
        return None
    recorded = (table.model or {}).get("sha256")
    if recorded is None:
        message = (
            f"{table.path} records no model fingerprint (a CSV, or not written by auditkit predict), "
            f"so it cannot be verified to come from --model {loaded.path}"
        )
        status(f"warning: {message}")
        return {"code": "predictions_model_unverified", "message": message, "where": "inputs.predictions"}
    if str(recorded) != str(loaded.sha256):
        raise ConfigError(
            f"{table.path} was written by the model with weights SHA-256 {str(recorded)[:12]}…, but "
            f"--model {loaded.path} has {str(loaded.sha256)[:12]}…; audit that model's own predictions "
            "(auditkit predict, or --manifest instead of --predictions)"
        )
    return None


def run_audit(config: AuditConfig) -> AuditResults:
    """Return the results of the audit ``config`` describes, written to ``config.out``."""
    out_dir = prepare_output(config)
    from auditkit.audit.multilabel_run import is_multilabel_run, run_multilabel_audit
    from auditkit.audit.volume_saliency import volume_explain_section
    from auditkit.train.kinds import score_other_kind

    original, config = config, score_other_kind(config, out_dir)  # a 3-D/multi-label --model: scored first
    if is_multilabel_run(config):  # label_<f>/score_<f> columns: every analysis per finding
        return run_multilabel_audit(config, out_dir, original=original)  # its model explained per finding
    loaded = load_model(config) if config.model is not None else None
    model_run = None
    if loaded is not None and config.manifest is not None:
        model_run = score_manifest(config, out_dir, loaded)
    inputs = load_inputs(config, model_run)
    # a table the user gave (not the one the model run just wrote) must come from --model
    provenance = check_model_matches(inputs.table, loaded) if config.predictions is not None else None
    status(f"auditing {len(inputs.table)} predictions from {inputs.table.path}")
    statistics = build_statistics(
        inputs.table,
        config.settings,
        embeddings=inputs.embeddings,
        delivered_calibration=loaded.meta.get("calibration") if loaded is not None else None,
        cohorts=inputs.cohorts,
    )
    sections = statistics.to_dict()
    if provenance is not None:
        sections["warnings"] = [*sections.get("warnings", []), provenance]
    sections.update(failures_section(inputs.table, config.settings, sections, cohorts=inputs.cohorts))
    sections.update(explain_section(config, inputs, loaded, out_dir, sections))
    sections.update(volume_explain_section(original, inputs.table, out_dir, sections))  # 3-D saliency
    sections.update(artifacts_section(out_dir, sections))
    from auditkit.audit.clinical import (
        add_clinical,  # decision curves, conformal, slices, robustness
    )

    add_clinical(config, inputs, loaded, sections, engine=statistics.engine)  # the statistics' resamples
    if loaded is not None and model_run is None:
        inputs = dataclasses.replace(
            inputs, model_run=ModelRun(loaded, inputs.table.path, config.embeddings, None, None)
        )
    document = assemble_document(config, inputs, sections)
    path = write_outputs(out_dir, document)
    status(f"wrote {path} and {out_dir / SUMMARY_NAME}")
    return AuditResults(to_jsonable(document), path)
