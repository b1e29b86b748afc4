"""Decision-curve analysis: net benefit equals the dcurves package and a hand computation."""

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


def test_equals_dcurves():
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
