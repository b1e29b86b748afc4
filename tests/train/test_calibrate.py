"""Post-hoc calibration of a trained model: prior correction for the class-weighted loss, then temperature."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

from auditkit.train.calibrate import calibrate_logits, temperature_record

RNG = np.random.default_rng(7)


def _sample(n: int, true_temperature: float, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from softmax(z); the 'model' reports logits T*z + log w (overconfident, weighted)."""
    z = RNG.normal(0.0, 1.5, (n, 2))
    y = np.array([RNG.choice(2, p=p) for p in softmax(z, axis=1)])
    reported = true_temperature * z + np.log(weights)
    return y, softmax(reported, axis=1)


def test_temperature_matches_a_scipy_fit_of_the_nll():
    y, prob = _sample(4000, 2.0, np.ones(2))
    record = temperature_record(y, prob)
    logits = np.log(prob)

    def nll(t: float) -> float:
        return float(-np.mean(log_softmax(logits / t, axis=1)[np.arange(len(y)), y]))

    oracle = minimize_scalar(nll, bounds=(0.05, 20), method="bounded", options={"xatol": 1e-9}).x
    assert abs(record["temperature"] - oracle) < 1e-4
    assert record["val_nll_after"] <= record["val_nll_before"]


def test_planted_overconfidence_and_class_weight_shift_are_both_undone():
    weights = np.array([0.75, 1.5])  # balanced weights for a prevalence of 1/3
    y, prob = _sample(20000, 2.0, weights)
    record = temperature_record(y, prob, class_weights=weights)
    # the planted truth: temperature 2, offset -log w (centred)
    assert abs(record["temperature"] - 2.0) < 0.1
    expected = -np.log(weights) - np.mean(-np.log(weights))
    np.testing.assert_allclose(record["logit_offset"], expected, atol=1e-12)
    # without the prior correction the calibration-in-the-large stays off (O/E far from 1)
    plain = temperature_record(y, prob)
    observed = y.mean()
    corrected = softmax((np.log(prob) + expected) / record["temperature"], axis=1)[:, 1].mean()
    uncorrected = softmax(np.log(prob) / plain["temperature"], axis=1)[:, 1].mean()
    assert abs(observed / corrected - 1) < 0.03
    assert abs(observed / uncorrected - 1) > 0.08


def test_calibrate_logits_agrees_for_torch_and_numpy_and_is_identity_when_uncalibrated():
    logits = RNG.normal(size=(5, 3))
    meta = {"calibration": {"method": "temperature", "temperature": 1.7, "logit_offset": [0.1, -0.2, 0.1]}}
    by_hand = (logits + np.array([0.1, -0.2, 0.1])) / 1.7
    np.testing.assert_allclose(calibrate_logits(logits, meta), by_hand)
    np.testing.assert_allclose(calibrate_logits(torch.tensor(logits), meta).numpy(), by_hand)
    assert calibrate_logits(logits, {"calibration": None}) is logits


def test_one_class_validation_split_gives_no_calibration():
    assert temperature_record(np.zeros(10, dtype=int), np.full((10, 2), 0.5)) is None
