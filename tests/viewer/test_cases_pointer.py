"""results.json's ``artifacts.cases``: the case records are found by its path and checked by its SHA-256."""

from __future__ import annotations

import hashlib
import json

import pytest

from auditkit.errors import ResultsError
from auditkit.explain.cases import cases_artifact
from auditkit.viewer.data import load_cases
from tests.viewer.conftest import write_planted_report


def _point(folder, entry):
    results = json.loads((folder / "results.json").read_text())
    results["artifacts"] = {"cases": entry}
    (folder / "results.json").write_text(json.dumps(results))


def test_the_artifact_entry_is_the_files_hash_and_case_count(tmp_path):
    write_planted_report(tmp_path, n=5)
    raw = (tmp_path / "explain" / "cases.json").read_bytes()
    entry = cases_artifact(tmp_path)
    assert entry == {"path": "explain/cases.json", "sha256": hashlib.sha256(raw).hexdigest(), "n_cases": 5}
    _point(tmp_path, entry)
    assert len(load_cases(tmp_path)["cases"]) == 5
    assert cases_artifact(tmp_path / "nowhere") is None


def test_records_changed_since_the_audit_are_refused(tmp_path):
    write_planted_report(tmp_path, n=3)
    _point(tmp_path, cases_artifact(tmp_path))
    path = tmp_path / "explain" / "cases.json"
    document = json.loads(path.read_text())
    document["cases"][0]["score"] = 0.999  # a forged score the viewer would show a clinician
    path.write_text(json.dumps(document))
    with pytest.raises(ResultsError, match="SHA-256 differs"):
        load_cases(tmp_path)


def test_records_moved_by_results_json_are_read_there(tmp_path):
    write_planted_report(tmp_path, n=2)
    entry = cases_artifact(tmp_path)
    (tmp_path / "explain" / "cases.json").rename(tmp_path / "explain" / "records.json")
    _point(tmp_path, {**entry, "path": "explain/records.json"})
    assert len(load_cases(tmp_path)["cases"]) == 2


@pytest.mark.parametrize("path", ["../outside/cases.json", "/etc/passwd", "explain/../../cases.json", "explain/\x00.json"])
def test_a_pointer_outside_the_report_folder_is_refused(tmp_path, path):
    folder = tmp_path / "r"
    write_planted_report(folder, n=2)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "cases.json").write_bytes((folder / "explain" / "cases.json").read_bytes())
    _point(folder, {**cases_artifact(folder), "path": path})
    with pytest.raises(ResultsError, match="inside the report folder"):
        load_cases(folder)


def test_a_results_json_without_the_pointer_reads_the_fixed_path(tmp_path):
    """An audit by an older auditkit has no ``artifacts``: its records are read where they always were."""
    write_planted_report(tmp_path, n=2)
    assert "artifacts" not in json.loads((tmp_path / "results.json").read_text())
    assert len(load_cases(tmp_path)["cases"]) == 2
