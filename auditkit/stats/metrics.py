"""The metric registry: every reported metric declared once, with what it needs and how it reads.

A :class:`Metric` holds a metric's key (its name in results.json), display
label, direction, what it needs (positives, negatives, a threshold, fitted
models), whether it depends on prevalence, its interval method, decimals, its
estimand in words and its roles in the fairness analysis. Everything that
lists metrics iterates this registry: the discrimination and calibration
blocks of results.json and their ``methods`` text, the subgroup analysis
(gaps, ratios, worst group, the default primary family, twin tests), the
prevalence adjustment, undefined reasons, the report's tables and labels,
summary.md and the gate's metric-path hint.

Adding a metric
---------------
A confusion-matrix rate needs only its declaration here with ``from_counts``
(a function of the cell counts tp, fp, tn, fn, arrays of one shape) and a row
in the oracle table of ``tests/stats/test_metric_registry.py``; the
statistics compute it for every cohort, subgroup and resample, and the report
and summary print it. A metric of the scores (AUROC-like) or of calibration
bins also needs its per-resample computation in ``stats/discrimination.py``
or ``stats/calibration.py`` under the same key. Quantities that are reported
but not computed per cohort (prevalence, equalized odds, saliency evidence)
are declared with ``family`` other than discrimination/calibration so that
their labels, decimals and direction live here too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Family = Literal["discrimination", "calibration", "cohort", "fairness", "recalibration", "saliency", "clinical"]
#: families computed for every cohort and subgroup (the others are presentation only).
COMPUTED_FAMILIES = ("discrimination", "calibration")


@dataclass(frozen=True)
class Metric:
    """One reported metric: its computation, presentation and the analyses it takes part in."""

    key: str
    """name in results.json (``discrimination.test.<key>``)."""
    label: str
    """printed name (the report, summary.md, the gate's outputs)."""
    family: Family
    estimand: str
    """what the metric estimates, in words (results.json's ``methods`` and the report's glossary)."""
    higher_is_better: bool | None = True
    """None: neither (a target value is best, e.g. O/E = 1)."""
    target: float | None = None
    """the ideal value when ``higher_is_better`` is None."""
    needs_positives: bool = False
    needs_negatives: bool = False
    needs_threshold: bool = False
    """computed at the frozen operating point (a rate of the decisions)."""
    needs_fit: bool = False
    """needs a per-resample model fit (not linear in the weights, so no reweighting)."""
    prevalence_dependent: bool = False
    """changes when the classes are reweighted to another prevalence."""
    interval: str = "bootstrap"
    decimals: int = 3
    from_counts: Callable[..., np.ndarray] | None = None
    """for a rate: (tp, fp, tn, fn) arrays -> the metric (NaN where a denominator is 0)."""
    zero_denominator: str | None = None
    """why the metric is undefined when it is not for lack of a class."""
    gateable: bool = True
    """a release gate may rely on its interval (False: descriptive only, e.g. the binned plug-in ECE, whose
    percentile interval covers the truth in 8-25% of simulations at n = 400; gate on ``ece_l1_debiased``)."""
    fairness_primary: bool = False
    """in the default family of pre-declared fairness gap tests."""
    ratio: bool = False
    """reported as lowest / highest group ratio."""
    worst_group: bool = False
    twin: str | None = None
    """the complement whose gap test this metric shares (sensitivity -> fnr)."""
    external_primary: bool = False
    """its site − test difference is in the external family of tests."""
    summary: bool = False
    """shown in summary.md's tables."""
    summary_delta: bool = False
    """its site − test difference is shown in summary.md's external table."""
    summary_gap: bool = False
    """its subgroup gap is shown in summary.md's fairness table."""
    external_power: bool = False
    """its site − test difference gets a sample-size (power) statement (those the default policy gates)."""
    gap_power: bool = False
    """its subgroup gap gets a power statement even when it is not a primary gap."""
    multiclass_macro: bool = True
    """multi-class: reported as the macro mean of the one-vs-rest values."""
    binning: str | None = None
    """for a binned metric: its binning in words, with ``{n_bins}`` (results.json ``calibration.*.binning``)."""

    @property
    def reweightable(self) -> bool:
        """Return whether the metric is computed from sums linear in the case weights.

        Such a metric can be recomputed with each class reweighted to another
        prevalence (a rate of the confusion matrix, a binned calibration
        error, Brier, O/E); ranks and fitted models cannot.
        """
        if self.needs_fit:
            return False
        return self.from_counts is not None or self.family == "calibration"

    @property
    def computed(self) -> bool:
        """Return whether the statistics compute this metric for every cohort and subgroup."""
        return self.family in COMPUTED_FAMILIES

    def undefined_reason(self, *, n_positive: int, n_negative: int) -> str:
        """Return why this metric is undefined in a sample with these class counts (one sentence)."""
        if n_positive + n_negative == 0:
            return "no cases"
        if n_positive == 0 and self.needs_positives:
            return "no positive cases"
        if n_negative == 0 and self.needs_negatives:
            return "no negative cases"
        return self.zero_denominator or "a denominator of this metric is zero in this sample"


_REGISTRY: dict[str, Metric] = {}


def register(metric: Metric, *, replace: bool = False) -> Metric:
    """Return ``metric`` after adding it to the registry (a second key is an error unless ``replace``)."""
    if metric.key in _REGISTRY and not replace:
        raise ValueError(f"metric {metric.key!r} is already registered")
    if metric.family not in ("discrimination", "calibration", "cohort", "fairness", "recalibration", "saliency", "clinical"):
        raise ValueError(f"metric {metric.key!r}: unknown family {metric.family!r}")
    _REGISTRY[metric.key] = metric
    return metric


def get(key: str) -> Metric | None:
    """Return the metric registered under ``key`` (a ``<metric>/<class>`` key gives its metric), or None."""
    return _REGISTRY.get(key) or _REGISTRY.get(key.split("/")[0])


def all_metrics() -> tuple[Metric, ...]:
    """Return every registered metric in declaration order."""
    return tuple(_REGISTRY.values())


def keys(family: str | None = None, **flags: Any) -> tuple[str, ...]:
    """Return the keys of the metrics of ``family`` whose attributes equal ``flags`` (declaration order).

    ``keys("discrimination")``, ``keys(fairness_primary=True)``,
    ``keys(computed=True, prevalence_dependent=True)``.
    """
    return tuple(m.key for m in select(family, **flags))


def select(family: str | None = None, **flags: Any) -> Iterator[Metric]:
    """Yield the metrics of ``family`` whose attributes equal ``flags``."""
    for m in _REGISTRY.values():
        if family is not None and m.family != family:
            continue
        if all(getattr(m, k) == v for k, v in flags.items()):
            yield m


def label(key: str) -> str:
    """Return the printed name of a metric key (the key itself, underscores as spaces, when unknown)."""
    m = _REGISTRY.get(key)
    return m.label if m is not None else key.replace("_", " ")


def decimals(key: str | None) -> int:
    """Return the decimals a metric is printed with (3 when unknown)."""
    m = _REGISTRY.get(key) if key else None
    return m.decimals if m is not None else 3


def undefined_reason(key: str, *, n_positive: int, n_negative: int) -> str:
    """Return why metric ``key`` is undefined in a sample with these class counts (one sentence)."""
    m = get(key)
    if m is None:
        if n_positive + n_negative == 0:
            return "no cases"
        return "a denominator of this metric is zero in this sample"
    return m.undefined_reason(n_positive=n_positive, n_negative=n_negative)


def rates_from_counts(tp: Any, fp: Any, tn: Any, fn: Any) -> dict[str, np.ndarray]:
    """Return every registered rate metric from cell counts (arrays of one shape; NaN where undefined)."""
    tp, fp, tn, fn = (np.asarray(a, dtype=np.float64) for a in (tp, fp, tn, fn))
    with np.errstate(divide="ignore", invalid="ignore"):
        return {m.key: m.from_counts(tp, fp, tn, fn) for m in _REGISTRY.values() if m.from_counts is not None}


def methods_text(family: str, *, n_bins: int) -> dict[str, str]:
    """Return ``{key: estimand}`` of a family's metrics, with the binning of this run filled in."""
    return {m.key: m.estimand.replace("n_bins", str(n_bins)) for m in select(family)}


def binning_text(n_bins: int) -> dict[str, str]:
    """Return ``{key: binning in words}`` of the binned calibration metrics for ``n_bins`` bins."""
    return {m.key: m.binning.format(n_bins=n_bins) for m in _REGISTRY.values() if m.binning}


# --------------------------------------------------------------------------- declarations

_SPEC_UNDEFINED = "specificity is 0 or 1, so the likelihood ratio has a zero denominator"
_FIT_UNDEFINED = "the logistic recalibration fit did not converge (the classes are separated by the score)"


def _sens(tp: np.ndarray, fp: np.ndarray, tn: np.ndarray, fn: np.ndarray) -> np.ndarray:
    return tp / (tp + fn)


def _spec(tp: np.ndarray, fp: np.ndarray, tn: np.ndarray, fn: np.ndarray) -> np.ndarray:
    return tn / (tn + fp)


def _lr_positive(tp: np.ndarray, fp: np.ndarray, tn: np.ndarray, fn: np.ndarray) -> np.ndarray:
    sens, spec = _sens(tp, fp, tn, fn), _spec(tp, fp, tn, fn)
    return np.where(spec < 1.0, sens / (1.0 - spec), np.nan)


def _lr_negative(tp: np.ndarray, fp: np.ndarray, tn: np.ndarray, fn: np.ndarray) -> np.ndarray:
    sens, spec = _sens(tp, fp, tn, fn), _spec(tp, fp, tn, fn)
    return np.where(spec > 0.0, (1.0 - sens) / spec, np.nan)


_POS = {"needs_positives": True}
_NEG = {"needs_negatives": True}
_BOTH = {"needs_positives": True, "needs_negatives": True}
_RATE = {"needs_threshold": True}

for _metric in (
    Metric("auroc", "AUROC", "discrimination", "P(score of a random positive > score of a random negative), "
           "ties counted half (weighted Mann-Whitney)", interval="bootstrap (or DeLong, unclustered data)",
           fairness_primary=True, ratio=True, worst_group=True, external_primary=True, summary=True,
           summary_delta=True, summary_gap=True, external_power=True, gap_power=True, **_BOTH),
    Metric("auprc", "AUPRC", "discrimination", "average precision: step-wise area under the precision-recall "
           "curve", prevalence_dependent=True, ratio=True, summary=True, gateable=False, **_POS),
    # gateable=False: its patient-clustered bootstrap interval covered 0.915 in 600 simulated 80 x 5 audits
    # (benchmarks/RESULTS.md, coverage); 0.953 unclustered. Reported, not for a release rule.
    Metric("sensitivity", "Sensitivity", "discrimination", "TP / (TP + FN) at the frozen operating point",
           from_counts=_sens, ratio=True, worst_group=True, twin="fnr", external_primary=True, summary=True,
           summary_delta=True, external_power=True, **_POS, **_RATE),
    Metric("specificity", "Specificity", "discrimination", "TN / (TN + FP) at the frozen operating point",
           from_counts=_spec, ratio=True, worst_group=True, twin="fpr", external_primary=True, summary=True,
           summary_delta=True, external_power=True, **_NEG, **_RATE),
    Metric("ppv", "PPV", "discrimination", "TP / (TP + FP): positive predictive value at the operating point",
           from_counts=lambda tp, fp, tn, fn: tp / (tp + fp), prevalence_dependent=True, ratio=True,
           fairness_primary=True, external_primary=True, summary=True,
           zero_denominator="no case is called positive at the operating point", **_RATE),
    Metric("npv", "NPV", "discrimination", "TN / (TN + FN): negative predictive value at the operating point",
           from_counts=lambda tp, fp, tn, fn: tn / (tn + fn), prevalence_dependent=True, ratio=True,
           fairness_primary=True, external_primary=True, summary=True,
           zero_denominator="no case is called negative at the operating point", **_RATE),
    Metric("fnr", "FNR", "discrimination", "FN / (TP + FN) = 1 − sensitivity (underdiagnosis)",
           higher_is_better=False, from_counts=lambda tp, fp, tn, fn: fn / (tp + fn), ratio=True,
           fairness_primary=True, summary_gap=True, gap_power=True, **_POS, **_RATE),
    Metric("fpr", "FPR", "discrimination", "FP / (TN + FP) = 1 − specificity", higher_is_better=False,
           from_counts=lambda tp, fp, tn, fn: fp / (tn + fp), ratio=True, fairness_primary=True,
           summary_gap=True, gap_power=True, **_NEG, **_RATE),
    Metric("lr_positive", "LR+", "discrimination", "sensitivity / (1 − specificity)", decimals=2,
           from_counts=_lr_positive, zero_denominator=_SPEC_UNDEFINED, **_BOTH, **_RATE),
    Metric("lr_negative", "LR\u2212", "discrimination", "(1 − sensitivity) / specificity", decimals=2,
           higher_is_better=False, from_counts=_lr_negative, zero_denominator=_SPEC_UNDEFINED, **_BOTH, **_RATE),
    Metric("f1", "F1", "discrimination", "2TP / (2TP + FP + FN)", from_counts=lambda tp, fp, tn, fn:
           2 * tp / (2 * tp + fp + fn), prevalence_dependent=True, ratio=True, **_POS, **_RATE),
    Metric("balanced_accuracy", "Balanced accuracy", "discrimination", "(sensitivity + specificity) / 2",
           from_counts=lambda tp, fp, tn, fn: (_sens(tp, fp, tn, fn) + _spec(tp, fp, tn, fn)) / 2.0,
           ratio=True, **_BOTH, **_RATE),
    Metric("accuracy", "Accuracy", "discrimination", "(TP + TN) / n", from_counts=lambda tp, fp, tn, fn:
           (tp + tn) / (tp + fp + tn + fn), prevalence_dependent=True, ratio=True, multiclass_macro=False,
           **_RATE),
    Metric("ece", "ECE (equal-width bins)", "calibration", "Σ_b (n_b/n)|ȳ_b − p̄_b| on n_bins equal-width "
           "bins on [0, 1] (Guo et al. 2017)", higher_is_better=False, prevalence_dependent=True, ratio=True,
           binning="{n_bins} equal-width bins on [0, 1] (Guo et al. 2017)", gateable=False,
           fairness_primary=True, external_primary=True, summary=True, summary_delta=True, summary_gap=True),
    Metric("ece_equal_mass", "ECE (equal-mass bins)", "calibration", "binned ECE on n_bins equal-mass bins "
           "(Nixon et al. 2019)", higher_is_better=False, prevalence_dependent=True,
           binning="{n_bins} equal-mass bins (quantiles of this cohort's scores)", gateable=False),
    Metric("ece_debiased", "ECE (debiased)", "calibration", "sqrt of the debiased squared L2 calibration error "
           "on n_bins equal-mass bins (Kumar et al. 2019)", higher_is_better=False, summary=True,
           interval="normal (bootstrap standard error)",
           binning="sqrt of the debiased squared L2 calibration error, {n_bins} equal-mass bins (Kumar et al. 2019)"),
    Metric("ece_l1_debiased", "ECE (L1, debiased)", "calibration", "E|P(Y=1 | p) − p| on n_bins equal-mass "
           "bins, each bin's |ȳ_b − p̄_b| debiased by the Gaussian approximation (Kumar et al. 2019 §5)",
           higher_is_better=False, interval="normal (bootstrap standard error)", external_power=True),
    Metric("mce", "MCE", "calibration", "the largest |ȳ_b − p̄_b| over non-empty equal-width bins",
           higher_is_better=False, prevalence_dependent=True, gateable=False),
    Metric("brier", "Brier score", "calibration", "mean of (p − y)² (Brier 1950)", higher_is_better=False,
           prevalence_dependent=True, ratio=True, fairness_primary=True, external_primary=True, summary=True),
    Metric("brier_scaled", "Scaled Brier score", "calibration", "1 − Brier / (π(1 − π))",
           prevalence_dependent=True, **_BOTH),
    Metric("oe", "O/E ratio", "calibration", "observed / expected events", higher_is_better=None, target=1.0,
           decimals=2, prevalence_dependent=True, ratio=True, fairness_primary=True, external_primary=True,
           summary=True, **_POS),
    Metric("intercept", "Calibration intercept", "calibration", "calibration-in-the-large: the intercept of a "
           "logistic recalibration with the logit as offset (Cox 1958)", higher_is_better=None, target=0.0,
           decimals=2, needs_fit=True, zero_denominator=_FIT_UNDEFINED, external_primary=True, summary=True,
           **_BOTH),
    Metric("slope", "Calibration slope", "calibration", "the slope of the logit in a logistic recalibration "
           "(Cox 1958)", higher_is_better=None, target=1.0, decimals=2, needs_fit=True,
           zero_denominator=_FIT_UNDEFINED, external_primary=True, summary=True, **_BOTH),
    Metric("prevalence", "Prevalence", "cohort", "share of positive cases (Wilson interval)"),
    Metric("equalized_odds", "Equalized odds", "fairness", "max(sensitivity range, FPR range) over groups",
           higher_is_better=False, summary_gap=True),
    Metric("temperature", "Temperature", "recalibration", "temperature scaling fitted on val", decimals=2,
           higher_is_better=None, gateable=False),
    Metric("hit_rate", "Hit rate (pointing game)", "saliency", "share of maps whose maximum is in the lesion"),
    Metric("energy_pointing", "Energy-based pointing", "saliency", "share of attribution inside the lesion"),
    Metric("iou_otsu", "IoU (Otsu threshold)", "saliency", "IoU of the Otsu-thresholded map and the mask"),
    Metric("dice_otsu", "Dice (Otsu threshold)", "saliency", "Dice of the Otsu-thresholded map and the mask"),
    Metric("iou_tuned", "IoU (validation-tuned threshold)", "saliency", "IoU at a threshold tuned on val"),
    Metric("dice_tuned", "Dice (validation-tuned threshold)", "saliency", "Dice at a threshold tuned on val"),
    Metric("deletion_auc", "Deletion AUC (lower is better)", "saliency", "area under the score as the most "
           "attributed pixels are deleted", higher_is_better=False),
    Metric("insertion_auc", "Insertion AUC (higher is better)", "saliency", "area under the score as the most "
           "attributed pixels are inserted"),
    Metric("deletion_auc_random", "Deletion AUC, random order", "saliency", "deletion AUC with a random order",
           higher_is_better=None),
    Metric("insertion_auc_random", "Insertion AUC, random order", "saliency", "insertion AUC with a random "
           "order", higher_is_better=None),
    Metric("shortcut_score", "Shortcut score", "saliency", "share of attribution on a known shortcut region",
           higher_is_better=False),
    Metric("noise_ssim", "SSIM under input noise", "saliency", "SSIM of maps of an image and a noisy copy"),
    Metric("shift_ssim", "SSIM under a small shift", "saliency", "SSIM of maps of an image and a shifted copy"),
    # clinical validation (auditkit/audit/clinical.py, docs/clinical-validation.md): not per-cohort blocks,
    # declared here for their labels, direction, estimand (results.json method text) and the gate's hint;
    # none is computed at the operating point by the statistics step (needs_threshold stays False)
    Metric("net_benefit", "Net benefit", "clinical", "TP/n - FP/n * t/(1 - t) of acting when score >= t "
           "(Vickers & Elkin 2006)", prevalence_dependent=True),
    Metric("net_benefit_all", "Net benefit, treat all", "clinical", "prevalence - (1 - prevalence) * t/(1 - t)",
           higher_is_better=None, prevalence_dependent=True),
    Metric("advantage", "Net benefit advantage", "clinical", "net benefit minus the better of treat-all and "
           "treat-none at t", prevalence_dependent=True),
    Metric("coverage", "Conformal coverage", "clinical", "P(true class in the conformal prediction set), sets "
           "calibrated on val at error rate alpha", higher_is_better=None),
    Metric("min_group_coverage", "Lowest subgroup coverage", "clinical", "the lowest coverage over the "
           "subgroups (and classes) large enough to estimate it"),
    Metric("mean_set_size", "Mean set size", "clinical", "average number of classes in the conformal "
           "prediction set", higher_is_better=False),
    Metric("auroc_gap", "Slice AUROC gap", "clinical", "AUROC of the slice minus AUROC of the rest of the "
           "cohort (paired bootstrap)", needs_positives=True, needs_negatives=True),
    Metric("error_gap", "Slice error-rate gap", "clinical", "error rate at the operating point of the slice "
           "minus the rest's", higher_is_better=False),
    Metric("worst_auroc_gap", "Worst slice AUROC gap", "clinical", "the lowest slice-minus-rest AUROC gap "
           "over the candidate slices", needs_positives=True, needs_negatives=True),
    Metric("worst_error_gap", "Worst slice error-rate gap", "clinical", "the highest slice-minus-rest "
           "error-rate gap at the operating point over the candidate slices (defined for one-class slices)",
           higher_is_better=False),
    Metric("auroc_drop", "AUROC drop", "clinical", "AUROC unperturbed minus AUROC perturbed, same images "
           "(paired bootstrap)", higher_is_better=False, needs_positives=True, needs_negatives=True),
    Metric("sensitivity_drop", "Sensitivity drop", "clinical", "sensitivity unperturbed minus perturbed at "
           "the frozen operating point", higher_is_better=False, needs_positives=True),
    Metric("flip_rate", "Flip rate", "clinical", "share of images whose call at the operating point changes "
           "under the perturbation", higher_is_better=False),
    Metric("mean_abs_change", "Mean |score change|", "clinical", "mean absolute change of the positive-class "
           "score under the perturbation", higher_is_better=False),
):  # fmt: skip
    register(_metric)
del _metric


def discrimination_keys() -> tuple[str, ...]:
    """Return the keys of the discrimination block of a cohort (results.json order)."""
    return keys("discrimination")


def calibration_keys() -> tuple[str, ...]:
    """Return the keys of the calibration block of a cohort (results.json order)."""
    return keys("calibration")


def rate_keys() -> tuple[str, ...]:
    """Return the confusion-matrix rates (the metrics with ``from_counts``)."""
    return tuple(m.key for m in _REGISTRY.values() if m.from_counts is not None)


def cohort_keys() -> tuple[str, ...]:
    """Return every metric computed per cohort and subgroup: discrimination then calibration."""
    return (*discrimination_keys(), *calibration_keys())


def prevalence_dependent_keys() -> tuple[str, ...]:
    """Return the computed metrics that change when the classes are reweighted (no fitted ones)."""
    return tuple(m.key for m in _REGISTRY.values() if m.prevalence_dependent and m.reweightable)


def prevalence_free_keys() -> tuple[str, ...]:
    """Return the computed metrics that condition on the true class (reweighting leaves them unchanged)."""
    return tuple(
        m.key for m in _REGISTRY.values()
        if m.family == "discrimination" and not m.prevalence_dependent
    )  # fmt: skip


def twins() -> dict[str, str]:
    """Return ``{metric: complement}`` for metrics whose gap test is their complement's."""
    return {m.key: m.twin for m in _REGISTRY.values() if m.twin}
