"""describe_validation_error: one sentence for every pydantic error a user can cause."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from auditkit.errors import describe_validation_error


class _Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prevalence: float = Field(0.3, gt=0, lt=1)


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    n_boot: int = Field(1000, ge=50)
    tags: list[str] = Field(default_factory=lambda: ["a"], min_length=1)
    notes: dict[str, str | list[str]] | None = None
    sites: list[_Inner] = Field(default_factory=list)
    date: str | None = None

    @field_validator("date")
    @classmethod
    def _check_date(cls, value: str | None) -> str | None:
        if value is not None and len(value) != 10:
            raise ValueError(f"date must be YYYY-MM-DD, got {value!r}")
        return value


def _message(data: dict, **kwargs) -> str:
    with pytest.raises(ValidationError) as caught:
        _Settings.model_validate(data)
    return describe_validation_error(caught.value, "audit.yaml", **kwargs)


@pytest.mark.parametrize(
    ("data", "kwargs", "expected"),
    [
        (
            {"name": "x", "n_boot": 3},
            {},
            "audit.yaml: setting 'n_boot': expected greater than or equal to 50 (got 3); "
            "fix the value",
        ),
        (
            {"name": "x", "bootstraps": 3},
            {"allowed": ("name", "n_boot")},
            "audit.yaml: unknown setting 'bootstraps' (allowed: name, n_boot); fix or remove it",
        ),
        (
            {"name": "x", "bootstraps": 3},
            {},
            "audit.yaml: unknown setting 'bootstraps'; fix or remove it",
        ),
        ({}, {"noun": "field"}, "audit.yaml: missing the required field 'name'; add it"),
        (
            {"name": 1.1},
            {"fix": "fix the policy"},
            "audit.yaml: setting 'name': expected a string: quote it in the YAML (got 1.1); "
            "fix the policy",
        ),
        (
            {"name": "x", "tags": []},
            {},
            "audit.yaml: setting 'tags': expected at least one entry (got []); fix the value",
        ),
        # the validator's message names the value: no second "(got ...)"
        (
            {"name": "x", "date": "yesterday"},
            {},
            "audit.yaml: setting 'date': date must be YYYY-MM-DD, got 'yesterday'; fix the value",
        ),
        # nested models by dotted path; the union member pydantic tried is not shown
        (
            {"name": "x", "sites": [{"prevalence": 2}]},
            {},
            "audit.yaml: setting 'sites.0.prevalence': expected less than 1 (got 2); fix the value",
        ),
        (
            {"name": "x", "notes": {"who": 5}},
            {},
            "audit.yaml: setting 'notes.who': expected a string: quote it in the YAML (got 5); "
            "fix the value",
        ),
        # location parts already named by the source are skipped
        (
            {"name": "x", "sites": [{"prevalence": 2}]},
            {"skip": 2, "noun": "field"},
            "audit.yaml: field 'prevalence': expected less than 1 (got 2); fix the value",
        ),
    ],
)
def test_describe_validation_error_is_one_sentence_naming_field_and_value(data, kwargs, expected):
    assert _message(data, **kwargs) == expected


def test_a_model_level_error_has_no_field():
    class _Pair(BaseModel):
        low: float
        high: float

        @field_validator("high")
        @classmethod
        def _order(cls, value: float, info) -> float:
            return value

        def model_post_init(self, context) -> None:
            if self.low > self.high:
                raise ValueError(f"low must not exceed high, got {self.low} > {self.high}")

    with pytest.raises(ValidationError) as caught:
        _Pair(low=2, high=1)
    assert (
        describe_validation_error(caught.value, "pair")
        == "pair: low must not exceed high, got 2.0 > 1.0; fix the value"
    )
