"""Fixtures of the report tests: results.json documents from the factory, and renders built once.

The factory (``factory.py`` beside this file) is loaded by path because the
test folders are not packages. Rendering a PDF takes seconds, so the complete
document is rendered once per session and shared by the PDF tests.
"""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path

import pytest

_FACTORY_PATH = Path(__file__).with_name("factory.py")


def _load_factory():
    name = "auditkit_tests_report_factory"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, _FACTORY_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def factory():
    """The factory module: ``build_results``, ``write_results``, ``Options``, ``HOSTILE_STRINGS``."""
    return _load_factory()


@pytest.fixture(autouse=True, scope="session")
def _quiet_progress():
    from auditkit.progress import set_quiet

    set_quiet(True)
    yield
    set_quiet(False)


@pytest.fixture(scope="session")
def full_results(factory, tmp_path_factory) -> Path:
    """Path of the complete factory results.json (every section, 6 gallery cases)."""
    return factory.write_results(tmp_path_factory.mktemp("full"))


@pytest.fixture(scope="session")
def full_doc(full_results) -> dict:
    """The complete results document as loaded from disk."""
    from auditkit.report import read_results

    return read_results(full_results)[2]


@pytest.fixture(scope="session")
def full_context(full_results, full_doc) -> dict:
    """The report context of the complete document."""
    from auditkit.fileio import sha256_file
    from auditkit.report import build_context

    return build_context(full_doc, report_dir=full_results.parent, results_sha256=sha256_file(full_results))


@pytest.fixture(scope="session")
def full_html(full_context) -> str:
    """The self-contained HTML report of the complete document."""
    from auditkit.report import render_html

    return render_html(full_context)


@pytest.fixture(scope="session")
def full_pdf(full_results) -> Path:
    """The PDF report of the complete document, rendered once through ``render_report``."""
    from auditkit.report import render_report

    out = full_results.parent / "report.pdf"
    render_report(full_results, out_pdf=out)
    return out


@pytest.fixture(scope="session")
def full_pdf_text(full_pdf) -> str:
    """All text of the complete PDF report (pypdf), pages joined by form feeds."""
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(full_pdf.read_bytes()))
    return "\f".join(page.extract_text() for page in reader.pages)
