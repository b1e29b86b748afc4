"""Per-cohort blocks of results.json: ``cohorts.<c>``, ``discrimination.<c>`` and ``calibration.<c>``."""

from __future__ import annotations

from typing import Any

import numpy as np

from auditkit.analysis.context import (
    GATED_CALIBRATION_ERROR,
    MIN_EVENTS_CALIBRATION,
    MIN_EVENTS_EXTERNAL,
    AnalysisContext,
)
from auditkit.results import Estimate
from auditkit.stats import metrics as metric_registry
from auditkit.stats.bootstrap import (
    Distribution,
)
from auditkit.stats.cohort import undefined_reason
from auditkit.stats.delong import delong_interval
from auditkit.stats.proportions import proportion

# --------------------------------------------------------------------------- blocks


def _estimates(
    ctx: AnalysisContext, dists: dict[str, Distribution], rows: np.ndarray, names: tuple[str, ...]
) -> dict[str, Estimate]:
    n_pos, n_neg = ctx.analyzer.counts(rows)
    return {
        m: ctx.analyzer.estimate(
            rows, m, dists[m], reason=undefined_reason(m, n_positive=n_pos, n_negative=n_neg)
        )
        for m in names
        if m in dists
    }


def _auroc_estimate(
    ctx: AnalysisContext, dists: dict[str, Distribution], rows: np.ndarray
) -> Estimate:
    est = _estimates(ctx, dists, rows, ("auroc",))["auroc"]
    if ctx.settings.auroc_ci == "delong" and ctx.binary and not ctx.clustered and est.defined:
        y = (ctx.analyzer.arrays.y[rows] == 1).astype(np.int64)
        res = delong_interval(y, ctx.analyzer.arrays.probs[rows, 1], level=ctx.run.ci_level)
        return Estimate(
            res.estimate, res.ci_low, res.ci_high, p_value=res.p_value, method=res.method
        )
    return est


def _discrimination_block(ctx: AnalysisContext, name: str, rows: np.ndarray) -> dict[str, Any]:
    dists = ctx.metrics[name]
    block: dict[str, Any] = dict(
        _estimates(ctx, dists, rows, metric_registry.discrimination_keys())
    )
    block["auroc"] = _auroc_estimate(ctx, dists, rows)
    arrays = ctx.analyzer.arrays
    y = arrays.y[rows]
    if ctx.binary:
        threshold = ctx.analyzer.threshold
        call = arrays.probs[rows, 1] >= threshold
        block["confusion_matrix"] = {
            "tp": int((call & (y == 1)).sum()),
            "fp": int((call & (y == 0)).sum()),
            "tn": int((~call & (y == 0)).sum()),
            "fn": int((~call & (y == 1)).sum()),
            "threshold": threshold,
        }
        return block
    classes = ctx.table.classes.classes
    k = len(classes)
    matrix = np.zeros((k, k), dtype=np.int64)
    np.add.at(matrix, (y, arrays.predicted[rows]), 1)
    block["per_class"] = {
        cls: _estimates(
            ctx,
            {m.split("/")[0]: d for m, d in dists.items() if m.endswith(f"/{i}")},
            rows,
            metric_registry.discrimination_keys(),
        )
        for i, cls in enumerate(classes)
    }
    block["macro"] = _estimates(
        ctx,
        {m.split("/")[0]: d for m, d in dists.items() if m.endswith("/macro")},
        rows,
        metric_registry.discrimination_keys(),
    )
    block["confusion_matrix"] = {
        "labels": list(classes),
        "matrix": matrix.tolist(),
        "decision": "argmax",
    }
    return block


def _calibration_block(ctx: AnalysisContext, name: str, rows: np.ndarray) -> dict[str, Any]:
    dists = ctx.metrics[name]
    block: dict[str, Any] = dict(_estimates(ctx, dists, rows, metric_registry.calibration_keys()))
    block.update(ctx.analyzer.calibration_details(rows))
    block["binning"] = metric_registry.binning_text(ctx.settings.n_bins)
    # the estimator's binning follows n_bins, as the binning text does
    block["gated_calibration_error"] = {
        **GATED_CALIBRATION_ERROR,
        "estimator": GATED_CALIBRATION_ERROR["estimator"].replace(
            "15 equal-mass", f"{ctx.settings.n_bins} equal-mass"
        ),
    }
    if not ctx.binary:
        block["scope"] = (
            "top-label confidence vs correctness (Guo et al. 2017); brier is the multi-class Brier score"
        )
        block["per_class"] = {
            cls: _estimates(
                ctx,
                {m.split("/")[0]: d for m, d in dists.items() if m.endswith(f"/{i}")},
                rows,
                metric_registry.calibration_keys(),
            )
            for i, cls in enumerate(ctx.table.classes.classes)
        }
    return block


def _cohort_section(ctx: AnalysisContext, name: str, rows: np.ndarray) -> dict[str, Any]:
    frame = ctx.frame.iloc[rows]
    n_pos, n_neg = ctx.analyzer.counts(rows)
    patients = frame["patient_id"] if "patient_id" in frame.columns else frame["id"]
    clusters = patients.to_numpy() if "patient_id" in frame.columns else None
    warnings: list[str] = []
    section: dict[str, Any] = {
        "role": ctx.roles[name],
        "n_images": len(rows),
        "n_patients": int(patients.nunique()),
        "n_positive": n_pos,
        "n_negative": n_neg,
    }
    if ctx.binary:
        prev = proportion(
            (ctx.analyzer.arrays.y[rows] == 1).astype(float),
            clusters=clusters,
            level=ctx.run.ci_level,
        )
        section["prevalence"] = Estimate(
            prev.estimate, prev.ci_low, prev.ci_high, method=prev.method
        )
    else:
        counts = np.bincount(ctx.analyzer.arrays.y[rows], minlength=len(ctx.table.classes.classes))
        section["class_counts"] = {
            c: int(v) for c, v in zip(ctx.table.classes.classes, counts, strict=True)
        }
        section["events_note"] = (
            "multi-class: n_positive counts the rarest class (the binding one-vs-rest event count)"
        )
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
    for w in warnings:
        ctx.warn("cohort_events", w, f"cohorts.{name}")
    section["warnings"] = warnings
    return section
