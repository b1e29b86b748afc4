"""Text formatting of report values: estimates with CIs, p-values, counts and verdict words.

Every number in the report passes through here so that it reads the same
everywhere: ``0.912 (95% CI 0.887–0.934)``, ``p = 0.003`` / ``p < 0.001``,
``not computable: <reason>`` for an undefined number. Negative numbers use the
typographic minus (U+2212) and ranges an en dash, as in print. The number and
estimate formatters live in :mod:`auditkit.results.format` (shared with the
gate, ``summary.md`` and the command line) and are re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from auditkit.results.format import (
    EN_DASH,
    MINUS,
    NOT_REPORTED,
    ci_label,
    format_estimate,
    format_interval,
    format_number,
    format_p_value,
    format_percent,
    range_separator,
)
from auditkit.stats import metrics as metric_registry

__all__ = [
    "CORRECTION_NAMES",
    "EN_DASH",
    "METRIC_LABELS",
    "MINUS",
    "NOT_REPORTED",
    "TWO_DECIMALS",
    "VERDICT_WORDS",
    "cell",
    "ci_label",
    "correction_name",
    "decimals_for",
    "format_count",
    "format_estimate",
    "format_interval",
    "format_number",
    "format_p_value",
    "format_percent",
    "format_test",
    "metric_label",
    "plain",
    "range_separator",
    "verdict",
]


#: Metrics printed with two decimals (ratios on an open scale): the registry's, for callers that test membership.
TWO_DECIMALS = frozenset(m.key for m in metric_registry.all_metrics() if m.decimals == 2)

#: Human names of metric keys: the registry's labels (docs/results-json.md vocabulary).
METRIC_LABELS: dict[str, str] = {m.key: m.label for m in metric_registry.all_metrics()}

VERDICT_WORDS: dict[str, str] = {
    "pass": "PASS",
    "fail": "FAIL",
    "insufficient": "INSUFFICIENT EVIDENCE",
    "undefined": "UNDEFINED",
    "warn": "WARNING",
    "not_applicable": "NOT APPLICABLE",
}

CORRECTION_NAMES: dict[str, str] = {
    "holm": "Holm",
    "bh": "Benjamini\u2013Hochberg",
    "bonferroni": "Bonferroni",
    "none": "no",
}


def metric_label(key: str) -> str:
    """Return the printed name of a metric key (the key itself when it has no known name)."""
    return metric_registry.label(key)


def decimals_for(key: str | None) -> int:
    """Return the number of decimals the report prints for metric ``key``."""
    return metric_registry.decimals(key)


def format_count(value: Any) -> str:
    """Return an integer count with thousands separators ('—' for a missing value)."""
    if value is None or isinstance(value, bool):
        return "\u2014"
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return str(value)


def correction_name(method: Any) -> str:
    """Return the printed name of a multiplicity correction (``holm`` -> ``Holm``)."""
    if not method:
        return ""
    return CORRECTION_NAMES.get(str(method).lower(), str(method))


def format_test(estimate: Mapping[str, Any] | None, *, correction: Any = None) -> str:
    """Return ``p = 0.004; Holm-adjusted p = 0.012`` for an estimate with a test ('' without one)."""
    if not isinstance(estimate, Mapping):
        return ""
    raw = format_p_value(estimate.get("p_value"))
    adjusted = format_p_value(estimate.get("p_adjusted"))
    if adjusted:
        name = correction_name(correction) or "multiplicity"
        adjusted = f"{name}-adjusted {adjusted}"
    return "; ".join(part for part in (raw, adjusted) if part)


def verdict(word: Any) -> dict[str, str]:
    """Return ``{"text", "css"}`` for a gate verdict word (pass/fail/insufficient/undefined/warn)."""
    key = str(word).lower() if word is not None else "undefined"
    return {"text": VERDICT_WORDS.get(key, key.upper()), "css": f"verdict-{key if key in VERDICT_WORDS else 'undefined'}"}


def cell(estimate: Mapping[str, Any] | None, *, key: str | None = None, ci_level: Any = 0.95) -> dict[str, str]:
    """Return a table cell ``{"text", "css"}`` for an estimate (css marks undefined/absent values)."""
    text = format_estimate(estimate, digits=decimals_for(key), ci_level=ci_level)
    if not isinstance(estimate, Mapping):
        css = "absent"
    elif estimate.get("estimate") is None:
        css = "undefined"
    else:
        css = "value"
    return {"text": text, "css": css}


def plain(value: Any) -> str:
    """Return a free value (str, number, list, dict) as one readable line of text."""
    if value is None:
        return "\u2014"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return format_number(value, digits=4).rstrip("0").rstrip(".") if math.isfinite(value) else "\u2014"
    if isinstance(value, (list, tuple)):
        return ", ".join(plain(v) for v in value) if value else "\u2014"
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {plain(v)}" for k, v in value.items()) if value else "\u2014"
    return str(value)
