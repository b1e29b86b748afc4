"""``auditkit report``: outputs, no silent overwrite, one-line errors with exit code 2."""

from __future__ import annotations

import pytest

from auditkit.cli import run
from auditkit.errors import ExitCode


@pytest.fixture(scope="module")
def small_results(factory, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    return factory.write_results(folder, external=False, explanations=False, recalibration=False, fairness=False,
                                 gate=False)


def test_html_only_output_and_no_overwrite_without_force(small_results, capsys):
    out = small_results.parent / "dossier.html"
    assert run(["report", str(small_results), "--out", str(out)]) == ExitCode.OK
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert capsys.readouterr().out.split() == [str(out), str(out.parent / "model_card.json"), str(out.parent / "model_card_chai.xml")]
    before = out.read_bytes()
    assert run(["report", str(small_results), "--out", str(out)]) == ExitCode.INPUT_ERROR
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "already exists" in err and "--force" in err
    assert out.read_bytes() == before
    assert run(["report", str(small_results), "--out", str(out), "--force"]) == ExitCode.OK


@pytest.mark.slow
def test_pdf_next_to_results_with_html_beside_it(small_results, capsys):
    assert run(["report", str(small_results.parent), "--html"]) == ExitCode.OK
    pdf, html = small_results.parent / "report.pdf", small_results.parent / "report.html"
    assert pdf.read_bytes().startswith(b"%PDF-1.7")
    assert html.is_file()
    assert capsys.readouterr().out.split() == [
        str(pdf), str(html), str(pdf.parent / "model_card.json"), str(pdf.parent / "model_card_chai.xml")
    ]
    leftovers = [p.name for p in small_results.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_missing_or_invalid_results_are_input_errors(tmp_path, capsys):
    assert run(["report", str(tmp_path / "nope.json")]) == ExitCode.INPUT_ERROR
    assert "no such results file" in capsys.readouterr().err
    bad = tmp_path / "results.json"
    bad.write_text('{"schema_version": "1.0", "tool": {"name": "auditkit", "version": "0"}}')
    assert run(["report", str(bad)]) == ExitCode.INPUT_ERROR
    err = capsys.readouterr().err.strip()
    assert err.startswith("auditkit: error:") and err.count("\n") == 0 and "Traceback" not in err


def test_policy_that_does_not_exist_is_an_input_error(small_results, capsys):
    code = run(["report", str(small_results), "--out", str(small_results.parent / "p.pdf"), "--policy",
                str(small_results.parent / "missing.yaml")])
    assert code == ExitCode.INPUT_ERROR
    assert "no such policy file" in capsys.readouterr().err


def test_a_file_that_is_not_a_policy_is_never_attached(small_results, capsys):
    bad = small_results.parent / "notes.yaml"
    bad.write_text("just: some notes\n")
    out = small_results.parent / "p2.pdf"
    code = run(["report", str(small_results), "--out", str(out), "--policy", str(bad)])
    assert code == ExitCode.INPUT_ERROR
    err = capsys.readouterr().err.strip()
    assert "notes.yaml" in err and err.count("\n") == 0
    assert not out.exists()
