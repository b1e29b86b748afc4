"""Images the report generates (SVG figures, gallery strips), addressed as ``auditkit-asset:`` URLs.

The context refers to each generated image by an opaque URL naming its
SHA-256. For the PDF, :class:`auditkit.report.fetcher.SafeURLFetcher` serves
these from memory, so the HTML handed to WeasyPrint stays small (its HTML
parser is pure Python and slow on megabytes of base64) and no ``data:`` URL
ever needs to be trusted. For the standalone HTML file, :meth:`inline`
replaces each reference with a ``data:`` URL so the file is self-contained.
"""

from __future__ import annotations

import base64
import hashlib
import re

ASSET_SCHEME = "auditkit-asset"
_ASSET_RE = re.compile(ASSET_SCHEME + r":([0-9a-f]{64})")


class AssetRegistry:
    """Holds generated images by digest and hands out ``auditkit-asset:<sha256>`` URLs for them."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[str, bytes]] = {}

    def add(self, data: bytes, mime: str) -> str:
        """Return the asset URL of ``data`` (stored with its MIME type; identical bytes share a URL)."""
        digest = hashlib.sha256(data).hexdigest()
        self._items.setdefault(digest, (mime, data))
        return f"{ASSET_SCHEME}:{digest}"

    def svg(self, svg_text: str) -> str:
        """Return the asset URL of an SVG document."""
        return self.add(svg_text.encode("utf-8"), "image/svg+xml")

    def lookup(self, url: str) -> tuple[str, bytes] | None:
        """Return ``(mime, bytes)`` of an asset URL, or None when it names no asset of this registry."""
        match = _ASSET_RE.fullmatch(url)
        return self._items.get(match.group(1)) if match else None

    def inline(self, html: str) -> str:
        """Return ``html`` with every asset URL replaced by its base64 ``data:`` URL."""

        def replace(match: re.Match[str]) -> str:
            item = self._items.get(match.group(1))
            if item is None:
                return match.group(0)
            mime, data = item
            return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"

        return _ASSET_RE.sub(replace, html)

    def __len__(self) -> int:
        return len(self._items)
