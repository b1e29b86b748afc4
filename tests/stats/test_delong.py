"""DeLong's variance and tests against a brute-force O(n²) structural-components implementation.

The variance's oracle is the definition of DeLong et al. 1988 written out
pairwise below (the 1988 paper's data are not bundled). The published check
is Hanley & McNeil 1982 (Radiology 143:29), whose 5-point ratings of 109 CT
images give a Wilcoxon area of 0.893 with standard error 0.032 by their
approximation; DeLong's exact SE must be close to it.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from auditkit.stats.delong import (
    delong_homogeneity_test,
    delong_interval,
    delong_paired_test,
    delong_unpaired_test,
    delong_variance,
    structural_components,
)

from .conftest import binormal


def brute_components(y, s):
    pos, neg = s[y == 1], s[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    return psi.mean(axis=1), psi.mean(axis=0)


def brute_variance(y, s):
    v10, v01 = brute_components(y, s)
    return np.var(v10, ddof=1) / v10.size + np.var(v01, ddof=1) / v01.size


def test_components_and_variance_match_brute_force(tied_binary):
    y, s = tied_binary
    comp = structural_components(y, s)
    v10, v01 = brute_components(y, s)
    np.testing.assert_allclose(comp.v10, v10, atol=1e-12)
    np.testing.assert_allclose(comp.v01, v01, atol=1e-12)
    auc, var = delong_variance(y, s)
    assert auc == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert var == pytest.approx(brute_variance(y, s), rel=1e-10)


def test_hanley_mcneil_1982_published_example():
    normal = np.repeat([1, 2, 3, 4, 5], [33, 6, 6, 11, 2])
    abnormal = np.repeat([1, 2, 3, 4, 5], [3, 2, 2, 11, 33])
    y = np.r_[np.zeros(58, int), np.ones(51, int)]
    s = np.r_[normal, abnormal].astype(float)
    auc, var = delong_variance(y, s)
    assert round(auc, 3) == 0.893
    assert np.sqrt(var) == pytest.approx(0.032, rel=0.1)
    assert var == pytest.approx(brute_variance(y, s), rel=1e-10)


def test_paired_test_matches_brute_force_covariance():
    y, s1 = binormal(150, seed=4, decimals=2)
    rng = np.random.default_rng(9)
    s2 = np.clip(s1 + rng.normal(0, 0.15, len(y)), 0, 1).round(2)
    a10, a01 = brute_components(y, s1)
    b10, b01 = brute_components(y, s2)
    cov10 = np.cov(np.vstack([a10, b10]))
    cov01 = np.cov(np.vstack([a01, b01]))
    var = (cov10[0, 0] + cov10[1, 1] - 2 * cov10[0, 1]) / a10.size + (
        cov01[0, 0] + cov01[1, 1] - 2 * cov01[0, 1]
    ) / a01.size
    res = delong_paired_test(y, s1, s2)
    diff = roc_auc_score(y, s1) - roc_auc_score(y, s2)
    assert res.estimate == pytest.approx(diff, abs=1e-12)
    assert res.variance == pytest.approx(var, rel=1e-10)
    assert res.p_value == pytest.approx(2 * norm.sf(abs(diff) / np.sqrt(var)), rel=1e-9)
    # the same score twice: no difference at all
    same = delong_paired_test(y, s1, s1)
    assert same.estimate == 0.0


def test_unpaired_and_homogeneity_tests_agree_for_two_groups():
    y1, s1 = binormal(120, seed=1, shift=2.0)
    y2, s2 = binormal(140, seed=2, shift=1.0)
    res = delong_unpaired_test(y1, s1, y2, s2)
    v = brute_variance(y1, s1) + brute_variance(y2, s2)
    d = roc_auc_score(y1, s1) - roc_auc_score(y2, s2)
    assert res.estimate == pytest.approx(d, abs=1e-12)
    assert res.z == pytest.approx(d / np.sqrt(v), rel=1e-9)
    homog = delong_homogeneity_test(
        [roc_auc_score(y1, s1), roc_auc_score(y2, s2)],
        [brute_variance(y1, s1), brute_variance(y2, s2)],
    )
    assert homog.df == 1
    assert homog.statistic == pytest.approx(res.z**2, rel=1e-9)
    assert homog.p_value == pytest.approx(res.p_value, rel=1e-9)


def test_logit_interval_stays_inside_unit_interval():
    y = np.r_[np.zeros(30, int), np.ones(30, int)]
    s = np.r_[np.linspace(0, 0.55, 30), np.linspace(0.45, 1, 30)]
    res = delong_interval(y, s)
    assert 0 < res.ci_low < res.estimate < res.ci_high < 1
    plain = delong_interval(y, s, transform="none")
    assert plain.ci_high - plain.estimate == pytest.approx(plain.estimate - plain.ci_low)
