"""results.json reading and its JSON Schema, on documents written by a real audit."""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from auditkit.cli import run
from auditkit.errors import ExitCode, ResultsError
from auditkit.results import load_results, read_results_file, validate_results

_DROP = object()


def _make_table():
    path = Path(__file__).parents[1] / "audit" / "conftest.py"
    spec = importlib.util.spec_from_file_location("auditkit_tests_audit_tables", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_table


def _audit(folder: Path, csv: Path, *extra: str) -> Path:
    out = folder / "out"
    args = ["--quiet", "audit", "--predictions", str(csv), "--out", str(out), "--no-report"]
    assert run([*args, "--n-boot", "50", *extra]) == ExitCode.OK
    return out / "results.json"


@pytest.fixture(scope="module")
def binary_results(tmp_path_factory) -> Path:
    """results.json of a binary audit with subgroups and an external site."""
    folder = tmp_path_factory.mktemp("binary")
    csv = folder / "preds.csv"
    _make_table()(600, images_per_patient=2).to_csv(csv, index=False)
    return _audit(folder, csv, "--attributes", "sex")


@pytest.fixture(scope="module")
def multiclass_results(tmp_path_factory) -> Path:
    """results.json of a three-class audit (per-class and macro blocks)."""
    folder = tmp_path_factory.mktemp("multiclass")
    rng = np.random.default_rng(0)
    n = 400
    k = rng.integers(0, 3, n)
    logits = rng.normal(size=(n, 3)) + 1.8 * np.eye(3)[k]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    frame = pd.DataFrame(
        {
            "id": [f"i{i}" for i in range(n)],
            "y_true": np.array(["a", "b", "c"])[k],
            **{f"score_{c}": probs[:, j] for j, c in enumerate("abc")},
            "split": rng.choice(["val", "test"], n),
        }
    )
    csv = folder / "m.csv"
    frame.to_csv(csv, index=False)
    return _audit(folder, csv)


@pytest.mark.parametrize(
    ("section", "path"),
    [
        ("binary", "discrimination.test.auroc"),
        ("binary", "calibration.val.slope"),
        ("binary", "external.C.delta.auroc"),
        ("binary", "external.C.shift.prevalence"),
        ("binary", "fairness.sex.groups.F.fnr"),
        ("multiclass", "discrimination.test.per_class.a.auroc"),
        ("multiclass", "discrimination.test.macro.auroc"),
        ("multiclass", "calibration.test.per_class.b.ece"),
    ],
)
def test_a_malformed_estimate_nested_in_a_metric_block_fails_the_schema(
    binary_results, multiclass_results, section, path
):
    source = binary_results if section == "binary" else multiclass_results
    document = json.loads(source.read_text("utf-8"))
    validate_results(document)  # the real document passes
    *parents, key = path.split(".")
    malformed = (
        {"ci_low": "0.8"},  # a string bound
        {"ci_high": _DROP},  # a required key missing
        {"estimate": None, "reason": _DROP},  # undefined without a reason
    )
    for changes in malformed:
        bad = copy.deepcopy(document)
        node = bad
        for part in parents:
            node = node[part]
        assert "estimate" in node[key], path
        for name, value in changes.items():
            if value is _DROP:
                node[key].pop(name, None)
            else:
                node[key][name] = value
        with pytest.raises(ResultsError, match=path.replace(".", r"\.")):
            validate_results(bad)


def test_extras_of_a_metric_block_are_not_estimates_and_pass(binary_results):
    document = json.loads(binary_results.read_text("utf-8"))
    block = document["calibration"]["test"]
    assert isinstance(block["n_bins"], int) and "estimate" not in block["reliability"]
    # the reliability diagram's per-bin ci_low/ci_high arrays are not an estimate
    assert "ci_low" in block["reliability"]["equal_width"]
    validate_results(document)


def test_read_results_file_gives_the_bytes_it_validated(binary_results):
    loaded = read_results_file(binary_results.parent)
    raw = binary_results.read_bytes()
    assert loaded.path == binary_results and loaded.raw == raw
    assert loaded.sha256 == hashlib.sha256(raw).hexdigest()
    assert loaded.data == load_results(binary_results) == json.loads(raw)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such results file"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "top level must be a JSON object"),
        (b'{"schema_version": "0.1"}', "schema_version is '0.1'"),
    ],
)
def test_a_bad_results_file_is_one_line_naming_it(tmp_path, content, expected):
    path = tmp_path / "results.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ResultsError, match=expected) as caught:
        read_results_file(path)
    assert str(caught.value).startswith(str(path)) and "\n" not in str(caught.value)
