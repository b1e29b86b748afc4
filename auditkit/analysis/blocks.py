"""Per-cohort blocks of results.json: ``cohorts.<c>``, ``discrimination.<c>`` and ``calibration.<c>``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from auditkit.analysis.context import (
    GATED_CALIBRATION_ERROR,
    MIN_EVENTS_CALIBRATION,
    MIN_EVENTS_EXTERNAL,
    AnalysisContext,
)
from auditkit.analysis.sections import CalibrationBlock, CohortSummary, DiscriminationBlock
from auditkit.results import Estimate
from auditkit.results.section import Caveat
from auditkit.stats import metrics as metric_registry
from auditkit.stats.bootstrap import (
    Distribution,
)
from auditkit.stats.cohort import undefined_reason
from auditkit.stats.delong import delong_interval
from auditkit.stats.proportions import proportion

# --------------------------------------------------------------------------- blocks


def _estimates(
    ctx: AnalysisContext, dists: Mapping[str, Distribution], rows: np.ndarray, names: tuple[str, ...]
) -> dict[str, Estimate]:
    """Return the Estimates of ``names`` (those with a distribution), undefined ones with their reason."""
    n_pos, n_neg = ctx.analyzer.counts(rows)
    return {
        m: ctx.analyzer.estimate(
            rows, m, dists[m], reason=undefined_reason(m, n_positive=n_pos, n_negative=n_neg)
        )
        for m in names
        if m in dists
    }


def _auroc_estimate(
    ctx: AnalysisContext, dists: Mapping[str, Distribution], rows: np.ndarray
) -> Estimate:
    """Return the AUROC: DeLong's interval when asked and images are independent, else the bootstrap's."""
    est = _estimates(ctx, dists, rows, ("auroc",))["auroc"]
    if ctx.settings.auroc_ci == "delong" and ctx.binary and not ctx.clustered and est.defined:
        y = (ctx.analyzer.arrays.y[rows] == 1).astype(np.int64)
        res = delong_interval(y, ctx.analyzer.arrays.probs[rows, 1], level=ctx.run.ci_level)
        return Estimate(
            res.estimate, res.ci_low, res.ci_high, p_value=res.p_value, method=res.method
        )
    return est


def _per_class(
    ctx: AnalysisContext, dists: Mapping[str, Distribution], rows: np.ndarray, names: tuple[str, ...]
) -> dict[str, dict[str, Estimate]]:
    """Return each class's one-vs-rest Estimates (the ``metric/<index>`` distributions)."""
    return {
        cls: _estimates(ctx, {m.split("/")[0]: d for m, d in dists.items() if m.endswith(f"/{i}")}, rows, names)
        for i, cls in enumerate(ctx.table.classes.classes)
    }


def _discrimination_block(ctx: AnalysisContext, name: str, rows: np.ndarray) -> DiscriminationBlock:
    """Return one cohort's discrimination block: the registry's metrics and the confusion matrix."""
    dists = ctx.metrics[name]
    keys = metric_registry.discrimination_keys()
    estimates: dict[str, Estimate] = dict(_estimates(ctx, dists, rows, keys))
    estimates["auroc"] = _auroc_estimate(ctx, dists, rows)
    arrays = ctx.analyzer.arrays
    y = arrays.y[rows]
    if ctx.binary:
        threshold = ctx.analyzer.threshold
        call = arrays.probs[rows, 1] >= threshold
        matrix = {
            "tp": int((call & (y == 1)).sum()),
            "fp": int((call & (y == 0)).sum()),
            "tn": int((~call & (y == 0)).sum()),
            "fn": int((~call & (y == 1)).sum()),
            "threshold": threshold,
        }
        return DiscriminationBlock(estimates=estimates, confusion_matrix=matrix)
    classes = ctx.table.classes.classes
    k = len(classes)
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (y, arrays.predicted[rows]), 1)
    return DiscriminationBlock(
        estimates=estimates,
        per_class=_per_class(ctx, dists, rows, keys),
        macro=_estimates(ctx, {m.split("/")[0]: d for m, d in dists.items() if m.endswith("/macro")}, rows, keys),
        confusion_matrix={"labels": list(classes), "matrix": counts.tolist(), "decision": "argmax"},
    )


def _calibration_block(ctx: AnalysisContext, name: str, rows: np.ndarray) -> CalibrationBlock:
    """Return one cohort's calibration block: the registry's metrics, curves and the binning it used."""
    dists = ctx.metrics[name]
    n_bins = ctx.settings.n_bins
    return CalibrationBlock(
        estimates=_estimates(ctx, dists, rows, metric_registry.calibration_keys()),
        details=ctx.analyzer.calibration_details(rows),
        binning=metric_registry.binning_text(n_bins),
        # the estimator's binning follows n_bins, as the binning text does
        gated_calibration_error={
            **GATED_CALIBRATION_ERROR,
            "estimator": GATED_CALIBRATION_ERROR["estimator"].replace("15 equal-mass", f"{n_bins} equal-mass"),
        },
        scope=None
        if ctx.binary
        else "top-label confidence vs correctness (Guo et al. 2017); brier is the multi-class Brier score",
        per_class=None if ctx.binary else _per_class(ctx, dists, rows, metric_registry.calibration_keys()),
    )


def _cohort_section(ctx: AnalysisContext, name: str, rows: np.ndarray) -> CohortSummary:
    """Return ``cohorts.<name>``: role, sizes, prevalence or class counts, and its event-count caveats."""
    frame = ctx.frame.iloc[rows]
    n_pos, n_neg = ctx.analyzer.counts(rows)
    patients = frame["patient_id"] if "patient_id" in frame.columns else frame["id"]
    clusters = patients.to_numpy() if "patient_id" in frame.columns else None
    extra: dict[str, Any] = {}
    if ctx.binary:
        prev = proportion((ctx.analyzer.arrays.y[rows] == 1).astype(float), clusters=clusters, level=ctx.run.ci_level)
        extra["prevalence"] = Estimate(prev.estimate, prev.ci_low, prev.ci_high, method=prev.method)
    else:
        counts = np.bincount(ctx.analyzer.arrays.y[rows], minlength=len(ctx.table.classes.classes))
        extra["class_counts"] = {c: int(v) for c, v in zip(ctx.table.classes.classes, counts, strict=True)}
        extra["events_note"] = "multi-class: n_positive counts the rarest class (the binding one-vs-rest event count)"
    warnings = _event_warnings(ctx, name, n_pos, n_neg)
    return CohortSummary(
        role=ctx.roles[name],
        n_images=len(rows),
        n_patients=int(patients.nunique()),
        n_positive=n_pos,
        n_negative=n_neg,
        **extra,
        warnings=tuple(warnings),
        caveats=tuple(Caveat("cohort_events", w, f"cohorts.{name}") for w in warnings),
    )


def _event_warnings(ctx: AnalysisContext, name: str, n_pos: int, n_neg: int) -> list[str]:
    """Return the cohort's too-few-events warnings (Collins et al. 2016; Van Calster et al. 2016)."""
    warnings: list[str] = []
    if ctx.roles[name] != "validation":
        if n_pos < MIN_EVENTS_EXTERNAL:
            warnings.append(
                f"{n_pos} events (positive cases) in {name}: fewer than {MIN_EVENTS_EXTERNAL}, the minimum for a "
                "validation cohort (Collins et al. 2016); estimates are imprecise"
            )
        if n_pos < MIN_EVENTS_CALIBRATION or n_neg < MIN_EVENTS_CALIBRATION:
            warnings.append(
                f"{n_pos} events and {n_neg} non-events in {name}: flexible calibration curves need at least "
                f"{MIN_EVENTS_CALIBRATION} of each (Van Calster et al. 2016); read the smooth curve with care"
            )
    elif ctx.binary and n_pos < MIN_EVENTS_EXTERNAL:
        warnings.append(
            f"{n_pos} events in the validation split: the operating point and recalibration are fitted on few events"
        )
    return warnings
