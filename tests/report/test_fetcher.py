"""The safe URL fetcher: only the report's own images and files inside its folder; the rest is never fetched."""

from __future__ import annotations

import os
import socket
import urllib.request
from pathlib import Path

import pytest

from auditkit.errors import PathEscapeError
from auditkit.report.assets import AssetRegistry
from auditkit.report.fetcher import FetchRefusedError, SafeURLFetcher, resolve_inside


@pytest.fixture()
def report_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "report"
    (folder / "explain").mkdir(parents=True)
    (folder / "explain" / "a.png").write_bytes(b"\x89PNG inside")
    (tmp_path / "secret.txt").write_text("outside the report folder")
    return folder


@pytest.fixture()
def no_network(monkeypatch):
    """Fail the test if anything tries to open a URL or a socket connection."""
    attempts: list[str] = []

    def refuse_open(self, *args, **kwargs):
        attempts.append(f"urllib open {args[:1]}")
        raise AssertionError("the fetcher must not open URLs")

    def refuse_connect(self, address):
        attempts.append(f"connect {address}")
        raise AssertionError("the fetcher must not connect")

    monkeypatch.setattr(urllib.request.OpenerDirector, "open", refuse_open)
    monkeypatch.setattr(socket.socket, "connect", refuse_connect)
    return attempts


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:1/x.png", "https://example.org/x.css", "ftp://127.0.0.1/x", "file:///etc/passwd",
     "file://otherhost/report/explain/a.png", "data:image/png;base64,iVBORw0KGgo=", "javascript:alert(1)"],
)
def test_everything_but_the_report_folder_is_refused_without_an_attempt(report_dir, no_network, url):
    fetcher = SafeURLFetcher(report_dir)
    with pytest.raises(FetchRefusedError):
        fetcher.fetch(url)
    assert fetcher.refused == [url]
    assert no_network == []


def test_file_outside_is_refused_before_the_filesystem_is_touched(report_dir, monkeypatch):
    touched: list[str] = []
    real_resolve, real_read = Path.resolve, Path.read_bytes

    def spy_resolve(self, *args, **kwargs):
        touched.append(str(self))
        return real_resolve(self, *args, **kwargs)

    monkeypatch.setattr(Path, "resolve", spy_resolve)
    monkeypatch.setattr(Path, "read_bytes", lambda self: touched.append(f"read {self}") or real_read(self))
    fetcher = SafeURLFetcher(report_dir)
    touched.clear()
    with pytest.raises(FetchRefusedError):
        fetcher.fetch("file:///etc/passwd")
    assert not any("passwd" in t for t in touched)


def test_files_inside_the_folder_are_served(report_dir):
    fetcher = SafeURLFetcher(report_dir)
    response = fetcher.fetch((report_dir / "explain" / "a.png").resolve().as_uri())
    assert response.read() == b"\x89PNG inside"
    assert response.content_type == "image/png"


def test_symlink_escaping_the_folder_is_refused(report_dir):
    link = report_dir / "explain" / "link.txt"
    os.symlink(report_dir.parent / "secret.txt", link)
    fetcher = SafeURLFetcher(report_dir)
    with pytest.raises(FetchRefusedError, match="outside the report folder"):
        fetcher.fetch(link.as_uri())
    with pytest.raises(PathEscapeError):
        resolve_inside(report_dir, "explain/link.txt")
    with pytest.raises(PathEscapeError):
        resolve_inside(report_dir, "../secret.txt")


def test_generated_assets_are_served_and_unknown_digests_refused(report_dir):
    assets = AssetRegistry()
    url = assets.add(b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml")
    fetcher = SafeURLFetcher(report_dir, assets=assets)
    response = fetcher.fetch(url)
    assert response.read() == b"<svg xmlns='http://www.w3.org/2000/svg'/>"
    assert response.content_type == "image/svg+xml"
    with pytest.raises(FetchRefusedError):
        fetcher.fetch("auditkit-asset:" + "0" * 64)


@pytest.mark.slow
def test_weasyprint_rendering_never_reaches_a_listening_server(report_dir):
    """An HTML page naming a local server and /etc/passwd renders; the server sees no connection."""
    from weasyprint import HTML

    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    server.setblocking(False)
    port = server.getsockname()[1]
    html = (
        f'<p>x</p><img src="http://127.0.0.1:{port}/x.png"><img src="file:///etc/passwd">'
        f'<link rel="stylesheet" href="http://127.0.0.1:{port}/s.css">'
        f'<div style="background: url(http://127.0.0.1:{port}/bg.png)">y</div>'
        '<img src="explain/a.png">'
    )
    fetcher = SafeURLFetcher(report_dir)
    try:
        pdf = HTML(string=html, base_url=report_dir.resolve().as_uri() + "/", url_fetcher=fetcher).write_pdf()
        with pytest.raises(BlockingIOError):
            server.accept()
    finally:
        server.close()
    assert pdf.startswith(b"%PDF")
    assert f"http://127.0.0.1:{port}/x.png" in fetcher.refused
    assert "file:///etc/passwd" in fetcher.refused
    assert f"http://127.0.0.1:{port}/bg.png" in fetcher.refused
    assert not any(url.endswith("explain/a.png") for url in fetcher.refused)
