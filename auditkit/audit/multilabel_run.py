"""The multi-label audit: a ``label_<f>``/``score_<f>`` predictions table audited finding by finding into results.json.

:func:`multilabel_findings` says whether a table is multi-label (it has
``label_<f>`` and ``score_<f>`` column pairs and no ``y_true``, or the run
names ``--labels``); :func:`multilabel_sections` runs the single-label
statistics once per finding (:func:`auditkit.audit.multilabel.audit_findings`:
each finding its own operating point on its own validation rows, Holm across
findings x subgroups) and returns results.json's sections: ``findings.<f>.…``,
``macro``, ``multiplicity``, ``label_policy``, plus the top-level ``cohorts``
and ``data`` of every row (positives = images with at least one finding
present). A single-label table never comes here, so its paths are unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from auditkit.audit.config import AuditSettings
from auditkit.audit.multilabel import (
    LABEL_PREFIX,
    SCORE_PREFIX,
    audit_findings,
    encode_finding,
    finding_names,
)
from auditkit.audit.predictions import PredictionsTable
from auditkit.errors import PredictionsError
from auditkit.fileio import sha256_file
from auditkit.predictions_table import PARQUET_SUFFIXES, _read_frame, from_frame

TASK = "multilabel"


def multilabel_findings(columns: Sequence[str], labels: Sequence[str] | None = None) -> list[str] | None:
    """Return the findings of a multi-label table's ``columns`` (or ``labels``), or None for a single-label table."""
    columns = [str(c) for c in columns]
    if labels:
        names = finding_names(columns, labels)
        for name in names:
            for column in (f"{LABEL_PREFIX}{name}", f"{SCORE_PREFIX}{name}"):
                if column not in columns:
                    raise PredictionsError(
                        f"--labels names finding {name!r}, but the predictions table has no column "
                        f"{column!r}; a finding needs {LABEL_PREFIX}{name} and {SCORE_PREFIX}{name}"
                    )
        return names
    if "y_true" in columns:
        return None  # single-label (binary, or multi-class with score_<class> columns)
    names = [n for n in finding_names(columns) if f"{SCORE_PREFIX}{n}" in columns]
    return names or None


def table_columns(path: Path) -> list[str]:
    """Return the column names of the predictions file at ``path`` from its header only ([] if unreadable)."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix in PARQUET_SUFFIXES:
            import pyarrow.parquet as pq

            return [str(n) for n in pq.read_schema(path).names]
        if suffix in (".csv", ".tsv", ".txt"):
            return [str(c) for c in pd.read_csv(path, nrows=0, sep="\t" if suffix == ".tsv" else ",").columns]
    except Exception:
        return []
    return []


def is_multilabel_run(config: Any) -> bool:
    """Return whether the audit ``config`` describes is multi-label (``labels`` given, or the table's columns say so)."""
    labels = getattr(config, "labels", None)
    if config.predictions is None:
        if labels:
            raise PredictionsError(
                "--labels needs --predictions (a table with label_<finding> and score_<finding> "
                "columns); a multi-label model's run writes one with 'auditkit predict'"
            )
        return False
    return multilabel_findings(table_columns(config.predictions), labels) is not None


def run_multilabel_audit(config: Any, out_dir: Path, *, original: Any = None) -> Any:
    """Return the AuditResults of a multi-label audit, results.json and summary.md written to ``out_dir``.

    ``original``: the audit's config as given, before a multi-label ``--model
    --manifest`` run was scored into ``config.predictions``; its model is
    explained per finding (``findings.<f>.saliency``, ``findings.<f>.gallery``).
    """
    from auditkit.audit.run import AuditInputs, assemble_document, write_outputs
    from auditkit.fileio import to_jsonable
    from auditkit.progress import status
    from auditkit.results import AuditResults

    policy = getattr(config, "uncertain_labels", "ignore") or "ignore"
    status(f"auditing the multi-label predictions in {config.predictions}")
    union, sections = multilabel_sections(
        Path(config.predictions), config.settings, labels=getattr(config, "labels", None), policy=policy
    )
    explained = explain_findings(original if original is not None else config, config, out_dir, sections, policy)
    missing = [f for f in sections["findings"] if explained is not None and f not in explained]
    if missing:
        sections["warnings"].append({
            "code": "multilabel_explanations_not_run",
            "message": f"findings {', '.join(missing)} were not explained (not an output of the model, no audited "
                       "rows, or no images named in the predictions table); their statistics were computed",
            "where": "saliency",
        })  # fmt: skip
    findings = sections["run_info"]["findings"]
    document = assemble_document(config, AuditInputs(union, None, None), sections)
    document["run"]["findings"] = findings
    document["run"]["label_policy"] = sections["label_policy"]
    path = write_outputs(out_dir, document)
    status(f"wrote {path} ({len(findings)} findings: {', '.join(findings)})")
    return AuditResults(to_jsonable(document), path)


def explain_findings(given: Any, config: Any, out_dir: Path, sections: dict[str, Any], policy: str) -> list[str] | None:
    """Return the findings explained into ``sections`` (None when no multi-label model is to be explained).

    ``given``: the config as the user gave it (its ``model``, ``manifest``,
    ``data_root``); ``config``: the one audited (its ``predictions``).
    """
    from auditkit.train.kinds import MULTILABEL, checkpoint_kind

    model = getattr(given, "model", None)
    if model is None or not getattr(given, "explain", True) or checkpoint_kind(model) != MULTILABEL:
        return None
    from auditkit.audit.multilabel_saliency import multilabel_saliency
    from auditkit.data.paths import data_root_or, resolve_root

    manifest = getattr(given, "manifest", None)
    frame, meta = _read_frame(Path(config.predictions))
    if manifest is not None:  # the table was scored from it, row for row: paths are the manifest's
        root, where = resolve_root(Path(manifest), given.data_root), str(manifest)
    else:
        recorded = _recorded_root(model, meta or {}, Path(config.predictions))
        root = data_root_or(given.data_root, recorded or Path(config.predictions).parent)
        where = str(config.predictions)
    return multilabel_saliency(
        model, frame, sections["findings"], out_dir=out_dir,
        settings=config.settings, root=root, where=where, policy=policy,
        allow_outside_root=bool(getattr(given, "allow_outside_root", False)),
    )  # fmt: skip


def _recorded_root(model: Any, meta: dict[str, Any], path: Path) -> Path | None:
    """Return the data root ``auditkit predict`` recorded in the table at ``path`` for this very ``model``.

    A table recording another model's weights is refused (its maps would sit
    beside another model's statistics); one recording none gives None.
    """
    from auditkit.errors import ConfigError
    from auditkit.nets.task_checkpoint import read_task_record
    from auditkit.train.multilabel import TASK_KIND

    recorded = meta.get("model_sha256")
    if recorded is None:
        return None
    own = read_task_record(Path(model), TASK_KIND).get("sha256")
    if str(recorded) != str(own):
        raise ConfigError(
            f"{path} was written by the model with weights SHA-256 {str(recorded)[:12]}…, but --model {model} has "
            f"{str(own)[:12]}…; audit that model's own predictions (auditkit predict, or --manifest instead)"
        )
    return Path(meta["data_root"]) if meta.get("data_root") else None


def read_multilabel_frame(path: Path) -> pd.DataFrame:
    """Return the raw rows of the predictions file at ``path`` (CSV or Parquet), unvalidated."""
    frame, _ = _read_frame(Path(path))
    return frame


def _union_table(frame: pd.DataFrame, names: Sequence[str], path: Path, sha256: str,
                 settings: AuditSettings, policy: str) -> PredictionsTable:
    """Return every row as one binary table (positive = any finding present), for cohorts and ``data``."""
    present = np.zeros(len(frame), bool)
    for name in names:
        y = encode_finding(frame[f"{LABEL_PREFIX}{name}"].tolist(), policy=policy,
                           where=f"{path} column '{LABEL_PREFIX}{name}'")
        present |= y == 1.0
    keep = [c for c in frame.columns if not str(c).startswith((LABEL_PREFIX, SCORE_PREFIX))]
    union = frame[keep].copy()
    union.insert(1, "y_true", present.astype(np.int64))
    union.insert(2, "score", present.astype(float))  # placeholder: only counts are read from it
    return from_frame(union, None, path=path, sha256=sha256, external_sites=settings.external_sites)


def _cohorts(union: PredictionsTable, findings: dict[str, Any]) -> dict[str, Any]:
    """Return the top-level ``cohorts``: images and patients per cohort, positives per finding."""
    from auditkit.analysis.cohorts import _cohort_order, assign_cohorts
    from auditkit.analysis.context import ROLE

    cohort = assign_cohorts(union)
    out: dict[str, Any] = {}
    for name in _cohort_order(cohort):
        rows = union.frame[(cohort == name).to_numpy()]
        patients = rows["patient_id"] if "patient_id" in rows.columns else rows["id"]
        n_pos = int((rows["y_true"] == 1).sum())
        out[name] = {
            "role": ROLE.get(name, "external"),
            "n_images": len(rows),
            "n_patients": int(patients.nunique()),
            "n_positive": n_pos,
            "n_negative": len(rows) - n_pos,
            "positive_means": "at least one finding present",
            "findings": {
                f: {k: sections.get("cohorts", {}).get(name, {}).get(k)
                    for k in ("n_images", "n_positive", "n_negative")}
                for f, sections in findings.items()
            },
        }
    return out


def multilabel_sections(
    path: Path,
    settings: AuditSettings,
    *,
    labels: Sequence[str] | None = None,
    policy: str = "ignore",
) -> tuple[PredictionsTable, dict[str, Any]]:
    """Return the all-rows table and the multi-label audit's sections (``run_info`` included) for the table at ``path``."""
    from auditkit.audit.clinical import compute_clinical
    from auditkit.audit.statistics import compute_statistics

    path = Path(path)
    frame = read_multilabel_frame(path)
    names = multilabel_findings(list(frame.columns), labels)
    if not names:
        raise PredictionsError(
            f"{path}: no findings; a multi-label table has label_<finding> and score_<finding> columns"
        )
    sha = sha256_file(path)
    run_infos: list[dict[str, Any]] = []

    def statistics(table: pd.DataFrame) -> dict[str, Any]:
        validated = from_frame(table, None, path=path, sha256=sha, external_sites=settings.external_sites)
        sections = compute_statistics(validated, settings)
        run_infos.append(sections.pop("run_info"))
        # decision curves, conformal sets and slices per finding (findings.<f>.clinical)
        sections.update(compute_clinical(validated, settings, sections))
        return sections

    audited = audit_findings(frame, statistics, findings=names, policy=policy)
    union = _union_table(frame, names, path, sha, settings, policy)
    from auditkit.analysis.cohorts import assign_cohorts, describe_data
    from auditkit.analysis.fairness import _attribute_sets

    run_info = dict(run_infos[0])
    run_info.update(task=TASK, classes=["absent", "present"], positive_class="present")
    data = describe_data(union, assign_cohorts(union), _attribute_sets(settings))
    data["positive_means"] = "at least one finding present (each finding's own counts: findings.<f>.data)"
    warnings = [
        {**w, "where": f"findings.{f}.{w.get('where') or ''}".rstrip(".")}
        for f, sections in audited["findings"].items()
        for w in sections.get("warnings", []) or []
        if isinstance(w, dict)
    ]
    sections = {
        "run_info": {**run_info, "findings": list(names)},
        "data": data,
        "cohorts": _cohorts(union, audited["findings"]),
        **audited,
        "warnings": warnings,
    }
    return union, sections
