"""Appendix A: everything needed to reproduce the audit -- versions, seeds, settings, input hashes."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
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
            inputs.append({"name": str(name), "path": fmt.plain(info.get("path")), "sha256": fmt.plain(info.get("sha256")),
                           "rows": fmt.format_count(info.get("n_rows")) if info.get("n_rows") is not None else "\u2014"})
        else:
            inputs.append({"name": str(name), "path": "not used", "sha256": "\u2014", "rows": "\u2014"})
    hashes = [
        ("Model weights", source.get("model.sha256")),
        ("Training data fingerprint", source.get("model.training.data_fingerprint")),
        ("results.json", results_sha256),
        ("Release policy", source.get("gate.policy_sha256")),
    ]
    config = run.get("config")
    return {
        "versions": versions,
        "settings": [{"label": label, "value": fmt.plain(value)} for label, value in settings],
        "inputs": inputs,
        "hashes": [{"label": label, "value": str(value) if value else "not recorded"} for label, value in hashes],
        "config": json.dumps(config, indent=2, ensure_ascii=False, sort_keys=True) if config else "",
        "attachments": [dict(a) for a in attachments],
    }
