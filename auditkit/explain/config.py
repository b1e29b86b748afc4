"""Settings of the saliency part of an audit (which methods, how many images, how each check runs).

Read from the audit config's ``saliency:`` section (or passed as a mapping);
unknown keys and invalid values are a :class:`~auditkit.errors.ConfigError`
naming the field. The run's ``seed``, ``n_boot``, ``ci_level`` and
``ci_method`` (one declaration, :mod:`auditkit.run_context`) and its
subgroup ``attributes`` are taken from the audit settings when those are
given (:meth:`SaliencyConfig.from_any`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from auditkit.errors import ConfigError, describe_validation_error
from auditkit.explain import methods as attribution_methods
from auditkit.run_context import (
    DEFAULT_CI_LEVEL,
    DEFAULT_CI_METHOD,
    DEFAULT_N_BOOT,
    DEFAULT_SEED,
    CiLevel,
    CiMethod,
    NBoot,
    RunContext,
    Seed,
)

#: the run-context fields the saliency settings inherit from the audit settings.
_INHERITED = ("seed", "n_boot", "ci_level", "ci_method", "attributes")

_METHODS = attribution_methods.names()


class SaliencyConfig(BaseModel):
    """What the saliency evaluation computes; every field has a documented default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    methods: tuple[str, ...] = Field(("gradcam", "ig"), description="gradcam, gradcampp, ig, smoothgrad")
    max_images: int = Field(256, ge=1, description="Sample size per cohort (internal test, each external site).")
    max_val_images: int = Field(128, ge=0, description="Validation images with masks used to tune the threshold.")
    target: str = Field(
        "positive", description="positive (binary: the positive class; else predicted), predicted, true, or a class name"
    )
    threshold: float | None = Field(None, description="Decision threshold of a binary model for the gallery categories.")
    ig_steps: int = Field(50, ge=2, le=1000)
    ig_baseline: Literal["black", "blurred", "mean", "zeros"] = "black"
    smoothgrad_samples: int = Field(25, ge=1, le=1000)
    smoothgrad_noise: float = Field(0.15, ge=0, le=1)
    sanity_images: int = Field(16, ge=2)
    sanity_blocks: int = Field(6, ge=1, description="Cascading randomisation steps, from the output down.")
    sanity_independent: bool = True
    faithfulness_images: int = Field(32, ge=1)
    faithfulness_steps: int = Field(20, ge=2, le=500)
    stability_images: int = Field(16, ge=1)
    stability_noise: float = Field(0.02, ge=0, le=1)
    stability_shift: int = Field(2, ge=1, le=8)
    corner_fraction: float = Field(0.25, gt=0, le=0.5, description="Side of the corner squares of the shortcut score.")
    gallery_per_category: int = Field(2, ge=0)
    gallery_max: int = Field(24, ge=0)
    overlay_format: Literal["png", "jpeg"] = "png"
    batch_size: int = Field(16, ge=1)
    attributes: tuple[str, ...] | None = Field(None, description="Subgroup columns (default: the audit's).")
    seed: Seed = DEFAULT_SEED
    n_boot: NBoot = DEFAULT_N_BOOT
    ci_level: CiLevel = DEFAULT_CI_LEVEL
    ci_method: CiMethod = DEFAULT_CI_METHOD
    cache_dir: str | None = Field(None, description="Map cache folder (default: <out>/explain/cache).")

    @field_validator("methods", mode="before")
    @classmethod
    def _check_methods(cls, value: Any) -> tuple[str, ...]:
        if not isinstance(value, (str, list, tuple)):
            raise ValueError(f"methods must be a list or a comma-separated string, got {value!r}")
        items = [m.strip().lower() for m in value.split(",")] if isinstance(value, str) else [str(m).lower() for m in value]
        bad = [m for m in items if m not in _METHODS]
        if bad or not items:
            raise ValueError(f"methods must be among {', '.join(_METHODS)}, got {bad or 'nothing'}")
        return tuple(dict.fromkeys(items))

    @property
    def run_context(self) -> RunContext:
        """Return the seed, resamples and interval settings of the saliency evidence."""
        return RunContext.from_settings(self)

    @classmethod
    def from_any(cls, config: Any) -> SaliencyConfig:
        """Return the settings from a SaliencyConfig, a mapping, audit settings (with ``saliency``), or None."""
        if config is None:
            return cls()
        if isinstance(config, SaliencyConfig):
            return config
        if isinstance(config, Mapping):
            data = dict(config)
            if "saliency" in data:  # audit settings with a saliency section: inherit the run's seed etc.
                inherited = {k: data[k] for k in _INHERITED if k in data}
                data = {**inherited, **dict(data["saliency"] or {})}
            return _build(data, "saliency settings")
        settings = getattr(config, "settings", config)
        data = {}
        for key in _INHERITED:
            if getattr(settings, key, None) is not None:
                data[key] = getattr(settings, key)
        nested = getattr(settings, "saliency", None) or getattr(settings, "explain", None)
        if isinstance(nested, SaliencyConfig):
            return nested.model_copy(update=data)
        if isinstance(nested, Mapping):
            data.update(nested)
        return _build(data, "saliency settings")


def check_saliency_settings(
    value: Mapping[str, Any] | None, *, source: str = "saliency settings"
) -> dict[str, Any] | None:
    """Return the ``saliency:`` section ``value`` unchanged (as a dict) once it is valid; None stays None.

    For validating the section when the audit settings are read, long before
    the saliency step runs. Raises ConfigError (one sentence naming the bad
    key and the allowed ones, or the invalid value) like :meth:`SaliencyConfig.from_any`.
    """
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{source}: the saliency section must be a mapping of settings, got {type(value).__name__}"
        )
    _build(value, source)
    return dict(value)


def _build(data: Mapping[str, Any], source: str) -> SaliencyConfig:
    if "attributes" in data and data["attributes"] is not None:
        value = data["attributes"]
        if isinstance(value, str):
            value = [a.strip() for a in value.split(",") if a.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(
                f"{source}: setting 'attributes' should be a list of column names, got {value!r}; fix the value"
            )
        data = {**data, "attributes": tuple(value)}
    try:
        return SaliencyConfig(**data)
    except ValidationError as exc:
        raise ConfigError(
            describe_validation_error(
                exc, source, noun="saliency setting", allowed=SaliencyConfig.model_fields
            )
        ) from None
