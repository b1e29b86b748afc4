"""Every metric of a set of table rows (a cohort or a subgroup), as bootstrap distributions.

:class:`CohortAnalyzer` turns row indices into views and runs the
discrimination and calibration statistics through the run's
:class:`~auditkit.stats.engine.Engine`, so a cohort, a subgroup and the rest
of a cohort all use the same resamples. Binary tasks use the positive-class
probability; multi-class tasks are analysed one-vs-rest per class, with the
top-label confidence for calibration (Guo et al. 2017) and the argmax
decision for the confusion matrix; macro averages are means over classes
within each resample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from auditkit.results import Estimate
from auditkit.stats import metrics as metric_registry
from auditkit.stats.bootstrap import Distribution
from auditkit.stats.calibration import (
    brier_decomposition_from_batch,
    calibration_spec,
    calibration_statistic,
    reliability_from_batch,
    smooth_bandwidth,
    smooth_grid,
    smooth_statistic,
)
from auditkit.stats.curves import (
    FPR_GRID,
    RECALL_GRID,
    pr_statistic,
    roc_statistic,
    score_histogram,
)
from auditkit.stats.delong import delong_variance
from auditkit.stats.discrimination import (
    discrimination_statistic,
    multiclass_confusion_statistic,
    threshold_rates,
)
from auditkit.stats.engine import Engine
from auditkit.stats.intervals import (
    NORMAL_INTERVAL_METRICS,
    PROPORTION_METRICS,
    exact_proportion_estimate,
    is_degenerate,
    normal_estimate,
)
from auditkit.stats.views import Batch, BinaryView, LinearView

#: metrics that change when a group's classes are reweighted to another prevalence (the registry's).
#: results.json ``method`` of the normal-interval metrics (the registry's ``interval`` says which).
NORMAL_INTERVAL_TEXT = {
    "ece_l1_debiased": "Gaussian-debiased L1 calibration error on equal-mass bins (Kumar et al. 2019); "
    "CI: point ± z·bootstrap SE, floored at 0",
    "ece_debiased": "debiased L2 calibration error on equal-mass bins (Kumar et al. 2019); "
    "CI: point ± z·bootstrap SE, floored at 0",
}
PREVALENCE_DEPENDENT = metric_registry.prevalence_dependent_keys()
#: metrics that condition on the true class, so reweighting the classes leaves them unchanged.
PREVALENCE_FREE = metric_registry.prevalence_free_keys()


def undefined_reason(metric: str, *, n_positive: int, n_negative: int) -> str:
    """Return why ``metric`` is undefined in a sample with these class counts (one sentence)."""
    return metric_registry.undefined_reason(metric, n_positive=n_positive, n_negative=n_negative)


@dataclass(frozen=True, eq=False)
class TaskArrays:
    """The predictions table as arrays: labels, class probabilities, classes, clusters."""

    y: np.ndarray
    """(n,) int64 class indices."""
    probs: np.ndarray
    """(n, K) float64 class probabilities (binary: column 1 is the positive class)."""
    classes: tuple[str, ...]
    clusters: np.ndarray | None = None
    """(n,) cluster (patient) codes, or None when every image is its own patient."""

    @property
    def n_classes(self) -> int:
        """Return K."""
        return len(self.classes)

    @property
    def is_binary(self) -> bool:
        """Return whether the task has two classes."""
        return self.n_classes == 2

    @property
    def predicted(self) -> np.ndarray:
        """Return the argmax class of each row (int64, (n,))."""
        return np.argmax(self.probs, axis=1)


class CohortAnalyzer:
    """Discrimination, calibration and curves of row subsets, on the run's resamples."""

    def __init__(
        self, arrays: TaskArrays, engine: Engine, *, threshold: float | None, n_bins: int = 15
    ) -> None:
        self.arrays = arrays
        self.engine = engine
        self.threshold = threshold
        self.n_bins = n_bins

    # ------------------------------------------------------------------ views

    def binary_view(
        self,
        rows: np.ndarray,
        *,
        klass: int | None = None,
        scores: np.ndarray | None = None,
        smooth: bool = False,
    ) -> BinaryView:
        """Return the view of ``rows``: positive class (or ``klass`` one-vs-rest) with its probability.

        ``scores`` (n_table,) overrides the score column (recalibrated scores).
        """
        a = self.arrays
        k = 1 if klass is None else klass
        y = (a.y[rows] == k).astype(np.int64)
        s = (a.probs[rows, k] if scores is None else scores[rows]).astype(np.float64)
        threshold = self.threshold if (a.is_binary and klass is None) else None
        spec = calibration_spec(s, threshold=threshold, n_bins=self.n_bins, smooth=smooth)
        return BinaryView.from_arrays(rows, y, s, spec=spec)

    def top_label_view(
        self, rows: np.ndarray, *, probs: np.ndarray | None = None, smooth: bool = False
    ) -> BinaryView:
        """Return the view of ``rows`` as correct/incorrect against the top-label confidence."""
        p = self.arrays.probs if probs is None else probs
        pred = np.argmax(p[rows], axis=1)
        y = (pred == self.arrays.y[rows]).astype(np.int64)
        s = p[rows].max(axis=1)
        return BinaryView.from_arrays(
            rows, y, s, spec=calibration_spec(s, n_bins=self.n_bins, smooth=smooth)
        )

    def _confusion_view(self, rows: np.ndarray, probs: np.ndarray | None = None) -> LinearView:
        a = self.arrays
        p = a.probs if probs is None else probs
        k = a.n_classes
        y = a.y[rows]
        pr = p[rows]
        pred = np.argmax(pr, axis=1)
        # multi-class Brier per case: Σ_k (p_k − y_k)² = Σ p² − 2 p_true + 1
        brier_row = (pr**2).sum(1) - 2.0 * pr[np.arange(len(rows)), y] + 1.0
        return LinearView.from_codes(rows, y * k + pred, k * k, extra=brier_row[None, :])

    # ------------------------------------------------------------------ metrics

    def counts(self, rows: np.ndarray) -> tuple[int, int]:
        """Return (positives, negatives) among ``rows`` (multi-class: rarest class, the rest)."""
        y = self.arrays.y[rows]
        if self.arrays.is_binary:
            pos = int((y == 1).sum())
        else:
            pos = int(np.bincount(y, minlength=self.arrays.n_classes).min()) if len(y) else 0
        return pos, len(rows) - pos

    def metrics(
        self,
        rows: np.ndarray,
        *,
        fits: bool = True,
        prevalence: float | None = None,
        scores: np.ndarray | None = None,
        probs: np.ndarray | None = None,
        names: Sequence[str] | None = None,
    ) -> dict[str, Distribution]:
        """Return every discrimination and calibration metric of ``rows`` as Distributions.

        Binary keys: the registry's discrimination and calibration metrics. With
        ``prevalence`` only the prevalence-dependent metrics, each resample's
        classes reweighted to that prevalence. Multi-class keys: the macro
        metrics under plain names plus ``<metric>/<k>`` per class.
        """
        if self.arrays.is_binary:
            view = self.binary_view(rows, scores=scores)
            if prevalence is not None:

                def stat(batch: Batch) -> dict[str, np.ndarray]:
                    adjusted = batch.reweighted(prevalence)
                    out = {
                        k: v
                        for k, v in threshold_rates(adjusted).items()
                        if k in PREVALENCE_DEPENDENT
                    }
                    out.update(
                        {
                            k: v
                            for k, v in calibration_statistic(adjusted, fits=False).items()
                            if k in PREVALENCE_DEPENDENT
                        }
                    )
                    return out
            else:

                def stat(batch: Batch) -> dict[str, np.ndarray]:
                    out = discrimination_statistic(batch)
                    out.update(calibration_statistic(batch, fits=fits))
                    return out

            result = self.engine.evaluate(view, stat)
        else:
            result = self._multiclass_metrics(rows, fits=fits, probs=probs)
        if names is not None:
            result = {k: v for k, v in result.items() if k in names}
        return result

    def _multiclass_metrics(
        self, rows: np.ndarray, *, fits: bool, probs: np.ndarray | None
    ) -> dict[str, Distribution]:
        a = self.arrays
        k = a.n_classes
        p = a.probs if probs is None else probs
        out: dict[str, Distribution] = {}
        for c in range(k):
            view = self.binary_view(rows, klass=c, scores=p[:, c])

            def stat(batch: Batch) -> dict[str, np.ndarray]:
                res = {"auroc": batch.auroc(), "auprc": batch.average_precision()}
                res.update(calibration_statistic(batch, fits=fits))
                return res

            for name, dist in self.engine.evaluate(view, stat).items():
                out[f"{name}/{c}"] = dist

        def confusion_stat(sums: np.ndarray) -> dict[str, np.ndarray]:
            res = multiclass_confusion_statistic(sums, k)
            cells = sums[:, : k * k].reshape(-1, k, k)
            total = cells.sum(axis=(1, 2))
            with np.errstate(divide="ignore", invalid="ignore"):
                prior = cells.sum(axis=2) / total[:, None]
                res["brier"] = sums[:, k * k] / total
                res["brier_scaled"] = 1.0 - res["brier"] / (prior * (1.0 - prior)).sum(1)
            return res

        out.update(self.engine.evaluate(self._confusion_view(rows, p), confusion_stat))
        for name in ("auroc", "auprc"):
            out[f"{name}/macro"] = out[f"{name}/0"].map(
                lambda *xs: np.mean(np.stack(np.broadcast_arrays(*xs)), axis=0),
                *[out[f"{name}/{c}"] for c in range(1, k)],
            )
        top = self.engine.evaluate(
            self.top_label_view(rows, probs=p), lambda b: calibration_statistic(b, fits=fits)
        )
        for name, dist in top.items():
            if name not in ("brier", "brier_scaled"):
                out[name] = dist
        for name in metric_registry.keys("discrimination", multiclass_macro=True):
            out[name] = out[f"{name}/macro"]
        # balanced accuracy of a multi-class classifier is the mean recall (scikit-learn's definition)
        out["balanced_accuracy"] = out["sensitivity/macro"]
        return out

    def estimate(
        self, rows: np.ndarray, name: str, dist: Distribution, *, reason: str | None = None
    ) -> Estimate:
        """Return the Estimate of metric ``name`` of ``rows`` with the interval its kind needs.

        The gated calibration error takes the normal interval with the
        bootstrap SE (floored at 0); a binary proportion at 0 or 1, whose
        resamples all repeat it, takes a Clopper–Pearson interval on its
        denominator's patients (images when unclustered); any other statistic
        whose resamples all repeat it has no interval, with the reason;
        everything else the run's interval method.
        """
        settings = self.engine.settings
        if name in NORMAL_INTERVAL_METRICS:
            return normal_estimate(
                dist,
                level=settings.level,
                min_defined=settings.min_defined,
                floor=0.0,
                reason=reason,
                method=NORMAL_INTERVAL_TEXT.get(name, f"{metric_registry.label(name)}; CI: point ± z·bootstrap SE, "
                                                "floored at 0"),
            )
        if is_degenerate(dist):
            if name in PROPORTION_METRICS and self.arrays.is_binary and dist.point in (0.0, 1.0):
                units, what = self._denominator_units(rows, name)
                return exact_proportion_estimate(dist.point, units, level=settings.level, unit=what)
            return Estimate(
                dist.point,
                reason="not estimable: every bootstrap resample gives the same value "
                f"({dist.point:.3g}), so the bootstrap cannot measure its uncertainty",
            )
        return self.engine.estimate(dist, reason=reason)

    def units_of(self, rows: np.ndarray, name: str) -> int:
        """Return the number of independent units (patients, or images) in proportion ``name``'s denominator."""
        return self._denominator_units(rows, name)[0]

    def _denominator_units(self, rows: np.ndarray, name: str) -> tuple[int, str]:
        """Return (number of independent units, their name) in the denominator of proportion ``name``."""
        y = self.arrays.y[rows] == 1
        if name in ("ppv", "npv"):
            called = self.arrays.probs[rows, 1] >= (self.threshold if self.threshold is not None else 0.5)
            mask = called if name == "ppv" else ~called
        elif name in ("sensitivity", "fnr"):
            mask = y
        elif name in ("specificity", "fpr"):
            mask = ~y
        else:
            mask = np.ones(len(rows), bool)
        if self.arrays.clusters is None:
            return int(mask.sum()), "images"
        return len(np.unique(self.arrays.clusters[rows][mask])), "patients"

    def delong(self, rows: np.ndarray) -> tuple[float, float]:
        """Return (AUROC, DeLong variance) of the positive class among ``rows`` (binary tasks)."""
        y = (self.arrays.y[rows] == 1).astype(np.int64)
        if y.min(initial=1) == y.max(initial=0):
            return float("nan"), float("nan")
        return delong_variance(y, self.arrays.probs[rows, 1])

    # ------------------------------------------------------------------ curves & details

    def _curve_block(self, view: BinaryView) -> dict[str, Any]:
        curves = self.engine.evaluate_curves(
            view, lambda b: {**roc_statistic(b), **pr_statistic(b)}
        )
        tpr_lo, tpr_hi = self.engine.percentile_band(curves.boot["tpr"])
        pr_lo, pr_hi = self.engine.percentile_band(curves.boot["precision"])
        return {
            "roc": {
                "fpr": FPR_GRID.tolist(),
                "tpr": curves.point["tpr"].tolist(),
                "tpr_low": tpr_lo.tolist(),
                "tpr_high": tpr_hi.tolist(),
            },
            "pr": {
                "recall": RECALL_GRID.tolist(),
                "precision": curves.point["precision"].tolist(),
                "precision_low": pr_lo.tolist(),
                "precision_high": pr_hi.tolist(),
            },
            "_tpr_boot": curves.boot["tpr"],
            "_tpr_point": curves.point["tpr"],
        }

    def curves(self, rows: np.ndarray) -> dict[str, Any]:
        """Return ROC and PR curves on fixed grids with pointwise percentile bands, and score histograms."""
        a = self.arrays
        band = "pointwise percentile bootstrap band"
        if a.is_binary:
            block = self._curve_block(self.binary_view(rows))
            block.pop("_tpr_boot")
            block.pop("_tpr_point")
            y = (a.y[rows] == 1).astype(np.int64)
            block["scores"] = score_histogram(y, a.probs[rows, 1])
            block["band"] = band
            return block
        per_class: dict[str, Any] = {}
        tpr_boot, tpr_point = [], []
        for c, name in enumerate(a.classes):
            block = self._curve_block(self.binary_view(rows, klass=c))
            tpr_boot.append(block.pop("_tpr_boot"))
            tpr_point.append(block.pop("_tpr_point"))
            block["scores"] = score_histogram((a.y[rows] == c).astype(np.int64), a.probs[rows, c])
            per_class[name] = block
        with np.errstate(all="ignore"):
            macro_boot = np.mean(np.stack(tpr_boot), axis=0)
            macro_point = np.mean(np.stack(tpr_point), axis=0)
        lo, hi = self.engine.percentile_band(macro_boot)
        return {
            "roc": {
                "fpr": FPR_GRID.tolist(),
                "tpr": macro_point.tolist(),
                "tpr_low": lo.tolist(),
                "tpr_high": hi.tolist(),
                "average": "macro (mean sensitivity over classes at each false-positive rate)",
            },
            "per_class": per_class,
            "band": band,
        }

    def calibration_details(
        self, rows: np.ndarray, *, scores: np.ndarray | None = None, probs: np.ndarray | None = None
    ) -> dict[str, Any]:
        """Return reliability diagrams, the Brier decomposition and the smooth calibration curve of ``rows``."""
        a = self.arrays
        if a.is_binary:
            view = self.binary_view(rows, scores=scores, smooth=True)
        else:
            view = self.top_label_view(rows, probs=probs, smooth=True)
        s_all = np.concatenate([view.s_neg, view.s_pos])
        ones = view.batch(np.ones((view.n_neg, 1)), np.ones((view.n_pos, 1)))
        level = self.engine.settings.level
        spec = view.spec
        reliability = {
            "equal_width": reliability_from_batch(
                ones, "uniform", spec.uniform_edges, level=level
            ).to_dict(),
            "equal_mass": reliability_from_batch(
                ones, "mass", spec.mass_edges, level=level
            ).to_dict(),
        }
        decomposition = brier_decomposition_from_batch(ones, n_bins=self.n_bins).to_dict()
        if not a.is_binary:
            decomposition["scope"] = "top-label confidence vs correctness"
        grid = smooth_grid(s_all)
        bandwidth = smooth_bandwidth(s_all)
        fine = spec.fine_edges
        fine_count = np.histogram(s_all, bins=fine)[0]
        fine_sum = np.histogram(s_all, bins=fine, weights=s_all)[0]
        centres = np.where(
            fine_count > 0, fine_sum / np.maximum(fine_count, 1), (fine[:-1] + fine[1:]) / 2
        )
        curves = self.engine.evaluate_curves(
            view, lambda b: smooth_statistic(b, grid=grid, bandwidth=bandwidth, centres=centres)
        )
        lo, hi = self.engine.percentile_band(curves.boot["observed"])
        smooth = {
            "predicted": grid.tolist(),
            "observed": curves.point["observed"].tolist(),
            "observed_low": lo.tolist(),
            "observed_high": hi.tolist(),
            "bandwidth": bandwidth,
            "method": "local-linear Gaussian-kernel smoother on 50 equal-mass fine bins (loess-style), "
            "pointwise percentile bootstrap band",
        }
        return {
            "n_bins": self.n_bins,
            "brier_decomposition": decomposition,
            "reliability": reliability,
            "smooth": smooth,
        }


__all__ = [
    "PREVALENCE_DEPENDENT",
    "PREVALENCE_FREE",
    "CohortAnalyzer",
    "TaskArrays",
    "undefined_reason",
]
