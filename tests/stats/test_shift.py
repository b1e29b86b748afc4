"""Shift tests and proportions.

Oracles: SciPy (ks_2samp, chi2_contingency without continuity correction,
binomtest's Wilson interval), a brute-force unbiased MMD² written out below
(Gretton et al. 2012, eq. 3), scikit-learn's cross-validated logistic
regression, and planted truths (no shift vs a known shift; duplicated
patients inflate the design effect by the duplication factor).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist, pdist
from scipy.stats import binomtest, chi2_contingency, ks_2samp

from auditkit.stats.proportions import (
    compare_proportions,
    design_effect,
    proportion,
    wilson_interval,
)
from auditkit.stats.shift import domain_classifier_auroc, ks_shift, mmd_test


def test_ks_per_dimension_with_bonferroni_matches_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.random((200, 3)), rng.random((150, 3)) ** 1.3
    res = ks_shift(a, b)
    ref = [ks_2samp(a[:, j], b[:, j]) for j in range(3)]
    assert res.statistics == pytest.approx(tuple(r.statistic for r in ref))
    assert res.p_values == pytest.approx(tuple(r.pvalue for r in ref))
    assert res.p_adjusted == pytest.approx(min(1.0, 3 * min(r.pvalue for r in ref)))


def brute_mmd2(x, y, bandwidth):
    k = lambda u, v: np.exp(-cdist(u, v, "sqeuclidean") / (2 * bandwidth**2))  # noqa: E731
    m, n = len(x), len(y)
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    return (
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
        + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
        - 2 * kxy.mean()
    )


def test_mmd_statistic_and_permutation_test():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(80, 4))
    b_same = rng.normal(size=(70, 4))
    b_shift = rng.normal(size=(70, 4)) + 0.8
    res = mmd_test(a, b_shift, n_permutations=200, random_state=0)
    bandwidth = np.median(pdist(np.vstack([a, b_shift])))
    assert res.bandwidth == pytest.approx(bandwidth)
    assert res.statistic == pytest.approx(brute_mmd2(a, b_shift, bandwidth), abs=1e-12)
    assert res.p_value < 0.01
    assert mmd_test(a, b_same, n_permutations=200, random_state=0).p_value > 0.05


def test_domain_classifier_separates_shifted_sites_only():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(150, 5))
    same = domain_classifier_auroc(a, rng.normal(size=(150, 5)), random_state=0)
    shifted = domain_classifier_auroc(
        a, rng.normal(size=(150, 5)) + np.r_[1.0, 0, 0, 0, 0], random_state=0
    )
    assert same.ci_low < 0.5 < same.ci_high
    assert shifted.estimate > 0.7 and shifted.ci_low > 0.5


def test_wilson_matches_scipy():
    for k, n in ((0, 10), (7, 30), (30, 30), (412, 1000)):
        ci = binomtest(k, n).proportion_ci(0.95, method="wilson")
        lo, hi = wilson_interval(k, n)
        assert lo == pytest.approx(ci.low, abs=1e-12)
        assert hi == pytest.approx(ci.high, abs=1e-12)


def test_design_effect_of_duplicated_patients_is_the_duplication_factor():
    rng = np.random.default_rng(3)
    y = (rng.random(400) < 0.3).astype(float)
    assert design_effect(y, None) == 1.0
    deff = design_effect(np.repeat(y, 5), np.repeat(np.arange(400), 5))
    assert deff == pytest.approx(5.0, rel=0.01)
    single = proportion(y)
    clustered = proportion(np.repeat(y, 5), clusters=np.repeat(np.arange(400), 5))
    assert clustered.estimate == pytest.approx(single.estimate)
    assert (clustered.ci_high - clustered.ci_low) == pytest.approx(
        single.ci_high - single.ci_low, rel=0.02
    )


def test_prevalence_comparison_is_pearson_chi_square():
    rng = np.random.default_rng(4)
    a = (rng.random(300) < 0.3).astype(float)
    b = (rng.random(250) < 0.4).astype(float)
    res = compare_proportions(a, b)
    table = [[a.sum(), len(a) - a.sum()], [b.sum(), len(b) - b.sum()]]
    stat, p, _, _ = chi2_contingency(table, correction=False)
    assert res.statistic == pytest.approx(stat, rel=1e-10)
    assert res.p_value == pytest.approx(p, rel=1e-10)
    assert res.difference == pytest.approx(a.mean() - b.mean())
