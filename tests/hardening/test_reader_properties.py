"""Hypothesis properties: the manifest, policy, config and results readers accept or refuse, never crash.

For any input (random bytes, random YAML/JSON structures, mutations of a valid
document) each reader either returns its object or raises its documented
AuditkitError with a one-line message of bounded length; nothing else
escapes (the oracle is the reader's own contract, checked on inputs its
author did not choose).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from auditkit.audit.config import read_config_file
from auditkit.data.manifest import read_manifest
from auditkit.errors import AuditkitError, ConfigError, PolicyError, ResultsError
from auditkit.gate.policy import parse_policy
from auditkit.results import read_results_file

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20))
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=20,
)
POLICY_KEYS = ["name", "version", "rules", "description", "block_on_insufficient"]
RULE_KEYS = ["id", "metric", "min", "max", "equals", "use", "severity", "when_undefined", "insufficient", "required"]
rules = st.dictionaries(st.sampled_from(RULE_KEYS), documents, max_size=6)
policies = st.fixed_dictionaries({}, optional={"name": documents, "version": documents, "rules": st.lists(rules, max_size=3)})


def _one_line(exc: Exception) -> None:
    text = str(exc)
    assert "\n" not in text and 0 < len(text) < 2000, text[:200]


@SETTINGS
@given(st.one_of(st.binary(max_size=400), policies.map(lambda d: yaml.safe_dump(d).encode())))
def test_policy_parser_accepts_or_refuses_in_one_line(data):
    try:
        parse_policy(data, source="policy.yaml")
    except PolicyError as exc:
        _one_line(exc)


CONFIG_KEYS = ["n_boot", "seed", "ci_level", "ci_method", "attributes", "intersections", "operating_point",
               "saliency", "date", "model_name", "external_sites", "positive_class"]


@SETTINGS
@given(st.one_of(st.binary(max_size=400),
                 st.dictionaries(st.sampled_from(CONFIG_KEYS), documents, max_size=5).map(lambda d: yaml.safe_dump(d).encode())))
def test_config_reader_accepts_or_refuses_in_one_line(data):
    from auditkit.audit.config import build_settings

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "audit.yaml"
        path.write_bytes(data)
        try:
            read_config_file(path)
            build_settings(config_path=path)  # the validated settings, as audit --config builds them
        except ConfigError as exc:
            _one_line(exc)


@pytest.fixture(scope="module")
def valid_results(tmp_path_factory) -> dict:
    from auditkit.cli import run

    root = tmp_path_factory.mktemp("props")
    rng = np.random.default_rng(0)
    n = 120
    y = np.arange(n) % 2
    pd.DataFrame({"id": [f"i{i}" for i in range(n)], "y_true": y, "score": np.clip(0.3 * y + 0.7 * rng.random(n), 0, 1),
                  "split": ["val", "val", "test", "test"] * (n // 4)}).to_csv(root / "p.csv", index=False)
    assert run(["--quiet", "audit", "--predictions", str(root / "p.csv"), "--out", str(root / "a"), "--n-boot", "50",
                "--no-report"]) == 0
    return json.loads((root / "a" / "results.json").read_text())


def _paths(doc, prefix=()):
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield (*prefix, key)
            yield from _paths(value, (*prefix, key))


@SETTINGS
@given(data=st.data())
def test_results_reader_accepts_or_refuses_a_mutated_document(valid_results, data):
    doc = json.loads(json.dumps(valid_results))
    paths = list(_paths(doc))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        node = doc
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node[path[-1]] = data.draw(documents)
    raw = json.dumps(doc, allow_nan=True).encode()
    if data.draw(st.booleans()):
        cut = data.draw(st.integers(0, len(raw)))
        raw = raw[:cut]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "results.json"
        path.write_bytes(raw)
        try:
            read_results_file(path)
        except ResultsError as exc:
            _one_line(exc)


MANIFEST_COLUMNS = ["id", "image", "label", "patient_id", "site", "split", "mask", "frame", "sex",
                    "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1", " label", "label "]
cells = st.one_of(st.sampled_from(["img/0.png", "img/1.png", "../x.png", "/etc/hostname", "", "0", "1", "test",
                                   "val", "-1", "1e400", "nan", "a,b", '"', "img"]), st.text(max_size=8))


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("manifest_props")
    (root / "img").mkdir()
    for i in range(2):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(root / "img" / f"{i}.png")
    return root


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(columns=st.lists(st.sampled_from(MANIFEST_COLUMNS), min_size=1, max_size=6),
       rows=st.lists(st.lists(cells, min_size=0, max_size=7), min_size=0, max_size=4), raw=st.booleans(),
       data=st.binary(max_size=200))
def test_manifest_reader_accepts_or_refuses_in_one_line(image_folder, columns, rows, raw, data):
    path = image_folder / "m.csv"
    if raw:
        path.write_bytes(data)
    else:
        lines = [",".join(columns)] + [",".join(row) for row in rows]
        path.write_text("\n".join(lines) + "\n")
    try:
        read_manifest(path)
    except AuditkitError as exc:
        _one_line(exc)
