"""Multi-label models: a manifest with ``label_<finding>`` columns, a sigmoid head trained with BCE, predictions per finding.

The manifest has ``image`` and one ``label_<f>`` column per finding (1, 0, -1
uncertain, blank unlabelled; :func:`auditkit.audit.multilabel.encode_finding`
under the declared uncertainty policy), plus the usual ``id``, ``patient_id``,
``site``, ``split`` and attribute columns. Splits are patient-level
(:func:`auditkit.data.splits.assign_splits`, stratified by "any finding
present"; external sites kept out). The network has one logit per finding;
the loss is binary cross-entropy with logits, each finding weighted by its
training negatives over positives (``pos_weight``), unlabelled cells masked
out. The epoch with the best mean validation AUROC over findings is kept (the
later one on a tie). model.json records ``task: {kind: "multilabel",
findings}`` and ``output.activation: "sigmoid"``; :func:`predict_multilabel`
returns the multi-label predictions table (``label_<f>``, ``score_<f>`` per
finding) that ``auditkit audit --predictions`` audits finding by finding.
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

from auditkit.errors import ManifestError
from auditkit.fileio import sha256_file
from auditkit.findings import LABEL_PREFIX, SCORE_PREFIX, encode_finding, finding_names
from auditkit.labels import ClassSpec
from auditkit.nets import checkpoint as ckpt
from auditkit.nets.task_checkpoint import (
    build_from_record,
    read_task_record,
    task_kind,
    verified_weights,
)
from auditkit.progress import track

TASK_KIND = "multilabel"
CLASSES = ClassSpec(("absent", "present"), "present")
_KNOWN = ("id", "image", "patient_id", "site", "split")


@dataclass(frozen=True, eq=False)
class MultilabelManifest:
    """A multi-label manifest: ``frame`` (resolved ``image``, ``y_true`` = any finding present), findings, targets."""

    frame: pd.DataFrame
    findings: tuple[str, ...]
    targets: np.ndarray
    """(n, K) float32: 1, 0, or NaN where the finding's label is left out under the policy."""
    path: Path
    sha256: str


def read_multilabel_manifest(
    path: str | os.PathLike[str],
    *,
    findings: Sequence[str] | None = None,
    policy: str = "ignore",
    data_root: str | os.PathLike[str] | None = None,
    allow_outside_root: bool = False,
) -> MultilabelManifest:
    """Return the multi-label manifest at ``path`` (CSV), image paths resolved inside the data root."""
    from auditkit.data.paths import resolve_paths, resolve_root

    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype={c: str for c in ("id", "patient_id", "site", "split", "image")},
                            keep_default_na=False, na_values=[""])  # fmt: skip
    except (OSError, pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise ManifestError(f"{path}: not a readable CSV manifest ({exc})") from None
    names = finding_names(list(frame.columns), findings)
    missing = [f"{LABEL_PREFIX}{n}" for n in names if f"{LABEL_PREFIX}{n}" not in frame.columns]
    if "image" not in frame.columns or not names or missing:
        raise ManifestError(
            f"{path}: a multi-label manifest needs an 'image' column and label_<finding> columns"
            + (f"; missing {missing}" if missing else "")
        )
    root = resolve_root(path, data_root)
    frame["image"] = resolve_paths(frame["image"].tolist(), root=root, allow_outside_root=allow_outside_root,
                                   where=lambda r: f"{path} row {r + 1}, column 'image'")  # fmt: skip
    if "id" not in frame.columns:
        frame.insert(0, "id", frame["image"].map(lambda p: Path(str(p)).stem))
    frame["patient_id"] = frame["patient_id"].fillna(frame["id"]) if "patient_id" in frame.columns else frame["id"]
    frame["site"] = frame["site"].fillna("default") if "site" in frame.columns else "default"
    if "split" in frame.columns:
        frame["split"] = frame["split"].fillna("").str.strip().str.lower().replace("", np.nan)
    targets = np.stack([encode_finding(frame[f"{LABEL_PREFIX}{n}"].tolist(), policy=policy,
                                       where=f"{path} column '{LABEL_PREFIX}{n}'") for n in names], axis=1)  # fmt: skip
    frame["y_true"] = (np.nan_to_num(targets, nan=0.0) == 1).any(axis=1).astype(np.int64)
    return MultilabelManifest(frame, tuple(names), targets.astype(np.float32), path, sha256_file(path))


def _auroc(y: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    keep = ~np.isnan(y)
    return float(roc_auc_score(y[keep], score[keep])) if len(np.unique(y[keep])) == 2 else float("nan")


def _probabilities(model: nn.Module, dataset: Any, batch_size: int) -> np.ndarray:
    """Return the sigmoid probability of every finding, (n, K) float64."""
    out = []
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(dataset), batch_size):
            x = torch.stack([dataset[i][0] for i in range(start, min(len(dataset), start + batch_size))])
            out.append(torch.sigmoid(model(x).float()))
    return torch.cat(out).double().numpy() if out else np.zeros((0, 0))


def masked_bce(logits: torch.Tensor, targets: torch.Tensor, pos_weight: torch.Tensor) -> torch.Tensor:
    """Return the mean BCE-with-logits over the labelled cells of ``targets`` (NaN = left out)."""
    known = ~torch.isnan(targets)
    loss = nn.functional.binary_cross_entropy_with_logits(
        logits, torch.nan_to_num(targets, nan=0.0), pos_weight=pos_weight, reduction="none"
    )
    return (loss * known).sum() / known.sum().clamp(min=1)


def _epoch(model: nn.Module, data: Any, targets: torch.Tensor, order: list[int], batch_size: int,
           optimiser: torch.optim.Optimizer, pos_weight: torch.Tensor) -> float:
    model.train()
    total = 0.0
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        x = torch.stack([data[i][0] for i in rows])
        optimiser.zero_grad(set_to_none=True)
        loss = masked_bce(model(x), targets[rows], pos_weight)
        loss.backward()
        optimiser.step()
        total += float(loss.detach()) * len(rows)
    return total / max(1, len(order))


def _meta(out: Path, arch: str, names: Sequence[str], preprocess: Any, layer: str, seed: int,
          training: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": out.name, "arch": arch, "task": {"kind": TASK_KIND, "findings": list(names)},
        "classes": CLASSES.to_dict(),
        "output": {"activation": "sigmoid", "n_outputs": len(names),
                   "score": "sigmoid probability of each finding (one logit per finding)"},
        "input_size": list(preprocess.input_size), "in_channels": preprocess.in_channels,
        "preprocess": preprocess.to_dict(), "target_layer": layer, "seed": seed, "training": training,
    }  # fmt: skip


def train_multilabel(
    manifest: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str],
    findings: Sequence[str] | None = None,
    arch: str = "smallcnn",
    input_size: tuple[int, int] = (32, 32),
    epochs: int = 8,
    batch_size: int = 32,
    lr: float = 3e-3,
    seed: int = 0,
    policy: str = "ignore",
    external_sites: Sequence[str] = (),
    fractions: dict[str, float] | None = None,
) -> Path:
    """Train a sigmoid-head model with BCE on a multi-label manifest and return its checkpoint folder (CPU)."""
    from auditkit.data.dataset import ImageDataset
    from auditkit.data.splits import assign_splits
    from auditkit.data.transforms import Preprocess
    from auditkit.nets.layers import resolve_target_layer
    from auditkit.nets.zoo import build_model

    data = read_multilabel_manifest(manifest, findings=findings, policy=policy)
    frame = data.frame.copy()
    frame["split"] = assign_splits(frame, seed=seed, external_sites=external_sites,
                                   **({"fractions": fractions} if fractions else {}))  # fmt: skip
    preprocess = Preprocess(input_size=input_size, in_channels=1)
    torch.manual_seed(seed)
    model = build_model(arch, in_channels=1, num_classes=len(data.findings))
    layer, _ = resolve_target_layer(model, input_size=(1, *preprocess.input_size))
    rows = {s: np.flatnonzero((frame["split"] == s).to_numpy()) for s in ("train", "val")}
    sets = {s: ImageDataset(frame.iloc[r].reset_index(drop=True), preprocess, cache=True) for s, r in rows.items()}
    targets = {s: torch.from_numpy(data.targets[r]) for s, r in rows.items()}
    known = ~torch.isnan(targets["train"])
    positives = (torch.nan_to_num(targets["train"]) * known).sum(0)
    pos_weight = ((known.sum(0) - positives) / positives.clamp(min=1)).float()
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-2)
    generator = torch.Generator().manual_seed(seed)
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    history = []
    for epoch in track(range(1, epochs + 1), total=epochs, description="training (multi-label)"):
        order = torch.randperm(len(sets["train"]), generator=generator).tolist()
        loss = _epoch(model, sets["train"], targets["train"], order, batch_size, optimiser, pos_weight)
        val = _probabilities(model, sets["val"], batch_size)
        aurocs = [_auroc(data.targets[rows["val"], k], val[:, k]) for k in range(len(data.findings))]
        mean = float(np.nanmean(aurocs)) if not np.isnan(aurocs).all() else float("nan")
        history.append({"epoch": epoch, "train_loss": loss, "val_loss": float("nan"), "lr": lr,
                        "val_auroc": mean})  # fmt: skip
        score = -np.inf if np.isnan(mean) else mean
        if best is None or score >= best[0]:  # ties: the later epoch (batch norm settles)
            best = (score, epoch, {k: v.detach().clone() for k, v in model.state_dict().items()})
    assert best is not None  # epochs >= 1
    model.load_state_dict(best[2])
    model.eval()
    out_dir = Path(out)
    training = {
        "epochs": epochs, "best_epoch": best[1], "batch_size": batch_size, "lr": lr, "optimizer": "adamw",
        "loss": "binary_cross_entropy_with_logits (masked, pos_weight per finding)",
        "pos_weight": pos_weight.tolist(), "uncertain_labels": policy, "external_sites": list(external_sites),
        "split_fractions": fractions,
        "completed": True,
        "data_fingerprint": {"manifest_path": str(data.path), "manifest_sha256": data.sha256,
                             "n_images": len(frame)},
    }  # fmt: skip
    meta = _meta(out_dir, arch, data.findings, preprocess, layer, seed, training)
    meta["metrics"] = {"epoch": best[1], "val_auroc_mean": history[best[1] - 1]["val_auroc"]}
    ckpt.save_checkpoint(out_dir, model, meta)
    ckpt.write_splits(out_dir, frame[["patient_id", "split"]])
    ckpt.write_history(out_dir, history)
    return out_dir


@dataclass(frozen=True, eq=False)
class LoadedMultilabelModel:
    """A multi-label checkpoint ready for inference."""

    model: nn.Module
    meta: dict[str, Any]
    findings: tuple[str, ...]
    preprocess: Any
    sha256: str
    splits: pd.DataFrame | None
    path: Path


def is_multilabel_checkpoint(model_dir: str | os.PathLike[str]) -> bool:
    """Return whether ``model_dir/model.json`` declares a multi-label task."""
    return task_kind(model_dir) == TASK_KIND


def load_multilabel_model(model_dir: str | os.PathLike[str]) -> LoadedMultilabelModel:
    """Return the multi-label model of a checkpoint (eval mode, CPU) after checking its weights' SHA-256."""
    from safetensors.torch import load_file

    from auditkit.data.transforms import Preprocess
    from auditkit.nets.zoo import build_model

    folder = Path(model_dir)
    meta = read_task_record(folder, TASK_KIND)
    weights = verified_weights(folder, meta)

    def build() -> LoadedMultilabelModel:
        findings = tuple(meta["task"]["findings"])
        model = build_model(meta["arch"], in_channels=int(meta["in_channels"]), num_classes=len(findings))
        model.load_state_dict(load_file(str(weights)), strict=True)
        model.eval()
        return LoadedMultilabelModel(model, meta, findings, Preprocess.from_dict(meta["preprocess"]),
                                     str(meta["sha256"]), ckpt.read_splits(folder), folder)  # fmt: skip

    return build_from_record(folder, build)


def predict_multilabel(
    model_dir: str | os.PathLike[str] | LoadedMultilabelModel,
    manifest: str | os.PathLike[str],
    *,
    batch_size: int = 64,
    external_sites: Sequence[str] = (),
    policy: str = "ignore",
) -> pd.DataFrame:
    """Return the multi-label predictions table of a checkpoint on every image of ``manifest``.

    Columns: ``id``, ``patient_id``, ``site``, ``split`` (from the checkpoint's
    record), ``image``, the attribute columns, then ``label_<f>`` (as the
    manifest gives it) and ``score_<f>`` (sigmoid probability) per finding.
    """
    from auditkit.data.dataset import ImageDataset
    from auditkit.predict import resolve_splits

    loaded = model_dir if isinstance(model_dir, LoadedMultilabelModel) else load_multilabel_model(model_dir)
    data = read_multilabel_manifest(manifest, findings=loaded.findings, policy=policy)
    external = [*loaded.meta.get("training", {}).get("external_sites", []), *external_sites]
    split = resolve_splits(data.frame, loaded.splits, external_sites=external, where=str(data.path))
    prob = _probabilities(loaded.model, ImageDataset(data.frame, loaded.preprocess), batch_size)
    table = data.frame[[c for c in _KNOWN if c in data.frame.columns]].copy()
    table["split"] = split.to_numpy()
    labels = {f"{LABEL_PREFIX}{f}" for f in loaded.findings}
    for column in data.frame.columns:
        if column not in table.columns and column not in labels and column != "y_true" \
                and not str(column).startswith(LABEL_PREFIX):
            table[column] = data.frame[column].to_numpy()
    for k, finding in enumerate(loaded.findings):
        table[f"{LABEL_PREFIX}{finding}"] = data.frame[f"{LABEL_PREFIX}{finding}"].to_numpy()
        table[f"{SCORE_PREFIX}{finding}"] = prob[:, k]
    return table
