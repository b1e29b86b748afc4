"""Policy loading: strict validation with errors naming the file and rule, and the file's hash."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from auditkit.errors import ExitCode, PolicyError
from auditkit.gate import load_policy, parse_policy, shipped_policy_names

DEFAULT_FILE = Path(__file__).resolve().parents[2] / "auditkit" / "policies" / "default.yaml"

GOOD_RULE = "  - id: auroc\n    metric: discrimination.test.auroc\n    min: 0.8\n    use: ci_low\n"


def _policy_text(rules: str, top: str = "name: p\nversion: '1'\n") -> str:
    return f"{top}rules:\n{rules}"


def test_default_policy_hash_is_sha256_of_the_shipped_file_bytes():
    policy = load_policy("default")
    assert policy.sha256 == hashlib.sha256(DEFAULT_FILE.read_bytes()).hexdigest()
    assert policy.source == "default"
    assert "default" in shipped_policy_names()


def test_policy_file_hash_is_sha256_of_its_bytes(tmp_path):
    text = _policy_text(GOOD_RULE) + "# a comment changes the bytes, hence the hash\n"
    path = tmp_path / "release.yaml"
    path.write_bytes(text.encode("utf-8"))
    policy = load_policy(path)
    assert policy.sha256 == hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert policy.source == str(path)
    assert load_policy(str(path)).sha256 == policy.sha256


def test_rule_defaults_match_the_documented_language():
    policy = parse_policy(
        _policy_text("  - id: r\n    metric: calibration.test.ece\n    max: 0.1\n"), source="p.yaml"
    )
    (rule,) = policy.rules
    assert (rule.op, rule.threshold, rule.use, rule.effective_use) == ("max", 0.1, None, "estimate")
    assert (rule.severity, rule.when_undefined, rule.insufficient, rule.required) == (
        "error",
        "fail",
        None,
        True,
    )
    assert policy.block_on_insufficient is True


def test_default_policy_covers_every_required_analysis_and_documents_each_rule():
    policy = load_policy("default")
    patterns = {rule.metric for rule in policy.rules}
    assert "discrimination.test.auroc" in patterns
    # the gated calibration error is the debiased one (the binned plug-in ECE's interval does not cover)
    assert "calibration.test.ece_l1_debiased" in patterns and "calibration.test.ece" not in patterns
    intercept = sorted(
        (r.op, r.threshold) for r in policy.rules if r.metric == "calibration.test.intercept"
    )
    assert intercept == [("max", 0.5), ("min", -0.5)]
    assert {
        "fairness.*.gap.fnr",
        "fairness.*.gap.auroc",
        "fairness.*.worst_group.auroc",
    } <= patterns
    assert "external.*.delta.auroc" in patterns
    assert {"saliency.*.sanity.passed", "saliency.*.shortcut_score"} <= patterns
    slope = sorted(
        (r.op, r.threshold) for r in policy.rules if r.metric == "calibration.test.slope"
    )
    assert slope == [("max", 1.25), ("min", 0.8)]
    for rule in policy.rules:
        assert rule.description and len(rule.description) > 40, rule.id
    # Absence is legitimate only for external sites and explanations, never the core metrics.
    optional = {rule.metric.split(".")[0] for rule in policy.rules if not rule.required}
    assert optional == {"external", "saliency"}
    # The primary endpoint is judged by the CI bound, never the point estimate (FDA App. C).
    auroc = next(r for r in policy.rules if r.metric == "discrimination.test.auroc")
    assert (auroc.use, auroc.severity) == ("ci_low", "error")
    docs = (DEFAULT_FILE.parents[2] / "docs" / "policy.md").read_text("utf-8")
    for rule in policy.rules:
        assert f"`{rule.id}`" in docs, f"rule {rule.id} is not documented in docs/policy.md"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            _policy_text(GOOD_RULE + "    maximum: 3\n"),
            ["bad.yaml", "rule 1 (id 'auroc')", "unknown field 'maximum'"],
        ),
        (
            _policy_text(GOOD_RULE, "name: p\nversion: '1'\nowner: me\n"),
            ["policy", "unknown field 'owner'"],
        ),
        (
            _policy_text(
                GOOD_RULE
                + "  - id: two\n    metric: calibration.test.ece\n    min: 0\n    max: 0.1\n"
            ),
            ["rule 2 (id 'two')", "exactly one of min, max, equals", "found: min, max"],
        ),
        (
            _policy_text("  - id: none\n    metric: calibration.test.ece\n"),
            ["rule 1 (id 'none')", "exactly one of min, max, equals", "found: none"],
        ),
        (
            _policy_text(GOOD_RULE + GOOD_RULE.replace("min: 0.8", "min: 0.7")),
            ["rule 2 reuses the id 'auroc' of rule 1"],
        ),
        (
            _policy_text(
                "  - id: sanity\n    metric: saliency.gradcam.sanity.passed\n    equals: true\n    use: ci_low\n"
            ),
            ["rule 1 (id 'sanity')", "not to a boolean"],
        ),
        (
            _policy_text("  - id: eq\n    metric: calibration.test.ece\n    equals: 0.1\n"),
            ["rule 1 (id 'eq')", "field 'equals'", "boolean or an integer"],
        ),
        (
            _policy_text(GOOD_RULE.replace("ci_low", "lower")),
            ["rule 1 (id 'auroc')", "field 'use'", "'lower'"],
        ),
        (
            _policy_text(
                GOOD_RULE.replace(
                    "metric: discrimination.test.auroc", "metric: fairness.se*.gap.fnr"
                )
            ),
            ["field 'metric'", "partial wildcards"],
        ),
        (
            _policy_text(
                GOOD_RULE.replace("metric: discrimination.test.auroc", "metric: fairness..gap")
            ),
            ["field 'metric'", "no empty segments"],
        ),
        (
            _policy_text(
                GOOD_RULE.replace("metric: discrimination.test.auroc", "metric: '*.test.auroc'")
            ),
            ["field 'metric'", "first segment"],
        ),
        (_policy_text(GOOD_RULE.replace("min: 0.8", "min: .nan")), ["field 'min'", "finite"]),
        (_policy_text(GOOD_RULE.replace("min: 0.8", "min: '0.8'")), ["field 'min'", "'0.8'"]),
        (
            _policy_text(GOOD_RULE, "name: p\nversion: 1.10\n"),
            ["field 'version'", "quote it", "1.1"],
        ),
        (_policy_text(GOOD_RULE, "version: '1'\n"), ["missing the required field 'name'"]),
        (_policy_text(GOOD_RULE + "    min: 0.9\n"), ["invalid YAML at line", "appears twice"]),
        ("name: p\nversion: '1'\nrules: [\n", ["invalid YAML at line"]),
        ("- id: a\n  metric: x.y\n  min: 1\n", ["a policy is a YAML mapping", "got list"]),
        ("name: p\nversion: '1'\nrules: []\n", ["field 'rules'"]),
        (
            _policy_text(GOOD_RULE.replace("id: auroc", "id: 'bad id'")),
            ["field 'id'", "letters, digits"],
        ),
        (_policy_text(GOOD_RULE + "    severity: fatal\n"), ["field 'severity'", "'fatal'"]),
        (
            _policy_text(GOOD_RULE + "    when_undefined: ignore\n"),
            ["field 'when_undefined'", "'ignore'"],
        ),
    ],
    ids=[
        "unknown-rule-key",
        "unknown-policy-key",
        "two-operators",
        "no-operator",
        "duplicate-id",
        "use-on-boolean",
        "float-equals",
        "bad-use",
        "partial-wildcard",
        "empty-segment",
        "leading-wildcard",
        "nan-threshold",
        "string-threshold",
        "unquoted-version",
        "missing-name",
        "duplicate-yaml-key",
        "yaml-syntax",
        "not-a-mapping",
        "no-rules",
        "bad-id",
        "bad-severity",
        "bad-when-undefined",
    ],
)
def test_malformed_policy_is_a_policy_error_naming_file_and_rule(tmp_path, text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    message = str(caught.value)
    assert message.startswith(str(path)), message
    for fragment in expected:
        assert fragment in message, (fragment, message)
    assert "\n" not in message
    assert caught.value.exit_code == ExitCode.INPUT_ERROR


def test_missing_policy_file_names_the_shipped_alternatives(tmp_path):
    with pytest.raises(PolicyError, match=r"no such policy file.*default"):
        load_policy(tmp_path / "absent.yaml")
    with pytest.raises(PolicyError, match="not a shipped policy"):
        load_policy("strictest")


def test_policy_round_trips_through_yaml_unchanged():
    # The default policy re-serialised by an independent YAML writer parses to the same rules.
    original = load_policy("default")
    raw = yaml.safe_load(DEFAULT_FILE.read_text("utf-8"))
    again = parse_policy(yaml.safe_dump(raw), source="copy.yaml")
    assert again.rules == original.rules
    assert again.sha256 != original.sha256  # different bytes, different fingerprint


def test_a_local_file_named_like_a_shipped_policy_does_not_replace_it(tmp_path, monkeypatch, results):
    from importlib import resources

    from auditkit.fileio import sha256_file
    from auditkit.pipeline import apply_gate
    from auditkit.results import AuditResults

    shipped = resources.files("auditkit").joinpath("policies", "default.yaml").read_bytes()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "default").write_bytes(b"\x00 not a policy")
    policy = load_policy("default")
    assert policy.raw == shipped and policy.source == "default"
    out = tmp_path / "audit"
    out.mkdir()
    _, outcome, files = apply_gate(AuditResults(results, None), policy, out)
    # The copy beside the results is the policy that was evaluated, byte for byte.
    assert files["policy"].read_bytes() == shipped
    assert sha256_file(files["policy"]) == policy.sha256 == outcome.policy_sha256
