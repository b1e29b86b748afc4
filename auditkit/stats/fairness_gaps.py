"""Gaps between the groups of one attribute: ranges, ratios, power, equalized odds, worst group, vs rest.

The pieces of :func:`auditkit.stats.fairness.analyse_attribute` that compare
eligible groups (the module docstring of :mod:`auditkit.stats.fairness`
describes each estimand and its interval).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from auditkit.results import Estimate
from auditkit.stats import metrics as metric_registry
from auditkit.stats.bootstrap import Distribution, bootstrap_homogeneity_test, bootstrap_z_test
from auditkit.stats.cohort import CohortAnalyzer, undefined_reason
from auditkit.stats.delong import delong_homogeneity_test
from auditkit.stats.intervals import PROPORTION_METRICS, bootstrap_se, power_record, range_estimate

#: gaps that get a power statement besides the primary ones (the registry's ``gap_power`` flag).
POWER_METRICS = metric_registry.keys(gap_power=True)

@dataclass
class _Group:
    name: str
    rows: np.ndarray
    n_positive: int
    n_negative: int
    eligible: bool
    dists: dict[str, Distribution] = field(default_factory=dict)
    block: dict[str, Any] = field(default_factory=dict)


def gaps(
    eligible: list[_Group], analyzer: CohortAnalyzer, primary_metrics: tuple[str, ...]
) -> tuple[dict[str, Estimate], dict[str, Estimate], dict[str, Any]]:
    """Return (gap, ratio, power): every metric's highest-minus-lowest gap, its ratio and power statement."""
    engine = analyzer.engine
    clustered = analyzer.arrays.clusters is not None
    gap: dict[str, Estimate] = {}
    ratio: dict[str, Estimate] = {}
    power: dict[str, Any] = {}
    power_metrics = set(primary_metrics) | set(POWER_METRICS)
    level, min_defined = engine.settings.level, engine.settings.min_defined
    for metric in _gap_metric_names():
        defined = [g for g in eligible if metric in g.dists and np.isfinite(g.dists[metric].point)]
        if len(defined) < 2:
            gap[metric] = Estimate.undefined(f"{metric} is defined in fewer than two groups")
            continue
        p_value = bootstrap_homogeneity_test([g.dists[metric] for g in defined])
        method = "test: Wald chi-square of the K − 1 contrasts (bootstrap covariance)"
        if metric == "auroc" and analyzer.arrays.is_binary and not clustered:
            tested = [analyzer.delong(g.rows) for g in defined]
            test = delong_homogeneity_test([t[0] for t in tested], [t[1] for t in tested])
            p_value = test.p_value
            method = f"test: {test.method} (df={test.df})"
        dists = [[g.dists[metric] for g in defined]]
        names = [[g.name for g in defined]]
        df = _units_df(analyzer, defined, metric)
        gap[metric] = range_estimate(
            dists, names, level=level, min_defined=min_defined, p_value=p_value,
            method="highest minus lowest group; " + method, df=df,
        )  # fmt: skip
        if metric_registry.get(metric).ratio and max(g.dists[metric].point for g in defined) > 0:
            ratio[metric] = range_estimate(dists, names, level=level, min_defined=min_defined, log=True, df=df)
        if metric in power_metrics:
            power[metric] = _gap_power(defined, metric, gap[metric], level)
    _equalized_odds(eligible, gap, engine, analyzer)
    return gap, ratio, power


def worst_groups(eligible: list[_Group], analyzer: CohortAnalyzer) -> dict[str, Estimate]:
    """Return ``worst_group``: each worst-group metric's lowest group value (Max-Min fairness)."""
    out: dict[str, Estimate] = {}
    for metric in metric_registry.keys(worst_group=True):
        defined = [g for g in eligible if metric in g.dists and np.isfinite(g.dists[metric].point)]
        if not defined:
            out[metric] = Estimate.undefined(f"{metric} is undefined in every group")
            continue
        worst = min(defined, key=lambda g: (g.dists[metric].point, g.name))
        est = analyzer.estimate(worst.rows, metric, worst.dists[metric])
        out[metric] = dataclasses.replace(est, groups=(worst.name,))
    return out


def vs_rest(
    rows: np.ndarray, eligible: list[_Group], analyzer: CohortAnalyzer, primary: list[str]
) -> dict[str, dict[str, Estimate]]:
    """Return ``vs_rest``: each eligible group minus the rest of the cohort, for the primary metrics."""
    out: dict[str, dict[str, Estimate]] = {}
    for g in eligible:
        rest_rows = np.setdiff1d(rows, g.rows, assume_unique=True)
        if len(rest_rows) == 0:
            continue
        rest = analyzer.metrics(rest_rows, names=primary, fits=any(m in ("slope", "intercept") for m in primary))
        block: dict[str, Estimate] = {}
        for metric in primary:
            if metric not in g.dists or metric not in rest:
                continue
            if not (np.isfinite(g.dists[metric].point) and np.isfinite(rest[metric].point)):
                block[metric] = Estimate.undefined(f"{metric} is undefined in the group or in the rest")
                continue
            diff = g.dists[metric] - rest[metric]
            block[metric] = analyzer.engine.estimate(diff, p_value=bootstrap_z_test(diff), groups=(g.name, "rest"))
        out[g.name] = block
    return out


def _units_df(analyzer: CohortAnalyzer, groups: list[_Group], metric: str) -> float | None:
    """Return the fewest independent units (patients) behind ``metric`` in any group, minus one.

    Used as the degrees of freedom of a t critical value: with ~20 patients
    with events per group the bootstrap SE is itself noisy and z is too
    small (simulated 80 patients x 5 images: FNR-gap coverage 0.91 with z).
    None when images are unclustered (z is then right).
    """
    if analyzer.arrays.clusters is None or not analyzer.arrays.is_binary:
        return None
    if metric in ("auroc", "auprc"):
        units = [min(analyzer.units_of(g.rows, "sensitivity"), analyzer.units_of(g.rows, "specificity")) for g in groups]
    elif metric in PROPORTION_METRICS:
        units = [analyzer.units_of(g.rows, metric) for g in groups]
    else:
        units = [analyzer.units_of(g.rows, "accuracy") for g in groups]
    return float(max(min(units) - 1, 1)) if units else None


def _gap_power(defined: list[_Group], metric: str, gap: Estimate, level: float) -> dict[str, Any]:
    """Return the power statement of a gap: the minimum detectable difference of its two extreme groups."""
    by_name = {g.name: g for g in defined}
    pair = gap.groups if gap.groups and all(n in by_name for n in gap.groups) else None
    if pair is None:
        ranked = sorted(defined, key=lambda g: (g.dists[metric].point, g.name))
        pair = (ranked[-1].name, ranked[0].name)
    a, b = by_name[pair[0]], by_name[pair[1]]
    se = bootstrap_se(a.dists[metric] - b.dists[metric])
    return power_record(
        se,
        level=level,
        sizes={g: {"n": len(by_name[g].rows), "n_positive": by_name[g].n_positive} for g in pair},
        what=f"{metric} gap between {pair[0]} and {pair[1]}",
    )


def _metric_names() -> tuple[str, ...]:
    """Return the metrics reported per group (the same plain names for binary and multi-class)."""
    return metric_registry.cohort_keys()


_gap_metric_names = _metric_names


def _equalized_odds(
    eligible: list[_Group], gap: dict[str, Any], engine: Any, analyzer: CohortAnalyzer
) -> None:
    """Add gap.equalized_odds = max(range of sensitivity, range of FPR) over groups, one projection interval."""
    parts = []
    for metric in ("sensitivity", "fpr"):
        defined = [
            g
            for g in eligible
            if np.isfinite(g.dists.get(metric, Distribution(np.nan, np.zeros(0))).point)
        ]
        if len(defined) < 2:
            gap["equalized_odds"] = Estimate.undefined(
                "sensitivity or FPR is defined in fewer than two groups"
            )
            return
        parts.append(([g.dists[metric] for g in defined], [g.name for g in defined]))
    gap["equalized_odds"] = range_estimate(
        [d for d, _ in parts],
        [n for _, n in parts],
        level=engine.settings.level,
        min_defined=engine.settings.min_defined,
        method="max(sensitivity range, FPR range) over groups",
        df=min((_units_df(analyzer, eligible, m) or np.inf) for m in ("sensitivity", "fpr")),
    )


def prevalence_adjusted(
    rows: np.ndarray, eligible: list[_Group], analyzer: CohortAnalyzer
) -> dict[str, Any]:
    engine = analyzer.engine
    y = analyzer.arrays.y[rows] == 1
    target = float(y.mean())
    adjusted = {g.name: analyzer.metrics(g.rows, prevalence=target) for g in eligible}
    gaps: dict[str, Any] = {}
    for metric in metric_registry.prevalence_dependent_keys():
        defined = [g for g in eligible if np.isfinite(adjusted[g.name][metric].point)]
        if len(defined) < 2:
            gaps[metric] = Estimate.undefined(f"{metric} is defined in fewer than two groups")
            continue
        high = max(defined, key=lambda g: (adjusted[g.name][metric].point, g.name))
        low = min(defined, key=lambda g: (adjusted[g.name][metric].point, g.name))
        diff = adjusted[high.name][metric] - adjusted[low.name][metric]
        gaps[metric] = engine.estimate(
            diff,
            p_value=bootstrap_homogeneity_test([adjusted[g.name][metric] for g in defined]),
            groups=(high.name, low.name),
        )
    return {
        "method": "each group's positives and negatives reweighted to the cohort prevalence in every "
        "resample (test-set resampling of Glocker et al. 2023, by weights)",
        "prevalence": target,
        "gap": gaps,
        "groups": {
            g.name: {
                m: engine.estimate(
                    d, reason=undefined_reason(m, n_positive=g.n_positive, n_negative=g.n_negative)
                )
                for m, d in adjusted[g.name].items()
            }
            for g in eligible
        },
        "unchanged": list(metric_registry.prevalence_free_keys()),
        "why_unchanged": "sensitivity, specificity, FNR, FPR, likelihood ratios and AUROC condition on the "
        "true class, so reweighting the classes cannot change them: their gaps are not explained by "
        "prevalence differences",
    }
