"""``auditkit gate``: exit codes 0/1/2, output files, --allow-insufficient, --policy default."""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET

import pytest

from auditkit.cli import run
from auditkit.errors import ExitCode
from auditkit.results import save_results

POLICY = """\
name: ci-policy
version: "2.1"
rules:
  - id: auroc
    metric: discrimination.test.auroc
    min: 0.80
    use: ci_low
  - id: fnr-gap
    metric: fairness.*.gap.fnr
    max: 0.10
    use: ci_high
    insufficient: allow
"""


@pytest.fixture
def files(tmp_path, results):
    def write(doc=None, policy=POLICY):
        report = tmp_path / "reports" / "cand"
        results_path = save_results(report / "results.json", results if doc is None else doc)
        policy_path = tmp_path / "policy.yaml"
        policy_path.write_text(policy, encoding="utf-8")
        return results_path, policy_path

    return write


def test_passing_gate_exits_0_and_writes_every_output(tmp_path, files, capsys):
    results_path, policy_path = files()
    out = tmp_path / "gate"
    code = run(
        [
            "gate",
            str(results_path),
            "--policy",
            str(policy_path),
            "--json",
            str(out / "gate.json"),
            "--junit",
            str(out / "junit.xml"),
            "--summary",
            str(out / "summary.md"),
        ]
    )
    captured = capsys.readouterr()
    assert code == ExitCode.OK == 0
    assert "auditkit gate PASSED: 3 checks" in captured.out
    doc = json.loads((out / "gate.json").read_text("utf-8"))
    assert doc["passed"] is True
    assert doc["policy_sha256"] == hashlib.sha256(policy_path.read_bytes()).hexdigest()
    assert doc["results"]["sha256"] == hashlib.sha256(results_path.read_bytes()).hexdigest()
    assert doc["policy_version"] == "2.1"
    suite = ET.parse(out / "junit.xml").getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "0", "1")
    assert (out / "summary.md").read_text("utf-8").startswith("## ✅ auditkit gate PASSED")


def test_failing_gate_exits_1_and_names_the_rule(files, results, make_est, capsys):
    results["fairness"]["sex"]["gap"]["fnr"] = make_est(0.25, 0.16, 0.33)
    results_path, policy_path = files(results)
    code = run(["gate", str(results_path), "--policy", str(policy_path)])
    out = capsys.readouterr().out
    assert code == ExitCode.GATE_FAILED == 1
    assert "FAIL (blocks)" in out
    assert "auditkit gate FAILED: 1 blocking check of 3 (rules: fnr-gap" in out


def test_allow_insufficient_turns_a_straddling_primary_endpoint_into_a_pass(
    tmp_path, files, results, make_est
):
    results["discrimination"]["test"]["auroc"] = make_est(0.84, 0.78, 0.89)
    results_path, policy_path = files(results)
    assert run(["gate", str(results_path), "--policy", str(policy_path)]) == 1
    out = tmp_path / "g.json"
    assert (
        run(
            [
                "gate",
                str(results_path),
                "--policy",
                str(policy_path),
                "--allow-insufficient",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    doc = json.loads(out.read_text("utf-8"))
    assert doc["overrides"] == {"block_on_insufficient": False}
    assert doc["rules"][0]["verdict"] == "insufficient"


def test_report_folder_and_default_policy(files, capsys):
    results_path, _ = files()
    assert run(["-q", "gate", str(results_path.parent), "--policy", "default"]) == 0
    out = capsys.readouterr().out
    assert out.strip().startswith("auditkit gate PASSED: 20 checks")
    assert len(out.strip().splitlines()) == 1  # --quiet: the headline only


@pytest.mark.parametrize(
    ("policy", "doc_change", "fragment"),
    [
        (
            POLICY.replace(
                "metric: discrimination.test.auroc", "metric: discrimination.test.aurok"
            ),
            None,
            "rule 'auroc'",
        ),
        (POLICY.replace("fairness.*.gap.fnr", "subgroups.*.gap.fnr"), None, "matches nothing"),
        (POLICY + "    maximum: 1\n", None, "unknown field 'maximum'"),
        (POLICY, "drop-fairness", "'fairness.*.gap.fnr' matches nothing"),
        (POLICY, "bad-schema", "schema_version"),
    ],
    ids=["typo", "wildcard-none", "unknown-key", "section-absent", "bad-results"],
)
def test_input_errors_exit_2_with_one_line_and_no_traceback(
    files, results, capsys, policy, doc_change, fragment
):
    if doc_change == "drop-fairness":
        del results["fairness"]
    results_path, policy_path = files(results, policy)
    if doc_change == "bad-schema":
        data = json.loads(results_path.read_text("utf-8"))
        data["schema_version"] = "0.1"
        results_path.write_text(json.dumps(data), encoding="utf-8")
    code = run(
        [
            "gate",
            str(results_path),
            "--policy",
            str(policy_path),
            "--junit",
            str(results_path.parent / "j.xml"),
        ]
    )
    err = capsys.readouterr().err
    assert code == ExitCode.INPUT_ERROR == 2
    assert fragment in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (results_path.parent / "j.xml").exists()


def test_missing_results_or_policy_exit_2(tmp_path, files, capsys):
    results_path, policy_path = files()
    assert run(["gate", str(tmp_path / "nowhere.json"), "--policy", str(policy_path)]) == 2
    assert run(["gate", str(results_path), "--policy", str(tmp_path / "nope.yaml")]) == 2
    assert run(["gate", str(results_path)]) == 2  # --policy is required: the criteria are explicit
    err = capsys.readouterr().err
    assert "no such results file" in err and "no such policy file" in err
