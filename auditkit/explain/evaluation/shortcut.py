"""Does the model look at shortcuts? The share of saliency in the image corners, off the anatomy.

Burned-in markers, laterality tags and text overlays sit in the corners of a
radiograph, off the anatomy, and models learn them instead of the disease
(Zech et al. 2018, PLOS Med; DeGrave et al. 2021, Nat Mach Intell). Per image,
the shortcut score is the largest share of the map's positive mass that falls
in any one of the four corner squares (each ``fraction`` of the side; a
quarter by default), leaving out the anatomical region of interest when a
mask is given (manifest column ``roi``): anatomy is never a shortcut. Over a
set of images the shares are pooled by mass (the sum of corner mass over the
sum of mass), so images whose maps carry little evidence for the class
weigh little. A diffuse map scores ``fraction**2`` (0.0625); a map on a corner
marker scores near 1.

Why corners and not "everything outside the ROI": measured on the phantom
(48x48, smallcnn, 6x6 Grad-CAM), a tight lung ROI covers 17% of the image and
a coarse map spills out of it for every model, clean or flawed (pooled
outside-ROI share 0.76-0.78 for both), while the corner score separates them
(0.08 clean, 0.19 with the planted marker). The outside-ROI share is still
reported next to it (:func:`outside_roi_shares`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from auditkit.errors import InvalidInputError

CORNER_FRACTION = 0.25
"""Side of each corner square as a share of the image side."""


def corner_masks(shape: tuple[int, int], *, fraction: float = CORNER_FRACTION) -> list[np.ndarray]:
    """Return the four corner squares (top-left, top-right, bottom-left, bottom-right) as (H, W) bool masks."""
    if not 0 < fraction <= 0.5:
        raise InvalidInputError(f"corner fraction must lie in (0, 0.5], got {fraction!r}")
    h, w = shape
    a, b = max(1, round(h * fraction)), max(1, round(w * fraction))
    out = []
    for rows, cols in (
        (slice(0, a), slice(0, b)),
        (slice(0, a), slice(w - b, w)),
        (slice(h - a, h), slice(0, b)),
        (slice(h - a, h), slice(w - b, w)),
    ):
        mask = np.zeros((h, w), dtype=bool)
        mask[rows, cols] = True
        out.append(mask)
    return out


def _check(maps: np.ndarray, rois: Sequence[np.ndarray | None] | None) -> np.ndarray:
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 3:
        raise InvalidInputError(f"maps must be (N, H, W), got {maps.shape}")
    if rois is not None:
        if len(rois) != len(maps):
            raise InvalidInputError(f"got {len(rois)} ROI masks for {len(maps)} maps; give one (or None) per map")
        for roi in rois:
            if roi is not None and np.asarray(roi).shape != maps.shape[1:]:
                raise InvalidInputError(
                    f"an ROI mask is {np.asarray(roi).shape} but the maps are {maps.shape[1:]}; resize it to the input"
                )
    return maps


def corner_masses(
    maps: np.ndarray,
    *,
    rois: Sequence[np.ndarray | None] | None = None,
    fraction: float = CORNER_FRACTION,
) -> tuple[np.ndarray, np.ndarray]:
    """Return each map's positive mass in its heaviest corner (off the ROI) and its total positive mass, (N,) each."""
    maps = _check(maps, rois)
    positive = np.clip(maps, 0, None)
    corners = corner_masks(maps.shape[1:], fraction=fraction)
    inside = np.zeros(len(maps))
    for i, saliency in enumerate(positive):
        roi = None if rois is None or rois[i] is None else np.asarray(rois[i], dtype=bool)
        masses = [saliency[c if roi is None else c & ~roi].sum() for c in corners]
        inside[i] = max(masses)
    return inside, positive.reshape(len(maps), -1).sum(axis=1)


def shortcut_scores(
    maps: np.ndarray,
    *,
    rois: Sequence[np.ndarray | None] | None = None,
    fraction: float = CORNER_FRACTION,
) -> np.ndarray:
    """Return each map's share of positive mass in its heaviest corner (off the ROI), (N,); NaN without mass."""
    inside, total = corner_masses(maps, rois=rois, fraction=fraction)
    return corner_shares(inside, total)


def corner_shares(inside: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Return each map's shortcut score from :func:`corner_masses`: ``inside / total``, (N,); NaN without mass."""
    inside = np.asarray(inside, dtype=np.float64)
    total = np.asarray(total, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, inside / np.where(total > 0, total, 1), np.nan)


def diffuse_map_score(fraction: float = CORNER_FRACTION) -> float:
    """Return the shortcut score of a uniform (diffuse) map: one corner square's share, ``fraction**2``."""
    return float(fraction) ** 2


def pooled_share(inside: np.ndarray, total: np.ndarray) -> float:
    """Return sum(inside) / sum(total) (NaN when there is no mass at all)."""
    denominator = float(np.sum(total))
    return float(np.sum(inside)) / denominator if denominator > 0 else float("nan")


def outside_roi_shares(maps: np.ndarray, rois: Sequence[np.ndarray | None]) -> tuple[np.ndarray, np.ndarray]:
    """Return each map's positive mass outside its ROI (NaN without an ROI) and its total positive mass, (N,) each."""
    maps = _check(maps, rois)
    positive = np.clip(maps, 0, None)
    outside = np.array(
        [np.nan if roi is None else p[~np.asarray(roi, dtype=bool)].sum() for p, roi in zip(positive, rois, strict=True)]
    )
    return outside, positive.reshape(len(maps), -1).sum(axis=1)


def region_name(rois: Sequence[np.ndarray | None] | None) -> str:
    """Return ``"corners"``, ``"corners_outside_roi"`` or ``"corners_outside_roi_where_given"``."""
    if rois is None or all(r is None for r in rois):
        return "corners"
    if all(r is not None for r in rois):
        return "corners_outside_roi"
    return "corners_outside_roi_where_given"
