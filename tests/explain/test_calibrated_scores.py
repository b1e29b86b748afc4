"""explain and predict score every image the same way: the checkpoint's calibration, everywhere.

The checkpoint's model.json gets a strong calibration (a prior offset that
moves the decision and a temperature of 2.5) so raw and calibrated scores
differ visibly; the oracle is the predictions table written by
``auditkit predict`` and, for the calibration itself, the formula
softmax((z + offset) / T) computed here by hand with NumPy.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from auditkit.explain.runner import explain_manifest
from auditkit.nets.scores import calibrated_probabilities
from auditkit.predict import predict
from auditkit.progress import set_quiet

OFFSET = [1.2, -1.2]
TEMPERATURE = 2.5


@pytest.fixture(scope="module")
def recalibrated(trained_smallcnn, tmp_path_factory):
    folder = tmp_path_factory.mktemp("recal") / "model"
    shutil.copytree(trained_smallcnn, folder)
    meta = json.loads((folder / "model.json").read_text())
    meta["calibration"] = {**(meta.get("calibration") or {}), "method": "temperature",
                           "logit_offset": OFFSET, "temperature": TEMPERATURE}
    (folder / "model.json").write_text(json.dumps(meta))
    return folder


def test_calibrated_probabilities_match_the_formula_for_k_logits_and_one_logit():
    meta = {"calibration": {"method": "temperature", "logit_offset": OFFSET, "temperature": TEMPERATURE}}
    z = np.array([[0.3, -1.0], [2.0, 1.5]])
    by_hand = np.exp((z + OFFSET) / TEMPERATURE)
    by_hand /= by_hand.sum(1, keepdims=True)
    np.testing.assert_allclose(calibrated_probabilities(torch.tensor(z), meta).numpy(), by_hand, rtol=1e-6)
    one = np.array([[0.8], [-2.0]])
    two = np.c_[-one / 2, one / 2]
    by_hand = np.exp((two + OFFSET) / TEMPERATURE)
    by_hand /= by_hand.sum(1, keepdims=True)
    np.testing.assert_allclose(calibrated_probabilities(torch.tensor(one), meta).numpy(), by_hand, rtol=1e-6)


@pytest.mark.parametrize("select", ["all", "errors"])
def test_explain_probability_and_predicted_class_agree_with_predict(
    recalibrated, quick_phantom, phantom_subset, tmp_path, select
):
    manifest = phantom_subset(4)
    root = quick_phantom.manifest_path.parent
    set_quiet(True)
    try:
        predict(recalibrated, manifest, out=tmp_path / "p.csv", device="cpu", num_workers=0, data_root=root)
        explain_manifest(recalibrated, manifest, methods=["gradcam"], out=tmp_path / "x", select=select,
                         target="predicted", device="cpu", limit=8, data_root=root)
    finally:
        set_quiet(False)
    preds = pd.read_csv(tmp_path / "p.csv")
    rows = pd.read_csv(tmp_path / "x" / "explanations.csv")
    assert len(rows) > 0
    merged = rows.merge(preds, on="id", suffixes=("", "_pred"))
    assert len(merged) == len(rows)
    score_pos = merged["score"].to_numpy()
    predicted = (score_pos >= 0.5).astype(int)
    # the explained class is the class predict's calibrated scores pick
    np.testing.assert_array_equal(merged["target_index"].to_numpy(), predicted)
    p_target = np.where(merged["target_index"] == 1, score_pos, 1.0 - score_pos)
    np.testing.assert_allclose(merged["probability"].to_numpy(), p_target, atol=1e-5)
    if select == "errors":
        assert (predicted != merged["y_true"].to_numpy()).all()
