"""Saliency-gallery strips at print resolution, with the ground-truth contour drawn in.

Each gallery case becomes one image strip: the input image, then every
method's overlay, side by side, each with the ground-truth lesion outline
when a mask exists. Files are read from inside the report's folder only
(:func:`auditkit.report.fetcher.resolve_inside`). Panels are fitted to the
size they print at (``PANEL_MM`` at ``PANEL_DPI``; small images are enlarged
by an integer factor with nearest neighbour so pixels stay sharp) and the
strip is encoded as JPEG: WeasyPrint passes JPEG through to the PDF (about
1 ms per image) but re-encodes every PNG (about 15 ms), and one strip per case
instead of one image per panel keeps layout work small.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from auditkit.errors import PathEscapeError
from auditkit.report.fetcher import resolve_inside

PANEL_MM = 28.0
PANEL_DPI = 200
PANEL_PX = round(PANEL_MM / 25.4 * PANEL_DPI)
GAP_PX = 8
CONTOUR_RGB = (57, 255, 20)
MISSING_RGB = (235, 235, 235)
JPEG_QUALITY = 88


@dataclass(frozen=True)
class Strip:
    """One gallery case as an encoded image, its print width, and what could not be shown."""

    data: bytes
    mime: str
    width_mm: float
    problems: tuple[str, ...]


def contour(mask: np.ndarray, *, thickness: int = 1) -> np.ndarray:
    """Return the outline of a boolean mask: (H, W) bool, True on mask pixels next to background.

    Pixels of the mask whose 4-neighbourhood leaves the mask form the outline;
    ``thickness`` > 1 grows it inward by repeating the erosion.
    """
    inner = mask.copy()
    for _ in range(max(1, thickness)):
        padded = np.pad(inner, 1, constant_values=False)
        inner = padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~inner


def _read(root: Path, relative: str) -> Image.Image:
    path = resolve_inside(root, relative)
    with Image.open(path) as img:
        img.load()
        img = img.copy()
    if img.mode in ("I", "I;16", "I;16B", "F"):
        # 16-bit and float images print as 8-bit grey scaled to their own range
        values = np.asarray(img, dtype=np.float64)
        span = float(values.max() - values.min()) or 1.0
        img = Image.fromarray(((values - values.min()) / span * 255).astype(np.uint8), mode="L")
    return img.convert("RGB")


def _fit(img: Image.Image, size: int) -> Image.Image:
    width, height = img.size
    longest = max(width, height)
    if longest <= size:
        factor = max(1, size // longest)
        return img.resize((width * factor, height * factor), Image.Resampling.NEAREST)
    scale = size / longest
    return img.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.LANCZOS)


def _missing_panel(size: int) -> np.ndarray:
    panel = np.full((size, size, 3), MISSING_RGB, dtype=np.uint8)
    idx = np.arange(size)
    panel[idx, idx] = (150, 150, 150)
    panel[idx, size - 1 - idx] = (150, 150, 150)
    return panel


def _panel(root: Path, image: str | None, lesion: Image.Image | None, size: int) -> tuple[np.ndarray, str | None]:
    if not image:
        return _missing_panel(size), "no image recorded"
    try:
        img = _fit(_read(root, image), size)
    except PathEscapeError as exc:
        return _missing_panel(size), str(exc)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        return _missing_panel(size), f"{image}: cannot be read as an image ({type(exc).__name__})"
    rgb = np.array(img)
    if lesion is not None:
        mask = np.asarray(lesion.resize(img.size, Image.Resampling.NEAREST)) > 0
        rgb[contour(mask, thickness=max(1, round(img.size[0] / 150)))] = CONTOUR_RGB
    # centre the fitted image in a square white cell so every panel has the same footprint
    cell = np.full((size, size, 3), 255, dtype=np.uint8)
    top, left = (size - rgb.shape[0]) // 2, (size - rgb.shape[1]) // 2
    cell[top: top + rgb.shape[0], left: left + rgb.shape[1]] = rgb[:size, :size]
    return cell, None


def make_strip(
    root: str | os.PathLike[str],
    images: Sequence[str | None],
    *,
    mask: str | None = None,
    panel_px: int = PANEL_PX,
    image_format: str = "jpeg",
) -> Strip:
    """Return the strip of ``images`` (paths relative to ``root``) side by side, outlined by ``mask``.

    Missing, unreadable or out-of-folder files become a crossed grey panel and
    a line in ``problems`` instead of an exception: one bad image must not stop
    a report. ``image_format`` is ``jpeg`` (default; passed through by
    WeasyPrint) or ``png`` (lossless, re-encoded by WeasyPrint; kept for the
    benchmark's comparison).
    """
    if image_format not in ("jpeg", "png"):
        raise ValueError(f"image_format must be 'jpeg' or 'png', got {image_format!r}")
    root = Path(root)
    problems: list[str] = []
    lesion = None
    if mask:
        try:
            lesion = Image.open(resolve_inside(root, mask))
            lesion.load()
            lesion = lesion.convert("L")
        except PathEscapeError as exc:
            problems.append(f"mask not drawn: {exc}")
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            problems.append(f"mask not drawn: {mask} cannot be read ({type(exc).__name__})")
            lesion = None
    n = max(1, len(images))
    canvas = np.full((panel_px, n * panel_px + (n - 1) * GAP_PX, 3), 255, dtype=np.uint8)
    for index, image in enumerate(images):
        cell, problem = _panel(root, image, lesion, panel_px)
        left = index * (panel_px + GAP_PX)
        canvas[:, left: left + panel_px] = cell
        if problem:
            problems.append(problem)
    buffer = io.BytesIO()
    strip = Image.fromarray(canvas, mode="RGB")
    if image_format == "png":
        strip.save(buffer, format="PNG")
        mime = "image/png"
    else:
        strip.save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
        mime = "image/jpeg"
    width_mm = canvas.shape[1] / PANEL_DPI * 25.4
    return Strip(buffer.getvalue(), mime, round(width_mm, 2), tuple(problems))
