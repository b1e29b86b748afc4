"""Release gate cost on a large results.json, next to the cost of loading that file.

There is no peer library for CI-aware policy evaluation over results.json, so
the reference is the work ``auditkit gate`` cannot avoid: parsing results.json
and validating it against the shipped JSON Schema (``load_results``, i.e.
json + jsonschema). The benchmark prints medians of repeated runs and the
ratio gate / load, on a document far larger than a real audit (20 attributes
x 40 groups, 12 external sites, 4 saliency methods) and a policy whose
wildcards expand to ~1,000 checks.

Run: ``.venv/bin/python benchmarks/bench_gate.py``
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import yaml

from auditkit.gate import evaluate, junit_xml, load_policy, markdown_summary, parse_policy
from auditkit.results import load_results, save_results

REPEATS = 7


def _est(x: float) -> dict[str, float]:
    return {"estimate": x, "ci_low": x - 0.05, "ci_high": x + 0.05}


def large_results(n_attributes: int = 20, n_groups: int = 40, n_sites: int = 12) -> dict:
    """Return a schema-valid results document with many attributes, groups and sites."""
    metrics = ("auroc", "sensitivity", "specificity", "fnr", "fpr", "ppv", "npv", "ece", "brier")
    fairness = {}
    for a in range(n_attributes):
        groups = {
            f"g{g}.{a}": {"n": 100, "n_positive": 30, **{m: _est(0.1 + 0.001 * g) for m in metrics}}
            for g in range(n_groups)
        }
        fairness[f"attr{a}"] = {
            "columns": [f"attr{a}"],
            "cohort": "test",
            "groups": groups,
            "gap": {m: _est(0.03) for m in metrics},
            "worst_group": {"auroc": _est(0.85)},
        }
    return {
        "schema_version": "1.0",
        "tool": {"name": "auditkit", "version": "bench"},
        "created": "2025-01-01",
        "run": {"seed": 0, "n_boot": 1000, "ci_level": 0.95, "task": "binary", "classes": ["n", "p"]},
        "model": {"name": "bench", "arch": "smallcnn", "sha256": "0" * 64},
        "cohorts": {"test": {"n_images": 1000, "n_patients": 800, "n_positive": 300}},
        "discrimination": {"test": {m: _est(0.9) for m in metrics}},
        "calibration": {"test": {"ece": _est(0.05), "slope": _est(1.0)}},
        "fairness": fairness,
        "external": {
            f"site{s}": {
                "discrimination": {m: _est(0.88) for m in metrics},
                "calibration": {"ece": _est(0.05)},
                "delta": {m: _est(-0.01) for m in metrics},
            }
            for s in range(n_sites)
        },
        "saliency": {
            method: {"n_images": 256, "sanity": {"passed": True}, "shortcut_score": _est(0.1)}
            for method in ("gradcam", "gradcampp", "ig", "smoothgrad")
        },
    }


def _median_seconds(fn) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    """Print the medians and ratios."""
    doc = large_results()
    default = load_policy("default")
    rules = [
        {"id": "group-fnr", "metric": "fairness.*.groups.*.fnr", "max": 0.3, "use": "ci_high"},
        {"id": "group-auroc", "metric": "fairness.*.groups.*.auroc", "min": 0.05, "use": "ci_low"},
        {"id": "site-delta", "metric": "external.*.delta.*", "min": -0.2, "use": "ci_low"},
    ]
    wide = parse_policy(yaml.safe_dump({"name": "wide", "version": "1", "rules": rules}), source="wide")
    with tempfile.TemporaryDirectory() as tmp:
        path = save_results(Path(tmp) / "results.json", doc)
        size_kib = path.stat().st_size / 1024
        t_load = _median_seconds(lambda: load_results(path))
    rows = []
    for policy in (default, wide):
        outcome = evaluate(doc, policy)
        t_eval = _median_seconds(lambda p=policy: evaluate(doc, p))
        t_out = _median_seconds(lambda o=outcome: (junit_xml(o), markdown_summary(o)))
        rows.append((policy.name, len(outcome.checks), t_eval, t_out))
    print(f"results.json {size_kib:.0f} KiB; medians of {REPEATS} runs")
    print(f"load_results (json + schema validation, the reference): {t_load * 1e3:8.1f} ms")
    for name, n_checks, t_eval, t_out in rows:
        print(
            f"policy {name:>16}: {n_checks:5d} checks  evaluate {t_eval * 1e3:7.1f} ms "
            f"(x{t_eval / t_load:.3f} of load)  junit+markdown {t_out * 1e3:7.1f} ms "
            f"(x{t_out / t_load:.3f} of load)"
        )


if __name__ == "__main__":
    main()
