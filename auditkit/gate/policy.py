"""Gate policies: the YAML language, its strict validation, and the policy's fingerprint.

A policy is a pre-specified, versioned acceptance protocol (FDA AI-DSF draft
guidance 2025, Appendix C; FDA PCCP final guidance 2024: the performance
evaluation protocol of a change-control plan). It is read from YAML, checked
strictly (an unknown key, a rule with two operators, a duplicate id is an
error naming the file and the rule), and fingerprinted by the SHA-256 of the
file's bytes so every gate output pins exactly which criteria were applied.
The language is documented in ``docs/policy.md``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from auditkit.errors import PolicyError, describe_validation_error, short_repr
from auditkit.fileio import sha256_bytes
from auditkit.yamlload import load_yaml

Op = Literal["min", "max", "equals"]
Use = Literal["estimate", "ci_low", "ci_high"]
Severity = Literal["error", "warning"]
WhenUndefined = Literal["fail", "pass", "warn"]
Insufficient = Literal["block", "allow"]

OPERATORS: tuple[str, ...] = ("min", "max", "equals")
WILDCARD = "*"

_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_SEGMENT_PATTERN = re.compile(r"^[^*\s]+$")


MAX_METRIC_LENGTH = 400
MAX_METRIC_SEGMENTS = 32


class Rule(BaseModel):
    """One acceptance criterion: a metric path, one comparison, and what to do when unsure.

    ``metric`` is a dotted path into results.json whose segments may each be
    ``*`` (one check per match). Exactly one of ``min``, ``max`` or
    ``equals`` is set. ``use`` picks the number compared (the point estimate
    or a confidence bound); it is ``None`` when the YAML does not name it,
    which means ``estimate`` (see :attr:`effective_use`).
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    id: str = Field(min_length=1)
    metric: str = Field(min_length=1)
    min: float | None = None
    max: float | None = None
    equals: Any = None
    use: Use | None = None
    severity: Severity = "error"
    when_undefined: WhenUndefined = "fail"
    insufficient: Insufficient | None = None
    required: bool = True
    description: str | None = None

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if len(value) > MAX_METRIC_LENGTH or not _ID_PATTERN.match(value):
            raise ValueError(
                f"an id is at most {MAX_METRIC_LENGTH} letters, digits, '_', '-' or '.', starting with a letter or digit"
            )
        return value

    @field_validator("metric")
    @classmethod
    def _check_metric(cls, value: str) -> str:
        if len(value) > MAX_METRIC_LENGTH or value.count(".") >= MAX_METRIC_SEGMENTS:
            # no results.json path is this long; bounding it keeps matching linear and messages short
            raise ValueError(
                f"a metric path has at most {MAX_METRIC_SEGMENTS} segments and {MAX_METRIC_LENGTH} characters"
            )
        parts = value.split(".")
        for part in parts:
            if part != WILDCARD and not _SEGMENT_PATTERN.match(part):
                raise ValueError(
                    "a metric path is dot-separated keys, each a name or a whole '*' "
                    "(no empty segments, spaces or partial wildcards)"
                )
        if parts[0] == WILDCARD:
            raise ValueError("the first segment must name a results section, not '*'")
        if parts[0] == "gate":
            raise ValueError("a rule cannot check the gate section itself")
        return value

    @field_validator("min", "max")
    @classmethod
    def _check_finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("a threshold must be a finite number")
        return value

    @field_validator("equals")
    @classmethod
    def _check_equals(cls, value: Any) -> Any:
        # Exact comparison is only meaningful for booleans and integers; a float
        # threshold belongs in a min/max band.
        if value is not None and not isinstance(value, (bool, int)):
            raise ValueError("equals takes a boolean or an integer (for a number use min and max)")
        return value

    @model_validator(mode="after")
    def _check_operator(self) -> Rule:
        given = [name for name in OPERATORS if getattr(self, name) is not None]
        if len(given) != 1:
            found = ", ".join(given) if given else "none"
            raise ValueError(f"a rule needs exactly one of min, max, equals (found: {found})")
        if isinstance(self.equals, bool) and self.use is not None:
            raise ValueError(
                "use applies to numbers with a confidence interval, not to a boolean "
                "(equals: true/false); remove use"
            )
        return self

    @property
    def op(self) -> Op:
        """Return the comparison operator: ``"min"``, ``"max"`` or ``"equals"``."""
        for name in OPERATORS:
            if getattr(self, name) is not None:
                return name  # type: ignore[return-value]
        raise RuntimeError("a validated rule holds exactly one operator")

    @property
    def threshold(self) -> float | int | bool:
        """Return the operator's threshold (a float for min/max, a bool or int for equals)."""
        return getattr(self, self.op)

    @property
    def effective_use(self) -> Use:
        """Return which number is compared: ``use`` if given, else ``"estimate"``."""
        return self.use or "estimate"

    @property
    def is_wildcard(self) -> bool:
        """Return whether the metric path contains a ``*`` segment."""
        return WILDCARD in self.metric.split(".")


class _PolicyDocument(BaseModel):
    """The YAML document as written: policy-level fields and the list of rules."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    description: str | None = None
    block_on_insufficient: bool = True
    rules: list[Rule] = Field(min_length=1)


@dataclass(frozen=True)
class Policy:
    """A validated gate policy and the fingerprint of the file it came from.

    ``sha256`` is the hex SHA-256 of the policy file's bytes exactly as read
    (so a reviewer can check it with ``sha256sum``); ``source`` is the path,
    or ``"default"``-style name for a shipped policy.
    """

    name: str
    version: str
    description: str | None
    block_on_insufficient: bool
    rules: tuple[Rule, ...]
    sha256: str
    source: str
    raw: bytes = field(repr=False, compare=False)
    """The policy file's bytes exactly as read (copied into the audit folder as policy.yaml)."""


def _rule_label(raw: Any, index: int) -> str:
    rules = raw.get("rules") if isinstance(raw, Mapping) else None
    rule_id = None
    if isinstance(rules, list) and index < len(rules) and isinstance(rules[index], Mapping):
        rule_id = rules[index].get("id")
    return f"rule {index + 1} (id {short_repr(rule_id)})" if rule_id is not None else f"rule {index + 1}"


def _describe_validation_error(exc: ValidationError, raw: Any, source: str) -> str:
    loc = exc.errors()[0]["loc"]
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        # the rule's number and id name it; "rules.0" would not
        source, allowed, skip = f"{source}: {_rule_label(raw, loc[1])}", Rule.model_fields, 2
    else:
        allowed, skip = _PolicyDocument.model_fields, 0
    return describe_validation_error(
        exc, source, noun="field", allowed=allowed, fix="fix the policy", skip=skip
    )


def parse_policy(data: bytes | str, *, source: str) -> Policy:
    """Return the :class:`Policy` encoded by YAML ``data`` (``source`` names it in errors).

    Raises :class:`~auditkit.errors.PolicyError` for malformed YAML, a repeated
    key, an unknown key, a rule with none or several operators, a duplicate rule
    id, or ``use`` on a boolean rule. The policy's ``sha256`` is that of the
    exact bytes given.
    """
    raw_bytes = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    # bounded (size, aliases, depth), duplicate keys refused; a SafeLoader: no Python objects
    raw = load_yaml(raw_bytes, source=source, error=PolicyError, what="the policy")
    if not isinstance(raw, Mapping):
        raise PolicyError(
            f"{source}: a policy is a YAML mapping with name, version and rules, "
            f"got {type(raw).__name__}; see docs/policy.md"
        )
    try:
        document = _PolicyDocument.model_validate(raw)
    except ValidationError as exc:
        raise PolicyError(_describe_validation_error(exc, raw, source)) from None
    seen: dict[str, int] = {}
    for index, rule in enumerate(document.rules):
        if rule.id in seen:
            raise PolicyError(
                f"{source}: rule {index + 1} reuses the id {rule.id!r} of rule "
                f"{seen[rule.id] + 1}; give every rule a unique id"
            )
        seen[rule.id] = index
    return Policy(
        name=document.name,
        version=document.version,
        description=document.description,
        block_on_insufficient=document.block_on_insufficient,
        rules=tuple(document.rules),
        sha256=sha256_bytes(raw_bytes),
        source=source,
        raw=raw_bytes,
    )


def shipped_policy_names() -> tuple[str, ...]:
    """Return the names of the policies shipped with auditkit (e.g. ``("default",)``)."""
    folder = resources.files("auditkit").joinpath("policies")
    return tuple(
        sorted(
            entry.name.removesuffix(".yaml")
            for entry in folder.iterdir()
            if entry.name.endswith(".yaml")
        )
    )


def load_policy(path_or_name: str | os.PathLike[str]) -> Policy:
    """Return the policy in a YAML file, or the shipped policy of that name (``"default"``).

    A bare name without a suffix or folder (``default``) selects a shipped
    policy; anything else is read as a file path.
    """
    text = os.fspath(path_or_name)
    is_bare_name = isinstance(path_or_name, str) and re.fullmatch(r"[A-Za-z0-9_\-]+", text)
    if is_bare_name and text in shipped_policy_names():
        resource = resources.files("auditkit").joinpath("policies", f"{text}.yaml")
        return parse_policy(resource.read_bytes(), source=text)
    path = Path(text)
    if not path.is_file():
        names = ", ".join(shipped_policy_names())
        raise PolicyError(
            f"{text}: no such policy file and not a shipped policy ({names}); "
            "give a path to a policy YAML or a shipped name"
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PolicyError(f"{text}: cannot be read ({exc.strerror or type(exc).__name__}); check the path") from None
    return parse_policy(data, source=str(path))
