"""The viewer page: one HTML document with its CSS, JavaScript and data inlined.

The page is plain HTML/CSS/JS shipped in ``auditkit/viewer/static`` (no build
step, nothing fetched from a network). Served by :mod:`auditkit.viewer.server`
the page loads the case images from the report folder by relative URL; exported
with :func:`export_html` every image is inlined as a ``data:`` URL, so one file
works offline (or, with ``assets``, the images go into one script in a folder
next to it, which keeps the HTML small).
"""

from __future__ import annotations

import base64
import re
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

from auditkit.errors import InvalidInputError, OutputExistsError
from auditkit.fileio import atomic_write_text
from auditkit.viewer.data import build_payload, image_paths, json_for_script, report_folder

_PLACEHOLDER = re.compile(r"\{\{TITLE\}\}|/\*\{\{CSS\}\}\*/|/\*\{\{JS\}\}\*/|\{\{DATA\}\}|<!--\{\{IMAGES\}\}-->")
IMAGES_SCRIPT = "images.js"
MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


def _static(name: str) -> str:
    return resources.files("auditkit.viewer").joinpath("static", name).read_text(encoding="utf-8")


def colormap_lut(name: str = "inferno") -> list[list[int]]:
    """Return the 256 RGB entries of a Matplotlib colormap (the overlay colours of the report)."""
    from auditkit.explain.overlay import _lut

    return _lut(name).tolist()


def render_page(
    payload: dict[str, Any], *, images: dict[str, str] | None = None, base: str = "", script: str | None = None
) -> str:
    """Return the viewer's HTML for ``payload`` (:func:`build_payload`).

    ``images``: relative path -> URL to use instead (``data:`` URLs when
    exported); ``base``: a prefix for the other image URLs (a folder name);
    ``script``: a relative URL of a script defining ``window.auditkitImages``
    (the ``--assets`` folder), loaded before the viewer.
    """
    cmaps = {m.get("scale", {}).get("cmap", "inferno") for m in payload.get("methods", {}).values()} or {"inferno"}
    boot = {
        "payload": payload,
        "images": images or {},
        "base": base,
        "luts": {name: colormap_lut(name) for name in sorted(cmaps)},
    }
    title = f"auditkit viewer: {payload['report']['folder']}"
    parts = {
        "{{TITLE}}": escape(title),
        "/*{{CSS}}*/": _static("viewer.css"),
        "/*{{JS}}*/": _static("viewer.js"),
        "{{DATA}}": json_for_script(boot),
        "<!--{{IMAGES}}-->": "" if script is None else f'<script src="{escape(script)}"></script>',
    }
    # one pass, so a placeholder inside the data or the title is never expanded
    return _PLACEHOLDER.sub(lambda match: parts[match.group(0)], _static("viewer.html"))


def export_html(
    report: str | Path, out: str | Path, *, assets: str | None = None, force: bool = False
) -> Path:
    """Return the path of the self-contained viewer written for ``report`` at ``out``.

    Images are inlined as ``data:`` URLs, or with ``assets`` (a folder name
    beside ``out``) written there as one script (``images.js``) that the page
    loads. Refuses to replace an existing file unless ``force``.
    """
    folder = report_folder(report)
    out = Path(out)
    if out.exists() and not force:
        raise OutputExistsError(f"{out} exists; pass --force to replace it")
    payload = build_payload(folder)
    images = {}
    for rel in image_paths(payload):
        data = (folder / rel).read_bytes()
        mime = MIME.get(Path(rel).suffix.lower(), "application/octet-stream")
        images[rel] = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    if assets is None:
        return atomic_write_text(out, render_page(payload, images=images))
    # A page opened from file:// may not read the pixels of image files beside it (the canvas
    # counts them as cross-origin), so the folder holds the images as one script of data: URLs.
    name = Path(assets).name
    if name != assets or name in ("", ".", ".."):
        raise InvalidInputError(f"--assets {assets!r} must be a plain folder name (it is created beside {out.name})")
    target = out.parent / name
    target.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target / IMAGES_SCRIPT, f"window.auditkitImages = {json_for_script(images)};\n")
    return atomic_write_text(out, render_page(payload, script=f"{name}/{IMAGES_SCRIPT}"))
