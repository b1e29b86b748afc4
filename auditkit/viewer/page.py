"""The viewer page: one HTML document with its CSS, JavaScript and data inlined.

The page is plain HTML/CSS/JS shipped in ``auditkit/viewer/static`` (no build
step, nothing fetched from a network). Served by :mod:`auditkit.viewer.server`
the page loads the case images from the report folder by relative URL; exported
with :func:`export_html` every image is inlined as a ``data:`` URL, so one file
works offline (or, with ``assets``, the images are copied into one folder next
to it).
"""

from __future__ import annotations

import base64
import re
import shutil
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

from auditkit.errors import OutputExistsError
from auditkit.fileio import atomic_write_text
from auditkit.viewer.data import build_payload, image_paths, json_for_script, report_folder

_PLACEHOLDER = re.compile(r"\{\{TITLE\}\}|/\*\{\{CSS\}\}\*/|/\*\{\{JS\}\}\*/|\{\{DATA\}\}")
MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


def _static(name: str) -> str:
    return resources.files("auditkit.viewer").joinpath("static", name).read_text(encoding="utf-8")


def colormap_lut(name: str = "inferno") -> list[list[int]]:
    """Return the 256 RGB entries of a Matplotlib colormap (the overlay colours of the report)."""
    from auditkit.explain.overlay import _lut

    return _lut(name).tolist()


def render_page(payload: dict[str, Any], *, images: dict[str, str] | None = None, base: str = "") -> str:
    """Return the viewer's HTML for ``payload`` (:func:`build_payload`).

    ``images``: relative path -> URL to use instead (``data:`` URLs when
    exported); ``base``: a prefix for the other image URLs (a folder name).
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
    }
    # one pass, so a placeholder inside the data or the title is never expanded
    return _PLACEHOLDER.sub(lambda match: parts[match.group(0)], _static("viewer.html"))


def export_html(
    report: str | Path, out: str | Path, *, assets: str | None = None, force: bool = False
) -> Path:
    """Return the path of the self-contained viewer written for ``report`` at ``out``.

    Images are inlined as ``data:`` URLs, or with ``assets`` (a folder name
    beside ``out``) copied there and referenced relatively. Refuses to replace
    an existing file unless ``force``.
    """
    folder = report_folder(report)
    out = Path(out)
    if out.exists() and not force:
        raise OutputExistsError(f"{out} exists; pass --force to replace it")
    payload = build_payload(folder)
    paths = image_paths(payload)
    if assets is None:
        images = {}
        for rel in paths:
            data = (folder / rel).read_bytes()
            mime = MIME.get(Path(rel).suffix.lower(), "application/octet-stream")
            images[rel] = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
        return atomic_write_text(out, render_page(payload, images=images))
    target = out.parent / assets
    for rel in paths:
        destination = target / rel
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / rel, destination)
    return atomic_write_text(out, render_page(payload, base=f"{assets}/"))
