"""Verdicts: a policy applied to a results.json document, rule by rule and match by match.

Acceptance compares a confidence bound with a pre-specified goal, never the
point estimate alone (FDA AI-DSF draft guidance 2025, Appendix C): a ``min``
rule with ``use: ci_low`` passes when the lower bound reaches the goal, fails
when the whole interval lies below it, and otherwise reports *insufficient
evidence* (the interval straddles the goal). The verdict table is documented
in ``docs/policy.md``; this module reads only the results document.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from auditkit.errors import PolicyError
from auditkit.gate.policy import WILDCARD, Policy, Rule
from auditkit.results import AuditResults, is_estimate_dict

Verdict = Literal["pass", "fail", "insufficient", "undefined", "warn", "not_applicable"]
VERDICTS: tuple[str, ...] = ("pass", "fail", "insufficient", "undefined", "warn", "not_applicable")


@dataclass(frozen=True)
class CheckResult:
    """The verdict of one rule on one concrete results path.

    ``metric`` is the concrete path checked (the rule's pattern itself for a
    ``not_applicable`` record); ``value`` is the number or boolean compared
    (the chosen bound for a CI-aware rule; ``None`` when undefined);
    ``blocking`` says whether this record alone makes the gate fail.
    """

    id: str
    metric: str
    pattern: str
    op: str
    threshold: float | int | bool
    use: str | None
    severity: str
    verdict: Verdict
    blocking: bool
    value: float | int | bool | None
    estimate: float | int | bool | None
    ci_low: float | None
    ci_high: float | None
    message: str
    description: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form used in ``--json`` output and ``results["gate"]["rules"]``."""
        return {
            "id": self.id,
            "metric": self.metric,
            "pattern": self.pattern,
            "op": self.op,
            "threshold": self.threshold,
            "use": self.use,
            "severity": self.severity,
            "verdict": self.verdict,
            "blocking": self.blocking,
            "value": self.value,
            "estimate": self.estimate,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "message": self.message,
            "description": self.description,
        }


@dataclass(frozen=True)
class GateOutcome:
    """The gate's decision: every expanded check, and the policy and model it concerns.

    ``passed`` is true exactly when no check is blocking. ``overrides`` holds
    settings the caller changed from the policy file (e.g.
    ``{"block_on_insufficient": False}`` from ``--allow-insufficient``), so a
    deviation from the pre-specified protocol is on the record.
    """

    passed: bool
    policy_name: str
    policy_version: str
    policy_sha256: str
    policy_source: str
    block_on_insufficient: bool
    checks: tuple[CheckResult, ...]
    ci_level: float | None = None
    model_name: str | None = None
    model_sha256: str | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    results_source: str | None = None
    results_sha256: str | None = None

    @property
    def blocking(self) -> tuple[CheckResult, ...]:
        """Return the checks that make the gate fail, in policy order."""
        return tuple(check for check in self.checks if check.blocking)

    def counts(self) -> dict[str, int]:
        """Return the number of checks per verdict (every verdict listed, zeros included)."""
        out = dict.fromkeys(VERDICTS, 0)
        for check in self.checks:
            out[check.verdict] += 1
        return out

    def to_results_section(self) -> dict[str, Any]:
        """Return the ``results["gate"]`` section of results.json (docs/results-json.md)."""
        return {
            "passed": self.passed,
            "policy_name": self.policy_name,
            "policy_version": self.policy_version,
            "policy_sha256": self.policy_sha256,
            "block_on_insufficient": self.block_on_insufficient,
            "overrides": dict(self.overrides),
            "rules": [check.to_dict() for check in self.checks],
        }

    def to_dict(self) -> dict[str, Any]:
        """Return the ``--json`` document: the results section plus provenance and counts."""
        section = self.to_results_section()
        return {
            "passed": section["passed"],
            "policy_name": self.policy_name,
            "policy_version": self.policy_version,
            "policy_sha256": self.policy_sha256,
            "policy_source": self.policy_source,
            "block_on_insufficient": self.block_on_insufficient,
            "overrides": dict(self.overrides),
            "model": {"name": self.model_name, "sha256": self.model_sha256},
            "results": {"path": self.results_source, "sha256": self.results_sha256},
            "ci_level": self.ci_level,
            "counts": self.counts(),
            "n_blocking": len(self.blocking),
            "rules": section["rules"],
        }


# --- path expansion -----------------------------------------------------------------


def expand_pattern(results: Mapping[str, Any], pattern: str) -> list[tuple[str, Any]]:
    """Return ``[(concrete_path, value), ...]`` for every match of ``pattern`` in document order.

    Each ``*`` segment matches every key of a mapping (or index of a list);
    literal segments resolve greedily like :func:`auditkit.results.get_path`,
    so keys that contain dots (a group named ``1.5``) still match. A branch
    where the rest of the path does not exist is not a match.
    """
    return [(".".join(keys), value) for keys, value in _expand(results, pattern.split("."), [])]


def _expand(node: Any, parts: list[str], prefix: list[str]) -> list[tuple[list[str], Any]]:
    if not parts:
        return [(prefix, node)]
    if parts[0] == WILDCARD:
        if isinstance(node, Mapping):
            items = [(str(key), value) for key, value in node.items()]
        elif isinstance(node, list):
            items = [(str(index), value) for index, value in enumerate(node)]
        else:
            return []
        found: list[tuple[list[str], Any]] = []
        for key, value in items:
            found.extend(_expand(value, parts[1:], [*prefix, key]))
        return found
    if isinstance(node, Mapping):
        literal = parts.index(WILDCARD) if WILDCARD in parts else len(parts)
        # Widest key first, falling back to narrower ones (as get_path does).
        for width in range(literal, 0, -1):
            key = ".".join(parts[:width])
            if key in node:
                found = _expand(node[key], parts[width:], [*prefix, key])
                if found:
                    return found
        return []
    if isinstance(node, list) and parts[0].isdigit() and int(parts[0]) < len(node):
        return _expand(node[int(parts[0])], parts[1:], [*prefix, parts[0]])
    return []


def _metric_hint(pattern: str) -> str:
    """Return "'x' is not a registered metric (did you mean 'y'?)" for an unknown last segment, else ''."""
    import difflib

    from auditkit.stats import metrics as metric_registry

    last = pattern.split(".")[-1]
    if last == WILDCARD or metric_registry.get(last) is not None:
        return ""
    known = [m.key for m in metric_registry.all_metrics()]
    close = difflib.get_close_matches(last, known, n=1, cutoff=0.75)
    if not close:
        return ""
    return f"; '{last}' is not a registered metric, did you mean '{close[0]}'?"


def _deepest_hint(results: Mapping[str, Any], pattern: str) -> str:
    """Return a hint naming the keys available where ``pattern`` stops matching (and a metric-name hint)."""
    return _available_keys(results, pattern) + _metric_hint(pattern)


def _available_keys(results: Mapping[str, Any], pattern: str) -> str:
    parts = pattern.split(".")
    for cut in range(len(parts) - 1, -1, -1):
        prefix = ".".join(parts[:cut])
        nodes = _expand(results, parts[:cut], []) if cut else [([], results)]
        mappings = [value for _, value in nodes if isinstance(value, Mapping)]
        if mappings:
            keys = sorted({str(key) for node in mappings for key in node})
            shown = ", ".join(keys[:12]) + (", ..." if len(keys) > 12 else "")
            where = f"'{prefix}'" if prefix else "the top level"
            return f"{where} has: {shown or '(nothing)'}"
        if cut and nodes:
            return f"'{prefix}' is not an object"
    return ""


# --- verdicts -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Value:
    """A resolved results value: its kind and numbers (``undefined_reason`` when absent)."""

    kind: Literal["estimate", "number", "boolean", "null"]
    estimate: float | int | bool | None
    ci_low: float | None = None
    ci_high: float | None = None
    undefined_reason: str | None = None


def _finite(value: Any) -> float | None:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _classify(value: Any, *, rule: Rule, path: str, source: str) -> _Value:
    where = f"{source}: rule {rule.id!r} (metric '{rule.metric}')"
    if value is None:
        return _Value("null", None, undefined_reason="the value is null in the results")
    if isinstance(value, bool):
        return _Value("boolean", value)
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return _Value("number", None, undefined_reason="the value is not a finite number")
        return _Value("number", value)
    if is_estimate_dict(value):
        estimate = value.get("estimate")
        if isinstance(estimate, bool) or not (
            estimate is None or isinstance(estimate, (int, float))
        ):
            raise PolicyError(
                f"{where} resolves '{path}' to an estimate whose value is {estimate!r}, "
                "not a number; check the results file"
            )
        point = _finite(estimate)
        reason = None
        if point is None:
            reason = str(value.get("reason") or "the estimate is undefined")
        return _Value(
            "estimate", point, _finite(value.get("ci_low")), _finite(value.get("ci_high")), reason
        )
    kind = (
        "an object that is not an estimate" if isinstance(value, Mapping) else type(value).__name__
    )
    raise PolicyError(
        f"{where} resolves '{path}' to {kind}, not a metric; point the rule at an estimate "
        "(e.g. '.auroc'), a number or a boolean"
    )


def _fmt(x: float | int | bool | None) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return str(x).lower()
    if isinstance(x, int):
        return str(x)
    return f"{x:.4g}"


def _judge_number(rule: Rule, val: _Value, ci_name: str) -> tuple[str, float | None, str]:
    """Return ``(raw verdict, value compared, message)`` for a min/max/equals rule on a number."""
    use = rule.effective_use
    t = rule.threshold
    if val.estimate is None:
        return "undefined", None, f"undefined: {val.undefined_reason}"
    if use != "estimate" and (val.ci_low is None or val.ci_high is None):
        return (
            "undefined",
            None,
            f"undefined: no {ci_name} reported for the estimate {_fmt(val.estimate)} "
            f"(the rule compares its {use})",
        )
    if rule.op == "equals":
        chosen = val.estimate if use == "estimate" else getattr(val, use)
        if chosen == t:
            return "pass", chosen, f"{use} {_fmt(chosen)} equals {_fmt(t)}"
        return "fail", chosen, f"{use} {_fmt(chosen)} differs from the required {_fmt(t)}"
    chosen = val.estimate if use == "estimate" else getattr(val, use)
    interval = f"{ci_name} [{_fmt(val.ci_low)}, {_fmt(val.ci_high)}]"
    if rule.op == "min":
        # The CI-aware pairing for a lower goal is the lower bound (FDA App. C).
        if use == "ci_low":
            if val.ci_low >= t:  # type: ignore[operator]
                return "pass", chosen, f"{interval} lies at or above {_fmt(t)}"
            if val.ci_high < t:  # type: ignore[operator]
                return "fail", chosen, f"the whole {interval} lies below {_fmt(t)}"
            return (
                "insufficient",
                chosen,
                f"{interval} straddles {_fmt(t)}: not enough evidence either way",
            )
        if chosen >= t:  # type: ignore[operator]
            return "pass", chosen, f"{use} {_fmt(chosen)} >= {_fmt(t)}"
        return "fail", chosen, f"{use} {_fmt(chosen)} < {_fmt(t)}"
    if use == "ci_high":
        if val.ci_high <= t:  # type: ignore[operator]
            return "pass", chosen, f"{interval} lies at or below {_fmt(t)}"
        if val.ci_low > t:  # type: ignore[operator]
            return "fail", chosen, f"the whole {interval} lies above {_fmt(t)}"
        return (
            "insufficient",
            chosen,
            f"{interval} straddles {_fmt(t)}: not enough evidence either way",
        )
    if chosen <= t:  # type: ignore[operator]
        return "pass", chosen, f"{use} {_fmt(chosen)} <= {_fmt(t)}"
    return "fail", chosen, f"{use} {_fmt(chosen)} > {_fmt(t)}"


def _judge(
    rule: Rule, val: _Value, *, path: str, source: str, ci_name: str
) -> tuple[str, Any, str]:
    where = f"{source}: rule {rule.id!r} (metric '{rule.metric}')"
    threshold_is_bool = isinstance(rule.threshold, bool)
    if val.kind == "null":
        return "undefined", None, f"undefined: {val.undefined_reason}"
    if val.kind == "boolean":
        if rule.use is not None:
            raise PolicyError(
                f"{where} sets use: {rule.use} but '{path}' is a boolean; remove use from the rule"
            )
        if rule.op != "equals" or not threshold_is_bool:
            raise PolicyError(
                f"{where} compares '{path}', a boolean, with {rule.op}: {_fmt(rule.threshold)}; "
                "use equals: true or equals: false"
            )
        if val.estimate is rule.threshold:
            return "pass", val.estimate, f"{_fmt(val.estimate)} as required"
        return "fail", val.estimate, f"{_fmt(val.estimate)}, required {_fmt(rule.threshold)}"
    if threshold_is_bool:
        raise PolicyError(
            f"{where} requires equals: {_fmt(rule.threshold)} but '{path}' is a number, "
            "not a boolean; use min or max"
        )
    if val.kind == "number" and rule.use is not None and rule.use != "estimate":
        raise PolicyError(
            f"{where} sets use: {rule.use} but '{path}' is a bare number without a "
            "confidence interval; remove use"
        )
    return _judge_number(rule, val, ci_name)


def _check(
    rule: Rule,
    path: str,
    value: Any,
    *,
    source: str,
    ci_name: str,
    insufficient_blocks: bool,
) -> CheckResult:
    val = _classify(value, rule=rule, path=path, source=source)
    raw, compared, message = _judge(rule, val, path=path, source=source, ci_name=ci_name)
    verdict: Verdict = raw  # type: ignore[assignment]
    if raw == "undefined":
        if rule.when_undefined == "pass":
            verdict = "pass"
            message += "; when_undefined: pass"
        elif rule.when_undefined == "warn":
            verdict = "warn"
            message += "; when_undefined: warn"
        else:
            message += "; when_undefined: fail"
    blocking = rule.severity == "error" and (
        verdict in ("fail", "undefined") or (verdict == "insufficient" and insufficient_blocks)
    )
    if verdict == "insufficient":
        message += "; blocks the release" if blocking else "; reported, does not block"
    elif rule.severity == "warning" and verdict != "pass":
        message += "; severity warning, does not block"
    return CheckResult(
        id=rule.id,
        metric=path,
        pattern=rule.metric,
        op=rule.op,
        threshold=rule.threshold,
        use=None if val.kind == "boolean" else rule.effective_use,
        severity=rule.severity,
        verdict=verdict,
        blocking=blocking,
        value=compared,
        estimate=val.estimate,
        ci_low=val.ci_low,
        ci_high=val.ci_high,
        message=message,
        description=rule.description,
    )


def _insufficient_blocks(rule: Rule, policy_level: bool) -> bool:
    if rule.insufficient is not None:
        return rule.insufficient == "block"
    return policy_level


def evaluate(
    results: Mapping[str, Any] | AuditResults,
    policy: Policy,
    *,
    block_on_insufficient: bool | None = None,
) -> GateOutcome:
    """Return the :class:`GateOutcome` of ``policy`` applied to a results.json document.

    Each rule's metric pattern is expanded to its concrete paths (one check
    each). ``block_on_insufficient`` overrides the policy-level setting
    (a rule's own ``insufficient: block|allow`` still wins, being
    pre-specified per rule). Raises :class:`~auditkit.errors.PolicyError`
    when a required pattern matches nothing or a path resolves to something
    that is not a metric: an unknown path is an input error, never a pass.
    """
    data = results.data if isinstance(results, AuditResults) else results
    if not isinstance(data, Mapping):
        raise PolicyError(
            f"the results given to the gate are a {type(data).__name__}, not a mapping"
        )
    policy_level = (
        policy.block_on_insufficient
        if block_on_insufficient is None
        else bool(block_on_insufficient)
    )
    overrides: dict[str, Any] = {}
    if (
        block_on_insufficient is not None
        and bool(block_on_insufficient) != policy.block_on_insufficient
    ):
        overrides["block_on_insufficient"] = bool(block_on_insufficient)
    run = data.get("run") if isinstance(data.get("run"), Mapping) else {}
    ci_level = _finite(run.get("ci_level"))
    ci_name = f"{ci_level * 100:g}% CI" if ci_level is not None else "CI"
    checks: list[CheckResult] = []
    for rule in policy.rules:
        matches = expand_pattern(data, _per_finding(data, rule.metric))
        if not matches:
            if rule.required:
                hint = _deepest_hint(data, rule.metric)
                kind = "the wildcard pattern" if rule.is_wildcard else "the path"
                raise PolicyError(
                    f"{policy.source}: rule {rule.id!r}: {kind} '{rule.metric}' matches nothing "
                    f"in the results ({hint}); fix the metric path, or run the analysis it needs"
                )
            checks.append(_not_applicable(rule))
            continue
        blocks = _insufficient_blocks(rule, policy_level)
        for path, value in matches:
            checks.append(
                _check(
                    rule,
                    path,
                    value,
                    source=policy.source,
                    ci_name=ci_name,
                    insufficient_blocks=blocks,
                )
            )
    model = data.get("model") if isinstance(data.get("model"), Mapping) else {}
    return GateOutcome(
        passed=not any(check.blocking for check in checks),
        policy_name=policy.name,
        policy_version=policy.version,
        policy_sha256=policy.sha256,
        policy_source=policy.source,
        block_on_insufficient=policy_level,
        checks=tuple(checks),
        ci_level=ci_level,
        model_name=model.get("name"),
        model_sha256=model.get("sha256"),
        overrides=overrides,
    )


def _per_finding(data: Mapping[str, Any], pattern: str) -> str:
    """Return ``pattern`` under ``findings.*.`` when a multi-label document has no such top-level section.

    A multi-label audit nests the single-label sections per finding, so the
    default policy's ``discrimination.test.auroc`` judges every finding's.
    """
    run = data.get("run") if isinstance(data.get("run"), Mapping) else {}
    if run.get("task") != "multilabel" or pattern.split(".", 1)[0] in data:
        return pattern
    return f"findings.*.{pattern}"


def _not_applicable(rule: Rule) -> CheckResult:
    return CheckResult(
        id=rule.id,
        metric=rule.metric,
        pattern=rule.metric,
        op=rule.op,
        threshold=rule.threshold,
        use=None if isinstance(rule.threshold, bool) else rule.effective_use,
        severity=rule.severity,
        verdict="not_applicable",
        blocking=False,
        value=None,
        estimate=None,
        ci_low=None,
        ci_high=None,
        message="not applicable: the audit produced no value for this path (required: false)",
        description=rule.description,
    )


def blocking_ids(outcome: GateOutcome) -> tuple[str, ...]:
    """Return the ids of the rules with at least one blocking check, in policy order, unique."""
    seen: dict[str, None] = {}
    for check in outcome.blocking:
        seen.setdefault(check.id, None)
    return tuple(seen)
