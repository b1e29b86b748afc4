"""The data side of a training run: splits, class checks, fingerprint, normalisation statistics."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from auditkit.errors import ManifestError
from auditkit.labels import ClassSpec
from auditkit.progress import track

if TYPE_CHECKING:
    from auditkit.data.manifest import Manifest


@dataclass(frozen=True)
class TrainingData:
    """A manifest split for training: ``split`` per row, the train and val rows, and what to record."""

    manifest: Manifest
    split: pd.Series
    train_rows: pd.DataFrame
    val_rows: pd.DataFrame
    external_sites: tuple[str, ...]
    monitor: str

    @property
    def classes(self) -> ClassSpec:
        """Return the task's classes."""
        return self.manifest.classes

    @property
    def train_labels(self) -> np.ndarray:
        """Return the training split's class indices ``(n_train,)``."""
        return self.train_rows["y_true"].to_numpy(dtype=np.int64)

    def assignment(self) -> pd.DataFrame:
        """Return the ``patient_id,split`` rows for ``splits.csv``."""
        return pd.DataFrame({"patient_id": self.manifest.frame["patient_id"], "split": self.split})

    def fingerprint(self) -> dict[str, Any]:
        """Return the training data fingerprint: manifest SHA-256 and per-split counts."""
        frame, n_classes = self.manifest.frame, self.classes.n_classes
        counts: dict[str, dict[str, Any]] = {}
        for name in ("train", "val", "test", "external"):
            rows = frame.loc[self.split == name]
            if rows.empty:
                continue
            y = rows["y_true"].to_numpy(dtype=np.int64)
            entry: dict[str, Any] = {"n_images": len(rows), "n_patients": int(rows["patient_id"].nunique())}
            if n_classes == 2:
                entry["n_positive"] = int((y == 1).sum())
            else:
                entry["class_counts"] = np.bincount(y, minlength=n_classes).tolist()
            counts[name] = entry
        return {
            "manifest_path": str(self.manifest.path),
            "manifest_sha256": self.manifest.sha256,
            "n_images": len(frame),
            "splits": counts,
            "external_sites": list(self.external_sites),
        }


def load_training_data(
    manifest: str | os.PathLike[str] | Manifest,
    *,
    seed: int,
    external_sites: Sequence[str] = (),
    positive_class: str | None = None,
    data_root: str | os.PathLike[str] | None = None,
    allow_outside_root: bool = False,
    split_fractions: Mapping[str, float] | None = None,
) -> TrainingData:
    """Return the manifest split by patient, with external sites out of train and val.

    ``split_fractions`` (``{"train", "val", "test"}`` summing to 1) overrides
    the default 70/15/15 patient-level split of rows without a ``split``.

    Raises ManifestError when the training or validation split is empty or a
    class has no training image. The selection criterion is validation AUROC,
    or validation loss when the validation split lacks a class.
    """
    from auditkit.data.manifest import Manifest, read_manifest
    from auditkit.data.splits import assign_splits

    data = manifest if isinstance(manifest, Manifest) else read_manifest(
        manifest, data_root=data_root, allow_outside_root=allow_outside_root, positive_class=positive_class
    )  # fmt: skip
    frame = data.frame
    split = assign_splits(frame, seed=seed, fractions=split_fractions, external_sites=tuple(external_sites))
    train_rows = frame.loc[split == "train"].reset_index(drop=True)
    val_rows = frame.loc[split == "val"].reset_index(drop=True)
    where = str(data.path)
    if train_rows.empty or val_rows.empty:
        raise ManifestError(
            f"{where}: the training split has {len(train_rows)} image(s) and the validation split "
            f"{len(val_rows)}; both need images (add data or fix the 'split' column)"
        )
    n_classes = data.classes.n_classes
    present = set(train_rows["y_true"].astype(int))
    absent = [data.classes.classes[k] for k in range(n_classes) if k not in present]
    if absent:
        raise ManifestError(
            f"{where}: class(es) {absent} have no image in the training split; every class needs "
            "training examples"
        )
    external = tuple(sorted(set(frame.loc[split == "external", "site"].astype(str))))
    monitor = "val_auroc" if val_rows["y_true"].nunique() == n_classes else "val_loss"
    return TrainingData(data, split, train_rows, val_rows, external, monitor)


def normalization_statistics(
    dataset: Any, *, limit: int, seed: int
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Return per-channel ``(mean, std)`` over up to ``limit`` images of ``dataset``, in [0, 1] units.

    ``dataset`` must yield un-normalised images (an ``ImageDataset`` whose
    Preprocess has mean 0 and std 1, without augmentation). A seeded sample
    keeps it cheap and deterministic; values are rounded to six decimals so
    model.json stays readable.
    """
    rng = np.random.default_rng(seed)
    take = np.sort(rng.choice(len(dataset), size=min(limit, len(dataset)), replace=False))
    total = total_sq = None
    pixels = 0
    for i in track(take.tolist(), description="normalisation statistics"):
        x = dataset[i][0].double()  # (C, h, w)
        sums, squares = x.sum(dim=(1, 2)), (x * x).sum(dim=(1, 2))
        total = sums if total is None else total + sums
        total_sq = squares if total_sq is None else total_sq + squares
        pixels += x.shape[1] * x.shape[2]
    mean = total / pixels
    std = torch.sqrt(torch.clamp(total_sq / pixels - mean * mean, min=0.0))
    return (
        tuple(round(float(v), 6) for v in mean),
        tuple(round(max(float(v), 1e-3), 6) for v in std),
    )
