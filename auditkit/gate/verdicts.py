"""Verdicts of one rule on one results value, CI-aware.

Acceptance compares a confidence bound with a pre-specified goal, never the
point estimate alone (FDA AI-DSF draft guidance 2025, Appendix C): a ``min``
rule with ``use: ci_low`` passes when the lower bound reaches the goal, fails
when the whole interval lies below it, and otherwise reports *insufficient
evidence* (the interval straddles the goal). The verdict table is documented
in ``docs/policy.md``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from auditkit.errors import PolicyError
from auditkit.gate.policy import Rule
from auditkit.results import is_estimate_dict

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
class _Value:
    """A resolved results value: its kind and numbers (``undefined_reason`` when absent)."""

    kind: Literal["estimate", "number", "boolean", "null"]
    estimate: float | int | bool | None
    ci_low: float | None = None
    ci_high: float | None = None
    undefined_reason: str | None = None


def finite(value: Any) -> float | None:
    """Return ``value`` as a float when it is a finite number (not a boolean), else None."""
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
        point = finite(estimate)
        reason = None
        if point is None:
            reason = str(value.get("reason") or "the estimate is undefined")
        return _Value(
            "estimate", point, finite(value.get("ci_low")), finite(value.get("ci_high")), reason
        )
    kind = (
        "an object that is not an estimate" if isinstance(value, Mapping) else type(value).__name__
    )
    raise PolicyError(
        f"{where} resolves '{path}' to {kind}, not a metric; point the rule at an estimate "
        "(e.g. '.auroc'), a number or a boolean"
    )


def format_number(x: float | int | bool | None, *, missing: str = "n/a", spec: str = ".4g") -> str:
    """Return a value as text: ``missing`` for None, true/false, an int as is, a float by ``spec``."""
    if x is None:
        return missing
    if isinstance(x, bool):
        return str(x).lower()
    if isinstance(x, int):
        return str(x)
    return format(x, spec)


_fmt = format_number


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


def judge_match(
    rule: Rule,
    path: str,
    value: Any,
    *,
    source: str,
    ci_name: str,
    insufficient_blocks: bool,
) -> CheckResult:
    """Return the :class:`CheckResult` of ``rule`` on the value at one concrete ``path``."""
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


def not_applicable(rule: Rule) -> CheckResult:
    """Return the record of a ``required: false`` rule whose pattern matched nothing."""
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
