"""Temperature scaling on a perfectly separated validation split is refused, not clamped to T = 0.01.

Oracle: the NLL of a separated sample computed here by hand falls monotonically as T -> 0 (so any
'fitted' T is the search bound), while a noisy sample has an interior optimum the fit keeps.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, log_softmax

from auditkit import progress
from auditkit.stats.recalibration import fit_temperature_binary, fit_temperature_multiclass
from auditkit.train.calibrate import temperature_record


def _separated(n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, n)
    z = np.where(y == 1, rng.uniform(0.2, 3, n), rng.uniform(-3, -0.2, n))
    return y, expit(z)


def test_separated_binary_split_is_refused_with_a_warning():
    y, p = _separated()
    z = np.log(p) - np.log1p(-p)
    nll = [np.mean(np.logaddexp(0, np.where(y == 1, -z / t, z / t))) for t in (1.0, 0.1, 0.01)]
    assert nll[0] > nll[1] > nll[2]  # no interior optimum: the old fit returned the bound 0.01
    fit = fit_temperature_binary(y, p)
    assert fit.temperature == 1.0
    assert "perfectly classified" in fit.warning
    assert fit.to_dict()["warning"] == fit.warning


def test_separated_multiclass_split_is_refused_and_model_json_records_the_warning(capsys, monkeypatch):
    monkeypatch.setitem(progress._state, "quiet", False)
    y, p = _separated()
    probs = np.c_[1 - p, p]
    fit = fit_temperature_multiclass(y, probs)
    assert fit.temperature == 1.0 and fit.warning
    record = temperature_record(y, probs)
    assert record["temperature"] == 1.0 and "perfectly classified" in record["warning"]
    err = capsys.readouterr().err
    assert err.startswith("warning: temperature scaling refused") and "perfectly classified" in err


def test_noisy_split_keeps_its_interior_optimum_without_a_warning():
    rng = np.random.default_rng(1)
    z = rng.normal(0, 2, 2000)
    y = (rng.random(2000) < expit(z)).astype(int)
    fit = fit_temperature_multiclass(y, np.c_[1 - expit(2 * z), expit(2 * z)])
    grid = np.exp(np.linspace(np.log(0.5), np.log(8), 400))
    logp = np.log(np.c_[1 - expit(2 * z), expit(2 * z)])
    by_hand = grid[np.argmin([-np.mean(log_softmax(logp / t, axis=1)[np.arange(2000), y]) for t in grid])]
    assert abs(fit.temperature - by_hand) / by_hand < 0.02
    assert fit.warning is None
    assert "warning" not in temperature_record(y, np.c_[1 - expit(2 * z), expit(2 * z)])
