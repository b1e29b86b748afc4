"""Overlays for the report and the viewer: the image, the heatmap, its scale and the lesion outline.

Drawn with Pillow and a Matplotlib colormap's lookup table (no pyplot, a few
milliseconds each, since a report embeds up to ~200). The heatmap uses a
perceptually uniform colormap (``inferno`` by default), is blended with
per-pixel opacity proportional to the value (zero saliency shows the image
unchanged), and the colour bar on the right states the scale: the value at
the bottom and top, and what the values are (e.g. "Grad-CAM, ReLU, shared
scale"). The same scale is written into the file's metadata (PNG text chunk
``auditkit:scale``, JPEG comment), with the box the heatmap occupies
(``panel``: width, height; the colour bar lies to its right) so the report
can crop the heatmap to the image's size. The ground-truth lesion, when known,
is outlined in cyan (:data:`CONTOUR_RGB`), on the image's pixel grid: the mask
is resized to the heatmap panel, never to the whole file with its colour bar.
PNG is lossless; JPEG is offered because WeasyPrint embeds JPEG without
re-encoding (about 1 ms against 15 ms per PNG).
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo
from scipy import ndimage

from auditkit.errors import InvalidInputError
from auditkit.fileio import atomic_write_bytes

FORMATS = ("png", "jpeg")
#: The one outline colour of the ground-truth lesion (report gallery and overlays alike).
CONTOUR_RGB = (0, 255, 255)
#: Width in pixels of the lesion outline at the 256-pixel panel size.
CONTOUR_PX = 2


@dataclass(frozen=True)
class OverlayScale:
    """The value range a colormap spans and what the values mean."""

    vmin: float
    vmax: float
    label: str
    cmap: str = "inferno"

    def to_dict(self) -> dict[str, object]:
        """Return the scale as a JSON-serialisable dict (also written into the file's metadata)."""
        return {"vmin": self.vmin, "vmax": self.vmax, "label": self.label, "cmap": self.cmap}


def _lut(cmap: str) -> np.ndarray:
    from matplotlib import colormaps

    try:
        colormap = colormaps[cmap]
    except KeyError:
        raise InvalidInputError(f"unknown colormap {cmap!r}; use a Matplotlib name such as inferno or viridis") from None
    return (colormap(np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)


def colorize(values: np.ndarray, *, vmin: float, vmax: float, cmap: str = "inferno") -> np.ndarray:
    """Return ``values`` (H, W) mapped through ``cmap`` on [vmin, vmax], (H, W, 3) uint8."""
    span = vmax - vmin if vmax > vmin else 1.0
    index = np.clip((np.asarray(values, dtype=np.float64) - vmin) / span, 0, 1)
    return _lut(cmap)[(index * 255).round().astype(np.int64)]


def to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Return an image (H, W), (H, W, 1) or (H, W, 3) with values in [0, 1] as (H, W, 3) uint8."""
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise InvalidInputError(f"an image for an overlay must be (H, W) or (H, W, 3), got {image.shape}")
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def outline(mask: np.ndarray, *, thickness: int = CONTOUR_PX) -> np.ndarray:
    """Return the outline of a boolean mask (H, W): mask pixels within ``thickness`` of the background.

    Erosion by the 4-neighbourhood with the outside of the array counted as
    background, so a lesion touching the border is closed there too.
    """
    mask = np.asarray(mask, dtype=bool)
    return mask & ~ndimage.binary_erosion(mask, iterations=max(1, thickness), border_value=0)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Return the boolean ``mask`` (H, W) resized by nearest neighbour to ``size`` (width, height)."""
    image = Image.fromarray(np.asarray(mask, dtype=bool).astype(np.uint8) * 255)
    return np.asarray(image.resize(size, Image.Resampling.NEAREST)) > 127


def panel_size(shape: tuple[int, ...], panel_px: int) -> tuple[int, int]:
    """Return the (width, height) an image of ``shape`` (H, W, ...) takes when its longer side is ``panel_px``."""
    h, w = int(shape[0]), int(shape[1])
    factor = panel_px / max(h, w)
    return max(1, round(w * factor)), max(1, round(h * factor))


def render_overlay(
    image: np.ndarray,
    saliency: np.ndarray,
    scale: OverlayScale,
    *,
    mask: np.ndarray | None = None,
    alpha: float = 0.6,
    panel_px: int = 256,
    colorbar: bool = True,
) -> Image.Image:
    """Return the overlay of ``saliency`` (H, W) on ``image`` (H, W[, 3]) in [0, 1] as an RGB image.

    The panel is resized to ``panel_px`` on its longer side (print resolution:
    256 px is 1.7 in at 150 dpi); ``mask`` (H, W) bool is outlined.
    """
    saliency = np.asarray(saliency, dtype=np.float64)
    if saliency.ndim != 2 or saliency.shape != np.asarray(image).shape[:2]:
        raise InvalidInputError(
            f"saliency {saliency.shape} and image {np.asarray(image).shape} must have the same height and width"
        )
    size = panel_size(saliency.shape, panel_px)
    base = Image.fromarray(to_rgb_uint8(image)).resize(size, Image.Resampling.BILINEAR)
    heat_values = np.asarray(
        Image.fromarray(saliency.astype(np.float32), mode="F").resize(size, Image.Resampling.BILINEAR)
    )
    heat = colorize(heat_values, vmin=scale.vmin, vmax=scale.vmax, cmap=scale.cmap)
    span = scale.vmax - scale.vmin if scale.vmax > scale.vmin else 1.0
    weight = alpha * np.clip((heat_values - scale.vmin) / span, 0, 1)[:, :, None]
    panel = (np.asarray(base, dtype=np.float64) * (1 - weight) + heat * weight).round().astype(np.uint8)
    if mask is not None:
        # the mask is on the image's grid; the panel is the image resized, so nearest neighbour registers it
        panel[outline(resize_mask(mask, size))] = CONTOUR_RGB
    out = Image.fromarray(panel)
    if colorbar:
        out = _with_colorbar(out, scale)
    return out


def _with_colorbar(panel: Image.Image, scale: OverlayScale) -> Image.Image:
    h = panel.height
    size = max(10, h // 16)
    bar_w, margin, text_w = max(8, h // 20), max(4, h // 40), max(64, h // 2)
    canvas = Image.new("RGB", (panel.width + margin + bar_w + text_w, h), (255, 255, 255))
    canvas.paste(panel, (0, 0))
    ramp = np.linspace(scale.vmax, scale.vmin, h)[:, None].repeat(bar_w, axis=1)
    canvas.paste(Image.fromarray(colorize(ramp, vmin=scale.vmin, vmax=scale.vmax, cmap=scale.cmap)), (panel.width + margin, 0))
    draw = ImageDraw.Draw(canvas)
    font = _font(size)
    x = panel.width + margin + bar_w + 3
    draw.text((x, 0), f"{scale.vmax:.3g}", fill=(0, 0, 0), font=font)
    draw.text((x, h - size - 3), f"{scale.vmin:.3g}", fill=(0, 0, 0), font=font)
    words = scale.label.replace(",", "").split()
    y = h // 4
    for word in words[:6]:
        draw.text((x, y), word, fill=(60, 60, 60), font=font)
        y += size + 2
    return canvas


def encode(image: Image.Image, *, fmt: str = "png", metadata: dict[str, object] | None = None) -> bytes:
    """Return the bytes of ``image`` as PNG or JPEG with ``metadata`` (the scale) embedded."""
    if fmt not in FORMATS:
        raise InvalidInputError(f"overlay format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    buffer = io.BytesIO()
    text = json.dumps(metadata or {}, sort_keys=True)
    if fmt == "png":
        info = PngInfo()
        info.add_text("auditkit:scale", text)
        image.save(buffer, format="PNG", pnginfo=info, optimize=False)
    else:
        image.save(buffer, format="JPEG", quality=88, comment=text.encode("utf-8"))
    return buffer.getvalue()


def write_overlay(
    path: str | os.PathLike[str],
    image: np.ndarray,
    saliency: np.ndarray,
    scale: OverlayScale,
    *,
    mask: np.ndarray | None = None,
    fmt: str = "png",
    panel_px: int = 256,
) -> Path:
    """Write the overlay of ``saliency`` on ``image`` to ``path`` atomically and return the path."""
    rendered = render_overlay(image, saliency, scale, mask=mask, panel_px=panel_px)
    width, height = panel_size(np.asarray(saliency).shape, panel_px)
    metadata = {**scale.to_dict(), "panel": [width, height]}
    return atomic_write_bytes(path, encode(rendered, fmt=fmt, metadata=metadata))


def write_image(
    path: str | os.PathLike[str], image: np.ndarray, *, fmt: str = "png", panel_px: int = 256
) -> Path:
    """Write ``image`` (H, W[, 3]) in [0, 1] resized to ``panel_px`` to ``path`` atomically; return the path."""
    rgb = Image.fromarray(to_rgb_uint8(image))
    factor = panel_px / max(rgb.size)
    rgb = rgb.resize((max(1, round(rgb.width * factor)), max(1, round(rgb.height * factor))), Image.Resampling.BILINEAR)
    return atomic_write_bytes(path, encode(rgb, fmt=fmt))


def write_mask(
    path: str | os.PathLike[str], mask: np.ndarray, *, panel_px: int = 256
) -> Path:
    """Write the boolean ``mask`` (H, W) as a black/white PNG on the image panel's grid; return the path.

    Resized by nearest neighbour to the size :func:`write_image` gives the
    image, so the file's lesion pixels are exactly the panel's.
    """
    size = panel_size(np.asarray(mask).shape, panel_px)
    data = resize_mask(mask, size).astype(np.uint8) * 255
    return atomic_write_bytes(path, encode(Image.fromarray(data, mode="L"), fmt="png"))


def read_panel_box(image: Image.Image) -> tuple[int, int] | None:
    """Return the (width, height) of the heatmap panel recorded in an overlay file's metadata, or None."""
    text = image.info.get("auditkit:scale")
    if text is None and isinstance(image.info.get("comment"), bytes):
        text = image.info["comment"].decode("utf-8", "replace")
    try:
        box = json.loads(text)["panel"] if text else None
        width, height = int(box[0]), int(box[1])
    except (ValueError, KeyError, TypeError, IndexError):
        return None
    return (width, height) if width > 0 and height > 0 else None


def shared_scale(maps: np.ndarray, *, label: str, percentile: float = 99.0, cmap: str = "inferno") -> OverlayScale:
    """Return one scale for a set of non-negative maps (N, H, W): 0 to their ``percentile``-th value.

    A shared scale keeps magnitudes comparable between images (no per-image
    min-max that would make a weak map look as strong as a confident one).
    """
    positive = np.asarray(maps, dtype=np.float64)
    top = float(np.percentile(positive, percentile)) if positive.size else 1.0
    if not np.isfinite(top) or top <= 0:
        top = float(positive.max()) if positive.size and positive.max() > 0 else 1.0
    return OverlayScale(0.0, top, label, cmap)
