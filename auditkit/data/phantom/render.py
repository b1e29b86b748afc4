"""Rendering the phantom's images, lesion masks and lung masks from the per-image table.

Pure NumPy, vectorised over a batch of images. The scene is a chest-radiograph
caricature in normalised coordinates (u right, v down, the image's half-size
is 1): dark air, a soft-tissue body, two dark lung fields with a vessel-like
texture, curved ribs, a bright mediastinum and heart, and (for positives) a
textured elliptical lesion added inside a lung. The site's imaging chain then
blurs, applies its intensity transfer and adds noise; finally a bright
laterality-style letter is burned into the top-right corner of images that
carry the marker (after acquisition, like a burned-in annotation, so it stays
sharp).

Randomness is drawn per patient (anatomy texture, lesion texture) and per
image (noise) from generators seeded by ``(seed, stream, index)``, so an image
renders to the same bytes whatever batch or worker renders it, and a test can
re-render any image with its lesion switched off.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from auditkit.data.phantom.config import PhantomConfig

AIR_LEVEL = 0.05
MARKER_LEVEL = 0.97
_PATIENT_STREAM = 0x5EED_0001
_IMAGE_STREAM = 0x5EED_0002
_TISSUE_GRID, _VESSEL_GRID, _LESION_GRID = 5, 14, 8
#: the fragility flaw at strength s: the smooth lesion keeps 1 - 0.9 s of its contrast, and a
#: checkerboard of 0.6 s times the lesion's signal carries the rest (see config.Flaws).
FRAGILITY_SMOOTH_LOSS = 0.9
FRAGILITY_DETAIL_GAIN = 0.6
#: the hidden slice's device (a chest-drain-like tube): its level above the scene and its
#: Gaussian half-width in units of the half field of view (0.1: about 3 pixels at 64 px).
DEVICE_LEVEL, DEVICE_WIDTH = 0.8, 0.1

# a 5x7 pixel letter "R": the laterality marker radiographers burn into the image
_GLYPH = np.array(
    [
        [1, 1, 1, 1, 0],
        [1, 0, 0, 0, 1],
        [1, 0, 0, 0, 1],
        [1, 1, 1, 1, 0],
        [1, 0, 1, 0, 0],
        [1, 0, 0, 1, 0],
        [1, 0, 0, 0, 1],
    ],
    dtype=bool,
)


@dataclass(frozen=True)
class Rendered:
    """A rendered batch: ``images`` float32 (B, S, S) in [0, 1], ``lesion_masks`` and
    ``roi_masks`` bool (B, S, S), ``marker_boxes`` int (B, 4) as ``x0, y0, x1, y1``
    (exclusive ends; all -1 when the image has no marker)."""

    images: np.ndarray
    lesion_masks: np.ndarray
    roi_masks: np.ndarray
    marker_boxes: np.ndarray


@lru_cache(maxsize=32)
def _upsampler(size: int, grid: int) -> np.ndarray:
    """Return the (size, grid) Gaussian-kernel interpolation matrix of a smooth random field."""
    targets = (np.arange(size) + 0.5) / size
    knots = (np.arange(grid) + 0.5) / grid
    weights = np.exp(-(((targets[:, None] - knots[None, :]) * grid / 0.85) ** 2))
    weights /= weights.sum(axis=1, keepdims=True)
    # rows normalised to 1 make the field's variance position-independent only roughly;
    # rescale so the field has unit variance on average, whatever the grid
    scale = np.sqrt((weights**2).sum(axis=1)).mean()
    return (weights / scale).astype(np.float32)


@lru_cache(maxsize=64)
def _blur_matrix(size: int, sigma: float) -> np.ndarray | None:
    """Return the (size, size) separable Gaussian blur matrix (reflect edges, radius ceil(2 sigma))."""
    if sigma <= 0:
        return None
    radius = max(1, int(np.ceil(2 * sigma)))
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    matrix = np.zeros((size, size), dtype=np.float64)
    for row in range(size):
        for offset, weight in zip(offsets, kernel, strict=True):
            col = row + offset
            if col < 0:
                col = -col - 1
            elif col >= size:
                col = 2 * size - col - 1
            matrix[row, col] += weight
    return matrix.astype(np.float32)


def blur_radius(config: PhantomConfig, blur_sigma: float) -> int:
    """Return how many pixels the site blur spreads a lesion beyond its mask (0 without blur)."""
    sigma = blur_sigma * config.size / 64
    return 0 if sigma <= 0 else max(1, int(np.ceil(2 * sigma)))


def _fields(cases: pd.DataFrame, config: PhantomConfig) -> tuple[np.ndarray, ...]:
    """Return the per-image random fields: tissue, vessel, lesion texture, noise (B, S, S each)."""
    size = config.size
    n = len(cases)
    tissue = np.empty((n, _TISSUE_GRID, _TISSUE_GRID), dtype=np.float32)
    vessel = np.empty((n, _VESSEL_GRID, _VESSEL_GRID), dtype=np.float32)
    texture = np.empty((n, _LESION_GRID, _LESION_GRID), dtype=np.float32)
    noise = np.empty((n, size, size), dtype=np.float32)
    patients = cases["patient_index"].to_numpy()
    images = cases.index.to_numpy()
    for row in range(n):
        # the patient's own stream: the same anatomy texture on every image of the patient
        rng = np.random.default_rng([config.seed, _PATIENT_STREAM, int(patients[row])])
        tissue[row] = rng.standard_normal((_TISSUE_GRID, _TISSUE_GRID), dtype=np.float32)
        vessel[row] = rng.standard_normal((_VESSEL_GRID, _VESSEL_GRID), dtype=np.float32)
        texture[row] = rng.standard_normal((_LESION_GRID, _LESION_GRID), dtype=np.float32)
        image_rng = np.random.default_rng([config.seed, _IMAGE_STREAM, int(images[row])])
        noise[row] = image_rng.standard_normal((size, size), dtype=np.float32)

    def up(grids: np.ndarray) -> np.ndarray:
        matrix = _upsampler(size, grids.shape[1])
        return matrix @ grids @ matrix.T

    return up(tissue), up(vessel), up(texture), noise


def _ellipse(u: np.ndarray, v: np.ndarray, cx, cy, rx, ry, angle) -> np.ndarray:
    """Return the ellipse's normalised radius squared (< 1 inside) at each (u, v)."""
    du, dv = u - cx, v - cy
    cos, sin = np.cos(angle), np.sin(angle)
    a = (cos * du + sin * dv) / rx
    b = (-sin * du + cos * dv) / ry
    return a * a + b * b


def _soft(e: np.ndarray, radius, pixel) -> np.ndarray:
    """Return a one-pixel-wide soft inside indicator of an ellipse from its radius squared."""
    return np.clip(0.5 + (1.0 - np.sqrt(e)) * radius / pixel, 0.0, 1.0)


def marker_box(size: int, jitter_x: int, jitter_y: int) -> tuple[int, int, int, int]:
    """Return the marker's ``(x0, y0, x1, y1)`` in pixels: the top-right corner, 2 px margin at 64."""
    k = max(1, round(size / 64))
    x0 = size - 2 * k - 5 * k + jitter_x * k
    y0 = 2 * k + jitter_y * k
    return x0, y0, x0 + 5 * k, y0 + 7 * k


def _col(cases: pd.DataFrame, name: str) -> np.ndarray:
    """Return one per-image column as float32, shaped (B, 1, 1) to broadcast over the pixels."""
    return cases[name].to_numpy(dtype=np.float32)[:, None, None]


def render_cases(cases: pd.DataFrame, config: PhantomConfig, *, lesions: bool = True) -> Rendered:
    """Return the rendered images and masks of the rows of :func:`sample_cases`' table.

    ``cases.index`` must be the rows' positions in the full table (they seed
    each image's noise). ``lesions=False`` renders every image without its
    lesion (same anatomy, same noise): the difference from the normal render
    is the lesion's footprint.
    """
    size = config.size
    n = len(cases)
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
    x, y = coords[None, None, :], coords[None, :, None]
    fov = _col(cases, "fov") * _col(cases, "scale")
    rotation = _col(cases, "rotation")
    u = (np.cos(rotation) * x - np.sin(rotation) * y) * fov + _col(cases, "shift_u")
    v = (np.sin(rotation) * x + np.cos(rotation) * y) * fov + _col(cases, "shift_v")
    pixel = 2.0 / size * fov
    tissue_field, vessel_field, texture_field, noise = _fields(cases, config)

    scene, roi = _anatomy_scene(cases, u, v, pixel, tissue_field, vessel_field)
    lesion_e = _ellipse(u, v, _col(cases, "lesion_cx"), _col(cases, "lesion_cy"), _col(cases, "lesion_rx"),
                        _col(cases, "lesion_ry"), _col(cases, "lesion_angle"))
    present = cases["lesion"].to_numpy(dtype=bool)[:, None, None]
    lesion_mask = (lesion_e < 1.0) & roi & present
    fine = _col(cases, "fine_texture") if "fine_texture" in cases else np.zeros((n, 1, 1), np.float32)
    detail = None
    if lesions:
        profile = 0.5 + 0.5 * (1.0 - np.minimum(lesion_e, 1.0))
        texture = np.clip(1.0 + 0.3 * texture_field, 0.6, 1.4)
        lesion_signal = _col(cases, "lesion_contrast") * profile * texture * lesion_mask
        if fine.any():
            detail = _fine_detail(lesion_signal * fine, size)
            lesion_signal = lesion_signal * (1.0 - FRAGILITY_SMOOTH_LOSS * fine)
        scene = scene + lesion_signal
    if "hidden_slice" in cases and cases["hidden_slice"].any():
        scene = scene + _device(cases, u, v)

    image = _acquire(cases, config, np.clip(scene, 0.0, 1.0), noise, detail=detail)
    boxes = _burn_markers(cases, config, image)
    return Rendered(
        images=image.astype(np.float32),
        lesion_masks=lesion_mask,
        roi_masks=np.broadcast_to(roi, (n, size, size)).copy(),
        marker_boxes=boxes,
    )


def _anatomy_scene(
    cases: pd.DataFrame, u: np.ndarray, v: np.ndarray, pixel: np.ndarray, tissue_field: np.ndarray,
    vessel_field: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Return the scene without lesion (air, body, lungs with vessels, ribs, mediastinum, heart) and the ROI."""

    def col(name: str) -> np.ndarray:
        return _col(cases, name)

    body = _soft(_ellipse(u, v, 0.0, 0.25, col("body_w"), 1.15, 0.0), col("body_w"), pixel)
    scene = AIR_LEVEL + (col("tissue_level") - AIR_LEVEL) * body + 0.03 * tissue_field * body

    lung_e = []
    for side in (-1.0, 1.0):
        e = _ellipse(u, v, side * col("lung_dx"), col("lung_y"), col("lung_rx"), col("lung_ry"),
                     side * col("lung_tilt"))
        lung_e.append(e)
    lung_radius = 0.5 * (col("lung_rx") + col("lung_ry"))
    lungs = np.maximum(_soft(lung_e[0], lung_radius, pixel), _soft(lung_e[1], lung_radius, pixel))
    heart_e = _ellipse(u, v, col("heart_x"), col("heart_y"), col("heart_rx"), col("heart_ry"), 0.0)
    heart = _soft(heart_e, 0.5 * (col("heart_rx") + col("heart_ry")), pixel)
    visible = lungs * (1.0 - heart)
    scene = scene * (1.0 - visible) + col("lung_level") * visible
    # vessels: the zero set of a smooth random field, brighter lines fading towards the periphery
    vessels = np.exp(-((vessel_field / 0.35) ** 2))
    scene = scene + 0.05 * vessels * visible
    phase = col("rib_freq") * (v + col("rib_curv") * u * u) + col("rib_phase")
    ribs = col("rib_amp") * (0.5 + 0.5 * np.cos(2 * np.pi * phase)) ** 3
    scene = scene + ribs * body * (0.3 + 0.7 * lungs)
    scene = scene + 0.10 * np.exp(-((u / 0.07) ** 2)) * body * (1.0 - visible)
    roi = ((lung_e[0] < 1.0) | (lung_e[1] < 1.0)) & (heart_e >= 1.0)
    return scene, roi


def _device(cases: pd.DataFrame, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Return the hidden slice's device: a bright tube from the lower body wall up into one lung (0 elsewhere).

    Bold (about 3 pixels wide at 64 px, 0.8 above the scene) like a chest drain on a radiograph: a
    small CNN's penultimate embedding represents it, so slice discovery on those embeddings can find it
    (tests/clinical/test_phantom_hidden_slice.py).
    """
    side = _col(cases, "device_side")
    # segment from the lateral lower body wall (±0.85, 0.7) to the lower lung (±0.3, 0.05)
    du, dv = u - side * 0.85, v - 0.7
    ex, ey = -side * 0.55, -0.65
    length2 = 0.55**2 + 0.65**2
    dist = np.abs(du * ey - dv * ex) / np.sqrt(length2)
    t = (du * ex + dv * ey) / length2
    tube = DEVICE_LEVEL * np.exp(-((dist / DEVICE_WIDTH) ** 2)) * ((t > 0) & (t < 1))
    return tube * cases["hidden_slice"].to_numpy(dtype=np.float32)[:, None, None]


def _fine_detail(signal: np.ndarray, size: int) -> np.ndarray:
    """Return the fragility flaw's lesion texture: a one-pixel checkerboard scaled by the lesion's signal."""
    parity = np.add.outer(np.arange(size), np.arange(size)) % 2
    checker = np.where(parity == 0, 1.0, -1.0).astype(np.float32)
    return FRAGILITY_DETAIL_GAIN * signal * checker


def _acquire(
    cases: pd.DataFrame, config: PhantomConfig, scene: np.ndarray, noise: np.ndarray, *,
    detail: np.ndarray | None = None,
) -> np.ndarray:  # fmt: skip
    """Return the site's imaging chain applied to the scene: blur, intensity transfer, post-processing
    ``detail`` (added after the blur, so it stays at pixel scale), noise."""
    blurred = np.empty_like(scene)
    sigmas = cases["blur_sigma"].to_numpy(dtype=float) * config.size / 64
    for sigma in np.unique(sigmas):
        rows = np.flatnonzero(sigmas == sigma)
        matrix = _blur_matrix(config.size, float(sigma))
        blurred[rows] = scene[rows] if matrix is None else matrix @ scene[rows] @ matrix.T
    image = _col(cases, "offset") + _col(cases, "gain") * np.clip(blurred, 0.0, 1.0) ** _col(cases, "gamma")
    if detail is not None:
        image = image + detail
    return np.clip(image + _col(cases, "noise_sigma") * noise, 0.0, 1.0)


def _burn_markers(cases: pd.DataFrame, config: PhantomConfig, image: np.ndarray) -> np.ndarray:
    """Burn the marker letter into ``image`` in place; return the boxes (-1 rows without a marker)."""
    size = config.size
    boxes = np.full((len(cases), 4), -1, dtype=np.int64)
    markers = cases["marker"].to_numpy(dtype=bool)
    k = max(1, round(size / 64))
    glyph = np.kron(_GLYPH, np.ones((k, k), dtype=bool))
    jx = cases["marker_jitter_x"].to_numpy()
    jy = cases["marker_jitter_y"].to_numpy()
    for row in np.flatnonzero(markers):
        x0, y0, x1, y1 = marker_box(size, int(jx[row]), int(jy[row]))
        image[row, y0:y1, x0:x1][glyph] = MARKER_LEVEL
        boxes[row] = (x0, y0, x1, y1)
    return boxes


def quantize(images: np.ndarray, bit_depth: int) -> np.ndarray:
    """Return float images in [0, 1] as uint8 (8-bit) or uint16 (16-bit), rounded to nearest."""
    top = 255 if bit_depth == 8 else 65535
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    return np.rint(np.clip(images, 0.0, 1.0) * top).astype(dtype)
