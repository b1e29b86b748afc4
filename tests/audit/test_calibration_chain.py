"""The calibration chain in results.json: raw -> as delivered (the checkpoint's offset and temperature) -> audit refit.

Oracles: the raw scores are planted (the table's scores are made from them with a known offset and
temperature, by hand), and the raw step's calibration error must equal the same estimator run on
the planted raw scores directly; a separated validation split must carry the refusal warning.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, softmax

from auditkit.audit.config import AuditSettings
from auditkit.audit.predictions import read_predictions
from auditkit.audit.statistics import compute_statistics, raw_probabilities
from auditkit.stats.calibration import debiased_l1_calibration_error

from .conftest import make_table

CALIB = {"method": "temperature", "logit_offset": [0.4, -0.4], "temperature": 0.7}


def test_raw_probabilities_invert_the_checkpoint_calibration():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, (50, 3))
    offset = np.array([0.3, -0.1, -0.2])
    delivered = softmax((z + offset) / 1.7, axis=1)
    raw = raw_probabilities(delivered, {"method": "temperature", "logit_offset": offset.tolist(), "temperature": 1.7})
    np.testing.assert_allclose(raw, softmax(z, axis=1), atol=1e-9)
    assert raw_probabilities(delivered, None) is None


def test_chain_audits_the_raw_scores_and_records_the_delivered_calibration(tmp_path):
    frame = make_table(900, external=False)
    raw_pos = frame["score"].to_numpy()
    z = np.log(raw_pos) - np.log1p(-raw_pos)
    # delivered = softmax(([-z/2, z/2] + offset) / T): positive logit (z + 2*(-0.4)... ) by hand
    delivered = expit((z + CALIB["logit_offset"][1] - CALIB["logit_offset"][0]) / CALIB["temperature"])
    frame["score"] = delivered
    path = tmp_path / "p.csv"
    frame.to_csv(path, index=False)
    sections = compute_statistics(read_predictions(path), AuditSettings(n_boot=60), delivered_calibration=CALIB)
    chain = sections["calibration_chain"]
    assert chain["steps"] == ["raw", "as_delivered", "audit_recalibration"]
    assert chain["as_delivered"]["calibration"] == CALIB
    test = (frame["split"] == "test").to_numpy()
    expected = debiased_l1_calibration_error(frame["y_true"][test], raw_pos[test])
    assert abs(chain["raw"]["test"]["ece_l1_debiased"].estimate - expected) < 1e-6
    delivered_ce = sections["calibration"]["test"]["ece_l1_debiased"].estimate
    assert abs(delivered_ce - debiased_l1_calibration_error(frame["y_true"][test], delivered[test])) < 1e-9
    assert chain["audit_recalibration"]["temperature"]["temperature"] > 0


def test_separated_validation_split_warns_instead_of_clamping(tmp_path):
    frame = make_table(900, external=False)
    val = (frame["split"] == "val").to_numpy()
    y = frame["y_true"].to_numpy()
    frame.loc[val, "score"] = np.where(y[val] == 1, 0.9, 0.1)
    path = tmp_path / "p.csv"
    frame.to_csv(path, index=False)
    sections = compute_statistics(read_predictions(path), AuditSettings(n_boot=60))
    params = sections["recalibration"]["temperature"]["parameters"]
    assert params["temperature"] == 1.0 and "perfectly classified" in params["warning"]
    assert any(w["code"] == "temperature" for w in sections["warnings"])
    assert sections["calibration_chain"]["warnings"] == [params["warning"]]
    assert "reason" in sections["calibration_chain"]["raw"]
