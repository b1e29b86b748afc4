"""Decision-curve analysis: net benefit equals R dcurves' published output, a hand computation and (when installed) dcurves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from auditkit.stats.decision_curve import (
    decision_curve,
    net_benefit,
    net_benefit_at,
    threshold_grid,
    treat_all_net_benefit,
)
from auditkit.stats.views import BinaryView


def _data(n=300, seed=1):
    rng = np.random.default_rng(seed)
    y = rng.binomial(1, 0.3, n)
    s = np.clip(0.25 * y + rng.beta(2, 5, n), 0, 1).round(3)  # ties on purpose
    return y, s


def test_hand_computed_net_benefit():
    y = np.array([1, 1, 0, 0, 0])
    s = np.array([0.9, 0.2, 0.6, 0.1, 0.2])
    # at 0.2: calls 0.9, 0.2, 0.6, 0.2 -> TP 2, FP 2; NB = 2/5 - 2/5 * 0.25
    assert net_benefit(y, s, np.array([0.2]))[0] == pytest.approx(0.4 - 0.4 * 0.25)
    # at 0.5: TP 1 FP 1 -> 0.2 - 0.2 * 1
    assert net_benefit(y, s, np.array([0.5]))[0] == pytest.approx(0.0)
    assert treat_all_net_benefit(y, np.array([0.5]))[0] == pytest.approx(0.4 - 0.6)


# R dcurves' output for df_cancer_dx (n = 750, 105 cancers, prevalence 0.14), model "age":
# MSKCC-Epi-Bio/dcurves, tests/benchmark_data/r_simple_binary_dca_result_df.csv (the R package's
# dca(); Sjoberg, Vickers et al.). Columns copied: threshold, tp_rate, fp_rate, net_benefit of
# "age", and net_benefit of "Treat All".
R_DCURVES_N, R_DCURVES_POSITIVES = 750, 105
R_DCURVES_AGE = [  # threshold, tp_rate, fp_rate, net_benefit
    (0.05, 0.13066666666666668, 0.6053333333333333, 0.09880701754385966),
    (0.10, 0.11200000000000002, 0.38533333333333336, 0.0691851851851852),
    (0.20, 0.07866666666666668, 0.14666666666666667, 0.04200000000000001),
    (0.30, 0.04666666666666667, 0.06133333333333333, 0.02038095238095238),
    (0.50, 0.018666666666666668, 0.009333333333333332, 0.009333333333333336),
]
R_DCURVES_TREAT_ALL = {0.05: 0.09473684210526317, 0.10: 0.04444444444444445, 0.20: -0.07499999999999998,
                       0.30: -0.2285714285714286, 0.50: -0.72}  # fmt: skip


def _data_with_counts(n, n_pos, table):
    """Return (y, s) whose calls 'score >= t' have exactly the table's TP and FP counts at each t.

    Scores sit exactly on the thresholds (ties), so the test also checks dcurves' convention that
    a score equal to the threshold is a positive call.
    """
    y = np.r_[np.ones(n_pos, int), np.zeros(n - n_pos, int)]
    s = np.zeros(n)
    for cls, column in ((1, 1), (0, 2)):
        members = np.flatnonzero(y == cls)
        counts = [round(row[column] * n) for row in table]
        start = 0
        for k in range(len(table) - 1, -1, -1):  # highest threshold first: its callers also call lower
            stop = counts[k]
            s[members[start:stop]] = table[k][0]
            start = max(start, stop)
    return y, s


def test_equals_published_r_dcurves_output():
    y, s = _data_with_counts(R_DCURVES_N, R_DCURVES_POSITIVES, R_DCURVES_AGE)
    t = np.array([row[0] for row in R_DCURVES_AGE])
    # the reconstruction has the published confusion rates (so the comparison is of the formula)
    for threshold, tp_rate, fp_rate, _ in R_DCURVES_AGE:
        calls = s >= threshold
        assert (calls & (y == 1)).sum() / R_DCURVES_N == pytest.approx(tp_rate, abs=1e-12)
        assert (calls & (y == 0)).sum() / R_DCURVES_N == pytest.approx(fp_rate, abs=1e-12)
    np.testing.assert_allclose(net_benefit(y, s, t), [row[3] for row in R_DCURVES_AGE], rtol=0, atol=1e-12)
    np.testing.assert_allclose(treat_all_net_benefit(y, t), [R_DCURVES_TREAT_ALL[x] for x in t], rtol=0, atol=1e-12)


def test_engine_point_equals_published_r_dcurves_output(make_engine):
    """The bootstrap engine's point estimates (what results.json reports) are the same published numbers."""
    y, s = _data_with_counts(R_DCURVES_N, R_DCURVES_POSITIVES, R_DCURVES_AGE)
    t = np.array([row[0] for row in R_DCURVES_AGE])
    curve = decision_curve(make_engine(len(y), n_boot=50), BinaryView.from_arrays(np.arange(len(y)), y, s), t)
    np.testing.assert_allclose(curve.model, [row[3] for row in R_DCURVES_AGE], rtol=0, atol=1e-12)
    np.testing.assert_allclose(curve.treat_all, [R_DCURVES_TREAT_ALL[x] for x in t], rtol=0, atol=1e-12)


def test_equals_dcurves():
    """Optional (the ``oracles`` extra: dcurves needs lifelines, which caps pandas below 3)."""
    dcurves = pytest.importorskip("dcurves")
    y, s = _data()
    t = threshold_grid(0.05, 0.6, 0.05)
    ref = dcurves.dca(data=pd.DataFrame({"y": y, "s": s}), outcome="y", modelnames=["s"], thresholds=t)
    ref_model = ref[ref.model == "s"].sort_values("threshold").net_benefit.to_numpy()
    ref_all = ref[ref.model == "all"].sort_values("threshold").net_benefit.to_numpy()
    np.testing.assert_allclose(net_benefit(y, s, t), ref_model, atol=1e-12)
    np.testing.assert_allclose(treat_all_net_benefit(y, t), ref_all, atol=1e-12)


def test_engine_point_matches_and_band_covers(make_engine):
    y, s = _data()
    t = threshold_grid(0.05, 0.6, 0.05)
    engine = make_engine(len(y), n_boot=300)
    view = BinaryView.from_arrays(np.arange(len(y)), y, s)
    curve = decision_curve(engine, view, t)
    np.testing.assert_allclose(curve.model, net_benefit(y, s, t), atol=1e-12)
    np.testing.assert_allclose(curve.treat_all, treat_all_net_benefit(y, t), atol=1e-12)
    assert np.all(curve.model_low <= curve.model + 1e-12)
    assert np.all(curve.model + 1e-12 >= curve.model_low) and np.all(curve.model <= curve.model_high + 1e-12)
    # the band's width is that of a binomial-scale quantity: a few hundredths at n=300
    assert 0.01 < np.nanmedian(curve.model_high - curve.model_low) < 0.2
    est = net_benefit_at(engine, view, 0.2)
    assert est["net_benefit"].estimate == pytest.approx(net_benefit(y, s, np.array([0.2]))[0])
    expected_adv = net_benefit(y, s, np.array([0.2]))[0] - max(treat_all_net_benefit(y, np.array([0.2]))[0], 0)
    assert est["advantage"].estimate == pytest.approx(expected_adv)


def test_interval_covers_the_population_net_benefit(make_engine):
    """Simulation with known truth: NB(0.2) of a population computed on 200k draws."""
    def draw(n, rng):
        y = rng.binomial(1, 0.3, n)
        return y, np.clip(0.25 * y + rng.beta(2, 5, n), 0, 1)

    rng = np.random.default_rng(7)
    truth = net_benefit(*draw(200_000, rng), np.array([0.2]))[0]
    hits = 0
    for rep in range(60):
        y, s = draw(200, rng)
        est = net_benefit_at(make_engine(200, n_boot=200, seed=rep), BinaryView.from_arrays(np.arange(200), y, s), 0.2)
        hits += est["net_benefit"].ci_low <= truth <= est["net_benefit"].ci_high
    assert hits / 60 >= 0.85


def test_grid_rejects_bad_range():
    from auditkit.errors import InvalidInputError

    with pytest.raises(InvalidInputError):
        threshold_grid(0.0, 0.5, 0.01)
    assert threshold_grid(0.05, 0.1, 0.01).tolist() == [0.05, 0.06, 0.07, 0.08, 0.09, 0.1]
