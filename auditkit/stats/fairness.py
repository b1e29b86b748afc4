"""Subgroup fairness: per-group metrics at the global operating point, gaps with their own CIs, tests.

For one attribute (or an intersection of attributes, values joined by ``+``)
on one cohort:

* per group: n, events, prevalence (Wilson) and every discrimination and
  calibration metric with its CI — all at the GLOBAL frozen threshold;
  groups below ``min_group_size`` get undefined values with the reason, and
  a warning flags groups with fewer than ``min_events`` events;
* ``gap``: the largest between-group difference (highest − lowest, ≥ 0)
  with the projection of simultaneous max-|t| bootstrap intervals of all
  pairwise differences (:func:`auditkit.stats.intervals.range_estimate`: it
  contains its estimate and never goes below 0), and a
  test of homogeneity of all groups, so picking the extreme pair does not
  inflate it: a Wald chi-square of the K − 1 contrasts with their bootstrap
  covariance or, for AUROC on unclustered data, DeLong's
  chi-square test of K independent AUROCs; ``gap.equalized_odds`` =
  max(TPR range, FPR range) (Hardt et al. 2016; fairlearn's
  ``equalized_odds_difference``); the FNR gap is underdiagnosis
  (Seyyed-Kalantari et al. 2021);
* ``ratio`` (lowest / highest, in (0, 1], its interval from the same
  projection on the log scale), ``power`` (the minimum detectable gap of the
  extreme pair at the observed sizes, 80% power), ``vs_rest`` (each group minus the rest of
  the cohort), ``worst_group`` (Max-Min fairness, Zong et al. 2023);
* ``prevalence_adjusted``: every group's classes reweighted to the cohort's
  prevalence (test-set resampling of Glocker et al. 2023, done by weights)
  and the prevalence-dependent gaps recomputed, so a gap caused only by
  different prevalences shrinks while a model gap stays.

p-values are adjusted across the family of pre-declared primary gap tests of
all attributes (Holm by default, or Benjamini–Hochberg) by
:class:`ComparisonFamily`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from auditkit.results import Estimate
from auditkit.stats import metrics as metric_registry
from auditkit.stats.bootstrap import Distribution, bootstrap_homogeneity_test, bootstrap_z_test
from auditkit.stats.cohort import (
    CohortAnalyzer,
    undefined_reason,
)
from auditkit.stats.delong import delong_homogeneity_test
from auditkit.stats.intervals import PROPORTION_METRICS, bootstrap_se, power_record, range_estimate
from auditkit.stats.multiplicity import adjust_p_values
from auditkit.stats.proportions import proportion

MISSING = "(missing)"
POWER_METRICS = ("fnr", "fpr", "auroc")


@dataclass(frozen=True)
class FairnessSettings:
    """Rules of a fairness analysis."""

    min_group_size: int = 30
    min_events: int = 10
    primary_metrics: tuple[str, ...] = field(
        default_factory=lambda: metric_registry.keys(fairness_primary=True)
    )
    max_levels: int = 20
    """Warn when an attribute has more distinct values than this (bin it first)."""


def _value_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return MISSING
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip() or MISSING


def group_labels(frame: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    """Return each row's group: the attribute's value as text, or the values of an intersection joined by ``+``.

    Missing values become ``"(missing)"``.
    """
    parts = [frame[c].map(_value_text) for c in columns]
    labels = parts[0]
    for part in parts[1:]:
        labels = labels + "+" + part
    return labels.astype(str)


class ComparisonFamily:
    """Collects the p-values of one family of comparisons and returns their adjusted copies.

    :meth:`adjusted` leaves every registered Estimate as it is and returns
    the copies carrying ``p_adjusted`` (a member's twin, the same test of its
    complement metric, gets the member's value); :meth:`adjust` is
    ``apply_adjusted(family.adjusted(method))`` for the section builders that
    place the copies into their sections.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._members: list[tuple[dict[str, Any], str, str]] = []

    def add(self, container: dict[str, Any], key: str, label: str) -> None:
        """Register the Estimate ``container[key]`` (labelled ``label``) as a member of the family."""
        est = container.get(key)
        if isinstance(est, Estimate) and est.p_value is not None:
            self._members.append((container, key, label))

    @property
    def labels(self) -> list[str]:
        """Return the labels of the family's members."""
        return [label for _, _, label in self._members]

    def __len__(self) -> int:
        return len(self._members)

    def adjusted(self, method: str) -> list[tuple[dict[str, Any], str, Estimate]]:
        """Return ``(container, key, adjusted copy)`` for every member and its twins; nothing is modified."""
        p = [container[key].p_value for container, key, _ in self._members]
        values = adjust_p_values(p, method=method)
        out: list[tuple[dict[str, Any], str, Estimate]] = []
        for (container, key, _), value in zip(self._members, values, strict=True):
            out.append((container, key, dataclasses.replace(container[key], p_adjusted=float(value))))
            for twin, primary in metric_registry.twins().items():
                if primary == key and isinstance(container.get(twin), Estimate):
                    out.append((container, twin, dataclasses.replace(container[twin], p_adjusted=float(value))))
        return out

    def adjust(self, method: str) -> None:
        """Place the adjusted copies of :meth:`adjusted` into the sections the members came from."""
        apply_adjusted(self.adjusted(method))


def apply_adjusted(adjusted: list[tuple[dict[str, Any], str, Estimate]]) -> None:
    """Put each adjusted Estimate into its section under its key (the one place sections are updated)."""
    for container, key, estimate in adjusted:
        container[key] = estimate


@dataclass
class _Group:
    name: str
    rows: np.ndarray
    n_positive: int
    n_negative: int
    eligible: bool
    dists: dict[str, Distribution] = field(default_factory=dict)
    block: dict[str, Any] = field(default_factory=dict)


def _estimates(
    analyzer: CohortAnalyzer,
    dists: dict[str, Distribution],
    n_pos: int,
    n_neg: int,
    rows: np.ndarray,
) -> dict[str, Estimate]:
    return {
        name: analyzer.estimate(
            rows, name, dist, reason=undefined_reason(name, n_positive=n_pos, n_negative=n_neg)
        )
        for name, dist in dists.items()
        if "/" not in name
    }


def analyse_attribute(
    labels: pd.Series,
    rows: np.ndarray,
    analyzer: CohortAnalyzer,
    *,
    columns: Sequence[str],
    cohort: str,
    settings: FairnessSettings,
    gap_family: ComparisonFamily,
    vs_rest_family: ComparisonFamily,
    patients: np.ndarray | None = None,
) -> dict[str, Any]:
    """Return the results.json ``fairness.<attribute>`` section for one attribute on one cohort.

    ``labels`` (len(rows),) is each cohort row's group; ``rows`` the table
    rows of the cohort; ``patients`` (n_table,) patient ids for n_patients.
    """
    engine = analyzer.engine
    name = "+".join(columns)
    warnings: list[str] = []
    label_values = labels.to_numpy()
    values = sorted(set(label_values), key=lambda v: (v == MISSING, v))
    if len([v for v in values if v != MISSING]) > settings.max_levels:
        warnings.append(
            f"attribute {name!r} has {len(values)} distinct values on {cohort}; most groups will be too "
            "small: give a binned column (e.g. age_group)"
        )
    groups: list[_Group] = []
    for value in values:
        g_rows = rows[label_values == value]
        n_pos, n_neg = analyzer.counts(g_rows)
        eligible = len(g_rows) >= settings.min_group_size and value != MISSING
        groups.append(_Group(value, g_rows, n_pos, n_neg, eligible))

    clustered = analyzer.arrays.clusters is not None
    for g in groups:
        y_bin = analyzer.arrays.y[g.rows] == 1 if analyzer.arrays.is_binary else None
        prev = proportion(
            y_bin if y_bin is not None else np.zeros(len(g.rows)),
            clusters=analyzer.arrays.clusters[g.rows] if clustered else None,
            level=engine.settings.level,
        )
        block: dict[str, Any] = {
            "n": len(g.rows),
            "n_patients": len(np.unique(patients[g.rows])) if patients is not None else len(g.rows),
            "n_positive": g.n_positive,
        }
        if y_bin is not None:
            block["prevalence"] = Estimate(
                prev.estimate,
                prev.ci_low,
                prev.ci_high,
                method=prev.method,
            )
        g_warn: list[str] = []
        if g.name == MISSING:
            g_warn.append(
                f"{len(g.rows)} cases have no value for {name!r}; they are reported but left out of gaps"
            )
        if not g.eligible and g.name != MISSING:
            reason = f"group has {len(g.rows)} cases, below the minimum group size of {settings.min_group_size}"
            g_warn.append(reason)
            warnings.append(f"{name}={g.name}: {reason}; left out of gaps")
            block.update({m: Estimate.undefined(reason) for m in _metric_names()})
        else:
            g.dists = analyzer.metrics(g.rows)
            block.update(_estimates(analyzer, g.dists, g.n_positive, g.n_negative, g.rows))
        if g.n_positive < settings.min_events and g.name != MISSING:
            msg = (
                f"only {g.n_positive} events (positive cases) in {name}={g.name}; its estimates are "
                f"imprecise (fewer than {settings.min_events})"
            )
            g_warn.append(msg)
            if g.eligible:
                warnings.append(msg)
        block["warnings"] = g_warn
        g.block = block

    eligible = [g for g in groups if g.eligible]
    section: dict[str, Any] = {
        "columns": list(columns),
        "cohort": cohort,
        "intersection": len(columns) > 1,
        "min_group_size": settings.min_group_size,
        "groups": {g.name: g.block for g in groups},
        "gap": {},
        "ratio": {},
        "vs_rest": {},
        "worst_group": {},
        "power": {},
        "prevalence_adjusted": None,
        "multiplicity": None,
        "warnings": warnings,
    }
    if len(eligible) < 2:
        reason = f"fewer than two groups of {name!r} reach the minimum group size of {settings.min_group_size}"
        section["gap"] = {m: Estimate.undefined(reason) for m in _gap_metric_names()}
        section["worst_group"] = {
            m: Estimate.undefined(reason) for m in metric_registry.keys(worst_group=True)
        }
        warnings.append(reason + "; no gaps")
        return section

    gap = section["gap"]
    power_metrics = set(settings.primary_metrics) | set(POWER_METRICS)
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
        level, min_defined = engine.settings.level, engine.settings.min_defined
        df = _units_df(analyzer, defined, metric)
        gap[metric] = range_estimate(
            dists,
            names,
            level=level,
            min_defined=min_defined,
            p_value=p_value,
            method="highest minus lowest group; " + method,
            df=df,
        )
        if metric_registry.get(metric).ratio and max(g.dists[metric].point for g in defined) > 0:
            section["ratio"][metric] = range_estimate(
                dists, names, level=level, min_defined=min_defined, log=True, df=df
            )
        if metric in power_metrics:
            section["power"][metric] = _gap_power(defined, metric, gap[metric], level)
    _equalized_odds(eligible, gap, engine, analyzer)
    for metric in metric_registry.keys(worst_group=True):
        defined = [g for g in eligible if metric in g.dists and np.isfinite(g.dists[metric].point)]
        if not defined:
            section["worst_group"][metric] = Estimate.undefined(
                f"{metric} is undefined in every group"
            )
            continue
        worst = min(defined, key=lambda g: (g.dists[metric].point, g.name))
        est = analyzer.estimate(worst.rows, metric, worst.dists[metric])
        section["worst_group"][metric] = dataclasses.replace(est, groups=(worst.name,))

    primary = [m for m in settings.primary_metrics if m in gap]
    for metric in primary:
        gap_family.add(gap, metric, f"{name}: {metric} gap")

    all_rows = rows
    for g in eligible:
        rest_rows = np.setdiff1d(all_rows, g.rows, assume_unique=True)
        if len(rest_rows) == 0:
            continue
        rest = analyzer.metrics(
            rest_rows, names=primary, fits=any(m in ("slope", "intercept") for m in primary)
        )
        block: dict[str, Any] = {}
        for metric in primary:
            if metric not in g.dists or metric not in rest:
                continue
            if not (np.isfinite(g.dists[metric].point) and np.isfinite(rest[metric].point)):
                block[metric] = Estimate.undefined(
                    f"{metric} is undefined in the group or in the rest"
                )
                continue
            diff = g.dists[metric] - rest[metric]
            block[metric] = engine.estimate(
                diff, p_value=bootstrap_z_test(diff), groups=(g.name, "rest")
            )
            vs_rest_family.add(block, metric, f"{name}={g.name} vs rest: {metric}")
        section["vs_rest"][g.name] = block

    if analyzer.arrays.is_binary:
        section["prevalence_adjusted"] = _prevalence_adjusted(rows, eligible, analyzer)
    return section


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


def _prevalence_adjusted(
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
