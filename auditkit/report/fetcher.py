"""The only door WeasyPrint has to the outside: files inside the report's folder, and our own images.

WeasyPrint fetches every URL an HTML document names (images, stylesheets,
attachments). The report is built from files a user supplied, so the fetcher
serves only (1) ``auditkit-asset:`` URLs of images the report generated
itself (held in memory by an :class:`~auditkit.report.assets.AssetRegistry`)
and (2) ``file:`` URLs that resolve, after following symlinks, inside the
report's own folder. Everything else -- http(s), ftp, ``file://`` elsewhere,
``data:`` URLs -- is refused before any connection or file access is
attempted, and the refusal is recorded in :attr:`SafeURLFetcher.refused`.
"""

from __future__ import annotations

import mimetypes
import os
from pathlib import Path
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from weasyprint import URLFetcher
from weasyprint.urls import URLFetcherResponse

from auditkit.errors import PathEscapeError
from auditkit.report.assets import ASSET_SCHEME, AssetRegistry


class FetchRefusedError(ValueError):
    """A URL the report renderer is not allowed to fetch (WeasyPrint logs it and skips it)."""


def resolve_inside(root: str | os.PathLike[str], relative: str | os.PathLike[str]) -> Path:
    """Return the resolved path of ``relative`` under ``root``; raise PathEscapeError if it leaves root.

    A path that plainly points elsewhere is refused before the filesystem is
    touched; symlinks are then followed, so a link inside the folder that
    points outside it is refused too. The file must exist.
    """
    base = Path(root).resolve()
    candidate = Path(relative)
    if not candidate.is_absolute():
        candidate = base / candidate
    if not Path(os.path.normpath(candidate)).is_relative_to(base):
        raise PathEscapeError(
            f"{relative}: points outside the report folder {base}; "
            "the report reads only files inside the folder of results.json"
        )
    try:
        resolved = candidate.resolve(strict=True)
    except (FileNotFoundError, NotADirectoryError):
        raise PathEscapeError(
            f"{relative}: no such file under the report folder {base}; "
            "keep the images results.json names next to it"
        ) from None
    except (OSError, RuntimeError) as exc:
        raise PathEscapeError(f"{relative}: cannot be resolved under {base} ({exc})") from None
    if not resolved.is_relative_to(base):
        raise PathEscapeError(
            f"{relative}: resolves to {resolved}, outside the report folder {base}; "
            "the report reads only files inside the folder of results.json"
        )
    if not resolved.is_file():
        raise PathEscapeError(f"{relative}: is not a regular file under {base}")
    return resolved


class SafeURLFetcher(URLFetcher):
    """A WeasyPrint URL fetcher that serves only the report's own images and files in its folder."""

    def __init__(self, root: str | os.PathLike[str], *, assets: AssetRegistry | None = None) -> None:
        super().__init__(allowed_protocols=(ASSET_SCHEME, "file"), allow_redirects=False, fail_on_errors=False)
        self.root = Path(root).resolve()
        self.assets = assets if assets is not None else AssetRegistry()
        self.refused: list[str] = []
        """Every URL turned away, in order."""

    def _refuse(self, url: str, why: str) -> FetchRefusedError:
        self.refused.append(url)
        shown = url if len(url) <= 120 else url[:117] + "..."
        return FetchRefusedError(f"refused to fetch {shown}: {why}")

    def fetch(self, url: str, headers: dict | None = None) -> URLFetcherResponse:
        """Return the response for an allowed URL; raise FetchRefusedError for anything else."""
        scheme = url.split(":", 1)[0].lower() if ":" in url else ""
        if scheme == ASSET_SCHEME:
            item = self.assets.lookup(url)
            if item is None:
                raise self._refuse(url, "no image of this report has that digest")
            mime, data = item
            return URLFetcherResponse(url, body=data, headers={"Content-Type": mime})
        if scheme == "file":
            return self._file_response(url)
        raise self._refuse(url, f"the {scheme or 'relative'} scheme is not allowed; only files in {self.root}")

    def _file_response(self, url: str) -> URLFetcherResponse:
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise self._refuse(url, "file URLs on another host are not allowed")
        path = url2pathname(unquote(parts.path))
        try:
            resolved = resolve_inside(self.root, path)
        except PathEscapeError as exc:
            raise self._refuse(url, str(exc)) from None
        mime = mimetypes.guess_type(resolved.name)[0] or "application/octet-stream"
        return URLFetcherResponse(resolved.as_uri(), body=resolved.read_bytes(), headers={"Content-Type": mime})
