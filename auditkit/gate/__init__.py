"""The release gate: policy-as-code over results.json, with CI-aware verdicts.

``load_policy("default")`` (or a YAML path) gives a :class:`Policy`;
``evaluate(results, policy)`` gives a :class:`GateOutcome` whose ``passed``
decides the exit code and whose ``to_results_section()`` is stored as
``results["gate"]``. ``auditkit.gate.outputs`` formats it (console table,
JSON, JUnit XML, Markdown). The policy language is documented in
``docs/policy.md``.
"""

from auditkit.gate.evaluate import (
    VERDICTS,
    CheckResult,
    GateOutcome,
    blocking_ids,
    evaluate,
    expand_pattern,
)
from auditkit.gate.outputs import (
    junit_xml,
    markdown_summary,
    print_verdict_table,
    verdict_table,
    write_outputs,
)
from auditkit.gate.policy import Policy, Rule, load_policy, parse_policy, shipped_policy_names

__all__ = [
    "VERDICTS",
    "CheckResult",
    "GateOutcome",
    "Policy",
    "Rule",
    "blocking_ids",
    "evaluate",
    "expand_pattern",
    "junit_xml",
    "load_policy",
    "markdown_summary",
    "parse_policy",
    "print_verdict_table",
    "shipped_policy_names",
    "verdict_table",
    "write_outputs",
]
