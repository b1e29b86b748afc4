"""Pure statistics over the predictions table: bootstrap, ranking, DeLong, calibration, fairness, shift.

Everything here takes numpy arrays (or row indices into them) and returns
numbers, arrays or frozen dataclasses; nothing reads files or prints. The
bootstrap engine (:mod:`~auditkit.stats.bootstrap`, :mod:`~auditkit.stats.engine`)
draws one matrix of resample weights per run; :mod:`~auditkit.stats.views`
evaluates every metric for all resamples at once.
"""

from auditkit.stats.bootstrap import (
    Distribution,
    IntervalSettings,
    Resamples,
    bca_interval,
    make_resamples,
    percentile_interval,
)
from auditkit.stats.calibration import (
    brier_decomposition,
    brier_score,
    calibration_intercept_slope,
    debiased_calibration_error,
    expected_calibration_error,
    maximum_calibration_error,
    observed_expected_ratio,
    reliability_diagram,
)
from auditkit.stats.cohort import CohortAnalyzer, TaskArrays
from auditkit.stats.delong import (
    delong_homogeneity_test,
    delong_interval,
    delong_paired_test,
    delong_unpaired_test,
    delong_variance,
    structural_components,
)
from auditkit.stats.engine import Engine
from auditkit.stats.multiplicity import adjust_p_values
from auditkit.stats.proportions import compare_proportions, proportion, wilson_interval
from auditkit.stats.ranking import average_precision, roc_auc
from auditkit.stats.rates import binary_rates, rates_from_counts
from auditkit.stats.recalibration import (
    fit_platt,
    fit_temperature_binary,
    fit_temperature_multiclass,
)
from auditkit.stats.shift import domain_classifier_auroc, ks_shift, mmd_test
from auditkit.stats.threshold import OperatingPointRule, choose_operating_point

__all__ = [
    "CohortAnalyzer",
    "Distribution",
    "Engine",
    "IntervalSettings",
    "OperatingPointRule",
    "Resamples",
    "TaskArrays",
    "adjust_p_values",
    "average_precision",
    "bca_interval",
    "binary_rates",
    "brier_decomposition",
    "brier_score",
    "calibration_intercept_slope",
    "choose_operating_point",
    "compare_proportions",
    "debiased_calibration_error",
    "delong_homogeneity_test",
    "delong_interval",
    "delong_paired_test",
    "delong_unpaired_test",
    "delong_variance",
    "domain_classifier_auroc",
    "expected_calibration_error",
    "fit_platt",
    "fit_temperature_binary",
    "fit_temperature_multiclass",
    "ks_shift",
    "make_resamples",
    "maximum_calibration_error",
    "mmd_test",
    "observed_expected_ratio",
    "percentile_interval",
    "proportion",
    "rates_from_counts",
    "reliability_diagram",
    "roc_auc",
    "structural_components",
    "wilson_interval",
]
