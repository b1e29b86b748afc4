"""The example CI workflows parse, train nothing, and call only commands and flags that exist."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import typer
import yaml

from auditkit.cli import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "ci"
OPERATORS = {"||", "&&", ";", "|", ">", ">>", "<", "&", "(", ")"}
# The audit command's flags as documented in DESIGN.md's command line (owned by the audit command).
DOCUMENTED_AUDIT_FLAGS = {
    "--model",
    "--manifest",
    "--predictions",
    "--external-site",
    "--attributes",
    "--policy",
    "--config",
    "--out",
    "--force",
}


def _invocations(script: str) -> list[list[str]]:
    """Return the argument lists of every `auditkit ...` command in a shell script."""
    found: list[list[str]] = []
    for line in script.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        current: list[str] | None = None
        for token in lexer:
            if token in OPERATORS:
                current = None
            elif token == "auditkit" and current is None:
                current = []
                found.append(current)
            elif current is not None:
                current.append(token)
    return found


def _github_scripts(doc) -> list[str]:
    return [step["run"] for job in doc["jobs"].values() for step in job["steps"] if "run" in step]


def _gitlab_scripts(doc) -> list[str]:
    job = doc["auditkit-gate"]
    return [line for key in ("before_script", "script") for line in job.get(key, [])]


def _option_names(command: str) -> set[str] | None:
    group = typer.main.get_command(app)
    cmd = group.commands.get(command)  # type: ignore[attr-defined]
    if cmd is None:
        return None
    return {
        opt for param in cmd.params for opt in getattr(param, "opts", []) if opt.startswith("--")
    }


@pytest.fixture(params=["github-actions.yml", "gitlab-ci.yml"])
def workflow(request):
    path = EXAMPLES / request.param
    doc = yaml.safe_load(path.read_text("utf-8"))
    scripts = _github_scripts(doc) if request.param.startswith("github") else _gitlab_scripts(doc)
    calls = [call for script in scripts for call in _invocations(script)]
    return request.param, doc, calls


def test_workflow_audits_and_gates_without_training(workflow):
    _, _, calls = workflow
    commands = [call[0] for call in calls]
    assert commands == ["audit", "gate"]
    assert "train" not in commands


def test_gate_invocation_uses_only_registered_flags(workflow):
    _, _, calls = workflow
    gate = next(call for call in calls if call[0] == "gate")
    flags = {token for token in gate if token.startswith("--")}
    assert flags == {"--policy", "--json", "--junit", "--summary"}
    assert flags <= _option_names("gate")
    assert gate[1].endswith("/results.json")  # the positional results file comes first


def test_audit_invocation_uses_documented_flags_and_the_policy(workflow):
    _, _, calls = workflow
    audit = next(call for call in calls if call[0] == "audit")
    flags = {token for token in audit if token.startswith("--")}
    assert {"--model", "--manifest", "--policy", "--out"} <= flags <= DOCUMENTED_AUDIT_FLAGS
    registered = _option_names("audit")
    if registered is not None:  # once the audit command is registered, hold it to its real flags
        assert flags <= registered


def _flag_value(call: list[str], flag: str) -> str:
    return call[call.index(flag) + 1]


def test_github_workflow_publishes_junit_summary_and_pdf():
    doc = yaml.safe_load((EXAMPLES / "github-actions.yml").read_text("utf-8"))
    triggers = doc.get("on", doc.get(True))  # YAML 1.1 reads the bare key `on` as true
    assert "pull_request" in triggers
    out = doc["env"]["OUT"]
    steps = doc["jobs"]["gate"]["steps"]
    gate = next(c for s in _github_scripts(doc) for c in _invocations(s) if c[0] == "gate")
    junit = _flag_value(gate, "--junit").replace("$OUT", out)
    summary = _flag_value(gate, "--summary").replace("$OUT", out)
    uses = {step.get("uses", "").split("@")[0]: step for step in steps}
    assert uses["mikepenz/action-junit-report"]["with"]["report_paths"] == junit
    assert any("$GITHUB_STEP_SUMMARY" in s and "gate-summary.md" in s for s in _github_scripts(doc))
    assert uses["marocchino/sticky-pull-request-comment"]["with"]["path"] == summary
    artifact = uses["actions/upload-artifact"]["with"]["path"]
    assert f"{out}/*.pdf" in artifact and junit in artifact
    for step in steps[steps.index(uses["mikepenz/action-junit-report"]) :]:
        assert "always()" in step.get("if", "") or "failure" in step.get("if", "")
    final = steps[-1]
    assert "steps.audit.outcome == 'failure'" in final["if"] and "exit 1" in final["run"]
    audit_step = next(s for s in steps if s.get("id") == "audit")
    assert audit_step["continue-on-error"] is True


def test_gitlab_job_reports_junit_and_keeps_artifacts_on_failure():
    doc = yaml.safe_load((EXAMPLES / "gitlab-ci.yml").read_text("utf-8"))
    job = doc["auditkit-gate"]
    out = job["variables"]["OUT"]
    gate = next(c for s in _gitlab_scripts(doc) for c in _invocations(s) if c[0] == "gate")
    junit = _flag_value(gate, "--junit").replace("$OUT", out)
    assert job["artifacts"]["reports"]["junit"] == junit
    assert job["artifacts"]["when"] == "always"
    assert f"{out}/" in job["artifacts"]["paths"]
    assert job["script"][-1] == 'exit "$status"'
    assert any(
        "merge_requests/$CI_MERGE_REQUEST_IID/notes" in line and "gate-summary.md" in line
        for line in job["script"]
    )
