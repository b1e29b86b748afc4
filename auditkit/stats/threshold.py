"""The operating point: a decision threshold chosen on the validation split only, then frozen.

Rules: ``youden`` maximises sensitivity + specificity − 1 (Youden 1950);
``sensitivity:x`` takes the highest threshold whose sensitivity is at least
x (so specificity is as high as that allows); ``specificity:x`` the lowest
threshold whose specificity is at least x; ``threshold:t`` a given value. A
case is called positive when its score is >= the threshold; candidate
thresholds are the distinct validation scores, as in scikit-learn's
``roc_curve``. Choosing on test data would bias every test metric (FDA
AI-DSF draft guidance 2025, App. C: no post-hoc adjustment).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from auditkit.errors import ConfigError
from auditkit.stats.validation import binary_inputs

RULES = ("youden", "sensitivity", "specificity", "fixed")


@dataclass(frozen=True)
class OperatingPointRule:
    """How the threshold is chosen: ``rule`` in RULES and its ``target`` (None for youden)."""

    rule: str
    target: float | None = None

    @classmethod
    def parse(cls, text: str) -> OperatingPointRule:
        """Return the rule written as ``youden``, ``sensitivity:0.9``, ``specificity:0.9`` or ``threshold:0.5``."""
        raw = str(text).strip().lower()
        if raw == "youden":
            return cls("youden")
        name, _, value = raw.partition(":")
        if name in ("sensitivity", "specificity", "threshold") and value:
            try:
                target = float(value)
            except ValueError:
                target = float("nan")
            if np.isfinite(target) and (name == "threshold" or 0.0 < target <= 1.0):
                return cls("fixed" if name == "threshold" else name, target)
        raise ConfigError(
            f"operating point {text!r} is not understood; use youden, sensitivity:0.9, "
            "specificity:0.9 or threshold:0.5 (targets in (0, 1])"
        )

    def to_text(self) -> str:
        """Return the rule in the form :meth:`parse` reads."""
        if self.rule == "youden":
            return "youden"
        return f"{'threshold' if self.rule == 'fixed' else self.rule}:{self.target:g}"


@dataclass(frozen=True)
class OperatingPoint:
    """The frozen threshold and the validation sensitivity/specificity it gives."""

    rule: str
    target: float | None
    threshold: float
    chosen_on: str
    val_sensitivity: float | None
    val_specificity: float | None

    def to_dict(self) -> dict[str, Any]:
        """Return the results.json form of ``operating_point``."""
        return {
            "rule": self.rule,
            "target": self.target,
            "threshold": self.threshold,
            "chosen_on": self.chosen_on,
            "val": {"sensitivity": self.val_sensitivity, "specificity": self.val_specificity},
        }


def roc_points(y_true: Any, y_score: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (fpr, tpr, thresholds) at every distinct score, thresholds descending (first = +inf)."""
    y, s, _ = binary_inputs(y_true, y_score, probabilities=False)
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), len(s_sorted) - 1]
    tps = np.cumsum(y_sorted)[last]
    fps = (last + 1) - tps
    n_pos, n_neg = y.sum(), len(y) - y.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        tpr = np.r_[0.0, tps / n_pos]
        fpr = np.r_[0.0, fps / n_neg]
    return fpr, tpr, np.r_[np.inf, s_sorted[last]]


def choose_operating_point(
    y_true: Any, y_score: Any, rule: OperatingPointRule, *, chosen_on: str = "val"
) -> OperatingPoint:
    """Return the operating point that ``rule`` picks on these (validation) labels and scores."""
    y, s, _ = binary_inputs(y_true, y_score, probabilities=False)
    if rule.rule == "fixed":
        threshold = float(rule.target)  # type: ignore[arg-type]
    else:
        if y.min() == y.max():
            raise ConfigError(
                f"the {chosen_on} split has only one class, so the {rule.to_text()} operating "
                "point cannot be chosen; use --operating-point threshold:T"
            )
        fpr, tpr, thresholds = roc_points(y, s)
        if rule.rule == "youden":
            k = int(np.argmax(tpr - fpr))
        elif rule.rule == "sensitivity":
            k = int(np.flatnonzero(tpr >= rule.target - 1e-12)[0])
        else:
            k = int(np.flatnonzero(1.0 - fpr >= rule.target - 1e-12)[-1])
        # the +inf start point calls nothing positive: use the largest score plus a hair instead
        threshold = (
            float(thresholds[k])
            if np.isfinite(thresholds[k])
            else float(np.nextafter(s.max(), np.inf))
        )
    call = s >= threshold
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    sens = float((call & (y == 1)).sum() / n_pos) if n_pos else None
    spec = float((~call & (y == 0)).sum() / n_neg) if n_neg else None
    return OperatingPoint(rule.rule, rule.target, threshold, chosen_on, sens, spec)
