"""What every section builder shares: the results document, formatting at its CI level, assets.

Section builders read results.json through :class:`Source` (tolerant lookups:
an absent section is ``None``, never a KeyError) and format through its
methods, so that every number in the report reads the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditkit.report import formatting as fmt
from auditkit.report.assets import AssetRegistry
from auditkit.results import get_path

#: Report sections in order: anchor id, number shown, title.
SECTIONS: tuple[tuple[str, str, str], ...] = (
    ("sec-summary", "", "Summary and verdict"),
    ("sec-model-card", "", "Model card (FDA draft guidance 2025, Appendix E)"),
    ("sec-intended-use", "1", "Intended use and limitations"),
    ("sec-data", "2", "Data"),
    ("sec-model", "3", "Model description"),
    ("sec-discrimination", "4", "Discrimination"),
    ("sec-calibration", "5", "Calibration"),
    ("sec-fairness", "6", "Subgroup fairness"),
    ("sec-external", "7", "External validation and dataset shift"),
    ("sec-explanations", "8", "Explanations"),
    ("sec-failures", "9", "Failure analysis"),
    ("sec-review", "10", "Clinician review of the saliency maps"),
    ("sec-reproducibility", "A", "Appendix A: Reproducibility"),
    ("sec-checklist", "B", "Appendix B: Reporting-guideline checklist"),
    ("sec-signoff", "C", "Appendix C: Sign-off"),
)
SECTION_TITLES = {anchor: title for anchor, _, title in SECTIONS}

TO_BE_COMPLETED = "To be provided by the manufacturer."


def not_assessed(reason: str) -> str:
    """Return the sentence shown where a section's data are absent: ``Not assessed: <reason>``."""
    return f"Not assessed: {reason.rstrip('.')}."


@dataclass
class Source:
    """The results document plus what is needed to present it."""

    results: Mapping[str, Any]
    report_dir: Path
    assets: AssetRegistry = field(default_factory=AssetRegistry)
    panel_format: str = "jpeg"

    def get(self, path: str, default: Any = None) -> Any:
        """Return the value at dotted ``path`` (``default`` when absent or null)."""
        value = get_path(self.results, path, None)
        return default if value is None else value

    def mapping(self, path: str) -> Mapping[str, Any]:
        """Return the mapping at ``path`` ({} when absent, null or not a mapping)."""
        value = self.get(path)
        return value if isinstance(value, Mapping) else {}

    @property
    def ci_level(self) -> Any:
        """Return the run's confidence level (0.95 when not recorded)."""
        return self.get("run.ci_level", 0.95)

    @property
    def ci_label(self) -> str:
        """Return e.g. ``95% CI``."""
        return fmt.ci_label(self.ci_level)

    def est(self, estimate: Any, key: str | None = None) -> str:
        """Return the full text of an estimate: ``0.912 (95% CI 0.887–0.934)``."""
        return fmt.format_estimate(
            degenerate_as_reason(estimate) if isinstance(estimate, Mapping) else None,
            digits=fmt.decimals_for(key),
            ci_level=self.ci_level,
        )

    def cell(self, estimate: Any, key: str | None = None) -> dict[str, str]:
        """Return a table cell ``{"text", "css"}`` for an estimate."""
        return fmt.cell(degenerate_as_reason(estimate) if isinstance(estimate, Mapping) else None, key=key,
                        ci_level=self.ci_level)

    def cohort_label(self, name: str) -> str:
        """Return the printed name of a cohort (``test`` -> ``Internal test``)."""
        labels = {"val": "Validation", "test": "Internal test", "train": "Training", "external": "External"}
        if name in labels:
            return labels[name]
        return f"External: {name}" if name in self.mapping("external") else str(name)

    def gate_rules(self) -> list[Mapping[str, Any]]:
        """Return the gate's rules ([] when no policy was applied)."""
        rules = self.get("gate.rules", [])
        return [r for r in rules if isinstance(r, Mapping)]

    def rules_for(self, metric_path: str) -> list[Mapping[str, Any]]:
        """Return the gate rules whose metric is exactly ``metric_path``."""
        return [r for r in self.gate_rules() if r.get("metric") == metric_path]


def degenerate_as_reason(estimate: Mapping[str, Any]) -> Mapping[str, Any]:
    """Return ``estimate`` with a one-point interval (low = high = estimate) replaced by its reason.

    "1.000 (95% CI 1.000–1.000)" reads as certainty; it only says every
    resample gave the same value (a perfectly separated or empty subgroup).
    """
    value, low, high = estimate.get("estimate"), estimate.get("ci_low"), estimate.get("ci_high")
    numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (value, low, high))
    if numbers and low == high == value:
        return {**estimate, "ci_low": None, "ci_high": None,
                "reason": "not estimable: every resample gave the same value"}
    return estimate


def rule_text(rule: Mapping[str, Any]) -> str:
    """Return a gate rule's condition in words, e.g. ``lower CI bound ≥ 0.700``."""
    use = {"estimate": "estimate", "ci_low": "lower CI bound", "ci_high": "upper CI bound"}.get(
        str(rule.get("use") or "estimate"), str(rule.get("use"))
    )
    op = {"min": "\u2265", "max": "\u2264", "equals": "="}.get(str(rule.get("op")), str(rule.get("op") or "?"))
    threshold = rule.get("threshold")
    if isinstance(threshold, bool):
        shown = "true" if threshold else "false"  # a yes/no check (e.g. sanity passed), not a number
    else:
        shown = fmt.format_number(threshold) if isinstance(threshold, (int, float)) else fmt.plain(threshold)
    return f"{use} {op} {shown}"


def gate_marks(source: Source, metric_path: str) -> list[dict[str, str]]:
    """Return ``[{rule, condition, verdict}]`` for the gate rules on ``metric_path`` (for table notes)."""
    marks = []
    for rule in source.rules_for(metric_path):
        marks.append(
            {"rule": str(rule.get("id", "")), "condition": rule_text(rule), "verdict": fmt.verdict(rule.get("verdict"))}
        )
    return marks
