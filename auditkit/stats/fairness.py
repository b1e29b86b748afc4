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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from auditkit.results import Estimate
from auditkit.results.section import Section
from auditkit.stats import metrics as metric_registry
from auditkit.stats.bootstrap import Distribution
from auditkit.stats.cohort import (
    CohortAnalyzer,
    undefined_reason,
)
from auditkit.stats.fairness_gaps import (
    _gap_metric_names,
    _Group,
    _metric_names,
    gaps,
    prevalence_adjusted,
    vs_rest,
    worst_groups,
)
from auditkit.stats.multiplicity import adjust_p_values
from auditkit.stats.proportions import proportion

MISSING = "(missing)"


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


@dataclass(frozen=True)
class FairnessAttribute(Section):
    """results.json ``fairness.<attribute>``: one attribute (or intersection) on one cohort."""

    columns: tuple[str, ...]
    cohort: str
    intersection: bool
    min_group_size: int
    groups: Mapping[str, Mapping[str, Any]]
    gap: Mapping[str, Estimate]
    ratio: Mapping[str, Estimate]
    vs_rest: Mapping[str, Mapping[str, Estimate]]
    worst_group: Mapping[str, Estimate]
    power: Mapping[str, Any]
    prevalence_adjusted: Mapping[str, Any] | None
    multiplicity: Mapping[str, Any] | None
    warnings: tuple[str, ...]

    @property
    def name(self) -> str:
        """Return the attribute's name (an intersection's columns joined by ``+``)."""
        return "+".join(self.columns)

    def primary(self, metrics: Sequence[str]) -> list[str]:
        """Return the pre-declared primary metrics that have a gap here, in declaration order."""
        return [m for m in metrics if m in self.gap]

    def register(
        self, metrics: Sequence[str], gap_family: ComparisonFamily, vs_rest_family: ComparisonFamily
    ) -> None:
        """Add this section's primary gap tests and vs-rest tests to their families (nothing is changed)."""
        for metric in self.primary(metrics):
            gap_family.add(self.gap, metric, f"{self.name}: {metric} gap")
        for group, block in self.vs_rest.items():
            for metric in block:
                vs_rest_family.add(block, metric, f"{self.name}={group} vs rest: {metric}")

    def with_adjusted(
        self, adjusted: list[tuple[Mapping[str, Any], str, Estimate]], multiplicity: Mapping[str, Any] | None
    ) -> FairnessAttribute:
        """Return a copy with the family's adjusted Estimates in place and ``multiplicity`` set."""
        return dataclasses.replace(
            self,
            gap=_replaced(self.gap, adjusted),
            vs_rest={g: _replaced(block, adjusted) for g, block in self.vs_rest.items()},
            multiplicity=multiplicity,
        )


def _replaced(
    container: Mapping[str, Any], adjusted: list[tuple[Mapping[str, Any], str, Estimate]]
) -> dict[str, Any]:
    """Return ``container`` as a dict with the adjusted copies registered from it (matched by identity)."""
    out = dict(container)
    for source, key, estimate in adjusted:
        if source is container:
            out[key] = estimate
    return out


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
    patients: np.ndarray | None = None,
) -> FairnessAttribute:
    """Return the results.json ``fairness.<attribute>`` section for one attribute on one cohort.

    ``labels`` (len(rows),) is each cohort row's group; ``rows`` the table
    rows of the cohort; ``patients`` (n_table,) patient ids for n_patients.
    Its p-values are unadjusted: :meth:`FairnessAttribute.register` puts its
    tests in their families and :meth:`FairnessAttribute.with_adjusted`
    returns the adjusted copy.
    """
    name = "+".join(columns)
    warnings: list[str] = []
    groups = _make_groups(labels, rows, analyzer, name, cohort, settings, warnings)
    for g in groups:
        g.block = _group_block(g, analyzer, name, settings, patients, warnings)
    eligible = [g for g in groups if g.eligible]
    parts: dict[str, Any] = {
        "columns": tuple(columns),
        "cohort": cohort,
        "intersection": len(columns) > 1,
        "min_group_size": settings.min_group_size,
        "groups": {g.name: g.block for g in groups},
        "multiplicity": None,
    }
    if len(eligible) < 2:
        reason = f"fewer than two groups of {name!r} reach the minimum group size of {settings.min_group_size}"
        warnings.append(reason + "; no gaps")
        return FairnessAttribute(
            **parts,
            gap={m: Estimate.undefined(reason) for m in _gap_metric_names()},
            ratio={},
            vs_rest={},
            worst_group={m: Estimate.undefined(reason) for m in metric_registry.keys(worst_group=True)},
            power={},
            prevalence_adjusted=None,
            warnings=tuple(warnings),
        )
    gap, ratio, power = gaps(eligible, analyzer, tuple(settings.primary_metrics))
    primary = [m for m in settings.primary_metrics if m in gap]
    return FairnessAttribute(
        **parts,
        gap=gap,
        ratio=ratio,
        vs_rest=vs_rest(rows, eligible, analyzer, primary),
        worst_group=worst_groups(eligible, analyzer),
        power=power,
        prevalence_adjusted=prevalence_adjusted(rows, eligible, analyzer) if analyzer.arrays.is_binary else None,
        warnings=tuple(warnings),
    )


def _make_groups(
    labels: pd.Series,
    rows: np.ndarray,
    analyzer: CohortAnalyzer,
    name: str,
    cohort: str,
    settings: FairnessSettings,
    warnings: list[str],
) -> list[_Group]:
    """Return the attribute's groups (missing values last), each with its rows, counts and eligibility."""
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
    return groups


def _group_block(
    g: _Group,
    analyzer: CohortAnalyzer,
    name: str,
    settings: FairnessSettings,
    patients: np.ndarray | None,
    warnings: list[str],
) -> dict[str, Any]:
    """Return ``groups.<value>``: sizes, prevalence and every metric (undefined below the minimum size).

    Fills ``g.dists`` for an eligible group; appends the section-level warnings.
    """
    clustered = analyzer.arrays.clusters is not None
    y_bin = analyzer.arrays.y[g.rows] == 1 if analyzer.arrays.is_binary else None
    prev = proportion(
        y_bin if y_bin is not None else np.zeros(len(g.rows)),
        clusters=analyzer.arrays.clusters[g.rows] if clustered else None,
        level=analyzer.engine.settings.level,
    )
    block: dict[str, Any] = {
        "n": len(g.rows),
        "n_patients": len(np.unique(patients[g.rows])) if patients is not None else len(g.rows),
        "n_positive": g.n_positive,
    }
    if y_bin is not None:
        block["prevalence"] = Estimate(prev.estimate, prev.ci_low, prev.ci_high, method=prev.method)
    g_warn: list[str] = []
    if g.name == MISSING:
        g_warn.append(f"{len(g.rows)} cases have no value for {name!r}; they are reported but left out of gaps")
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
    return block
