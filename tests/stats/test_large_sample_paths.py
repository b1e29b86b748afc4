"""The large-sample paths of the engine: grouped logistic replicate fits and atom-wise linear sums.

Oracles: statsmodels' GLM (binomial, frequency weights) for each replicate
fit; direct NumPy sums of w·s^p over each bin for the feature sums.
"""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

from auditkit.stats import logistic
from auditkit.stats.bootstrap import make_resamples
from auditkit.stats.views import (
    BinaryView,
    FeatureSpec,
    bin_index,
    logit,
    mass_edges,
    uniform_edges,
)


def _sample(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(np.int64)
    z = rng.normal(size=n) + 1.3 * y - 1.0
    return y, 1.0 / (1.0 + np.exp(-z))


@pytest.mark.parametrize("fit_slope", [False, True])
def test_grouped_replicate_fits_match_statsmodels(fit_slope: bool) -> None:
    n = logistic.GROUPED_MIN_ROWS + 2_000
    y, p = _sample(n, seed=3)
    x = logit(p)
    w = np.random.default_rng(1).multinomial(n, np.full(n, 1 / n), size=3).T.astype(np.uint8)
    neg, pos = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
    neg, pos = neg[np.argsort(x[neg])], pos[np.argsort(x[pos])]
    a, b = logistic.fit_logistic(x[neg], x[pos], w[neg], w[pos], fit_slope=fit_slope)
    rows = np.r_[neg, pos]
    for j in range(3):
        if fit_slope:
            ref = sm.GLM(y[rows], sm.add_constant(x[rows]), family=sm.families.Binomial(),
                         freq_weights=w[rows, j]).fit(tol=1e-12).params  # fmt: skip
        else:
            fit = sm.GLM(y[rows], np.ones((len(rows), 1)), family=sm.families.Binomial(),
                         offset=x[rows], freq_weights=w[rows, j]).fit(tol=1e-12)  # fmt: skip
            ref = [fit.params[0], 1.0]
        assert a[j] == pytest.approx(ref[0], abs=1e-7)
        assert b[j] == pytest.approx(ref[1], abs=1e-7)


def test_grouped_fits_accept_unsorted_predictors() -> None:
    n = logistic.GROUPED_MIN_ROWS + 500
    y, p = _sample(n, seed=4)
    x = logit(p)
    w = np.random.default_rng(2).poisson(1.0, size=(n, 2))
    neg, pos = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
    a, b = logistic.fit_logistic(x[neg], x[pos], w[neg], w[pos], fit_slope=True)
    o_n, o_p = np.argsort(x[neg]), np.argsort(x[pos])
    a2, b2 = logistic.fit_logistic(x[neg][o_n], x[pos][o_p], w[neg][o_n], w[pos][o_p], fit_slope=True)
    np.testing.assert_allclose(a, a2, atol=1e-10)
    np.testing.assert_allclose(b, b2, atol=1e-10)


def test_feature_sums_equal_direct_bin_sums() -> None:
    y, p = _sample(3_000, seed=5)
    spec = FeatureSpec(threshold=0.4, uniform_edges=uniform_edges(15), mass_edges=mass_edges(p, 15),
                       fine_edges=mass_edges(p, 50))  # fmt: skip
    view = BinaryView.from_arrays(np.arange(len(y)), y, p, spec=spec)
    res = make_resamples(y, n_boot=7, random_state=0)
    counts = res.counts[res.unit_of_row]
    batch = view.batch(counts[view.rows_neg], counts[view.rows_pos])
    for s, w, side in ((view.s_neg, counts[view.rows_neg], 0), (view.s_pos, counts[view.rows_pos], 1)):
        wf = w.astype(np.float64)
        base = batch.sums("base")[side]
        for k in range(3):
            np.testing.assert_allclose(base[:, k], (wf * s[:, None] ** k).sum(0), rtol=1e-12)
        np.testing.assert_allclose(batch.sums("threshold")[side][:, 0], wf[s >= 0.4].sum(0), rtol=1e-12)
        for name, edges, powers in (("uniform", spec.uniform_edges, 2), ("fine", spec.fine_edges, 3)):
            got = batch.sums(name)[side]
            idx = bin_index(s, edges)
            nb = len(edges) - 1
            for power in range(powers):
                for b_ in range(nb):
                    want = (wf[idx == b_] * s[idx == b_, None] ** power).sum(0)
                    np.testing.assert_allclose(got[:, power * nb + b_], want, rtol=1e-12, atol=1e-12)


def test_counts_are_uint8_and_keep_stratum_sizes() -> None:
    strata = np.repeat(["a", "b"], [600, 400])
    res = make_resamples(strata, n_boot=50, random_state=9)
    assert res.counts.dtype == np.uint8
    # each resample keeps each stratum's size
    ua = res.unit_of_row[:600]
    np.testing.assert_array_equal(res.counts[ua].sum(0), 600)
