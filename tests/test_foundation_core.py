"""Core utilities every layer uses: atomic writes, canonical JSON, Estimate, labels, CLI exit codes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from auditkit.cli import run
from auditkit.errors import ExitCode
from auditkit.fileio import atomic_write_text, dumps_json, sha256_file
from auditkit.labels import LabelError, encode_labels, infer_class_spec
from auditkit.results import Estimate, get_path


def test_atomic_write_leaves_old_file_when_block_fails(tmp_path):
    from auditkit.fileio import atomic_open

    target = tmp_path / "out.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_open(target, "w") as handle:
        handle.write("half of the new")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_sha256_matches_hashlib_reference(tmp_path):
    import hashlib

    target = tmp_path / "blob.bin"
    payload = bytes(range(256)) * 5000
    target.write_bytes(payload)
    assert sha256_file(target) == hashlib.sha256(payload).hexdigest()


def test_canonical_json_maps_nan_to_null_and_numpy_to_python():
    text = dumps_json({"a": np.float32(0.5), "b": float("nan"), "c": np.arange(3), "d": (1, 2)})
    assert json.loads(text) == {"a": 0.5, "b": None, "c": [0, 1, 2], "d": [1, 2]}
    assert text.endswith("\n")


def test_estimate_undefined_carries_reason_and_serialises_null():
    est = Estimate(math.nan, 0.1, 0.2)
    assert est.to_dict()["estimate"] is None
    assert est.to_dict()["reason"]
    gap = Estimate(0.1, 0.02, 0.2, p_value=0.01, groups=("F", "M"))
    assert Estimate.from_dict(gap.to_dict()) == gap


def test_get_path_resolves_keys_that_contain_dots():
    doc = {"fairness": {"age": {"groups": {"1.5": {"n": 3}}}}}
    assert get_path(doc, "fairness.age.groups.1.5.n") == 3
    with pytest.raises(KeyError):
        get_path(doc, "fairness.sex")


@pytest.mark.parametrize(
    ("labels", "positive", "classes"),
    [
        (["normal", "pneumonia", "normal"], None, ("normal", "pneumonia")),
        (["Healthy", "Nodule"], None, ("Healthy", "Nodule")),
        (["a", "b"], "a", ("b", "a")),
        ([0, 1, 1, 0], None, ("0", "1")),
        (["cat", "dog", "eel"], None, ("cat", "dog", "eel")),
    ],
)
def test_class_spec_inference(labels, positive, classes):
    assert infer_class_spec(labels, positive_class=positive).classes == classes


def test_ambiguous_binary_names_are_refused_with_the_fix():
    with pytest.raises(LabelError, match="--positive-class"):
        infer_class_spec(["x", "y"], where="m.csv column 'label'")


def test_encode_labels_names_the_bad_row():
    spec = infer_class_spec(["normal", "finding"])
    assert encode_labels(["finding", "normal", 1], spec).tolist() == [1, 0, 1]
    with pytest.raises(LabelError, match="row 2"):
        encode_labels(["finding", "tumour"], spec)


def test_cli_version_and_unknown_command_exit_codes(capsys):
    assert run(["--version"]) == ExitCode.OK
    assert run(["no-such-command"]) == ExitCode.INPUT_ERROR


def test_atomic_write_gives_the_mode_a_plain_open_would(tmp_path):
    import os

    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    atomic = atomic_write_text(tmp_path / "atomic.txt", "x")
    assert os.stat(atomic).st_mode & 0o777 == os.stat(plain).st_mode & 0o777
