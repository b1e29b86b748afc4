"""The gate's outputs: a console verdict table, JSON, JUnit XML and a Markdown summary.

Presentation only: every function here takes a finished
:class:`~auditkit.gate.evaluate.GateOutcome` and formats it; nothing is
recomputed. Files are written atomically. The JUnit mapping (what becomes a
``<failure>`` and what a ``<skipped>``) is documented in ``docs/policy.md``.
"""

from __future__ import annotations

import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from auditkit.fileio import atomic_write_text, dumps_json
from auditkit.gate.evaluate import CheckResult, GateOutcome, blocking_ids
from auditkit.gate.verdicts import format_number
from auditkit.results.format import format_estimate
from auditkit.textsafe import md_code, md_text

_LABELS = {
    "pass": "PASS",
    "fail": "FAIL",
    "insufficient": "INSUFFICIENT",
    "undefined": "UNDEFINED",
    "warn": "WARN",
    "not_applicable": "N/A",
}
_STYLES = {
    "pass": "green",
    "fail": "bold red",
    "insufficient": "bold red",
    "undefined": "bold red",
    "warn": "yellow",
    "not_applicable": "dim",
}
_ICONS = {
    "pass": "✅",
    "fail": "❌",
    "insufficient": "⚠️",
    "undefined": "❓",
    "warn": "⚠️",
    "not_applicable": "➖",
}


def _num(x: float | int | bool | None) -> str:
    return format_number(x, missing="-", spec=".3f")


def format_value(check: CheckResult) -> str:
    """Return the estimate and its interval as ASCII text, e.g. ``0.842 (0.801 to 0.879)``.

    The interval's name (``95% CI``) is in the column header; ASCII because
    a CI log may not be UTF-8. A boolean, a count, or a check with no value
    reads ``true``, ``12``, ``-``.
    """
    if check.estimate is None or isinstance(check.estimate, bool):
        return _num(check.estimate) if check.verdict != "not_applicable" else "-"
    if check.ci_low is None and check.ci_high is None and isinstance(check.estimate, int):
        return _num(check.estimate)
    estimate = {"estimate": check.estimate, "ci_low": check.ci_low, "ci_high": check.ci_high}
    return format_estimate(estimate, digits=3, label=False, ascii_only=True)


def format_goal(check: CheckResult) -> str:
    """Return the rule's requirement as text, e.g. ``ci_low >= 0.8`` or ``== true``."""
    threshold = (
        _num(check.threshold) if isinstance(check.threshold, bool) else f"{check.threshold:g}"
    )
    if check.op == "equals":
        return f"== {threshold}"
    sign = ">=" if check.op == "min" else "<="
    return f"{check.use} {sign} {threshold}"


def verdict_label(check: CheckResult) -> str:
    """Return the verdict as shown to people, marking a non-blocking miss as such."""
    label = _LABELS[check.verdict]
    if check.blocking:
        return f"{label} (blocks)"
    if check.verdict in ("fail", "insufficient", "undefined") and check.severity == "warning":
        return f"{label} (warning)"
    return label


def headline(outcome: GateOutcome) -> str:
    """Return the one-line verdict, e.g. ``gate FAILED: 2 blocking checks (rules a, b)``."""
    n = len(outcome.checks)
    if outcome.passed:
        return f"auditkit gate PASSED: {n} checks, none blocking (policy {outcome.policy_name} {outcome.policy_version})"
    ids = ", ".join(blocking_ids(outcome))
    n_block = len(outcome.blocking)
    noun = "check" if n_block == 1 else "checks"
    return (
        f"auditkit gate FAILED: {n_block} blocking {noun} of {n} (rules: {ids}; "
        f"policy {outcome.policy_name} {outcome.policy_version})"
    )


def _ci_name(outcome: GateOutcome) -> str:
    return f"{outcome.ci_level * 100:g}% CI" if outcome.ci_level is not None else "CI"


def verdict_table(outcome: GateOutcome) -> Table:
    """Return a rich Table with one row per expanded check (the CI log's verdict table)."""
    table = Table(
        title=f"auditkit gate: policy {outcome.policy_name} {outcome.policy_version}",
        caption=f"policy sha256 {outcome.policy_sha256}",
        box=box.SIMPLE_HEAD,
        show_lines=False,
    )
    table.add_column("verdict", no_wrap=True)
    table.add_column("rule", no_wrap=True)
    table.add_column("metric", no_wrap=True)
    table.add_column(f"estimate [{_ci_name(outcome)}]", no_wrap=True)
    table.add_column("goal", no_wrap=True)
    table.add_column("why", overflow="fold")
    for check in outcome.checks:
        # A miss that does not block is shown in yellow, never in the red of a blocker.
        style = _STYLES[check.verdict] if check.blocking or check.verdict == "pass" else "yellow"
        if check.verdict == "not_applicable":
            style = _STYLES["not_applicable"]
        table.add_row(
            Text(verdict_label(check), style=style),
            Text(check.id),
            Text(check.metric),
            Text(format_value(check)),
            Text(format_goal(check)),
            # A pass needs no explanation beyond its numbers; keep the log scannable.
            Text("" if check.verdict == "pass" else check.message),
        )
    return table


#: Below this many columns the verdict table becomes a list of checks (a table's six columns
#: cannot fit: at 80 columns every cell was cut and the reason wrapped to five lines).
TABLE_MIN_WIDTH = 120


def verdict_lines(outcome: GateOutcome, *, width: int) -> list[Text]:
    """Return the verdict as a list for a narrow terminal: each check in two lines, its reason wrapped below.

    Line 1 is the verdict and the rule id, line 2 the metric path, the
    estimate with its interval and the goal; a check that did not pass adds
    its reason, indented and wrapped to ``width`` columns. No line is longer
    than ``width`` unless a single word (a metric path) is.
    """
    import textwrap

    lines = [Text(f"auditkit gate: policy {outcome.policy_name} {outcome.policy_version}", style="bold"),
             Text(f"estimates with {_ci_name(outcome)}s", style="dim")]
    for check in outcome.checks:
        style = _STYLES[check.verdict] if check.blocking or check.verdict == "pass" else "yellow"
        if check.verdict == "not_applicable":
            style = _STYLES["not_applicable"]
        head = Text()
        head.append(f"{verdict_label(check):<16}", style=style)
        head.append(f" {check.id}")
        lines.append(head)
        detail = f"{check.metric} = {format_value(check)}; goal {format_goal(check)}"
        lines += [Text(part) for part in textwrap.wrap(detail, width=width, initial_indent="    ",
                                                      subsequent_indent="      ", break_on_hyphens=False)]
        if check.verdict != "pass" and check.message:
            lines += [Text(part, style="dim") for part in textwrap.wrap(
                check.message, width=width, initial_indent="    why: ", subsequent_indent="         ",
                break_on_hyphens=False)]
    lines.append(Text(f"policy sha256 {outcome.policy_sha256}", style="dim"))
    return lines


def print_verdict_table(outcome: GateOutcome, *, console: Console | None = None) -> None:
    """Print the verdict table (a list below :data:`TABLE_MIN_WIDTH` columns) and the headline.

    Printed to stdout by default: it is the command's result.
    """
    if console is None:
        # CI logs are not terminals and would default to 80 columns; honour COLUMNS if set.
        wide = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160
        console = Console(file=sys.stdout, width=wide, highlight=False, soft_wrap=False)
    if console.width < TABLE_MIN_WIDTH:
        for line in verdict_lines(outcome, width=console.width):
            console.print(line)
    else:
        console.print(verdict_table(outcome))
    style = "bold green" if outcome.passed else "bold red"
    console.print(Text(headline(outcome), style=style))


def junit_xml(outcome: GateOutcome) -> str:
    """Return JUnit XML text: one ``<testcase>`` per check, ``classname`` = policy name.

    A blocking check has a ``<failure>`` (type = its verdict); a check that
    did not pass but does not block (warning severity, insufficient evidence
    allowed, ``warn``, not applicable) is ``<skipped>`` with the reason; a pass
    has neither. The policy SHA-256 is a suite property.
    """
    checks = outcome.checks
    n_fail = sum(check.blocking for check in checks)
    n_skip = sum((not check.blocking) and check.verdict != "pass" for check in checks)
    counts = {
        "tests": str(len(checks)),
        "failures": str(n_fail),
        "errors": "0",
        "skipped": str(n_skip),
    }
    root = ET.Element("testsuites", {"name": "auditkit gate", **counts, "time": "0"})
    suite = ET.SubElement(root, "testsuite", {"name": outcome.policy_name, **counts, "time": "0"})
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("passed", str(outcome.passed).lower()),
        ("policy_name", outcome.policy_name),
        ("policy_version", outcome.policy_version),
        ("policy_sha256", outcome.policy_sha256),
        ("policy_source", outcome.policy_source),
        ("block_on_insufficient", str(outcome.block_on_insufficient).lower()),
        ("model_name", outcome.model_name),
        ("model_sha256", outcome.model_sha256),
        ("results_path", outcome.results_source),
        ("results_sha256", outcome.results_sha256),
        *((f"override.{key}", str(value).lower()) for key, value in outcome.overrides.items()),
    ):
        if value is not None:
            ET.SubElement(props, "property", {"name": name, "value": str(value)})
    ci_name = _ci_name(outcome)
    for check in checks:
        case = ET.SubElement(
            suite,
            "testcase",
            {"classname": outcome.policy_name, "name": f"{check.id}: {check.metric}", "time": "0"},
        )
        details = (
            f"rule {check.id} ({check.severity}) on {check.metric}\n"
            f"goal: {format_goal(check)}\n"
            f"estimate [{ci_name}]: {format_value(check)}\n"
            f"verdict: {check.verdict}\n{check.message}\n"
        )
        if check.blocking:
            failure = ET.SubElement(
                case, "failure", {"message": check.message, "type": check.verdict}
            )
            failure.text = details
        elif check.verdict != "pass":
            ET.SubElement(case, "skipped", {"message": f"{check.verdict}: {check.message}"})
        else:
            ET.SubElement(case, "system-out").text = details
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="unicode", xml_declaration=False).join(
        ('<?xml version="1.0" encoding="UTF-8"?>\n', "\n")
    )


# policy names, model names, rule ids, metric paths with group values: text someone else wrote
_md_cell = md_text
_md_code = md_code


def markdown_summary(outcome: GateOutcome) -> str:
    """Return a Markdown verdict (headline, provenance, table of checks) for a CI summary or PR."""
    icon = "✅" if outcome.passed else "❌"
    state = "PASSED" if outcome.passed else "FAILED"
    lines = [f"## {icon} auditkit gate {state}", ""]
    provenance = (
        f"Policy **{_md_cell(outcome.policy_name)}** version {_md_code(outcome.policy_version)} "
        f"({_md_code(outcome.policy_source)}), SHA-256 {_md_code(outcome.policy_sha256)}"
    )
    if outcome.model_name is not None:
        provenance += f"; model **{_md_cell(str(outcome.model_name))}**"
        if outcome.model_sha256:
            provenance += f" (weights SHA-256 {_md_code(str(outcome.model_sha256))})"
    lines += [provenance + ".", ""]
    counts = outcome.counts()
    tally = ", ".join(f"{n} {verdict.replace('_', ' ')}" for verdict, n in counts.items() if n)
    n_block = len(outcome.blocking)
    if outcome.passed:
        lines.append(f"No blocking check among {len(outcome.checks)} ({tally}).")
    else:
        ids = ", ".join(_md_code(rule_id) for rule_id in blocking_ids(outcome))
        lines.append(
            f"**{n_block} blocking** of {len(outcome.checks)} checks ({tally}); rules: {ids}."
        )
    insuff = "blocks" if outcome.block_on_insufficient else "does not block"
    lines.append(f"Insufficient evidence {insuff} unless a rule says otherwise.")
    for key, value in outcome.overrides.items():
        lines.append(
            f"Override of the policy file: {_md_code(key)} = {_md_code(str(value).lower())}."
        )
    lines += [
        "",
        f"| | Rule | Metric | Estimate [{_ci_name(outcome)}] | Goal | Verdict | Why |",
        "|---|---|---|---|---|---|---|",
    ]
    for check in outcome.checks:
        lines.append(
            "| "
            + " | ".join(
                (
                    _ICONS[check.verdict],
                    _md_code(check.id),
                    _md_code(check.metric),
                    _md_cell(format_value(check)),
                    _md_cell(format_goal(check)),
                    f"**{verdict_label(check)}**" if check.blocking else verdict_label(check),
                    _md_cell(check.message),
                )
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


def write_outputs(
    outcome: GateOutcome,
    *,
    json_path: str | os.PathLike[str] | None = None,
    junit_path: str | os.PathLike[str] | None = None,
    summary_path: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """Write the requested output files atomically and return their paths."""
    written: list[Path] = []
    if json_path is not None:
        written.append(atomic_write_text(json_path, dumps_json(outcome.to_dict())))
    if junit_path is not None:
        written.append(atomic_write_text(junit_path, junit_xml(outcome)))
    if summary_path is not None:
        written.append(atomic_write_text(summary_path, markdown_summary(outcome)))
    return written
