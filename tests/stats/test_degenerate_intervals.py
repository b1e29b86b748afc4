"""A proportion at 0 or 1 gets an exact interval, not "1.000 (1.000-1.000)"; other one-point CIs are "not estimable".

Oracle: SciPy's Clopper-Pearson interval (binomtest(...).proportion_ci(method="exact")).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import binomtest

from auditkit.stats.bootstrap import IntervalSettings, make_resamples
from auditkit.stats.cohort import CohortAnalyzer, TaskArrays
from auditkit.stats.engine import Engine


def _analyzer(y, p, clusters=None):
    res = make_resamples(np.zeros(len(y)), n_boot=200, random_state=0, clusters=clusters)
    codes = None if clusters is None else np.unique(clusters, return_inverse=True)[1]
    arrays = TaskArrays(np.asarray(y), np.c_[1 - p, p], ("0", "1"), clusters=codes)
    return CohortAnalyzer(arrays, Engine(res, IntervalSettings()), threshold=0.5)


def test_sensitivity_of_one_gets_clopper_pearson_on_the_positives_and_auroc_of_one_is_not_estimable():
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(40, int), np.zeros(60, int)]
    p = np.where(y == 1, rng.uniform(0.6, 0.99, 100), rng.uniform(0.01, 0.45, 100))
    p[:3] = 0.7  # every positive above the threshold; every negative below it
    a = _analyzer(y, p)
    rows = np.arange(100)
    dists = a.metrics(rows)
    sens = a.estimate(rows, "sensitivity", dists["sensitivity"])
    oracle = binomtest(40, 40).proportion_ci(confidence_level=0.95, method="exact")
    assert sens.estimate == 1.0
    assert np.isclose(sens.ci_low, oracle.low) and sens.ci_high == 1.0
    assert "Clopper" in sens.method
    fpr = a.estimate(rows, "fpr", dists["fpr"])
    oracle = binomtest(0, 60).proportion_ci(confidence_level=0.95, method="exact")
    assert fpr.ci_low == 0.0 and np.isclose(fpr.ci_high, oracle.high)
    auroc = a.estimate(rows, "auroc", dists["auroc"])
    assert auroc.estimate == 1.0 and auroc.ci_low is None and auroc.reason.startswith("not estimable")


def test_clustered_proportion_counts_patients_not_images():
    y = np.repeat(np.r_[np.ones(10, int), np.zeros(20, int)], 3)
    p = np.where(y == 1, 0.9, 0.1)
    clusters = np.repeat(np.arange(30), 3)
    a = _analyzer(y, p, clusters)
    rows = np.arange(90)
    sens = a.estimate(rows, "sensitivity", a.metrics(rows)["sensitivity"])
    oracle = binomtest(10, 10).proportion_ci(confidence_level=0.95, method="exact")
    assert np.isclose(sens.ci_low, oracle.low) and "10 patients" in sens.method
