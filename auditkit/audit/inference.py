"""The audit's first step when it is given a checkpoint: score the manifest, record the model.

``auditkit audit --model models/NAME --manifest M`` runs prediction first
(the checkpoint's patient → split record decides which rows are train, val,
test or external), writes the predictions table and penultimate-layer
embeddings into the audit folder, and describes the model for results.json's
``model`` section from its ``model.json`` and ``history.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditkit.audit.config import AuditConfig
from auditkit.fileio import sha256_file
from auditkit.progress import status

PREDICTIONS_NAME = "predictions.parquet"
EMBEDDINGS_NAME = "embeddings.parquet"

@dataclass(frozen=True, eq=False)
class ModelRun:
    """A loaded checkpoint and the files its prediction step wrote into the audit folder."""

    loaded: Any
    """:class:`auditkit.nets.checkpoint.LoadedModel`."""
    predictions_path: Path
    embeddings_path: Path | None
    manifest_sha256: str | None
    manifest_rows: int | None
    table: Any = None
    """the validated :class:`~auditkit.predictions_table.PredictionsTable` the run built in memory."""


def load_model(config: AuditConfig) -> Any:
    """Return the checkpoint named by ``config.model``, loaded on the chosen device."""
    from auditkit.distributed import rank_device
    from auditkit.nets.checkpoint import load_checkpoint
    from auditkit.nets.device import select_device

    # under torchrun each rank drives its own GPU (cuda -> cuda:LOCAL_RANK)
    return load_checkpoint(
        config.model, device=select_device(rank_device(config.device)), trust_code=config.trust_model_code
    )


def score_manifest(config: AuditConfig, out_dir: Path, loaded: Any) -> ModelRun:
    """Return the model run after predicting on ``config.manifest`` into ``out_dir``.

    Writes ``predictions.parquet`` and ``embeddings.parquet`` (for the
    domain-classifier and MMD shift tests) atomically; the run keeps the
    validated table in memory (``ModelRun.table``).
    """
    from auditkit.data.manifest import read_manifest
    from auditkit.predict import predict

    manifest = read_manifest(
        config.manifest,
        data_root=config.data_root,
        allow_outside_root=config.allow_outside_root,
        class_spec=loaded.classes,
    )
    status(f"predicting {len(manifest.frame)} images of {config.manifest} with {loaded.name}")
    predictions_path = out_dir / PREDICTIONS_NAME
    embeddings_path = out_dir / EMBEDDINGS_NAME if loaded.embedding_layer else None
    # validated once, in memory: the Parquet file is an output artefact, not re-read
    table = predict(
        loaded,
        manifest,
        out=predictions_path,
        batch_size=config.batch_size,
        embeddings_out=embeddings_path,
        external_sites=config.settings.external_sites,
        positive_class=config.settings.positive_class,
    )
    return ModelRun(loaded, predictions_path, embeddings_path, manifest.sha256, len(manifest.frame), table)


def model_section(loaded: Any) -> dict[str, Any]:
    """Return results.json's ``model`` section for a loaded checkpoint."""
    from auditkit.nets.checkpoint import read_history

    meta = loaded.meta
    training = meta.get("training") or {}
    n_parameters = meta.get("n_parameters")
    if n_parameters is None:
        n_parameters = int(sum(p.numel() for p in loaded.model.parameters()))
    return {
        "name": str(loaded.name),
        "arch": str(loaded.arch),
        "sha256": loaded.sha256,
        "version": meta.get("version"),
        "n_parameters": int(n_parameters),
        "input_size": [int(v) for v in loaded.input_size],
        "in_channels": int(loaded.in_channels),
        "target_layer": loaded.target_layer,
        "normalization": meta.get("normalization"),
        "output": meta.get("output"),
        "calibration": meta.get("calibration"),
        "training": dict(training) or None,
        "metrics": meta.get("metrics"),
        "history": read_history(loaded.path),
        "library_versions": meta.get("library_versions"),
    }


def input_fingerprints(config: AuditConfig, run: ModelRun) -> dict[str, Any]:
    """Return the ``inputs`` entries a model run adds: manifest and checkpoint fingerprints."""
    manifest = None
    if config.manifest is not None:
        manifest = {
            "path": str(config.manifest),
            "sha256": run.manifest_sha256 or sha256_file(config.manifest),
            "n_rows": run.manifest_rows,
        }
    checkpoint = {"path": str(run.loaded.path), "sha256": run.loaded.sha256}
    return {"manifest": manifest, "checkpoint": checkpoint}
