"""Saliency-gallery strips at print resolution, with the ground-truth contour drawn in.

Each gallery case becomes one image strip: the input image, then every
method's heatmap, side by side and all the same size. An overlay file holds
the heatmap panel and, to its right, a colour bar; the strip keeps only the
heatmap panel (the box recorded in the file's metadata, else the image's
size), so each heatmap is as large as the image and registered with it. The
colour bars are drawn by the report as text (legible, with units) instead.
The ground-truth lesion is outlined once, in one colour
(:data:`auditkit.explain.overlay.CONTOUR_RGB`), on the image's pixel grid:
the mask is resized to the image panel and the same outline is drawn on
every panel (an overlay that already carries it is drawn over on the same
pixels). Files are read from inside the report's folder only
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
from auditkit.explain.overlay import CONTOUR_PX, CONTOUR_RGB, read_panel_box
from auditkit.explain.overlay import outline as contour
from auditkit.report.fetcher import resolve_inside

#: 256 px at 200 dpi: the size the audit writes its panels at, so they are never resampled.
PANEL_DPI = 200
PANEL_PX = 256
PANEL_MM = PANEL_PX / PANEL_DPI * 25.4
GAP_PX = 8
MISSING_RGB = (235, 235, 235)
JPEG_QUALITY = 88


@dataclass(frozen=True)
class Strip:
    """One gallery case as an encoded image, its print width, and what could not be shown."""

    data: bytes
    mime: str
    width_mm: float
    problems: tuple[str, ...]


def _read(root: Path, relative: str, *, crop: tuple[int, int] | None = None) -> Image.Image:
    """Return the image at ``relative`` as RGB; an overlay is cropped to its heatmap panel.

    ``crop`` is the (width, height) of the strip's input image: the fallback
    heatmap box of an overlay whose metadata does not record one.
    """
    path = resolve_inside(root, relative)
    with Image.open(path) as img:
        img.load()
        box = read_panel_box(img)
        img = img.copy()
    if box is None and crop is not None and img.height == crop[1] and img.width > crop[0]:
        box = crop  # an overlay with its colour bar to the right of an image-sized heatmap
    if box is not None and box[0] <= img.width and box[1] <= img.height:
        img = img.crop((0, 0, box[0], box[1]))
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


def _panel(
    root: Path, image: str | None, lesion: Image.Image | None, size: int, *, crop: tuple[int, int] | None = None
) -> tuple[np.ndarray, str | None, tuple[int, int] | None]:
    """Return the cell, a problem (or None) and the (width, height) the file had before fitting."""
    if not image:
        return _missing_panel(size), "no image recorded", None
    try:
        source = _read(root, image, crop=crop)
        img = _fit(source, size)
    except PathEscapeError as exc:
        return _missing_panel(size), str(exc), None
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        # a decompression bomb is refused by Pillow before decoding: one crossed panel, not a crash
        return _missing_panel(size), f"{image}: cannot be read as an image ({type(exc).__name__})", None
    rgb = np.array(img)
    if lesion is not None:
        # the mask is on the image's grid (the audit writes it at the image panel's size); a mask on
        # a finer or coarser grid of the same field of view is resized by nearest neighbour
        mask = np.asarray(lesion.resize(img.size, Image.Resampling.NEAREST)) > 127
        rgb[contour(mask, thickness=max(1, round(CONTOUR_PX * img.size[0] / PANEL_PX)))] = CONTOUR_RGB
    # centre the fitted image in a square white cell so every panel has the same footprint
    cell = np.full((size, size, 3), 255, dtype=np.uint8)
    top, left = (size - rgb.shape[0]) // 2, (size - rgb.shape[1]) // 2
    cell[top: top + rgb.shape[0], left: left + rgb.shape[1]] = rgb[:size, :size]
    return cell, None, source.size


def make_strip(
    root: str | os.PathLike[str],
    images: Sequence[str | None],
    *,
    mask: str | None = None,
    panel_px: int = PANEL_PX,
    image_format: str = "jpeg",
) -> Strip:
    """Return the strip of ``images`` (paths relative to ``root``) side by side, outlined by ``mask``.

    ``images[0]`` is the input image and the rest are overlays, each cropped
    to its heatmap panel so every panel shows the same field of view at the
    same size; ``mask`` (non-zero = lesion, 128 and above after any grey-level
    resampling) is outlined on every panel in :data:`CONTOUR_RGB`.

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
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
            problems.append(f"mask not drawn: {mask} cannot be read ({type(exc).__name__})")
            lesion = None
    n = max(1, len(images))
    canvas = np.full((panel_px, n * panel_px + (n - 1) * GAP_PX, 3), 255, dtype=np.uint8)
    crop: tuple[int, int] | None = None
    for index, image in enumerate(images):
        cell, problem, size = _panel(root, image, lesion, panel_px, crop=crop)
        if index == 0:
            crop = size
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
