"""Does the model look at shortcuts? The share of saliency outside the anatomy or in the borders.

Burned-in markers, rulers, text and laterality tags live outside the anatomy,
usually at the image borders and corners, and models learn them instead of
the disease (Zech et al. 2018, PLOS Med; DeGrave et al. 2021, Nat Mach
Intell). Per image, the shortcut score is the share of the map's positive
mass that falls outside the anatomical region-of-interest mask when one is
given (manifest column ``roi``), else inside a border frame of the image.
A diffuse map scores the region's share of the image area; a map on the
anatomy scores near 0; a map on a corner marker near 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from auditkit.errors import InvalidInputError

BORDER_FRACTION = 0.08
"""Width of the border frame as a share of each side (the frame covers the four corners)."""


def border_mask(shape: tuple[int, int], *, fraction: float = BORDER_FRACTION) -> np.ndarray:
    """Return a boolean (H, W) mask of the frame ``fraction`` of each side wide along the image border."""
    h, w = shape
    if not 0 < fraction < 0.5:
        raise InvalidInputError(f"border fraction must lie in (0, 0.5), got {fraction!r}")
    dh, dw = max(1, round(h * fraction)), max(1, round(w * fraction))
    frame = np.ones((h, w), dtype=bool)
    frame[dh : h - dh, dw : w - dw] = False
    return frame


def shortcut_region(
    shape: tuple[int, int], roi: np.ndarray | None = None, *, fraction: float = BORDER_FRACTION
) -> np.ndarray:
    """Return the (H, W) mask where saliency counts as a shortcut: outside ``roi`` if given, else the border."""
    if roi is None:
        return border_mask(shape, fraction=fraction)
    roi = np.asarray(roi, dtype=bool)
    if roi.shape != tuple(shape):
        raise InvalidInputError(f"the ROI mask is {roi.shape} but the map is {tuple(shape)}; resize it to the input")
    return ~roi


def shortcut_scores(
    maps: np.ndarray,
    *,
    rois: Sequence[np.ndarray | None] | None = None,
    fraction: float = BORDER_FRACTION,
) -> np.ndarray:
    """Return each map's share of positive mass in its shortcut region, (N,); NaN without positive mass.

    ``rois``: one ROI mask (H, W) or None per map; a map without one is scored
    on the border frame.
    """
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 3:
        raise InvalidInputError(f"maps must be (N, H, W), got {maps.shape}")
    if rois is not None and len(rois) != len(maps):
        raise InvalidInputError(f"got {len(rois)} ROI masks for {len(maps)} maps; give one (or None) per map")
    out = np.full(len(maps), np.nan)
    for i, saliency in enumerate(maps):
        region = shortcut_region(saliency.shape, None if rois is None else rois[i], fraction=fraction)
        positive = np.clip(saliency, 0, None)
        total = positive.sum()
        if total > 0:
            out[i] = positive[region].sum() / total
    return out


def region_name(rois: Sequence[np.ndarray | None] | None) -> str:
    """Return ``"outside_roi"``, ``"border"`` or ``"outside_roi_or_border"`` for the regions used."""
    if rois is None or all(r is None for r in rois):
        return "border"
    if all(r is not None for r in rois):
        return "outside_roi"
    return "outside_roi_or_border"
