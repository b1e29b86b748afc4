"""Appendix A: everything needed to reproduce the audit -- versions, seeds, settings, input hashes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import Any

from auditkit.report import formatting as fmt
from auditkit.report.sections.common import Source


def build_reproducibility(
    source: Source, *, results_sha256: str | None, attachments: Sequence[Mapping[str, str]]
) -> dict[str, Any]:
    """Return library versions, run settings, the effective configuration and input fingerprints."""
    run = source.mapping("run")
    versions = [{"name": str(k), "version": fmt.plain(v)} for k, v in sorted(source.mapping("run.library_versions").items())]
    settings = [
        ("Random seed (audit)", run.get("seed")),
        ("Random seed (training)", source.get("model.training.seed")),
        ("Bootstrap replicates", run.get("n_boot")),
        ("Confidence level", run.get("ci_level")),
        ("Interval method", run.get("ci_method")),
        ("Resampling unit", f"clusters of '{run['cluster_column']}'" if run.get("cluster_column") else "single images"),
        ("Task", run.get("task")),
        ("Classes (index order)", run.get("classes")),
        ("Positive class", run.get("positive_class")),
        ("Configuration SHA-256", run.get("config_sha256")),
    ]
    inputs = []
    for name, info in source.mapping("inputs").items():
        if isinstance(info, Mapping):
            inputs.append({"name": str(name), "path": file_name(info.get("path")), "sha256": fmt.plain(info.get("sha256")),
                           "rows": fmt.format_count(info.get("n_rows")) if info.get("n_rows") is not None else "\u2014"})
        else:
            inputs.append({"name": str(name), "path": "not used", "sha256": "\u2014", "rows": "\u2014"})
    fingerprint = source.mapping("model.training.data_fingerprint")
    hashes = [
        ("Model weights", source.get("model.sha256")),
        ("Training manifest", fingerprint.get("manifest_sha256")),
        ("results.json", results_sha256),
        ("Release policy", source.get("gate.policy_sha256")),
    ]
    config = run.get("config")
    return {
        "versions": versions,
        "settings": [{"label": label, "value": fmt.plain(value)} for label, value in settings],
        "inputs": inputs,
        "hashes": [{"label": label, "value": str(value) if value else "not recorded"} for label, value in hashes],
        "training_data": training_data(source),
        "config": config_rows(config) if isinstance(config, Mapping) else [],
        "attachments": [dict(a) for a in attachments],
    }


def file_name(path: Any) -> str:
    """Return the last component of a recorded path (the machine's folders are not the reader's business)."""
    if path in (None, ""):
        return "\u2014"
    return PurePath(str(path).replace("\\", "/")).name or str(path)


def training_data(source: Source) -> dict[str, Any]:
    """Return the checkpoint's training-data fingerprint as a table: manifest, hash, images per split."""
    fingerprint = source.mapping("model.training.data_fingerprint")
    if not fingerprint:
        return {"available": False, "rows": [], "splits": []}
    rows = [
        {"label": "Manifest file", "value": file_name(fingerprint.get("manifest_path"))},
        {"label": "Manifest SHA-256", "value": fmt.plain(fingerprint.get("manifest_sha256"))},
        {"label": "Images in the manifest", "value": fmt.format_count(fingerprint.get("n_images"))},
        {"label": "Sites held out as external", "value": ", ".join(str(s) for s in fingerprint.get("external_sites") or [])
         or "none"},
    ]
    splits = []
    for split, counts in (fingerprint.get("splits") or {}).items():
        if isinstance(counts, Mapping):
            splits.append({"split": source.cohort_label(str(split)) if split != "external" else "External",
                           "images": fmt.format_count(counts.get("n_images")),
                           "patients": fmt.format_count(counts.get("n_patients")),
                           "positives": fmt.format_count(counts.get("n_positive"))})
    return {"available": True, "rows": rows, "splits": splits}


def config_rows(config: Mapping[str, Any], prefix: str = "") -> list[dict[str, str]]:
    """Return the effective configuration flattened to ``{key, value}`` rows (nested keys joined by dots).

    A list of mappings (e.g. expected findings) becomes one row per item,
    numbered; free text is shown as it was given.
    """
    rows: list[dict[str, str]] = []
    for key in sorted(config):
        value = config[key]
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            rows.extend(config_rows(value, prefix=f"{name}.") if value else [{"key": name, "value": "(empty)"}])
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, Mapping) for v in value):
            for index, item in enumerate(value, start=1):
                rows.extend(config_rows(item, prefix=f"{name}[{index}]."))
        elif isinstance(value, (list, tuple)):
            rows.append({"key": name, "value": ", ".join(fmt.plain(v) for v in value) if value else "(none)"})
        elif value is None:
            rows.append({"key": name, "value": "not set (default)"})
        else:
            rows.append({"key": name, "value": fmt.plain(value)})
    return rows
