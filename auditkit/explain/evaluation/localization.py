"""Does the saliency land on the lesion? Pointing game, energy, IoU and Dice against ground truth.

Per image, on maps (N, H, W) and lesion masks (N, H, W) at the same size:

- **hit** (pointing game, Zhang et al. 2018, IJCV; CheXlocalize's "hit rate",
  Saporta et al. 2022, Nat Mach Intell): the map's maximum lies inside the
  lesion. Undefined (NaN) for a constant map, which points nowhere.
- **energy pointing** (energy-based pointing game, Wang et al. 2020,
  Score-CAM, CVPRW): the share of the map's positive mass inside the lesion.
- **IoU / Dice** of the map binarised as in CheXlocalize: min-max normalised
  per image, then thresholded by Otsu's method (Otsu 1979) or by one threshold
  tuned on the validation split over the grid 0.2-0.8 (maximising mean IoU).

Boxes (``bbox_*`` columns) are turned into masks with :func:`box_mask` first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from auditkit.errors import InvalidInputError

TUNING_GRID: tuple[float, ...] = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
"""Thresholds tried on the validation split (Saporta et al. 2022: 0.2-0.8)."""


@dataclass(frozen=True)
class LocalizationScores:
    """Per-image localisation scores, each (N,) float (NaN where undefined)."""

    hit: np.ndarray
    energy_pointing: np.ndarray
    iou_otsu: np.ndarray
    dice_otsu: np.ndarray
    iou_tuned: np.ndarray | None
    """None when no tuned threshold was given."""
    dice_tuned: np.ndarray | None


def _check(maps: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    maps = np.asarray(maps, dtype=np.float64)
    masks = np.asarray(masks).astype(bool)
    if maps.ndim not in (3, 4) or maps.shape != masks.shape:
        raise InvalidInputError(
            "maps and masks must both be (N, H, W) (or (N, D, H, W) for volumes) of the same shape, "
            f"got {maps.shape} and {masks.shape}"
        )
    return maps, masks


def hit(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Return 1.0 where the map's maximum lies in the mask, else 0.0; NaN for constant maps, (N,)."""
    maps, masks = _check(maps, masks)
    flat = maps.reshape(len(maps), -1)
    peak = flat.argmax(axis=1)
    out = masks.reshape(len(masks), -1)[np.arange(len(maps)), peak].astype(float)
    out[flat.max(axis=1) == flat.min(axis=1)] = np.nan
    return out


def energy_pointing(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Return the share of each map's positive mass inside its mask, (N,); NaN without positive mass."""
    maps, masks = _check(maps, masks)
    positive = np.clip(maps, 0, None).reshape(len(maps), -1)
    total = positive.sum(axis=1)
    inside = (positive * masks.reshape(len(masks), -1)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, inside / np.where(total > 0, total, 1), np.nan)


def minmax(maps: np.ndarray) -> np.ndarray:
    """Return each map (N, H, W) scaled to [0, 1] (CheXlocalize's normalisation); constant maps become 0."""
    maps = np.asarray(maps, dtype=np.float64)
    axes = tuple(range(1, maps.ndim))  # (N, H, W) images or (N, D, H, W) volumes
    low = maps.min(axis=axes, keepdims=True)
    span = maps.max(axis=axes, keepdims=True) - low
    return np.where(span > 0, (maps - low) / np.where(span > 0, span, 1), 0.0)


def otsu_threshold(values: np.ndarray, *, nbins: int = 256) -> float:
    """Return Otsu's threshold (Otsu 1979) of ``values`` (any shape) on a ``nbins`` histogram.

    The same algorithm as ``skimage.filters.threshold_otsu``: pixels strictly
    above the threshold are foreground. A constant input returns its value.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    low, high = float(values.min()), float(values.max())
    if low == high:
        return low
    hist, edges = np.histogram(values, bins=nbins, range=(low, high))
    centers = (edges[:-1] + edges[1:]) / 2
    hist = hist.astype(np.float64)
    weight1 = np.cumsum(hist)
    weight2 = np.cumsum(hist[::-1])[::-1]
    mean1 = np.cumsum(hist * centers) / weight1
    with np.errstate(invalid="ignore", divide="ignore"):
        mean2 = (np.cumsum((hist * centers)[::-1]) / weight2[::-1])[::-1]
    variance = weight1[:-1] * weight2[1:] * (mean1[:-1] - mean2[1:]) ** 2
    return float(centers[int(np.nanargmax(variance))])


def binarize_otsu(maps: np.ndarray) -> np.ndarray:
    """Return min-max normalised maps thresholded per image by Otsu's method, (N, H, W) bool."""
    scaled = minmax(maps)
    return np.stack(
        [m > otsu_threshold(m) if m.max() > m.min() else np.zeros_like(m, bool) for m in scaled]
    )


def binarize(maps: np.ndarray, threshold: float) -> np.ndarray:
    """Return min-max normalised maps >= ``threshold``, (N, H, W) bool (constant maps: empty)."""
    scaled = minmax(maps)
    flat = np.asarray(maps).reshape(len(maps), -1)
    varying = (flat.max(axis=1) > flat.min(axis=1)).reshape(-1, *([1] * (np.ndim(maps) - 1)))
    return (scaled >= threshold) & varying


def iou(predicted: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Return the intersection over union of boolean masks, (N,); NaN where both are empty."""
    predicted, masks = np.asarray(predicted, bool), np.asarray(masks, bool)
    axes = tuple(range(1, predicted.ndim))
    inter = (predicted & masks).sum(axis=axes).astype(float)
    union = (predicted | masks).sum(axis=axes).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1), np.nan)


def dice(predicted: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Return the Dice coefficient 2|A&B| / (|A| + |B|) of boolean masks, (N,); NaN where both are empty."""
    predicted, masks = np.asarray(predicted, bool), np.asarray(masks, bool)
    axes = tuple(range(1, predicted.ndim))
    inter = (predicted & masks).sum(axis=axes).astype(float)
    total = (predicted.sum(axis=axes) + masks.sum(axis=axes)).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 2 * inter / np.where(total > 0, total, 1), np.nan)


def tune_threshold(
    maps: np.ndarray, masks: np.ndarray, *, grid: tuple[float, ...] = TUNING_GRID
) -> float:
    """Return the grid threshold whose binarisation has the highest mean IoU on (validation) maps/masks.

    Ties go to the lower threshold. Saporta et al. 2022 tune one threshold per
    pathology on the validation split and freeze it for the test split.
    """
    maps, masks = _check(maps, masks)
    if len(maps) == 0:
        raise InvalidInputError("no validation maps with masks to tune the threshold on")
    means = [np.nanmean(iou(binarize(maps, t), masks)) for t in grid]
    return float(grid[int(np.nanargmax(means))])


def box_mask(shape: tuple[int, int], x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Return a boolean mask (H, W) that is True on the pixels whose centres lie in the box [x0, x1) x [y0, y1)."""
    h, w = shape
    cols = np.arange(w) + 0.5
    rows = np.arange(h) + 0.5
    return ((rows >= y0) & (rows < y1))[:, None] & ((cols >= x0) & (cols < x1))[None, :]


def localization_scores(
    maps: np.ndarray, masks: np.ndarray, *, threshold: float | None = None
) -> LocalizationScores:
    """Return every per-image localisation score of maps (N, H, W) against masks (N, H, W)."""
    maps, masks = _check(maps, masks)
    otsu = binarize_otsu(maps)
    tuned = binarize(maps, threshold) if threshold is not None else None
    return LocalizationScores(
        hit=hit(maps, masks),
        energy_pointing=energy_pointing(maps, masks),
        iou_otsu=iou(otsu, masks),
        dice_otsu=dice(otsu, masks),
        iou_tuned=None if tuned is None else iou(tuned, masks),
        dice_tuned=None if tuned is None else dice(tuned, masks),
    )
