"""Saliency on volumes: full-depth Grad-CAM / IG maps, 3-D localisation and shortcut mass, slice panels.

:func:`explain_volumes` runs a method of :mod:`auditkit.explain.api` on
(N, C, D, H, W) inputs and returns maps at the input's full (D, H, W) (the CAM
is upsampled trilinearly, depth included). :func:`volume_saliency_scores`
scores each map against its 3-D nodule mask (hit, energy pointing:
:mod:`auditkit.explain.evaluation.localization`) and a declared shortcut box
(the share of positive saliency inside it, and that share over the box's
share of the volume: 1 is what a map indifferent to the box gives).
:func:`top_slices` names the slices a reader should look at: those with the
most saliency and those holding the lesion; :func:`slice_panel` draws them
(matplotlib, the one place that does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from auditkit.explain.api import attribute
from auditkit.explain.evaluation.localization import energy_pointing, hit


def explain_volumes(
    model: nn.Module,
    inputs: torch.Tensor,
    *,
    method: str = "gradcam",
    target_layer: str | None = None,
    target: int | str = 1,
    batch_size: int = 4,
    **params,
) -> np.ndarray:
    """Return display maps (N, D, H, W) float32 of ``inputs`` (N, C, D, H, W): ReLU of the raw map at full size.

    Grad-CAM maps are upsampled trilinearly to the full depth; IG is summed
    over channels (chunked: ``internal_batch_size`` bounds the samples per
    forward+backward, so peak memory follows the chunk, not ``n_steps``).
    """
    steps = ("upsample", "relu") if method in ("gradcam", "gradcampp") else ("sum_channels", "relu")
    out = []
    for start in range(0, len(inputs), batch_size):
        result = attribute(
            model, inputs[start : start + batch_size], method=method, target=target,
            target_layer=target_layer, postprocess=steps, **params,
        )  # fmt: skip
        out.append(result.maps)
    return np.concatenate(out).astype(np.float32)


@dataclass(frozen=True)
class VolumeSaliencyScores:
    """Per-volume saliency scores (arrays (N,), NaN where undefined)."""

    hit: np.ndarray
    """1 if the map's peak voxel lies in the nodule mask (NaN without a mask)."""
    energy_pointing: np.ndarray
    """Share of positive saliency inside the nodule mask (NaN without a mask)."""
    shortcut_share: np.ndarray
    """Share of positive saliency inside the shortcut box."""
    shortcut_ratio: np.ndarray
    """shortcut_share over the box's share of the volume (1 = indifferent to the box)."""


def volume_saliency_scores(
    maps: np.ndarray,
    masks: Sequence[np.ndarray | None],
    *,
    shortcut_box: Sequence[int] | None = None,
) -> VolumeSaliencyScores:
    """Return 3-D localisation and shortcut scores of ``maps`` (N, D, H, W) against ``masks`` and a box.

    ``shortcut_box`` is ``[z0, y0, x0, z1, y1, x1]`` in input voxels (ends exclusive).
    """
    maps = np.asarray(maps, dtype=np.float64)
    n = len(maps)
    hits = np.full(n, np.nan)
    energy = np.full(n, np.nan)
    for i, mask in enumerate(masks):
        if mask is not None and np.any(mask):
            hits[i] = hit(maps[i : i + 1], mask[None])[0]
            energy[i] = energy_pointing(maps[i : i + 1], mask[None])[0]
    share = np.full(n, np.nan)
    ratio = np.full(n, np.nan)
    if shortcut_box is not None:
        z0, y0, x0, z1, y1, x1 = (int(v) for v in shortcut_box)
        box = np.zeros(maps.shape[1:], bool)
        box[z0:z1, y0:y1, x0:x1] = True
        positive = np.clip(maps, 0, None).reshape(n, -1)
        total = positive.sum(axis=1)
        inside = positive[:, box.ravel()].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(total > 0, inside / np.where(total > 0, total, 1), np.nan)
        ratio = share / box.mean()
    return VolumeSaliencyScores(hits, energy, share, ratio)


def top_slices(
    saliency: np.ndarray, mask: np.ndarray | None = None, *, k: int = 3
) -> dict[str, list[int]]:
    """Return ``{"saliency": the k slices with most positive saliency, "lesion": the slices the mask touches}``.

    ``saliency`` and ``mask`` are (D, H, W); slices are indices along D, the
    most salient first, the lesion's in order.
    """
    mass = np.clip(np.asarray(saliency, float), 0, None).sum(axis=(1, 2))
    order = [int(i) for i in np.argsort(-mass, kind="stable")[:k]]
    lesion = (
        [] if mask is None else [int(i) for i in np.nonzero(np.asarray(mask).any(axis=(1, 2)))[0]]
    )
    return {"saliency": order, "lesion": lesion}


def slice_panel(
    volume: np.ndarray, saliency: np.ndarray, mask: np.ndarray | None = None, *, k: int = 3
):
    """Return a matplotlib Figure: the most salient slices, then the lesion's central slice, with overlays.

    ``volume`` (D, H, W) in [0, 1] (:meth:`VolumePreprocess.to_display`),
    ``saliency`` (D, H, W) display map, ``mask`` (D, H, W) or None. Each panel
    is titled with its slice index and share of the volume's saliency.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    chosen = top_slices(saliency, mask, k=k)
    slices = list(chosen["saliency"])
    if chosen["lesion"]:
        centre = chosen["lesion"][len(chosen["lesion"]) // 2]
        slices.append(centre)
    positive = np.clip(saliency, 0, None)
    mass = positive.sum(axis=(1, 2))
    total = float(mass.sum())
    scale = max(float(positive.max()), 1e-12)
    if total <= 0:
        slices = chosen["lesion"][len(chosen["lesion"]) // 2 : len(chosen["lesion"]) // 2 + 1] or [0]
    figure = Figure(figsize=(2.2 * len(slices), 2.5))
    for index, z in enumerate(slices):
        axis = figure.add_subplot(1, len(slices), index + 1)
        axis.imshow(volume[z], cmap="gray", vmin=0, vmax=1)
        # only voxels above 5% of the volume's peak are coloured, so the anatomy stays visible
        shown = np.ma.masked_where(positive[z] <= 0.05 * scale, positive[z] / scale)
        axis.imshow(shown, cmap="jet", alpha=0.45, vmin=0, vmax=1)
        if mask is not None and mask[z].any():
            axis.contour(mask[z], levels=[0.5], colors="lime", linewidths=0.8)
        if total <= 0:
            axis.set_title(f"slice {z} (lesion)\nno positive saliency anywhere", fontsize=7)
        else:
            kind = "lesion" if index == len(chosen["saliency"]) else "top saliency"
            axis.set_title(f"slice {z} ({kind})\n{100 * mass[z] / total:.0f}% of saliency", fontsize=7)
        axis.axis("off")
    figure.tight_layout()
    return figure
