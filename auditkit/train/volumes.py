"""Training, loading and predicting 3-D models on a manifest of volumes.

The same contracts as 2-D: a manifest whose ``image`` cells name volumes
(:mod:`auditkit.data.volumes`), patient-level splits
(:func:`auditkit.data.splits.assign_splits`, external sites kept out), a
checkpoint ``weights.safetensors`` + ``model.json`` (with ``task.kind:
"volume"`` and the declared :class:`~auditkit.data.volumes.VolumePreprocess`
under ``preprocess``), and a predictions table with today's columns
(:func:`auditkit.predictions_table.build_frame`), so every statistical analysis of the
audit runs on a 3-D model unchanged. Training: AdamW, cross-entropy with
balanced class weights, the epoch with the best validation AUROC kept (the
later one on a tie).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from auditkit.data.manifest import Manifest, read_manifest
from auditkit.data.splits import assign_splits
from auditkit.data.volumes import VolumeDataset, VolumePreprocess
from auditkit.errors import ManifestError
from auditkit.labels import ClassSpec
from auditkit.nets import checkpoint as ckpt
from auditkit.nets.layers import resolve_target_layer
from auditkit.nets.nets3d import ARCHITECTURES_3D, build_model_3d
from auditkit.nets.task_checkpoint import (
    build_from_record,
    read_task_record,
    task_kind,
    verified_weights,
)
from auditkit.progress import track

TASK_KIND = "volume"


def _check_volumes(manifest: Manifest) -> None:
    for row, path in enumerate(manifest.frame["image"].tolist()):
        if not Path(path).exists():
            raise ManifestError(
                f"{manifest.path} row {row + 1}, column 'image': volume '{path}' does not exist; fix the path"
            )


def _auroc(y: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, score)) if len(np.unique(y)) == 2 else float("nan")


def _scores(model: nn.Module, dataset: VolumeDataset, batch_size: int) -> np.ndarray:
    probs = []
    with torch.inference_mode():
        for start in range(0, len(dataset), batch_size):
            x = torch.stack(
                [dataset[i][0] for i in range(start, min(len(dataset), start + batch_size))]
            )
            probs.append(torch.softmax(model(x).float(), dim=1))
    return torch.cat(probs).numpy().astype(np.float64)


def _fit(model: nn.Module, train_set: VolumeDataset, val_set: VolumeDataset, loss_fn: nn.Module, *,
         epochs: int, batch_size: int, lr: float, seed: int) -> tuple[int, list[dict[str, float]]]:
    """Train ``model`` in place, load its best epoch's weights; return that epoch and the history."""
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-2)
    generator = torch.Generator().manual_seed(seed)
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    history = []
    for epoch in track(range(1, epochs + 1), total=epochs, description="training (3-D)"):
        model.train()
        order = torch.randperm(len(train_set), generator=generator).tolist()
        total = 0.0
        for start in range(0, len(order), batch_size):
            batch = [train_set[i] for i in order[start : start + batch_size]]
            x = torch.stack([b[0] for b in batch])
            y = torch.tensor([b[1] for b in batch])
            optimiser.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(batch)
        model.eval()
        val_auroc = _auroc(val_set.targets, _scores(model, val_set, batch_size)[:, -1])
        history.append(
            {"epoch": epoch, "train_loss": total / max(1, len(train_set)), "val_auroc": val_auroc}
        )
        score = -np.inf if np.isnan(val_auroc) else val_auroc
        # ties go to the later epoch: batch-norm running statistics settle over epochs
        if best is None or score >= best[0]:
            best = (score, epoch, {k: v.detach().clone() for k, v in model.state_dict().items()})
    assert best is not None  # epochs >= 1
    model.load_state_dict(best[2])
    model.eval()
    return best[1], history


def _meta(out: str | os.PathLike[str], arch: str, data: Manifest, frame: pd.DataFrame,
          preprocess: VolumePreprocess, layer: str, training: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": Path(out).name,
        "arch": arch,
        "task": {"kind": TASK_KIND, "spatial_dims": 3},
        "classes": data.classes.to_dict(),
        "output": {
            "activation": "softmax",
            "n_outputs": data.classes.n_classes,
            "score": "softmax[1]",
        },
        "input_size": list(preprocess.size),
        "in_channels": preprocess.in_channels,
        "preprocess": preprocess.to_dict(),
        "target_layer": layer,
        "embedding_layer": ARCHITECTURES_3D[arch].head,
        "seed": training.pop("seed"),
        "training": {
            **training,
            "completed": True,
            "data_fingerprint": {
                "manifest_path": str(data.path),
                "manifest_sha256": data.sha256,
                "n_images": len(frame),
            },
        },
    }


def train_volumes(
    manifest: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str],
    preprocess: VolumePreprocess,
    arch: str = "smallcnn3d",
    epochs: int = 8,
    batch_size: int = 8,
    lr: float = 3e-3,
    seed: int = 0,
    external_sites: Sequence[str] = (),
    positive_class: str | None = None,
    fractions: dict[str, float] | None = None,
) -> Path:
    """Train a 3-D model on a manifest of volumes and return its checkpoint folder (CPU or CUDA).

    ``fractions``: patient-level train/val/test shares for rows without a
    split (default: :func:`~auditkit.data.splits.assign_splits`'s).
    """
    data = read_manifest(manifest, positive_class=positive_class, check_files=False)
    _check_volumes(data)
    frame = data.frame.copy()
    frame["split"] = assign_splits(frame, seed=seed, external_sites=external_sites,
                                   **({"fractions": fractions} if fractions else {}))  # fmt: skip
    train_rows = frame[frame["split"] == "train"].reset_index(drop=True)
    val_rows = frame[frame["split"] == "val"].reset_index(drop=True)
    torch.manual_seed(seed)
    model = build_model_3d(
        arch, in_channels=preprocess.in_channels, num_classes=data.classes.n_classes
    )
    layer, _ = resolve_target_layer(model, input_size=preprocess.size)
    train_set = VolumeDataset(train_rows, preprocess, cache=True)
    val_set = VolumeDataset(val_rows, preprocess, cache=True)
    counts = np.bincount(train_set.targets, minlength=data.classes.n_classes).astype(float)
    weights = torch.tensor(counts.sum() / np.maximum(counts, 1) / len(counts), dtype=torch.float32)
    best_epoch, history = _fit(model, train_set, val_set, nn.CrossEntropyLoss(weight=weights),
                               epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)  # fmt: skip
    training = {"seed": seed, "epochs": epochs, "best_epoch": best_epoch, "batch_size": batch_size, "lr": lr,
                "optimizer": "adamw", "loss": "cross_entropy", "class_weights": weights.tolist(),
                "external_sites": list(external_sites)}  # fmt: skip
    meta = _meta(out, arch, data, frame, preprocess, layer, training)
    meta["metrics"] = {"epoch": best_epoch, "val_auroc": history[best_epoch - 1]["val_auroc"]}
    out_dir = Path(out)
    ckpt.save_checkpoint(out_dir, model, meta)
    ckpt.write_splits(out_dir, frame[["patient_id", "split"]])
    ckpt.write_history(out_dir, [{**h, "val_loss": float("nan"), "lr": lr} for h in history])
    return out_dir


@dataclass(frozen=True)
class LoadedVolumeModel:
    """A 3-D checkpoint ready for inference."""

    model: nn.Module
    meta: dict[str, Any]
    preprocess: VolumePreprocess
    classes: ClassSpec
    target_layer: str
    sha256: str
    splits: pd.DataFrame | None
    path: Path


def is_volume_checkpoint(model_dir: str | os.PathLike[str]) -> bool:
    """Return whether ``model_dir/model.json`` declares a volume task."""
    return task_kind(model_dir) == TASK_KIND


def load_volume_model(model_dir: str | os.PathLike[str]) -> LoadedVolumeModel:
    """Return the 3-D model of a checkpoint (eval mode, CPU) after checking its weights' SHA-256."""
    from safetensors.torch import load_file

    folder = Path(model_dir)
    meta = read_task_record(folder, TASK_KIND)
    weights = verified_weights(folder, meta)

    def build() -> LoadedVolumeModel:
        classes = ClassSpec.from_dict(meta["classes"])
        model = build_model_3d(meta["arch"], in_channels=int(meta["in_channels"]), num_classes=classes.n_classes)
        model.load_state_dict(load_file(str(weights)), strict=True)
        model.eval()
        return LoadedVolumeModel(
            model=model, meta=meta, preprocess=VolumePreprocess.from_dict(meta["preprocess"]), classes=classes,
            target_layer=str(meta["target_layer"]), sha256=str(meta["sha256"]), splits=ckpt.read_splits(folder),
            path=folder,
        )  # fmt: skip

    return build_from_record(folder, build)


def predict_volumes(
    model_dir: str | os.PathLike[str] | LoadedVolumeModel,
    manifest: str | os.PathLike[str],
    *,
    batch_size: int = 8,
    external_sites: Sequence[str] = (),
) -> pd.DataFrame:
    """Return the predictions table (today's columns) of a 3-D checkpoint on every volume of ``manifest``."""
    from auditkit.predict import resolve_splits
    from auditkit.predictions_table import build_frame

    loaded = model_dir if isinstance(model_dir, LoadedVolumeModel) else load_volume_model(model_dir)
    data = read_manifest(manifest, class_spec=loaded.classes, check_files=False)
    _check_volumes(data)
    external = [*loaded.meta.get("training", {}).get("external_sites", []), *external_sites]
    split = resolve_splits(data.frame, loaded.splits, external_sites=external, where=str(data.path))
    dataset = VolumeDataset(data.frame.reset_index(drop=True), loaded.preprocess)
    prob = _scores(loaded.model, dataset, batch_size)
    return build_frame(data.frame, prob, split, loaded.classes.classes)
