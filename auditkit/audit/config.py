"""The settings of an audit: pydantic models read from ``--config audit.yaml`` and command-line flags.

Flags override the file. Unknown keys and invalid values are a
:class:`~auditkit.errors.ConfigError` naming the file and the field.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from auditkit.errors import ConfigError, describe_validation_error, short_repr
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
from auditkit.stats import metrics as metric_registry
from auditkit.stats.threshold import OperatingPointRule


class ExpectedFinding(BaseModel):
    """A finding the data's provider expects the audit to catch, and the gate rule that should catch it.

    The synthetic phantom's planted flaws are the typical case: the demo
    declares, for each, the policy rule that must fail (and optionally the
    concrete metric path), so the report can show each planted flaw caught,
    or not, by its rule.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(..., min_length=1)
    description: str = ""
    rule: str = Field(..., min_length=1, description="The id of the policy rule that should fail.")
    metric: str | None = Field(
        None, description="The concrete results path the rule should fail on (default: any)."
    )


class AuditSettings(BaseModel):
    """What the statistical audit computes and how (every field has a documented default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attributes: list[str] = Field(default_factory=list, description="Subgroup attribute columns.")
    intersections: list[str] = Field(
        default_factory=list, description="Intersections such as 'sex+age_group'."
    )
    external_sites: list[str] = Field(default_factory=list, description="Sites declared external.")
    positive_class: str | None = None
    operating_point: str = Field(
        "youden", description="youden | sensitivity:x | specificity:x | threshold:t"
    )
    n_boot: NBoot = DEFAULT_N_BOOT
    seed: Seed = DEFAULT_SEED
    ci_method: CiMethod = DEFAULT_CI_METHOD
    stratify: Literal["cohort", "class"] = Field(
        "cohort",
        description="Resampling strata: 'cohort' (each cohort an independent sample of fixed size) or "
        "'class' (also hold each cohort's class counts fixed: a case-control design, whose intervals for "
        "prevalence-dependent metrics such as PPV, O/E and the calibration intercept are too narrow for "
        "a consecutive cohort).",
    )
    ci_level: CiLevel = DEFAULT_CI_LEVEL
    auroc_ci: Literal["bootstrap", "delong"] = Field(
        "bootstrap",
        description="AUROC interval: the shared bootstrap, or DeLong (unclustered data only).",
    )
    min_group_size: int = Field(30, ge=2)
    min_group_events: int = Field(10, ge=0)
    multiplicity: Literal["holm", "bh"] = "holm"
    fairness_primary_metrics: list[str] = Field(
        default_factory=lambda: list(metric_registry.keys(fairness_primary=True))
    )
    fairness_cohorts: list[str] = Field(
        default_factory=lambda: ["test"],
        description="'test', external site names, or 'external' for all sites.",
    )
    n_bins: int = Field(15, ge=2, le=100)
    mmd_permutations: int = Field(500, ge=0, le=100_000)
    max_jackknife_blocks: int = Field(500, ge=10)
    date: str | None = Field(
        None, description="Audit date YYYY-MM-DD written as results.json 'created'."
    )
    model_name: str | None = None
    intended_use: dict[str, str | list[str] | None] | None = None
    expected_findings: list[ExpectedFinding] = Field(
        default_factory=list,
        description="Findings the audit is expected to catch (e.g. a phantom's planted flaws).",
    )
    saliency: dict[str, Any] | None = Field(
        None,
        description="Settings of the explanations (auditkit.explain.config.SaliencyConfig): methods, "
        "max_images, ig_steps, ...",
    )

    clinical: dict[str, Any] | None = Field(
        None,
        description="Settings of the clinical-validation analyses (auditkit.audit.clinical.ClinicalSettings): "
        "decision_curve, conformal, slices, robustness.",
    )

    @field_validator("clinical")
    @classmethod
    def _check_clinical(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        from auditkit.audit.clinical import check_clinical_settings

        return check_clinical_settings(value, source="audit settings: clinical")

    @field_validator("saliency")
    @classmethod
    def _check_saliency(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        from auditkit.explain.config import check_saliency_settings

        # its ConfigError is already one sentence; pydantic lets it through unwrapped
        return check_saliency_settings(value, source="audit settings: saliency")

    @field_validator("operating_point")
    @classmethod
    def _check_operating_point(cls, value: str) -> str:
        try:
            return OperatingPointRule.parse(value).to_text()
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("date")
    @classmethod
    def _check_date(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return _dt.date.fromisoformat(str(value)).isoformat()
        except ValueError:
            raise ValueError(f"date must be YYYY-MM-DD, got {short_repr(value)}") from None

    @field_validator("attributes")
    @classmethod
    def _check_attributes(cls, value: list[str]) -> list[str]:
        names = [str(v).strip() for v in value]
        for name in names:
            if not name:
                raise ValueError("an attribute name is empty; give column names separated by commas")
            if names.count(name) > 1:
                raise ValueError(f"attribute {name!r} is given twice; name each column once")
        return names

    @field_validator("intersections")
    @classmethod
    def _check_intersections(cls, value: list[str]) -> list[str]:
        seen: dict[frozenset[str], str] = {}
        out = []
        for item in value:
            parts = [p.strip() for p in item.split("+")]
            if len(parts) < 2 or not all(parts):
                raise ValueError(
                    f"intersection {item!r} must name two or more columns joined by '+'"
                )
            if len(set(parts)) != len(parts):
                raise ValueError(f"intersection {item!r} names a column twice")
            key = frozenset(parts)
            if key in seen:
                raise ValueError(f"intersection {item!r} repeats {seen[key]!r}; give each once")
            seen[key] = item
            out.append("+".join(parts))
        return out

    @property
    def run_context(self) -> RunContext:
        """Return the seed, resamples and interval settings every interval of the run uses."""
        return RunContext.from_settings(self)

    @property
    def rule(self) -> OperatingPointRule:
        """Return the parsed operating-point rule."""
        return OperatingPointRule.parse(self.operating_point)


class AuditConfig(BaseModel):
    """One audit run: inputs, output folder, what to produce, and the settings.

    The inputs are either a predictions table (``predictions``), or a
    checkpoint and a manifest (``model`` + ``manifest``: prediction runs
    first), or both (the table is audited, the model explains it).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    predictions: Path | None = None
    model: Path | None = None
    manifest: Path | None = None
    out: Path | None = None
    force: bool = False
    embeddings: Path | None = None
    data_root: Path | None = None
    allow_outside_root: bool = False
    trust_model_code: bool = Field(
        False,
        description="Allow a module:factory checkpoint, whose loading imports Python code. From the "
        "command line (--trust-model-code) only: an audit YAML received with a model cannot switch it on.",
    )
    device: str | None = None
    batch_size: int | None = Field(None, ge=1)
    explain: bool = Field(True, description="Run the explanations (needs a model).")
    report: bool = Field(True, description="Render report.pdf and report.html.")
    policy: str | None = Field(None, description="'default' or a gate policy YAML file.")
    allow_insufficient: bool = False
    labels: tuple[str, ...] | None = Field(
        None, description="Findings of a multi-label table (label_<f>/score_<f> columns); default: every pair."
    )
    uncertain_labels: Literal["ignore", "zeros", "ones"] = Field(
        "ignore", description="A finding's -1 (uncertain) label: left out, absent or present (CheXpert U-policies)."
    )
    config_path: Path | None = None
    settings: AuditSettings = Field(default_factory=AuditSettings)

    @model_validator(mode="after")
    def _check_inputs(self) -> AuditConfig:
        if self.out is None:
            raise ValueError("the audit needs --out DIR (where results.json and the report go)")
        if self.predictions is None and (self.model is None or self.manifest is None):
            missing = "--manifest" if self.model is not None else (
                "--model" if self.manifest is not None else "--predictions P, or --model and --manifest"
            )
            raise ValueError(f"the audit needs {missing}")
        if self.manifest is not None and self.model is None:
            raise ValueError("--manifest needs --model (the checkpoint that predicts on it)")
        return self


#: Keys of an audit YAML that name inputs and outputs rather than statistical settings.
RUN_KEYS = (
    "predictions", "model", "manifest", "out", "force", "embeddings", "data_root",
    "allow_outside_root", "device", "batch_size", "explain", "report", "policy",
    "allow_insufficient", "labels", "uncertain_labels",
)  # fmt: skip
_PATH_KEYS = ("predictions", "model", "manifest", "out", "embeddings", "data_root")


def _first_error(exc: ValidationError, source: str) -> ConfigError:
    allowed = sorted({*AuditSettings.model_fields, *RUN_KEYS})
    return ConfigError(describe_validation_error(exc, source, allowed=allowed))


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Return the settings mapping of an audit YAML file (an ``audit:`` section or the top level)."""
    from auditkit.yamlload import load_yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such audit config file; check --config")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or type(exc).__name__}); check --config") from None
    # bounded (size, aliases, depth) and duplicate keys refused, like a policy
    data = load_yaml(raw, source=str(path), error=ConfigError, what="the audit config") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of settings")
    if isinstance(data.get("audit"), dict):
        data = data["audit"]
    odd = next((key for key in data if not isinstance(key, str)), None)
    if odd is not None or any(not isinstance(key, str) for key in data):
        raise ConfigError(f"{path}: setting names are words, got {short_repr(odd)}; fix or remove it")
    return data


def build_settings(
    *,
    config_path: str | os.PathLike[str] | None = None,
    overrides: dict[str, Any] | None = None,
    source: str | None = None,
) -> AuditSettings:
    """Return the settings from the config file (if any) with ``overrides`` (flags given) on top."""
    data: dict[str, Any] = {}
    source = source or "audit settings"
    if config_path is not None:
        data.update(read_config_file(config_path))
        source = str(config_path)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    data.update(given)
    try:
        return AuditSettings(**data)
    except ValidationError as exc:
        raise _first_error(exc, source if not given else f"{source} and flags") from None


def _resolve_policy(value: str, base: Path) -> str:
    if value in ("default",) or Path(value).is_absolute():
        return value
    return str(base / value)


def build_config(
    *,
    config_path: str | os.PathLike[str] | None = None,
    run: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
) -> AuditConfig:
    """Return the audit run from a YAML file (if any) with flags on top.

    ``run`` holds the flags of :data:`RUN_KEYS` (inputs, outputs, policy),
    ``overrides`` the statistical settings flags; ``None`` means "not given".
    Relative paths in the YAML are relative to the YAML file's folder.
    """
    file_run: dict[str, Any] = {}
    file_settings: dict[str, Any] = {}
    source = "audit settings"
    if config_path is not None:
        data = read_config_file(config_path)
        base = Path(config_path).resolve().parent
        for key, value in data.items():
            if key in RUN_KEYS:
                if key in _PATH_KEYS and value is not None:
                    value = Path(value) if Path(value).is_absolute() else base / value
                if key == "policy" and value is not None:
                    value = _resolve_policy(str(value), base)
                file_run[key] = value
            else:
                file_settings[key] = value
        source = str(config_path)
    given_run = {k: v for k, v in (run or {}).items() if v is not None}
    settings = build_settings(overrides={**file_settings, **{
        k: v for k, v in (overrides or {}).items() if v is not None}}, source=source)
    merged = {**file_run, **given_run}
    try:
        return AuditConfig(
            **merged,
            config_path=Path(config_path) if config_path is not None else None,
            settings=settings,
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        message = str(err.get("msg", "")).removeprefix("Value error, ")
        if err.get("type") == "value_error":
            raise ConfigError(f"{source}: {message}") from None
        raise _first_error(exc, source) from None
