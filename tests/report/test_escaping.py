"""Nothing in a manifest, a config or a class name can inject markup into the report."""

from __future__ import annotations

import io
from html.parser import HTMLParser

import pytest


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


@pytest.fixture(scope="module")
def hostile(factory, tmp_path_factory):
    """A results.json whose subgroup value, positive class and intended-use text are hostile strings."""
    folder = tmp_path_factory.mktemp("hostile")
    # fairness, class names and free text carry the hostile strings; other sections are left out so the
    # PDF stays short
    path = factory.write_results(folder, hostile=True, n_gallery=2, external=False, recalibration=False,
                                 extra_intended_use={"intended_users": factory.HOSTILE_VALUE})
    return path


@pytest.fixture(scope="module")
def hostile_html(hostile):
    from auditkit.report import build_context, read_results, render_html

    _, _, doc = read_results(hostile)
    return render_html(build_context(doc, report_dir=hostile.parent))


def test_hostile_strings_appear_as_text_not_markup(hostile_html, factory):
    parser = _Tags()
    parser.feed(hostile_html)
    tags = [tag for tag, _ in parser.tags]
    assert "script" not in tags
    assert tags.count("style") == 1  # the report's own stylesheet only
    images = [attrs.get("src", "") for tag, attrs in parser.tags if tag == "img"]
    assert images and all(src.startswith("data:image/") for src in images)
    assert not any("127.0.0.1" in str(attrs) or "passwd" in str(attrs) for _, attrs in parser.tags)
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in hostile_html
    assert "&lt;img src=&#34;http://127.0.0.1:1/x.png&#34;&gt;" in hostile_html
    assert "&lt;/style&gt;&lt;style&gt;body{display:none}&lt;/style&gt;" in hostile_html
    # hostile text in the subgroup table, the class names and the manufacturer's free text
    for needle in ("positive class: &lt;img", "<th scope=\"row\">&lt;img src="):
        assert needle in hostile_html


@pytest.mark.slow
def test_hostile_report_renders_to_pdf_showing_the_strings_as_text(hostile, factory):
    from pypdf import PdfReader

    from auditkit.report import render_report

    out = hostile.parent / "report.pdf"
    render_report(hostile, out_pdf=out)
    text = " ".join(" ".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(out.read_bytes())).pages)
    assert "<script>alert('x')</script>" in text
    assert "file:///etc/passwd" in text
    assert "body{display:none}" in text
