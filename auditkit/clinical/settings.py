"""Settings of the clinical-validation analyses: the ``clinical:`` block of the audit config.

Decision curves (the threshold range the intended use names), conformal sets
(error rate, methods, subgroup tolerance), slice discovery (clusters of the
embeddings) and the robustness run (declared perturbations, severities,
images). The analyses: :mod:`auditkit.audit.clinical`; what each number
means: docs/clinical-validation.md.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from auditkit.errors import ConfigError, describe_validation_error
from auditkit.stats import conformal as cp


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DecisionCurveSettings(_Frozen):
    """The threshold-probability range the intended use names, and the thresholds reported as numbers."""

    range: tuple[float, float] = (0.01, 0.50)
    step: float = Field(0.01, gt=0, lt=0.5)
    key_thresholds: tuple[float, ...] = (0.05, 0.10, 0.20)

    @model_validator(mode="after")
    def _check(self) -> DecisionCurveSettings:
        low, high = self.range
        if not 0 < low <= high < 1:
            raise ValueError(f"range must satisfy 0 < low <= high < 1, got {list(self.range)}")
        if any(not 0 < t < 1 for t in self.key_thresholds):
            raise ValueError(f"key_thresholds must lie in (0, 1), got {list(self.key_thresholds)}")
        return self


class ConformalSettings(_Frozen):
    """Split and class-conditional conformal sets at error rate ``alpha``; the subgroup tolerance."""

    alpha: float = Field(0.10, gt=0, lt=0.5)
    methods: tuple[str, ...] = ("split", "mondrian")
    tolerance: float = Field(0.05, ge=0, lt=0.5)
    min_group_size: int = Field(20, ge=2)

    @model_validator(mode="after")
    def _check(self) -> ConformalSettings:
        bad = [m for m in self.methods if m not in cp.METHODS]
        if bad:
            raise ValueError(f"methods: {bad[0]!r} is unknown; choose among {list(cp.METHODS)}")
        return self


class SliceDiscoverySettings(_Frozen):
    """Candidate slices: k-means clusters of the embeddings (plus one-hot attributes)."""

    n_slices: int | None = Field(None, ge=2, le=50)
    """None: one slice per 60 test images, between 2 and 8 (a slice needs enough of both classes to test)."""
    n_components: int = Field(16, ge=1, le=256)
    use_attributes: bool = False
    """join one-hot attributes to the embeddings (off: the fairness analysis already slices by them)."""
    attribute_weight: float = Field(0.3, ge=0, le=10)
    """scale of the one-hot attributes beside the unit-RMS embedding components: they tilt, not split, clusters."""
    min_size: int = Field(20, ge=5)
    representatives: int = Field(4, ge=0, le=16)


class RobustnessSettings(_Frozen):
    """The declared perturbations, their severities and the images they run on."""

    enabled: bool = False
    perturbations: tuple[str, ...] | None = None
    """names from auditkit.clinical.perturbations (all when omitted)."""
    severities: tuple[int, ...] = (1, 2, 3)
    cohort: str = "test"
    max_images: int = Field(2000, ge=10)
    batch_size: int = Field(64, ge=1)

    @model_validator(mode="after")
    def _check(self) -> RobustnessSettings:
        if any(s not in (1, 2, 3) for s in self.severities):
            raise ValueError(f"severities must be among 1, 2, 3, got {list(self.severities)}")
        return self


class ClinicalSettings(_Frozen):
    """The ``clinical:`` block of the audit config."""

    enabled: bool = True
    decision_curve: DecisionCurveSettings = DecisionCurveSettings()
    conformal: ConformalSettings = ConformalSettings()
    slices: SliceDiscoverySettings = SliceDiscoverySettings()
    robustness: RobustnessSettings = RobustnessSettings()

    @classmethod
    def from_any(cls, value: dict[str, Any] | None, *, source: str = "audit settings: clinical") -> ClinicalSettings:
        """Return validated settings from the config's mapping (defaults for ``None``); ConfigError names the field."""
        try:
            return cls.model_validate(value or {})
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(exc, source, noun="field")) from None


def check_clinical_settings(value: dict[str, Any] | None, *, source: str) -> dict[str, Any] | None:
    """Return ``value`` unchanged after validating it as :class:`ClinicalSettings` (for the audit config)."""
    ClinicalSettings.from_any(value, source=source)
    return value
