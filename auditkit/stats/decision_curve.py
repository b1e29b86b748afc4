"""Decision-curve analysis: the net benefit of acting on the model versus treating all or none.

At a threshold probability p_t (the risk at which a clinician is indifferent
between acting and not), the net benefit of a rule that acts when the score is
at or above p_t is

    NB(p_t) = TP/n − FP/n · p_t / (1 − p_t)

(Vickers & Elkin 2006, Med Decis Making 26:565; Vickers, van Calster &
Steyerberg 2019, Diagn Progn Res 3:18). "Treat all" acts on everyone,
NB_all = π − (1 − π) · p_t / (1 − p_t); "treat none" has NB = 0. The model is
useful at p_t when its net benefit exceeds both. The calls are those of the
``dcurves`` package (score >= threshold is positive), so its numbers and ours
agree on the same data.

The per-resample values come from the run's bootstrap weights (patient
clustered): TP and FP at each threshold are linear in the weights, so one
matrix product per class gives every resample at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse

from auditkit.errors import InvalidInputError
from auditkit.results import Estimate
from auditkit.stats.engine import Engine
from auditkit.stats.views import Batch, BinaryView

#: default threshold grid when the intended use names none: 1% to 50% in 1% steps.
DEFAULT_RANGE = (0.01, 0.50)
DEFAULT_STEP = 0.01


def threshold_grid(low: float, high: float, step: float) -> np.ndarray:
    """Return the thresholds low, low+step, ..., high (inclusive, rounded to 1e-9), each in (0, 1)."""
    if not (0.0 < low < 1.0 and 0.0 < high < 1.0 and low <= high):
        raise InvalidInputError(
            f"decision-curve thresholds must satisfy 0 < low <= high < 1, got low={low}, high={high}"
        )
    if step <= 0:
        raise InvalidInputError(f"decision-curve step must be positive, got {step}")
    n = int(np.floor((high - low) / step + 1e-9)) + 1
    return np.round(low + step * np.arange(n), 9)


def _odds(thresholds: np.ndarray) -> np.ndarray:
    return thresholds / (1.0 - thresholds)


def net_benefit(y_true: np.ndarray, y_score: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Return the model's net benefit at each threshold, shape ``(m,)``: TP/n − FP/n · p_t/(1 − p_t)."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(y_score, dtype=np.float64)
    t = np.asarray(thresholds, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise InvalidInputError(f"y_true and y_score must be 1-D of one length, got {y.shape} and {s.shape}")
    n = y.size
    if n == 0:
        return np.full(t.shape, np.nan)
    calls = s[None, :] >= t[:, None]
    tp = (calls & y[None, :]).sum(axis=1)
    fp = (calls & ~y[None, :]).sum(axis=1)
    return tp / n - fp / n * _odds(t)


def treat_all_net_benefit(y_true: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Return the net benefit of treating everyone at each threshold, shape ``(m,)``: π − (1 − π)·p_t/(1 − p_t)."""
    y = np.asarray(y_true).astype(bool)
    t = np.asarray(thresholds, dtype=np.float64)
    if y.size == 0:
        return np.full(t.shape, np.nan)
    prev = y.mean()
    return prev - (1.0 - prev) * _odds(t)


def net_benefit_statistic(thresholds: np.ndarray):  # type: ignore[no-untyped-def]
    """Return an engine statistic ``Batch -> {"model", "all", "advantage"}``, each (R, m).

    ``advantage`` is the model's net benefit minus the better of treat-all and
    treat-none, per resample: positive where the model is worth using.
    """
    t = np.asarray(thresholds, dtype=np.float64)
    odds = _odds(t)

    def calls(scores: np.ndarray, w: np.ndarray) -> np.ndarray:
        # weight of the rows scored >= each threshold, (R, m): the rows' weights summed per
        # threshold interval (a sparse one-hot, n non-zeros: no (m, n) dense indicator), then
        # accumulated from the top threshold down
        if scores.size == 0:
            return np.zeros((w.shape[1], len(t)))
        interval = np.searchsorted(t, scores, side="right")  # thresholds <= score
        onehot = sparse.csr_matrix(
            (np.ones(scores.size), (interval, np.arange(scores.size))), shape=(len(t) + 1, scores.size)
        )
        per_interval = np.asarray(onehot @ w, dtype=np.float64)  # (m + 1, R)
        at_or_above = np.cumsum(per_interval[::-1], axis=0)[::-1]  # rows in interval >= j+1 pass t_j
        return at_or_above[1:].T

    def statistic(batch: Batch) -> dict[str, np.ndarray]:
        view = batch.view
        tp = calls(view.s_pos, batch.w_pos)
        fp = calls(view.s_neg, batch.w_neg)
        n_pos, n_neg = batch.pos_total[:, None], batch.neg_total[:, None]
        n = n_pos + n_neg
        with np.errstate(divide="ignore", invalid="ignore"):
            model = tp / n - fp / n * odds[None, :]
            treat_all = n_pos / n - n_neg / n * odds[None, :]
        best_default = np.maximum(treat_all, 0.0)
        return {"model": model, "all": treat_all, "advantage": model - best_default}

    return statistic


@dataclass(frozen=True)
class DecisionCurve:
    """A decision curve on a threshold grid: point values and pointwise bootstrap bands."""

    thresholds: np.ndarray
    model: np.ndarray
    model_low: np.ndarray
    model_high: np.ndarray
    treat_all: np.ndarray
    advantage: np.ndarray
    advantage_low: np.ndarray
    advantage_high: np.ndarray
    n: int
    prevalence: float

    def to_dict(self) -> dict[str, Any]:
        """Return the curve as JSON-ready lists (NaN as None)."""

        def clean(a: np.ndarray) -> list[float | None]:
            return [float(v) if np.isfinite(v) else None for v in np.asarray(a, dtype=np.float64)]

        return {
            "thresholds": clean(self.thresholds),
            "model": clean(self.model),
            "model_low": clean(self.model_low),
            "model_high": clean(self.model_high),
            "treat_all": clean(self.treat_all),
            "treat_none": [0.0] * len(self.thresholds),
            "advantage": clean(self.advantage),
            "advantage_low": clean(self.advantage_low),
            "advantage_high": clean(self.advantage_high),
            "n": self.n,
            "prevalence": self.prevalence,
        }


def decision_curve(engine: Engine, view: BinaryView, thresholds: np.ndarray) -> DecisionCurve:
    """Return the decision curve of ``view`` with the run's pointwise percentile bands."""
    t = np.asarray(thresholds, dtype=np.float64)
    curves = engine.evaluate_curves(view, net_benefit_statistic(t))
    lo, hi = engine.percentile_band(curves.boot["model"])
    alo, ahi = engine.percentile_band(curves.boot["advantage"])
    n = view.n
    return DecisionCurve(
        thresholds=t,
        model=curves.point["model"],
        model_low=lo,
        model_high=hi,
        treat_all=curves.point["all"],
        advantage=curves.point["advantage"],
        advantage_low=alo,
        advantage_high=ahi,
        n=n,
        prevalence=float(view.n_pos / n) if n else float("nan"),
    )


def net_benefit_at_many(
    engine: Engine, view: BinaryView, thresholds: np.ndarray
) -> list[dict[str, Estimate]]:
    """Return, per threshold, Estimates of the model's net benefit, treat-all's and the advantage.

    One pass of the engine for every threshold (one statistic returning them all).
    """
    t = np.asarray(thresholds, dtype=np.float64)
    if view.n_pos == 0 or view.n_neg == 0:
        reason = "the cohort has only one class, so net benefit against treat-all is not informative"
        return [{k: Estimate.undefined(reason) for k in ("net_benefit", "net_benefit_all", "advantage")} for _ in t]
    stat = net_benefit_statistic(t)

    def scalars(batch: Batch) -> dict[str, np.ndarray]:
        return {f"{k}\x1f{j}": v[:, j] for k, v in stat(batch).items() for j in range(len(t))}

    dists = engine.evaluate(view, scalars)
    method = "net benefit (Vickers & Elkin 2006), patient-clustered bootstrap interval"
    return [
        {
            "net_benefit": engine.estimate(dists[f"model\x1f{j}"], method=method),
            "net_benefit_all": engine.estimate(dists[f"all\x1f{j}"], method=method),
            "advantage": engine.estimate(dists[f"advantage\x1f{j}"], method=method),
        }
        for j in range(len(t))
    ]


def net_benefit_at(engine: Engine, view: BinaryView, threshold: float) -> dict[str, Estimate]:
    """Return Estimates of the model's net benefit, treat-all's and the advantage at one threshold."""
    return net_benefit_at_many(engine, view, np.array([float(threshold)]))[0]
