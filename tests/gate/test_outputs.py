"""Gate outputs: JUnit XML parsed back, Markdown content, JSON document, console table."""

from __future__ import annotations

import hashlib
import io
import json
import xml.etree.ElementTree as ET

import pytest
from rich.console import Console

from auditkit.gate import evaluate, junit_xml, markdown_summary, print_verdict_table, write_outputs

# One rule per outcome kind, with hand-planted values: the expected JUnit mapping
# (failure = blocks, skipped = did not pass but does not block) is counted by hand.
MIXED_RULES = [
    {"id": "auroc", "metric": "discrimination.test.auroc", "min": 0.8, "use": "ci_low"},  # pass
    {"id": "ece", "metric": "calibration.test.ece", "max": 0.1, "use": "ci_high"},  # fail, blocks
    {
        "id": "slope",
        "metric": "calibration.test.slope",
        "min": 0.9,
        "use": "ci_low",
    },  # insufficient, blocks
    {
        "id": "fnr-gap",
        "metric": "fairness.*.gap.fnr",
        "max": 0.1,
        "use": "ci_high",
        "insufficient": "allow",
    },
    {
        "id": "sens",
        "metric": "discrimination.test.sensitivity",
        "min": 0.9,
        "severity": "warning",
    },  # fail, warning
    {
        "id": "ext",
        "metric": "external.*.delta.auroc",
        "min": -0.05,
        "required": False,
    },  # not applicable
    {"id": "worst", "metric": "fairness.*.worst_group.auroc", "min": 0.7, "when_undefined": "warn"},
]


@pytest.fixture
def mixed(results, make_policy, make_est):
    del results["external"]
    results["calibration"]["test"]["ece"] = make_est(0.18, 0.13, 0.24)
    results["fairness"]["age_group"]["worst_group"]["auroc"] = make_est(
        None, reason="one-class group"
    )
    results["fairness"]["sex"]["groups"]["F|M"] = results["fairness"]["sex"]["groups"].pop("F")
    policy = make_policy(*MIXED_RULES, name="release-policy")
    return evaluate(results, policy), policy


# sex gap 0.03 [-0.04, 0.09] passes; age_group gap 0.06 [-0.02, 0.13] straddles (allowed).
EXPECTED = [
    ("auroc", "discrimination.test.auroc", "pass", None),
    ("ece", "calibration.test.ece", "fail", "failure"),
    ("slope", "calibration.test.slope", "insufficient", "failure"),
    ("fnr-gap", "fairness.sex.gap.fnr", "pass", None),
    ("fnr-gap", "fairness.age_group.gap.fnr", "insufficient", "skipped"),
    ("sens", "discrimination.test.sensitivity", "fail", "skipped"),
    ("ext", "external.*.delta.auroc", "not_applicable", "skipped"),
    ("worst", "fairness.sex.worst_group.auroc", "pass", None),
    ("worst", "fairness.age_group.worst_group.auroc", "warn", "skipped"),
]


def test_mixed_outcome_matches_the_hand_count(mixed):
    outcome, _ = mixed
    assert [(c.id, c.metric, c.verdict) for c in outcome.checks] == [e[:3] for e in EXPECTED]
    assert outcome.passed is False


def test_junit_xml_parses_back_with_one_testcase_per_check(mixed):
    outcome, policy = mixed
    root = ET.fromstring(junit_xml(outcome).encode("utf-8"))
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    n_fail = sum(e[3] == "failure" for e in EXPECTED)
    n_skip = sum(e[3] == "skipped" for e in EXPECTED)
    for element in (root, suite):
        assert element.get("tests") == str(len(EXPECTED))
        assert element.get("failures") == str(n_fail) == "2"
        assert element.get("skipped") == str(n_skip) == "4"
        assert element.get("errors") == "0"
    assert suite.get("name") == "release-policy"
    cases = suite.findall("testcase")
    assert len(cases) == len(EXPECTED)
    for case, (rule_id, metric, verdict, child) in zip(cases, EXPECTED, strict=True):
        assert case.get("classname") == "release-policy"
        assert case.get("name") == f"{rule_id}: {metric}"
        kinds = {sub.tag for sub in case} - {"system-out"}
        assert kinds == ({child} if child else set())
        if child == "failure":
            assert case.find("failure").get("type") == verdict
        if child == "skipped":
            assert case.find("skipped").get("message").startswith(verdict)
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["policy_sha256"] == policy.sha256
    assert props["passed"] == "false"
    assert props["model_name"] == "candidate"


def test_markdown_summary_has_headline_provenance_and_a_row_per_check(mixed):
    outcome, policy = mixed
    text = markdown_summary(outcome)
    lines = text.splitlines()
    assert lines[0] == "## ❌ auditkit gate FAILED"
    assert policy.sha256 in text
    assert "**2 blocking** of 9 checks" in text
    assert "rules: `ece`, `slope`" in text
    header = next(i for i, line in enumerate(lines) if line.startswith("| | Rule"))
    rows = lines[header + 2 :]
    assert len(rows) == len(EXPECTED)
    for row, (rule_id, metric, _, child) in zip(rows, EXPECTED, strict=True):
        assert f"`{rule_id}`" in row and f"`{metric}`" in row
        assert ("(blocks)" in row) == (child == "failure")
    # Every row has the same number of unescaped cell separators as the header.
    pipes = lines[header].count("|")
    assert all(row.replace("\\|", "").count("|") == pipes for row in rows)
    ece_row = rows[1]
    assert "0.180 (0.130 to 0.240)" in ece_row and "ci_high <= 0.1" in ece_row


def test_markdown_escapes_pipes_in_group_names(results, make_policy):
    results["fairness"]["sex"]["groups"]["F|M"] = results["fairness"]["sex"]["groups"].pop("F")
    outcome = evaluate(
        results, make_policy({"id": "g", "metric": "fairness.sex.groups.*.fnr", "max": 0.5})
    )
    text = markdown_summary(outcome)
    assert "## ✅ auditkit gate PASSED" in text
    row = next(line for line in text.splitlines() if "groups.F" in line)
    assert "`fairness.sex.groups.F\\|M.fnr`" in row


def test_json_document_lists_every_expanded_rule(tmp_path, mixed):
    outcome, policy = mixed
    written = write_outputs(
        outcome,
        json_path=tmp_path / "out" / "gate.json",
        junit_path=tmp_path / "out" / "gate.xml",
        summary_path=tmp_path / "out" / "gate.md",
    )
    assert [p.name for p in written] == ["gate.json", "gate.xml", "gate.md"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "gate.json",
        "gate.md",
        "gate.xml",
    ]
    doc = json.loads((tmp_path / "out" / "gate.json").read_text("utf-8"))
    assert doc["passed"] is False
    assert doc["policy_name"] == "release-policy"
    assert doc["policy_sha256"] == policy.sha256 == hashlib.sha256(policy_bytes(policy)).hexdigest()
    assert doc["counts"] == {
        "pass": 3,
        "fail": 2,
        "insufficient": 2,
        "undefined": 0,
        "warn": 1,
        "not_applicable": 1,
    }
    assert doc["n_blocking"] == 2
    keys = {
        "id",
        "metric",
        "pattern",
        "op",
        "threshold",
        "use",
        "severity",
        "verdict",
        "value",
        "estimate",
        "ci_low",
        "ci_high",
        "message",
    }
    assert [(r["id"], r["metric"], r["verdict"]) for r in doc["rules"]] == [e[:3] for e in EXPECTED]
    for rule in doc["rules"]:
        assert keys <= set(rule)
    ece = doc["rules"][1]
    assert (ece["op"], ece["threshold"], ece["use"], ece["value"]) == ("max", 0.1, "ci_high", 0.24)
    assert (ece["estimate"], ece["ci_low"], ece["ci_high"]) == (0.18, 0.13, 0.24)
    worst = doc["rules"][-1]
    assert worst["estimate"] is None and worst["value"] is None


def policy_bytes(policy) -> bytes:
    """Re-create the YAML bytes the test policy was parsed from (the fixture's own writer)."""
    import yaml

    return yaml.safe_dump(
        {"name": policy.name, "version": policy.version, "rules": MIXED_RULES}, sort_keys=False
    ).encode("utf-8")


def test_console_table_shows_every_check_and_the_headline(mixed):
    outcome, _ = mixed
    buffer = io.StringIO()
    print_verdict_table(outcome, console=Console(file=buffer, width=250, color_system=None))
    text = buffer.getvalue()
    for rule_id, metric, _, _ in EXPECTED:
        assert rule_id in text and metric in text
    assert text.count("FAIL (blocks)") == 1 and text.count("INSUFFICIENT (blocks)") == 1
    assert "FAIL (warning)" in text and "N/A" in text
    assert (
        text.rstrip()
        .splitlines()[-1]
        .startswith("auditkit gate FAILED: 2 blocking checks of 9 (rules: ece, slope")
    )
    assert outcome.policy_sha256 in text


def test_outputs_are_byte_identical_across_runs(tmp_path, mixed):
    outcome, _ = mixed
    first = write_outputs(
        outcome,
        json_path=tmp_path / "a.json",
        junit_path=tmp_path / "a.xml",
        summary_path=tmp_path / "a.md",
    )
    second = write_outputs(
        outcome,
        json_path=tmp_path / "b.json",
        junit_path=tmp_path / "b.xml",
        summary_path=tmp_path / "b.md",
    )
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes()


def test_console_table_is_plain_ascii_for_a_non_utf8_ci_log(mixed):
    outcome, _ = mixed
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii", errors="strict")
    print_verdict_table(outcome, console=Console(file=stream, width=200, color_system=None))
    stream.flush()
    text = raw.getvalue().decode("ascii")
    assert "auditkit gate FAILED" in text and "calibration.test.ece" in text


def test_console_at_80_columns_lists_every_check_within_the_width(mixed):
    outcome, _ = mixed
    buffer = io.StringIO()
    print_verdict_table(outcome, console=Console(file=buffer, width=80, color_system=None))
    lines = buffer.getvalue().rstrip().splitlines()
    assert max(len(line) for line in lines) <= 80
    text = "\n".join(lines)
    for rule_id, metric, _, _ in EXPECTED:
        assert rule_id in text and metric in text  # whole ids and paths, never cut with an ellipsis
    assert "\u2026" not in text
    assert text.count("FAIL (blocks)") == 1 and text.count("INSUFFICIENT (blocks)") == 1
    failing = next(c for c in outcome.checks if c.verdict == "fail" and c.blocking)
    assert f"why: {failing.message.split()[0]}" in text  # the reason is shown, wrapped under its check
