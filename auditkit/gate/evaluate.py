"""The gate's decision: a policy applied to a results.json document, rule by rule and match by match.

Each rule's pattern is expanded to concrete paths (:mod:`auditkit.gate.paths`),
each match is judged CI-aware (:mod:`auditkit.gate.verdicts`; the verdict
table is in ``docs/policy.md``), and the checks are collected into a
:class:`GateOutcome`. This module reads only the results document.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from auditkit.errors import PolicyError
from auditkit.gate.paths import deepest_hint, expand_pattern, per_finding
from auditkit.gate.policy import Policy, Rule
from auditkit.gate.verdicts import (
    VERDICTS,
    CheckResult,
    Verdict,
    finite,
    judge_match,
    not_applicable,
)
from auditkit.results import AuditResults

__all__ = [
    "VERDICTS",
    "CheckResult",
    "GateOutcome",
    "Verdict",
    "blocking_ids",
    "evaluate",
    "expand_pattern",
]


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
    ci_level = finite(run.get("ci_level"))
    ci_name = f"{ci_level * 100:g}% CI" if ci_level is not None else "CI"
    checks: list[CheckResult] = []
    for rule in policy.rules:
        matches = expand_pattern(data, per_finding(data, rule.metric))
        if not matches:
            if rule.required:
                hint = deepest_hint(data, rule.metric)
                kind = "the wildcard pattern" if rule.is_wildcard else "the path"
                raise PolicyError(
                    f"{policy.source}: rule {rule.id!r}: {kind} '{rule.metric}' matches nothing "
                    f"in the results ({hint}); fix the metric path, or run the analysis it needs"
                )
            checks.append(not_applicable(rule))
            continue
        blocks = _insufficient_blocks(rule, policy_level)
        for path, value in matches:
            checks.append(
                judge_match(
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


def blocking_ids(outcome: GateOutcome) -> tuple[str, ...]:
    """Return the ids of the rules with at least one blocking check, in policy order, unique."""
    seen: dict[str, None] = {}
    for check in outcome.blocking:
        seen.setdefault(check.id, None)
    return tuple(seen)
