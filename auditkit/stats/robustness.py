"""Robustness and precision statistics from scores of the same images under declared perturbations.

Per condition (perturbation x severity), on the same rows and so under the
same bootstrap weights (paired):

* AUROC and sensitivity at the operating point, and their drop from the
  unperturbed images (unperturbed − perturbed, positive = worse), with
  patient-clustered bootstrap intervals and bootstrap z-test p-values;
* the flip rate: the share of images whose call at the operating point
  changes, and the mean absolute score change.

Precision (FDA AI-enabled device draft guidance, Jan 2025, App. C;
CLSI EP05 terms): the per-image SD and coefficient of variation (%CV =
100·SD/mean) of the score over the unperturbed image and its mildest
perturbations, summarised by their median and 95th percentile. Test-retest
on images acquired twice: the within-subject SD over repeat groups and the
repeatability coefficient 2.77·s_w (Bland & Altman 1999), with the share of
groups whose calls disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from auditkit.results import Estimate
from auditkit.stats.bootstrap import bootstrap_z_test
from auditkit.stats.engine import Engine
from auditkit.stats.views import BinaryView, FeatureSpec, LinearView


def _auroc_sens(batch):  # type: ignore[no-untyped-def]
    _, pos = batch.sums("threshold")
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"auroc": batch.auroc(), "sensitivity": pos[:, 0] / batch.pos_total}


def _flip_statistic(sums: np.ndarray) -> dict[str, np.ndarray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"flip_rate": sums[:, 1] / sums[:, 0], "mean_abs_change": sums[:, 2] / sums[:, 0]}


def condition_effects(
    engine: Engine,
    rows: np.ndarray,
    y_true: np.ndarray,
    base: np.ndarray,
    perturbed: Mapping[str, np.ndarray],
    *,
    threshold: float,
) -> dict[str, Any]:
    """Return per condition key: AUROC, sensitivity, their drops (Estimates), flip rate, mean |Δscore|.

    ``base`` and every ``perturbed[key]`` are positive-class scores aligned
    with ``rows`` (table rows the engine covers) and ``y_true`` (0/1).
    """
    rows = np.asarray(rows, np.int64)
    y = np.asarray(y_true, np.int64)
    spec = FeatureSpec(threshold=float(threshold))
    ref = engine.evaluate(BinaryView.from_arrays(rows, y, np.asarray(base, np.float64), spec=spec), _auroc_sens)
    out: dict[str, Any] = {
        "none": {"auroc": engine.estimate(ref["auroc"]), "sensitivity": engine.estimate(ref["sensitivity"])}
    }
    base_call = np.asarray(base) >= threshold
    for key, scores in perturbed.items():
        s = np.asarray(scores, np.float64)
        d = engine.evaluate(BinaryView.from_arrays(rows, y, s, spec=spec), _auroc_sens)
        drops = {m: ref[m] - d[m] for m in ("auroc", "sensitivity")}
        feats = np.vstack([np.ones(len(rows)), ((s >= threshold) != base_call).astype(np.float64), np.abs(s - base)])
        flips = engine.evaluate(LinearView(rows, np.ascontiguousarray(feats)), _flip_statistic)
        out[key] = {
            "auroc": engine.estimate(d["auroc"]),
            "sensitivity": engine.estimate(d["sensitivity"]),
            "auroc_drop": engine.estimate(drops["auroc"], p_value=bootstrap_z_test(drops["auroc"])),
            "sensitivity_drop": engine.estimate(
                drops["sensitivity"], p_value=bootstrap_z_test(drops["sensitivity"])
            ),
            "flip_rate": engine.estimate(flips["flip_rate"]),
            "mean_abs_change": engine.estimate(flips["mean_abs_change"]),
        }
    return out


def precision_summary(base: np.ndarray, mild: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Return the per-image score SD and %CV over the unperturbed and mildest perturbed copies.

    Summaries: median and 95th percentile of the SD; median %CV over images
    whose mean score is at least 0.01 (a CV of a near-zero mean is not
    informative).
    """
    stack = np.column_stack([np.asarray(base, np.float64), *[np.asarray(v, np.float64) for v in mild.values()]])
    sd = stack.std(axis=1, ddof=1) if stack.shape[1] > 1 else np.zeros(len(stack))
    mean = stack.mean(axis=1)
    ok = mean >= 0.01
    cv = 100.0 * sd[ok] / mean[ok]
    return {
        "n_images": len(stack),
        "n_conditions": int(stack.shape[1]),
        "conditions": ["none", *mild.keys()],
        "sd_median": float(np.median(sd)) if len(sd) else None,
        "sd_p95": float(np.quantile(sd, 0.95)) if len(sd) else None,
        "cv_percent_median": float(np.median(cv)) if len(cv) else None,
        "cv_percent_p95": float(np.quantile(cv, 0.95)) if len(cv) else None,
        "per_image_sd": sd,
    }


def repeatability(
    groups: np.ndarray, scores: np.ndarray, *, threshold: float | None = None
) -> dict[str, Any] | None:
    """Return within-subject SD, repeatability coefficient and call disagreement over repeat groups.

    ``groups`` labels images acquired of the same subject under the same
    conditions (a repeat group; NaN/None = not repeated). ``None`` when no
    group has two images.
    """
    frame = pd.DataFrame({"g": groups, "s": np.asarray(scores, np.float64)}).dropna(subset=["g"])
    sizes = frame.groupby("g")["s"].transform("size")
    frame = frame[sizes >= 2]
    if frame.empty:
        return None
    grouped = frame.groupby("g")["s"]
    var = grouped.var(ddof=1)
    k = grouped.size()
    # pooled within-subject variance: sum of (k_i - 1) s_i^2 over sum of (k_i - 1)
    s_w = float(np.sqrt(((k - 1) * var).sum() / (k - 1).sum()))
    out: dict[str, Any] = {
        "n_groups": len(k),
        "n_images": int(k.sum()),
        "within_subject_sd": s_w,
        "repeatability_coefficient": 2.77 * s_w,
        "method": "pooled within-subject SD over repeat groups; RC = 2.77 s_w (Bland & Altman 1999)",
    }
    if threshold is not None:
        calls = (frame["s"] >= threshold).groupby(frame["g"])
        out["call_disagreement"] = float((calls.nunique() > 1).mean())
    return out


def worst_condition(effects: Mapping[str, Any], metric: str = "auroc_drop") -> Estimate:
    """Return the largest drop of ``metric`` over the conditions, its condition in ``groups``."""
    best: tuple[float, str, Estimate] | None = None
    for key, rec in effects.items():
        est = rec.get(metric) if isinstance(rec, Mapping) else None
        if isinstance(est, Estimate) and est.defined and (best is None or est.estimate > best[0]):
            best = (est.estimate, key, est)
    if best is None:
        return Estimate.undefined(f"no condition has a defined {metric}")
    e = best[2]
    return Estimate(e.estimate, e.ci_low, e.ci_high, e.p_value, method=e.method, groups=(best[1],))
