"""Text formatting of report values: estimates with CIs, p-values, counts and verdict words.

Every number in the report passes through here so that it reads the same
everywhere: ``0.912 (95% CI 0.887–0.934)``, ``p = 0.003`` / ``p < 0.001``,
``not computable: <reason>`` for an undefined number. Negative numbers use the
typographic minus (U+2212) and ranges an en dash, as in print.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

MINUS = "\u2212"
EN_DASH = "\u2013"
NOT_REPORTED = "not reported"

#: Metrics printed with two decimals (ratios on an open scale); everything else gets three.
TWO_DECIMALS = frozenset({"lr_positive", "lr_negative", "oe", "slope", "intercept", "temperature"})

#: Human names of metric keys (docs/results-json.md vocabulary).
METRIC_LABELS: dict[str, str] = {
    "auroc": "AUROC",
    "auprc": "AUPRC",
    "sensitivity": "Sensitivity",
    "specificity": "Specificity",
    "ppv": "PPV",
    "npv": "NPV",
    "fnr": "FNR",
    "fpr": "FPR",
    "lr_positive": "LR+",
    "lr_negative": "LR\u2212",
    "f1": "F1",
    "balanced_accuracy": "Balanced accuracy",
    "accuracy": "Accuracy",
    "ece": "ECE (15 equal-width bins)",
    "ece_equal_mass": "ECE (equal-mass bins)",
    "ece_debiased": "ECE (debiased)",
    "mce": "MCE",
    "brier": "Brier score",
    "brier_scaled": "Scaled Brier score",
    "oe": "O/E ratio",
    "intercept": "Calibration intercept",
    "slope": "Calibration slope",
    "prevalence": "Prevalence",
    "equalized_odds": "Equalized odds",
    "hit_rate": "Hit rate (pointing game)",
    "energy_pointing": "Energy-based pointing",
    "iou_otsu": "IoU (Otsu threshold)",
    "dice_otsu": "Dice (Otsu threshold)",
    "iou_tuned": "IoU (validation-tuned threshold)",
    "dice_tuned": "Dice (validation-tuned threshold)",
    "deletion_auc": "Deletion AUC (lower is better)",
    "insertion_auc": "Insertion AUC (higher is better)",
    "deletion_auc_random": "Deletion AUC, random order",
    "insertion_auc_random": "Insertion AUC, random order",
    "shortcut_score": "Shortcut score",
    "noise_ssim": "SSIM under input noise",
    "shift_ssim": "SSIM under a small shift",
}

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
    return METRIC_LABELS.get(key, key.replace("_", " "))


def decimals_for(key: str | None) -> int:
    """Return the number of decimals the report prints for metric ``key``."""
    return 2 if key in TWO_DECIMALS else 3


def format_number(value: Any, *, digits: int = 3) -> str:
    """Return ``value`` with ``digits`` decimals and a typographic minus ('—' for a missing value)."""
    if isinstance(value, bool) or value is None:
        return "\u2014"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(number):
        return "\u2014"
    text = f"{number:.{digits}f}"
    # -0.000 is noise from rounding, not a negative number
    if text.startswith("-") and float(text) == 0.0:
        text = text[1:]
    return text.replace("-", MINUS)


def format_count(value: Any) -> str:
    """Return an integer count with thousands separators ('—' for a missing value)."""
    if value is None or isinstance(value, bool):
        return "\u2014"
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return str(value)


def format_percent(value: Any, *, digits: int = 1) -> str:
    """Return a proportion in [0, 1] as a percentage, e.g. ``35.0%`` ('—' when missing)."""
    if value is None or isinstance(value, bool):
        return "\u2014"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(number):
        return "\u2014"
    return f"{100 * number:.{digits}f}%".replace("-", MINUS)


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


def range_separator(low: Any, high: Any) -> str:
    """Return the separator of an interval: an en dash, or `` to `` when a bound is negative."""
    try:
        negative = float(low) < 0 or float(high) < 0
    except (TypeError, ValueError):
        negative = False
    # "−0.62–−0.41" misreads; print "−0.62 to −0.41" as style guides advise
    return " to " if negative else EN_DASH


def format_interval(low: Any, high: Any, *, digits: int = 3, ci_level: Any = 0.95) -> str:
    """Return ``95% CI 0.887–0.934`` (``95% CI −0.12 to 0.05`` with a negative bound); '' when one is missing."""
    if low is None or high is None:
        return ""
    return (f"{ci_label(ci_level)} {format_number(low, digits=digits)}{range_separator(low, high)}"
            f"{format_number(high, digits=digits)}")


def format_estimate(
    estimate: Mapping[str, Any] | None, *, digits: int = 3, ci_level: Any = 0.95, percent: bool = False
) -> str:
    """Return ``0.912 (95% CI 0.887–0.934)`` or ``not computable: <reason>`` for an estimate dict.

    A missing estimate (``None``) reads ``not reported``; a point value without
    an interval is printed alone.
    """
    if not isinstance(estimate, Mapping):
        return NOT_REPORTED
    value = estimate.get("estimate")
    if value is None:
        reason = str(estimate.get("reason") or "no reason recorded")
        return f"not computable: {reason}"
    low, high = estimate.get("ci_low"), estimate.get("ci_high")
    if percent:
        point = format_percent(value, digits=max(0, digits - 2))
        if low is None or high is None:
            return point
        return (
            f"{point} ({ci_label(ci_level)} {format_percent(low, digits=max(0, digits - 2))}"
            f"{range_separator(low, high)}{format_percent(high, digits=max(0, digits - 2))})"
        )
    point = format_number(value, digits=digits)
    interval = format_interval(low, high, digits=digits, ci_level=ci_level)
    if interval:
        return f"{point} ({interval})"
    # a point value whose interval could not be computed says why, e.g. a single image
    return f"{point} (no CI: {estimate['reason']})" if estimate.get("reason") else point


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
