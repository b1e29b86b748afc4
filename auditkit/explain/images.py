"""The images to explain, as the model sees them, with their lesion and anatomy masks at the same geometry.

Each row of a manifest or predictions table gives an image path and optionally
a lesion ``mask`` path or a lesion box (``bbox_x0..bbox_y1``, pixels of the
original image) and an anatomical ``roi`` mask path. Everything is brought to
the model's input geometry with the checkpoint's ``Preprocess`` (the maps are
computed there), and the display copy of the image is the model input with
the normalisation undone, so an overlay shows exactly what was explained.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from auditkit.explain.evaluation.localization import box_mask
from auditkit.progress import track

BBOX_COLUMNS: tuple[str, ...] = ("bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1")


@dataclass(frozen=True)
class LoadedImages:
    """Model inputs and masks for a list of rows, all at the input geometry (h, w)."""

    ids: list[str]
    inputs: torch.Tensor
    """Preprocessed images, (N, C, h, w) float32 on the CPU."""
    masks: list[np.ndarray | None]
    """Lesion masks (h, w) bool from ``mask`` or the box, or None."""
    rois: list[np.ndarray | None]
    """Anatomical region-of-interest masks (h, w) bool, or None."""


def _path(row: pd.Series, column: str) -> str | None:
    value = row.get(column) if column in row.index else None
    if value is None or pd.isna(value) or str(value) == "":
        return None
    return str(value)


def _box(row: pd.Series) -> tuple[float, float, float, float] | None:
    if not all(c in row.index for c in BBOX_COLUMNS):
        return None
    values = [row[c] for c in BBOX_COLUMNS]
    if any(v is None or pd.isna(v) for v in values):
        return None
    return tuple(float(v) for v in values)  # type: ignore[return-value]


def load_images(frame: pd.DataFrame, preprocess: Any, *, description: str = "reading images") -> LoadedImages:
    """Return the inputs (N, C, h, w) and masks of the rows of ``frame`` (columns ``id``, ``image``, optional ``mask``, ``bbox_*``, ``roi``).

    ``preprocess`` is the checkpoint's :class:`auditkit.data.transforms.Preprocess`.
    Images are read with :func:`auditkit.data.readers.read_image`, masks with ``read_mask``.
    """
    from auditkit.data.readers import read_image, read_mask

    tensors: list[torch.Tensor] = []
    masks: list[np.ndarray | None] = []
    rois: list[np.ndarray | None] = []
    for _, row in track(frame.iterrows(), total=len(frame), description=description):
        frame_number = row.get("frame")  # a multi-frame file's frame (manifest column 'frame')
        frame_index = None if frame_number is None or pd.isna(frame_number) else int(frame_number)
        image = read_image(str(row["image"]), frame_index=frame_index)
        tensors.append(preprocess(image))
        lesion = None
        mask_path = _path(row, "mask")
        if mask_path is not None:
            lesion = preprocess.mask_to_input(read_mask(mask_path))
        else:
            box = _box(row)
            if box is not None:
                lesion = preprocess.mask_to_input(box_mask(image.shape[:2], *box))
        masks.append(None if lesion is None else np.asarray(lesion, dtype=bool))
        roi_path = _path(row, "roi")
        rois.append(None if roi_path is None else np.asarray(preprocess.mask_to_input(read_mask(roi_path)), dtype=bool))
    inputs = torch.stack(tensors) if tensors else torch.empty(0)
    return LoadedImages(ids=[str(i) for i in frame["id"]], inputs=inputs.float(), masks=masks, rois=rois)


def display_images(
    inputs: torch.Tensor, *, mean: Sequence[float] | None = None, std: Sequence[float] | None = None
) -> list[np.ndarray]:
    """Return each model input (N, C, h, w) with the normalisation undone, clipped to [0, 1]: (h, w) or (h, w, 3)."""
    x = inputs.detach().float().cpu()
    c = x.shape[1]
    if mean is not None and std is not None:
        m = torch.tensor(list(mean) * (c if len(mean) == 1 else 1), dtype=torch.float32).view(1, c, 1, 1)
        s = torch.tensor(list(std) * (c if len(std) == 1 else 1), dtype=torch.float32).view(1, c, 1, 1)
        x = x * s + m
    x = x.clamp(0, 1).numpy()
    if c == 1:
        return [img[0] for img in x]
    if c == 3:
        return [img.transpose(1, 2, 0) for img in x]
    return [img.mean(axis=0) for img in x]


def normalization_of(preprocess: Any) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    """Return the ``(mean, std)`` a Preprocess applies (None, None when it has none)."""
    mean = getattr(preprocess, "mean", None)
    std = getattr(preprocess, "std", None)
    if mean is None or std is None:
        return None, None
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)
