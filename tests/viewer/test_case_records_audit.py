"""The saliency step's case records agree with the section it writes into results.json (a real model)."""

from __future__ import annotations

import json

import numpy as np
import pytest

TINY = dict(max_images=24, max_val_images=12, sanity_images=4, sanity_blocks=2, faithfulness_images=6,
            faithfulness_steps=5, stability_images=4, n_boot=100, gallery_per_category=1)  # fmt: skip


@pytest.mark.slow
def test_each_cases_values_pool_to_the_results_section(trained_smallcnn, quick_predictions, quick_phantom, tmp_path):
    from auditkit.audit.predictions import read_predictions
    from auditkit.audit.saliency import run_saliency
    from auditkit.nets import load_checkpoint

    loaded = load_checkpoint(trained_smallcnn, device="cpu")
    table = read_predictions(quick_predictions)
    section, _ = run_saliency(loaded, table, out_dir=tmp_path, config={**TINY, "methods": ["gradcam"]},
                              data_root=quick_phantom.manifest_path.parent)  # fmt: skip
    document = json.loads((tmp_path / "explain/cases.json").read_text())
    cases = document["cases"]
    assert len(cases) == section["gradcam"]["n_images"]
    # the pooled pointing game and energy are the means of the per-case values (lesion cases only)
    # (a constant map points nowhere: its value is recorded as null, and the pooled mean skips it too)
    values = [c["metrics"]["gradcam"] for c in cases if c["mask"] is not None]
    hits = [v["peak_in_lesion"] for v in values if v["peak_in_lesion"] is not None]
    energy = [v["energy_in_lesion"] for v in values if v["energy_in_lesion"] is not None]
    localization = section["gradcam"]["localization"]
    assert len(values) == localization["n_images"] and hits
    assert np.mean(hits) == pytest.approx(localization["hit_rate"]["estimate"], abs=1e-12)
    assert np.mean(energy) == pytest.approx(localization["energy_pointing"]["estimate"], abs=1e-12)
    # the outcome follows the recorded operating point and the label
    threshold = document["operating_point"]["threshold"]
    for c in cases:
        positive = c["label"] == document["positive_class"]
        called = c["score"] >= threshold
        assert c["outcome"] == {(True, True): "TP", (True, False): "FN", (False, True): "FP", (False, False): "TN"}[
            (positive, called)
        ]
