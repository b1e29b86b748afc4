"""A local, read-only HTTP server for the viewer: the page at ``/`` and the files of one report folder.

Only GET and HEAD are answered (anything else: 405). A request path is
percent-decoded once and refused (404, nothing read) when it holds a ``..``
segment, a backslash, a NUL or an absolute component, or when the file it
names, symlinks followed, lies outside the report folder. Only regular files
with an image or JSON suffix are served. Every answer carries a strict
Content-Security-Policy and ``nosniff``; the server binds to 127.0.0.1 unless
asked otherwise.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import posixpath
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from auditkit.viewer.data import build_payload, report_folder
from auditkit.viewer.page import render_page

SERVED_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".json": "application/json",
}
CSP = (
    "default-src 'none'; img-src 'self' data: blob:; style-src 'unsafe-inline'; "
    "script-src 'unsafe-inline'; connect-src 'none'; form-action 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)


def safe_file(root: Path, request_path: str) -> Path | None:
    """Return the file under ``root`` that ``request_path`` (a URL path) names, or None when it is not allowed.

    Refused: ``..`` segments (also percent-encoded, decoded once), backslashes,
    NUL, empty or absolute components, a path whose resolved target (symlinks
    followed) leaves ``root``, anything that is not a regular file, and
    suffixes outside ``SERVED_TYPES``.
    """
    path = urllib.parse.urlsplit(request_path).path
    decoded = urllib.parse.unquote(path, errors="strict")
    if "\x00" in decoded or "\\" in decoded or "%" in decoded:
        return None
    parts = decoded.lstrip("/").split("/")
    if not parts or any(p in ("", ".", "..") for p in parts):
        return None
    if posixpath.isabs(decoded.lstrip("/")) or ":" in parts[0]:
        return None
    candidate = root.joinpath(*parts)
    try:
        resolved = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if resolved != root and root not in resolved.parents:
        return None
    if not resolved.is_file() or resolved.suffix.lower() not in SERVED_TYPES:
        return None
    return resolved


def make_handler(root: Path, page: Callable[[], bytes]) -> type[http.server.BaseHTTPRequestHandler]:
    """Return a request handler class serving ``page()`` at ``/`` and the allowed files of ``root``."""

    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "auditkit-viewer"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes, content_type: str, *, head: bool) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Security-Policy", CSP)
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")
            self.send_header("Cache-Control", "no-store")
            if status == 405:
                self.send_header("Allow", "GET, HEAD")
            self.end_headers()
            if not head:
                # the browser may have left (a closed tab, a new case): nothing to answer then
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

        def _answer(self, *, head: bool) -> None:
            path = urllib.parse.urlsplit(self.path).path
            if path in ("/", "/index.html"):
                self._send(200, page(), "text/html; charset=utf-8", head=head)
                return
            try:
                target = safe_file(root, self.path)
            except (UnicodeDecodeError, ValueError):
                target = None
            if target is None:
                self._send(404, b"not found\n", "text/plain; charset=utf-8", head=head)
                return
            self._send(200, target.read_bytes(), SERVED_TYPES[target.suffix.lower()], head=head)

        def do_GET(self) -> None:
            self._answer(head=False)

        def do_HEAD(self) -> None:
            self._answer(head=True)

        def _refuse(self) -> None:
            self._send(405, b"read-only: only GET and HEAD\n", "text/plain; charset=utf-8", head=False)

        do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _refuse

    return Handler


def make_server(report: str | os.PathLike[str], *, host: str = "127.0.0.1", port: int = 8765) -> http.server.ThreadingHTTPServer:
    """Return a bound (not yet serving) HTTP server for the viewer of ``report``; port 0 picks a free one."""
    root = report_folder(report)
    cached: dict[str, bytes] = {}

    def page() -> bytes:
        # rebuilt when results.json or cases.json changes (a re-run audit), else reused
        stamp = ":".join(
            str((root / name).stat().st_mtime_ns) if (root / name).exists() else "-"
            for name in ("results.json", "explain/cases.json")
        )
        if stamp not in cached:
            cached.clear()
            cached[stamp] = render_page(build_payload(root)).encode("utf-8")
        return cached[stamp]

    page()  # a report the page cannot be built from fails now, before anything is bound
    server = http.server.ThreadingHTTPServer((host, port), make_handler(root, page))
    server.daemon_threads = True
    return server
