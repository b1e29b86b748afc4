"""The reported number: a point estimate with its confidence interval (and test).

Every number in results.json is an :class:`Estimate` serialised as
``{"estimate": x, "ci_low": l, "ci_high": h}`` plus ``p_value`` /
``p_adjusted`` where a test applies. A number that is undefined (a one-class
subgroup, a group below the minimum size) has ``"estimate": null`` and a
``"reason"``: undefined is neither an error nor zero.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


def _finite_or_none(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class Estimate:
    """A point estimate with an optional confidence interval, test and reason.

    ``estimate`` is ``None`` exactly when the quantity is undefined, and then
    ``reason`` says why. Non-finite floats passed in are stored as ``None``.
    """

    estimate: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    reason: str | None = None
    method: str | None = None
    groups: tuple[str, ...] | None = None
    """For a gap or a worst-group value: the groups it refers to (a gap: highest first)."""

    def __post_init__(self) -> None:
        for name in ("estimate", "ci_low", "ci_high", "p_value", "p_adjusted"):
            object.__setattr__(self, name, _finite_or_none(getattr(self, name)))
        if self.groups is not None:
            object.__setattr__(self, "groups", tuple(str(g) for g in self.groups))
        if self.estimate is None and not self.reason:
            object.__setattr__(self, "reason", "not computable from the data given")

    @classmethod
    def undefined(cls, reason: str) -> Estimate:
        """Return an Estimate for a quantity that cannot be computed, with its reason."""
        return cls(None, reason=reason)

    @property
    def defined(self) -> bool:
        """Return whether the point estimate exists."""
        return self.estimate is not None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form: always estimate/ci_low/ci_high, other fields when set."""
        out: dict[str, Any] = {
            "estimate": self.estimate,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
        }
        for name in ("p_value", "p_adjusted", "reason", "method"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.groups is not None:
            out["groups"] = list(self.groups)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Estimate:
        """Return the Estimate encoded by ``data`` (the inverse of :meth:`to_dict`)."""
        return cls(
            data.get("estimate"),
            data.get("ci_low"),
            data.get("ci_high"),
            p_value=data.get("p_value"),
            p_adjusted=data.get("p_adjusted"),
            reason=data.get("reason"),
            method=data.get("method"),
            groups=tuple(data["groups"]) if data.get("groups") is not None else None,
        )


def is_estimate_dict(value: Any) -> bool:
    """Return whether ``value`` looks like a serialised :class:`Estimate`."""
    return isinstance(value, Mapping) and "estimate" in value and "ci_low" in value
