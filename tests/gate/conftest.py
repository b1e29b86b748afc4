"""Hand-made results.json documents with exactly the keys of docs/results-json.md."""

from __future__ import annotations

import copy
from typing import Any

import pytest


def est(
    estimate: float | None, ci_low: float | None = None, ci_high: float | None = None, **extra: Any
) -> dict[str, Any]:
    """Return a serialised Estimate; an undefined one carries a reason, as the schema requires."""
    out: dict[str, Any] = {"estimate": estimate, "ci_low": ci_low, "ci_high": ci_high}
    if estimate is None:
        out["reason"] = extra.pop("reason", "group below the minimum size")
    out.update(extra)
    return out


def _cohort(n: int, n_pos: int, role: str) -> dict[str, Any]:
    return {
        "role": role,
        "n_images": n,
        "n_patients": n,
        "n_positive": n_pos,
        "n_negative": n - n_pos,
        "prevalence": est(n_pos / n, n_pos / n - 0.05, n_pos / n + 0.05),
        "warnings": [],
    }


def _fairness_attribute(
    columns: list[str], groups: dict[str, float], gap_fnr, gap_auroc, worst
) -> dict[str, Any]:
    return {
        "columns": columns,
        "cohort": "test",
        "intersection": len(columns) > 1,
        "groups": {
            value: {
                "n": 60,
                "n_positive": 20,
                "fnr": est(fnr, max(fnr - 0.1, 0.0), fnr + 0.1),
                "auroc": est(0.88, 0.80, 0.94),
                "warnings": [],
            }
            for value, fnr in groups.items()
        },
        "gap": {"fnr": gap_fnr, "auroc": gap_auroc},
        "ratio": {"fnr": est(1.2, 0.9, 1.6)},
        "worst_group": {"auroc": worst},
        "warnings": [],
    }


def complete_results() -> dict[str, Any]:
    """Return a complete, schema-valid results document where every default rule passes."""
    return {
        "schema_version": "1.0",
        "tool": {"name": "auditkit", "version": "0.1.0"},
        "created": "2025-01-01",
        "run": {
            "seed": 0,
            "n_boot": 1000,
            "ci_level": 0.95,
            "ci_method": "percentile",
            "cluster_column": "patient_id",
            "task": "binary",
            "classes": ["normal", "lesion"],
            "positive_class": "lesion",
        },
        "model": {"name": "candidate", "arch": "smallcnn", "sha256": "ab" * 32},
        "cohorts": {
            "val": _cohort(200, 60, "validation"),
            "test": _cohort(300, 90, "internal_test"),
            "site_C": _cohort(250, 70, "external"),
        },
        "discrimination": {
            "test": {
                "auroc": est(0.91, 0.87, 0.94, method="delong"),
                "sensitivity": est(0.84, 0.76, 0.90),
                "specificity": est(0.86, 0.81, 0.90),
                "confusion_matrix": {"tp": 76, "fp": 29, "tn": 181, "fn": 14, "threshold": 0.41},
            }
        },
        "calibration": {
            "test": {
                "ece": est(0.04, 0.02, 0.07),
                "ece_l1_debiased": est(0.03, 0.01, 0.06),
                "slope": est(0.97, 0.85, 1.10),
                "intercept": est(0.01, -0.1, 0.12),
                "n_bins": 15,
            }
        },
        "fairness": {
            "sex": _fairness_attribute(
                ["sex"],
                {"F": 0.15, "M": 0.12},
                est(0.03, -0.04, 0.09, p_value=0.4, groups=["F", "M"]),
                est(0.02, -0.03, 0.07),
                est(0.89, 0.83, 0.94, groups=["F"]),
            ),
            "age_group": _fairness_attribute(
                ["age_group"],
                {"1.5": 0.2, "60-80": 0.14},
                est(0.06, -0.02, 0.13, groups=["1.5", "60-80"]),
                est(0.04, -0.02, 0.09),
                est(0.86, 0.78, 0.92, groups=["1.5"]),
            ),
        },
        "external": {
            "site_C": {
                "role": "external",
                "discrimination": {"auroc": est(0.89, 0.84, 0.93)},
                "calibration": {"ece": est(0.05, 0.03, 0.08), "ece_l1_debiased": est(0.04, 0.02, 0.07)},
                "delta": {"auroc": est(-0.02, -0.04, 0.01, p_value=0.3)},
                "shift": {},
                "warnings": [],
            }
        },
        "saliency": {
            "gradcam": {
                "n_images": 64,
                "sanity": {"passed": True, "criterion": "ssim below baseline"},
                "shortcut_score": est(0.08, 0.05, 0.11),
            },
            "ig": {
                "n_images": 64,
                "sanity": {"passed": True},
                "shortcut_score": est(0.10, 0.07, 0.14),
            },
        },
        "warnings": [],
    }


@pytest.fixture
def results() -> dict[str, Any]:
    """A fresh complete results document (tests mutate their own copy)."""
    return copy.deepcopy(complete_results())


@pytest.fixture
def make_est():
    """The Estimate-dict builder, for tests that plant values."""
    return est


def policy_yaml(rules: list[dict[str, Any]], **top: Any) -> str:
    """Return the YAML text of a policy with ``rules`` (name/version defaulted)."""
    import yaml

    document = {
        "name": top.pop("name", "test-policy"),
        "version": top.pop("version", "1"),
        **top,
        "rules": rules,
    }
    return yaml.safe_dump(document, sort_keys=False)


@pytest.fixture
def make_policy():
    """Build a Policy from rule dicts (policy-level keys as keyword arguments)."""
    from auditkit.gate import parse_policy

    def build(*rules: dict[str, Any], **top: Any):
        return parse_policy(policy_yaml(list(rules), **top), source="test.yaml")

    return build
