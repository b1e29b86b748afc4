"""Text of a reported number: ``0.912 (95% CI 0.887–0.934)``, ``p = 0.003``, ``not computable: <reason>``.

The one place where an estimate and its interval become text, shared by the
report, the gate's outputs, ``summary.md`` and the command line, so a number
reads the same everywhere. Negative numbers use the typographic minus
(U+2212) and ranges an en dash, as in print; a range with a negative bound
reads ``−0.12 to 0.05``. ``ascii_only=True`` gives the same text in ASCII for
a console or CI log that may not be UTF-8: ``-0.024 (95% CI -0.081 to 0.033)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from auditkit.results.estimate import Estimate

MINUS = "\u2212"
EN_DASH = "\u2013"
NOT_REPORTED = "not reported"


def format_number(value: Any, *, digits: int = 3, ascii_only: bool = False) -> str:
    """Return ``value`` with ``digits`` decimals and a typographic minus ('—' for a missing value).

    ``ascii_only``: a hyphen-minus, and '-' for a missing value.
    """

    def render(number: float) -> str:
        text = f"{number:.{digits}f}"
        # -0.000 is noise from rounding, not a negative number
        return text[1:] if text.startswith("-") and float(text) == 0.0 else text

    return _format_finite(value, render, ascii_only=ascii_only)


def format_percent(value: Any, *, digits: int = 1, ascii_only: bool = False) -> str:
    """Return a proportion in [0, 1] as a percentage, e.g. ``35.0%`` ('—' when missing)."""
    return _format_finite(value, lambda number: f"{100 * number:.{digits}f}%", ascii_only=ascii_only)


def _format_finite(value: Any, render: Callable[[float], str], *, ascii_only: bool) -> str:
    # A missing or non-finite value (or a bool, no number here) is a dash; anything that is not a
    # number is shown as given; a number is rendered, with a typographic minus unless ascii_only.
    if value is None or isinstance(value, bool):
        return "-" if ascii_only else "\u2014"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(number):
        return "-" if ascii_only else "\u2014"
    text = render(number)
    return text if ascii_only else text.replace("-", MINUS)


def ci_label(ci_level: Any) -> str:
    """Return the interval label for a confidence level, e.g. ``95% CI``."""
    try:
        level = float(ci_level)
    except (TypeError, ValueError):
        level = 0.95
    if not 0 < level < 1:
        level = 0.95
    pct = 100 * level
    return f"{pct:.0f}% CI" if abs(pct - round(pct)) < 1e-9 else f"{pct:g}% CI"


def range_separator(low: Any, high: Any, *, ascii_only: bool = False) -> str:
    """Return the separator of an interval: an en dash, or `` to `` when a bound is negative (or ``ascii_only``)."""
    if ascii_only:
        return " to "
    try:
        negative = float(low) < 0 or float(high) < 0
    except (TypeError, ValueError):
        negative = False
    # "−0.62–−0.41" misreads; print "−0.62 to −0.41" as style guides advise
    return " to " if negative else EN_DASH


def format_interval(
    low: Any,
    high: Any,
    *,
    digits: int = 3,
    ci_level: Any = 0.95,
    label: bool = True,
    ascii_only: bool = False,
) -> str:
    """Return ``95% CI 0.887–0.934`` (``95% CI −0.12 to 0.05`` with a negative bound); '' when one is missing.

    ``label=False`` leaves out ``95% CI `` (for a table whose header names the
    interval); ``ascii_only`` writes ``0.887 to 0.934`` with hyphen-minus signs.
    """
    if low is None or high is None:
        return ""
    prefix = f"{ci_label(ci_level)} " if label else ""
    lo = format_number(low, digits=digits, ascii_only=ascii_only)
    hi = format_number(high, digits=digits, ascii_only=ascii_only)
    return f"{prefix}{lo}{range_separator(low, high, ascii_only=ascii_only)}{hi}"


def format_estimate(
    estimate: Estimate | Mapping[str, Any] | None,
    *,
    digits: int = 3,
    ci_level: Any = 0.95,
    label: bool = True,
    percent: bool = False,
    ascii_only: bool = False,
) -> str:
    """Return ``0.912 (95% CI 0.887–0.934)`` or ``not computable: <reason>`` for an estimate.

    ``estimate`` is an :class:`~auditkit.results.Estimate` or its results.json
    form. A missing estimate (``None``) reads ``not reported``; a point value
    without an interval is printed alone (with the reason when one is
    recorded). ``label=False`` prints ``0.912 (0.887–0.934)``; ``percent``
    prints a proportion as ``35.0% (95% CI 30.1%–40.2%)`` with ``digits - 2``
    decimals; ``ascii_only`` (for a console that may not be UTF-8) prints
    ``-0.024 (95% CI -0.081 to 0.033)``.
    """
    if isinstance(estimate, Estimate):
        estimate = estimate.to_dict()
    if not isinstance(estimate, Mapping):
        return NOT_REPORTED
    value = estimate.get("estimate")
    if value is None:
        reason = str(estimate.get("reason") or "no reason recorded")
        return f"not computable: {reason}"
    low, high = estimate.get("ci_low"), estimate.get("ci_high")
    prefix = f"{ci_label(ci_level)} " if label else ""
    if percent:
        places = max(0, digits - 2)
        point = format_percent(value, digits=places, ascii_only=ascii_only)
        if low is None or high is None:
            return point
        lo = format_percent(low, digits=places, ascii_only=ascii_only)
        hi = format_percent(high, digits=places, ascii_only=ascii_only)
        return f"{point} ({prefix}{lo}{range_separator(low, high, ascii_only=ascii_only)}{hi})"
    point = format_number(value, digits=digits, ascii_only=ascii_only)
    interval = format_interval(
        low, high, digits=digits, ci_level=ci_level, label=label, ascii_only=ascii_only
    )
    if interval:
        return f"{point} ({interval})"
    # a point value whose interval could not be computed says why, e.g. a single image
    reason = str(estimate.get("reason") or "")
    if not reason:
        return point
    # reasons from the bootstrap already begin "no interval: ..."; do not say it twice
    for lead in ("no interval: ", "no interval; ", "no CI: "):
        if reason.startswith(lead):
            reason = reason[len(lead):]
            break
    return f"{point} (no CI: {reason})"


def format_p_value(p: Any) -> str:
    """Return ``p = 0.003`` or ``p < 0.001`` ('' when there is no p-value)."""
    if p is None or isinstance(p, bool):
        return ""
    try:
        value = float(p)
    except (TypeError, ValueError):
        return ""
    if not math.isfinite(value):
        return ""
    if value < 0.001:
        return "p < 0.001"
    if value > 0.999:
        return "p > 0.999"
    return f"p = {value:.3f}"
