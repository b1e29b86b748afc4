"""Gate semantics on hand-made results: operators, `use`, the three verdicts, wildcards, undefined."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditkit.errors import PolicyError
from auditkit.gate import blocking_ids, evaluate, expand_pattern, load_policy
from auditkit.results import AuditResults, get_path, validate_results


def _one(results, make_policy, **rule):
    rule = {"id": "r", **rule}
    outcome = evaluate(results, make_policy(rule))
    assert len(outcome.checks) == 1
    return outcome.checks[0]


# Hand-computed verdict table: (op, threshold, use, (estimate, ci_low, ci_high), verdict).
VERDICT_TABLE = [
    # min + ci_low: three-way, CI bound against the goal (FDA App. C).
    ("min", 0.80, "ci_low", (0.86, 0.82, 0.90), "pass"),
    ("min", 0.80, "ci_low", (0.85, 0.80, 0.90), "pass"),  # bound exactly at the goal
    ("min", 0.80, "ci_low", (0.74, 0.70, 0.78), "fail"),  # whole CI below
    ("min", 0.80, "ci_low", (0.82, 0.75, 0.88), "insufficient"),  # straddles
    ("min", 0.80, "ci_low", (0.77, 0.74, 0.80), "insufficient"),  # upper bound touches the goal
    # max + ci_high: the mirror image.
    ("max", 0.10, "ci_high", (0.05, 0.02, 0.08), "pass"),
    ("max", 0.10, "ci_high", (0.05, 0.02, 0.10), "pass"),
    ("max", 0.10, "ci_high", (0.16, 0.12, 0.20), "fail"),
    ("max", 0.10, "ci_high", (0.09, 0.04, 0.14), "insufficient"),
    # use: estimate compares the point estimate alone.
    ("min", 0.80, "estimate", (0.82, 0.75, 0.88), "pass"),
    ("min", 0.80, "estimate", (0.79, 0.75, 0.88), "fail"),
    ("max", 0.10, "estimate", (0.09, 0.04, 0.14), "pass"),
    ("max", 0.10, "estimate", (0.11, 0.04, 0.14), "fail"),
    # The lenient pairings compare that bound alone: fail only when credibly bad.
    ("min", -0.05, "ci_high", (-0.08, -0.12, -0.03), "pass"),
    ("min", -0.05, "ci_high", (-0.10, -0.14, -0.06), "fail"),
    ("max", 0.10, "ci_low", (0.12, 0.08, 0.16), "pass"),
    ("max", 0.10, "ci_low", (0.16, 0.11, 0.21), "fail"),
]


@pytest.mark.parametrize(("op", "threshold", "use", "numbers", "verdict"), VERDICT_TABLE)
def test_verdict_of_each_operator_and_use(
    results, make_policy, make_est, op, threshold, use, numbers, verdict
):
    results["calibration"]["test"]["slope"] = make_est(*numbers)
    check = _one(results, make_policy, metric="calibration.test.slope", use=use, **{op: threshold})
    assert check.verdict == verdict
    assert (check.estimate, check.ci_low, check.ci_high) == numbers
    assert check.value == dict(zip(("estimate", "ci_low", "ci_high"), numbers, strict=True))[use]
    assert (check.op, check.threshold, check.use) == (op, threshold, use)
    assert check.blocking == (verdict in ("fail", "insufficient"))


def test_default_use_is_the_point_estimate(results, make_policy, make_est):
    results["calibration"]["test"]["ece"] = make_est(0.09, 0.05, 0.14)
    check = _one(results, make_policy, metric="calibration.test.ece", max=0.10)
    assert (check.use, check.value, check.verdict) == ("estimate", 0.09, "pass")


@pytest.mark.parametrize(
    ("value", "required", "verdict"),
    [(True, True, "pass"), (False, True, "fail"), (False, False, "pass")],
)
def test_equals_compares_booleans_exactly(results, make_policy, value, required, verdict):
    results["saliency"]["gradcam"]["sanity"]["passed"] = value
    check = _one(results, make_policy, metric="saliency.gradcam.sanity.passed", equals=required)
    assert (check.verdict, check.value, check.use) == (verdict, value, None)


def test_equals_compares_integers_exactly(results, make_policy):
    # cohorts.test.n_positive is a plain count (90) in the hand-made results.
    assert _one(results, make_policy, metric="cohorts.test.n_positive", equals=90).verdict == "pass"
    assert _one(results, make_policy, metric="cohorts.test.n_positive", equals=91).verdict == "fail"
    assert _one(results, make_policy, metric="cohorts.test.n_positive", min=100).verdict == "fail"


def test_boolean_and_number_mismatches_are_input_errors(results, make_policy):
    with pytest.raises(PolicyError, match=r"rule 'r'.*a boolean.*equals: true"):
        evaluate(
            results, make_policy({"id": "r", "metric": "saliency.gradcam.sanity.passed", "min": 1})
        )
    with pytest.raises(PolicyError, match=r"rule 'r'.*is a number, not a boolean"):
        evaluate(
            results, make_policy({"id": "r", "metric": "calibration.test.ece", "equals": True})
        )
    with pytest.raises(PolicyError, match=r"bare number without a confidence interval"):
        evaluate(
            results,
            make_policy(
                {"id": "r", "metric": "cohorts.test.n_positive", "min": 1, "use": "ci_low"}
            ),
        )
    with pytest.raises(
        PolicyError, match=r"use: ci_low but 'saliency.gradcam.sanity.passed' is a boolean"
    ):
        evaluate(
            results,
            make_policy(
                {
                    "id": "r",
                    "metric": "saliency.gradcam.sanity.passed",
                    "equals": 1,
                    "use": "ci_low",
                }
            ),
        )


# --- insufficient evidence: does it block? ---------------------------------------------


@pytest.mark.parametrize(
    ("policy_level", "rule_level", "override", "blocks"),
    [
        (True, None, None, True),
        (False, None, None, False),
        (True, "allow", None, False),
        (False, "block", None, True),
        (True, None, False, False),  # --allow-insufficient
        (True, "block", False, True),  # a rule's own pre-specified choice wins
        (False, None, True, True),
    ],
)
def test_insufficient_blocks_by_rule_then_call_then_policy(
    results, make_policy, make_est, policy_level, rule_level, override, blocks
):
    results["discrimination"]["test"]["auroc"] = make_est(0.83, 0.76, 0.89)
    rule = {"id": "auroc", "metric": "discrimination.test.auroc", "min": 0.8, "use": "ci_low"}
    if rule_level is not None:
        rule["insufficient"] = rule_level
    outcome = evaluate(
        results,
        make_policy(rule, block_on_insufficient=policy_level),
        block_on_insufficient=override,
    )
    (check,) = outcome.checks
    assert check.verdict == "insufficient"
    assert check.blocking is blocks
    assert outcome.passed is (not blocks)
    effective = policy_level if override is None else override
    assert outcome.block_on_insufficient is effective
    assert outcome.overrides == (
        {} if override in (None, policy_level) else {"block_on_insufficient": override}
    )


# --- undefined -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when_undefined", "verdict", "blocks"),
    [("fail", "undefined", True), ("pass", "pass", False), ("warn", "warn", False)],
)
def test_undefined_estimate_follows_when_undefined(
    results, make_policy, make_est, when_undefined, verdict, blocks
):
    results["fairness"]["sex"]["gap"]["fnr"] = make_est(
        None, reason="group F has fewer than 30 cases"
    )
    outcome = evaluate(
        results,
        make_policy(
            {
                "id": "gap",
                "metric": "fairness.sex.gap.fnr",
                "max": 0.1,
                "use": "ci_high",
                "when_undefined": when_undefined,
            }
        ),
    )
    (check,) = outcome.checks
    assert (check.verdict, check.blocking, outcome.passed) == (verdict, blocks, not blocks)
    assert check.value is None and check.estimate is None
    assert "fewer than 30 cases" in check.message


def test_undefined_is_the_default_and_never_silently_passes(results, make_policy, make_est):
    results["fairness"]["age_group"]["gap"]["fnr"] = make_est(None)
    outcome = evaluate(
        results, make_policy({"id": "gap", "metric": "fairness.*.gap.fnr", "max": 0.1})
    )
    assert [c.verdict for c in outcome.checks] == ["pass", "undefined"]
    assert outcome.passed is False
    assert blocking_ids(outcome) == ("gap",)


def test_null_boolean_nan_number_and_missing_ci_are_undefined(results, make_policy, make_est):
    results["saliency"]["gradcam"]["sanity"]["passed"] = None
    assert (
        _one(results, make_policy, metric="saliency.gradcam.sanity.passed", equals=True).verdict
        == "undefined"
    )
    results["cohorts"]["test"]["n_positive"] = math.nan
    assert (
        _one(results, make_policy, metric="cohorts.test.n_positive", min=1).verdict == "undefined"
    )
    # An estimate without a CI (n_boot=0) cannot show that its bound clears the goal.
    results["discrimination"]["test"]["auroc"] = make_est(0.95, None, None)
    check = _one(results, make_policy, metric="discrimination.test.auroc", min=0.8, use="ci_low")
    assert (check.verdict, check.estimate) == ("undefined", 0.95)
    assert "no 95% CI" in check.message
    assert _one(results, make_policy, metric="discrimination.test.auroc", min=0.8).verdict == "pass"


# --- wildcards and paths ------------------------------------------------------------------


def test_wildcard_expands_to_one_check_per_match_with_concrete_paths(
    results, make_policy, make_est
):
    results["fairness"]["age_group"]["gap"]["fnr"] = make_est(0.21, 0.13, 0.29)
    outcome = evaluate(
        results,
        make_policy(
            {"id": "fnr-gap", "metric": "fairness.*.gap.fnr", "max": 0.1, "use": "ci_high"}
        ),
    )
    assert [(c.metric, c.pattern, c.verdict) for c in outcome.checks] == [
        ("fairness.sex.gap.fnr", "fairness.*.gap.fnr", "pass"),
        ("fairness.age_group.gap.fnr", "fairness.*.gap.fnr", "fail"),
    ]
    assert outcome.passed is False


def test_wildcard_over_keys_with_dots_and_nested_wildcards(results, make_policy):
    matches = expand_pattern(results, "fairness.*.groups.*.fnr")
    assert [path for path, _ in matches] == [
        "fairness.sex.groups.F.fnr",
        "fairness.sex.groups.M.fnr",
        "fairness.age_group.groups.1.5.fnr",
        "fairness.age_group.groups.60-80.fnr",
    ]
    # Oracle: every concrete path resolves, through results.get_path, to the same value.
    for path, value in matches:
        assert get_path(results, path) is value
    # A literal path through a dotted key works too.
    check = _one(results, make_policy, metric="fairness.age_group.groups.1.5.fnr", max=0.25)
    assert (check.metric, check.estimate, check.verdict) == (
        "fairness.age_group.groups.1.5.fnr",
        0.2,
        "pass",
    )


def test_wildcard_skips_branches_without_the_rest_of_the_path(results):
    del results["saliency"]["ig"]["shortcut_score"]
    assert [p for p, _ in expand_pattern(results, "saliency.*.shortcut_score")] == [
        "saliency.gradcam.shortcut_score"
    ]


@pytest.mark.parametrize(
    ("metric", "fragment"),
    [
        ("discrimination.test.aurok", "'discrimination.test' has: auroc, confusion_matrix"),
        ("fairness.race.gap.fnr", "'fairness' has: age_group, sex"),
        ("fairness.*.gap.ppv", "matches nothing"),
        ("external.*.delta.auroc_typo", "the wildcard pattern"),
        ("explanations.gradcam.passed", "the top level has:"),
    ],
)
def test_a_path_matching_nothing_is_an_input_error(results, make_policy, metric, fragment):
    with pytest.raises(PolicyError) as caught:
        evaluate(results, make_policy({"id": "typo", "metric": metric, "max": 1}))
    message = str(caught.value)
    assert message.startswith("test.yaml: rule 'typo'")
    assert fragment in message
    assert metric in message


def test_zero_wildcard_matches_is_an_error_unless_the_rule_is_optional(results, make_policy):
    del results["external"]
    with pytest.raises(PolicyError, match="matches nothing"):
        evaluate(
            results, make_policy({"id": "ext", "metric": "external.*.delta.auroc", "min": -0.05})
        )
    outcome = evaluate(
        results,
        make_policy(
            {"id": "ext", "metric": "external.*.delta.auroc", "min": -0.05, "required": False}
        ),
    )
    (check,) = outcome.checks
    assert (check.verdict, check.blocking, check.metric, check.value) == (
        "not_applicable",
        False,
        "external.*.delta.auroc",
        None,
    )
    assert outcome.passed is True


@pytest.mark.parametrize(
    ("metric", "what"),
    [
        ("discrimination.test.confusion_matrix", "an object that is not an estimate"),
        ("run.task", "str"),
        ("fairness.sex.columns", "list"),
        ("discrimination.test.*", "an object that is not an estimate"),
    ],
)
def test_a_path_to_a_non_metric_is_an_input_error(results, make_policy, metric, what):
    with pytest.raises(PolicyError, match=f"to {what}, not a metric"):
        evaluate(results, make_policy({"id": "x", "metric": metric, "max": 1}))


# --- severity and the overall decision ---------------------------------------------------


def test_severity_warning_never_blocks(results, make_policy, make_est):
    results["discrimination"]["test"]["sensitivity"] = make_est(0.55, 0.45, 0.65)  # fails
    results["discrimination"]["test"]["specificity"] = make_est(0.72, 0.65, 0.79)  # insufficient
    results["discrimination"]["test"]["ppv"] = make_est(None)  # undefined
    rules = [
        {
            "id": m,
            "metric": f"discrimination.test.{m}",
            "min": 0.7,
            "use": "ci_low",
            "severity": "warning",
        }
        for m in ("sensitivity", "specificity", "ppv")
    ]
    outcome = evaluate(results, make_policy(*rules))
    assert [c.verdict for c in outcome.checks] == ["fail", "insufficient", "undefined"]
    assert [c.blocking for c in outcome.checks] == [False, False, False]
    assert outcome.passed is True


def test_passed_iff_no_blocking_check(results, make_policy, make_est):
    results["calibration"]["test"]["ece"] = make_est(0.2, 0.15, 0.25)
    rules = [
        {"id": "auroc", "metric": "discrimination.test.auroc", "min": 0.8, "use": "ci_low"},
        {"id": "ece", "metric": "calibration.test.ece", "max": 0.1, "use": "ci_high"},
        {"id": "ece-warn", "metric": "calibration.test.ece", "max": 0.1, "severity": "warning"},
    ]
    outcome = evaluate(AuditResults(results), make_policy(*rules))
    assert [c.verdict for c in outcome.checks] == ["pass", "fail", "fail"]
    assert blocking_ids(outcome) == ("ece",)
    assert outcome.passed is False
    assert outcome.counts() == {
        "pass": 1,
        "fail": 2,
        "insufficient": 0,
        "undefined": 0,
        "warn": 0,
        "not_applicable": 0,
    }
    assert (outcome.model_name, outcome.ci_level) == ("candidate", 0.95)


def test_results_section_is_valid_results_json(results, make_policy, make_est):
    del results["external"]
    results["fairness"]["sex"]["gap"]["fnr"] = make_est(None)
    outcome = evaluate(
        results,
        make_policy(
            {"id": "auroc", "metric": "discrimination.test.auroc", "min": 0.8, "use": "ci_low"},
            {"id": "fnr", "metric": "fairness.*.gap.fnr", "max": 0.1, "when_undefined": "warn"},
            {"id": "ext", "metric": "external.*.delta.auroc", "min": -0.05, "required": False},
            {"id": "sanity", "metric": "saliency.*.sanity.passed", "equals": True},
        ),
    )
    section = outcome.to_results_section()
    results["gate"] = section
    validate_results(results)  # the shipped JSON Schema is the oracle for the contract
    assert [r["verdict"] for r in section["rules"]] == [
        "pass",
        "warn",
        "pass",
        "not_applicable",
        "pass",
        "pass",
    ]
    assert section["policy_sha256"] == outcome.policy_sha256
    assert set(section["rules"][0]) >= {
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


# --- the default policy on hand-made documents --------------------------------------------


def test_default_policy_passes_a_clean_complete_results_document(results):
    outcome = evaluate(results, load_policy("default"))
    assert outcome.passed is True
    # Every rule's pattern is valid: it matches at least one concrete path, none is skipped.
    policy = load_policy("default")
    assert {c.id for c in outcome.checks} == {r.id for r in policy.rules}
    assert all(c.verdict != "not_applicable" for c in outcome.checks)
    n_expected = sum(len(expand_pattern(results, r.metric)) for r in policy.rules)
    assert len(outcome.checks) == n_expected == 20


def test_default_policy_catches_each_planted_flaw_with_its_rule(results, make_est):
    results["discrimination"]["test"]["auroc"] = make_est(
        0.82, 0.76, 0.88
    )  # insufficient -> blocks
    results["calibration"]["test"]["slope"] = make_est(0.55, 0.45, 0.68)  # too extreme
    results["fairness"]["sex"]["gap"]["fnr"] = make_est(0.22, 0.14, 0.30)  # underdiagnosis
    results["external"]["site_C"]["delta"]["auroc"] = make_est(-0.15, -0.21, -0.09)  # site shift
    results["saliency"]["gradcam"]["shortcut_score"] = make_est(0.81, 0.72, 0.88)  # marker
    results["saliency"]["ig"]["sanity"]["passed"] = False
    results["discrimination"]["test"]["sensitivity"] = make_est(0.6, 0.5, 0.68)  # warning only
    outcome = evaluate(results, load_policy("default"))
    assert outcome.passed is False
    assert set(blocking_ids(outcome)) == {
        "discrimination-auroc",
        "calibration-slope-low",
        "fairness-fnr-gap",
        "external-auroc-delta",
        "saliency-shortcut",
        "saliency-sanity",
    }
    blocked_paths = {c.metric for c in outcome.blocking}
    assert (
        "fairness.sex.gap.fnr" in blocked_paths
        and "fairness.age_group.gap.fnr" not in blocked_paths
    )
    sensitivity = next(c for c in outcome.checks if c.id == "discrimination-sensitivity")
    assert (sensitivity.verdict, sensitivity.blocking) == ("fail", False)


def test_default_policy_skips_absent_external_and_saliency_but_not_fairness(results):
    del results["external"], results["saliency"]
    outcome = evaluate(results, load_policy("default"))
    skipped = sorted(c.id for c in outcome.checks if c.verdict == "not_applicable")
    assert skipped == [
        "external-auroc-delta",
        "external-ece",
        "saliency-sanity",
        "saliency-shortcut",
    ]
    assert outcome.passed is True
    del results["fairness"]
    with pytest.raises(PolicyError, match="fairness-fnr-gap"):
        evaluate(results, load_policy("default"))


# --- invariance properties -------------------------------------------------------------

_RANK = {"fail": 0, "insufficient": 1, "pass": 2}


@st.composite
def _interval(draw):
    a, b, c = sorted(draw(st.lists(st.floats(-2, 2, allow_nan=False), min_size=3, max_size=3)))
    return b, a, c  # estimate, ci_low, ci_high


@settings(max_examples=60, deadline=None)
@given(
    numbers=_interval(),
    t1=st.floats(-2, 2),
    t2=st.floats(-2, 2),
    use=st.sampled_from(["estimate", "ci_low", "ci_high"]),
)
def test_raising_a_min_goal_never_improves_the_verdict_and_max_mirrors_min(numbers, t1, t2, use):
    import yaml

    from auditkit.gate import parse_policy

    lo, hi = sorted((t1, t2))
    est, ci_low, ci_high = numbers
    doc = {
        "m": {
            "x": {"estimate": est, "ci_low": ci_low, "ci_high": ci_high},
            "neg": {"estimate": -est, "ci_low": -ci_high, "ci_high": -ci_low},
        }
    }
    mirror_use = {"estimate": "estimate", "ci_low": "ci_high", "ci_high": "ci_low"}[use]
    rules = [
        {"id": "lo", "metric": "m.x", "min": lo, "use": use},
        {"id": "hi", "metric": "m.x", "min": hi, "use": use},
        {"id": "mirror", "metric": "m.neg", "max": -lo, "use": mirror_use},
    ]
    text = yaml.safe_dump({"name": "p", "version": "1", "rules": rules})
    checks = evaluate(doc, parse_policy(text, source="p.yaml")).checks
    assert _RANK[checks[1].verdict] <= _RANK[checks[0].verdict]
    # min t on x is max -t on -x with the bounds swapped: the same verdict.
    assert checks[2].verdict == checks[0].verdict


def test_evaluate_leaves_the_callers_results_unchanged(results):
    import copy

    before = copy.deepcopy(results)
    outcome = evaluate(results, load_policy("default"))
    assert results == before
    assert "gate" not in results and outcome.checks
