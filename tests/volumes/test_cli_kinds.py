"""3-D and multi-label models through the command line: ``auditkit train``, ``predict`` and ``audit --model``.

Oracles: the CLI's 3-D checkpoint is the Python API's (``train_volumes`` with
the same arguments gives the same weights' SHA-256), the CLI's predictions
are ``predict_volumes``' scores, and the audit's AUROC is scikit-learn's on
the table's test rows; a multi-label checkpoint's table carries one
``label_<f>``/``score_<f>`` pair per finding and the audit nests every finding.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from auditkit.cli import run
from auditkit.data.phantom.multilabel import (
    FINDINGS,
    MultilabelPhantomConfig,
    generate_multilabel_phantom,
)
from auditkit.data.phantom3d import LUNG_WINDOW, VolumePhantomConfig, generate_volume_phantom
from auditkit.data.volumes import VolumePreprocess
from auditkit.train.volumes import predict_volumes, train_volumes

SIZE = 16


@pytest.mark.slow
def test_a_volume_model_trains_predicts_and_is_audited_from_the_cli(tmp_path):
    from sklearn.metrics import roc_auc_score

    phantom = generate_volume_phantom(tmp_path / "data", VolumePhantomConfig(n_volumes=72, size=SIZE, seed=1))
    window = f"{LUNG_WINDOW[0]:g},{LUNG_WINDOW[1]:g}"
    assert run(["--quiet", "train", "--manifest", str(phantom.manifest_path), "--arch", "smallcnn3d",
                "--out", str(tmp_path / "model"), "--input-size", str(SIZE), "--window", window,
                "--epochs", "2", "--batch-size", "8", "--lr", "0.003"]) == 0  # fmt: skip
    api = train_volumes(phantom.manifest_path, out=tmp_path / "api", epochs=2, batch_size=8, lr=0.003,
                        preprocess=VolumePreprocess(size=(SIZE,) * 3, window=LUNG_WINDOW))  # fmt: skip
    cli_meta = json.loads((tmp_path / "model" / "model.json").read_text())
    assert cli_meta["sha256"] == json.loads((api / "model.json").read_text())["sha256"]
    assert cli_meta["task"]["kind"] == "volume"

    out = tmp_path / "predictions.parquet"
    assert run(["--quiet", "predict", "--model", str(tmp_path / "model"), "--manifest",
                str(phantom.manifest_path), "--out", str(out)]) == 0  # fmt: skip
    table = pd.read_parquet(out)
    expected = predict_volumes(api, phantom.manifest_path)
    np.testing.assert_allclose(table["score"].to_numpy(), expected["score"].to_numpy(), rtol=1e-6)

    assert run(["--quiet", "audit", "--model", str(tmp_path / "model"), "--manifest", str(phantom.manifest_path),
                "--out", str(tmp_path / "audit"), "--n-boot", "100", "--no-report"]) == 0  # fmt: skip
    document = json.loads((tmp_path / "audit" / "results.json").read_text())
    test = table[table["split"] == "test"]
    classes = document["run"]["classes"]
    y = test["y_true"].map(lambda v: v if isinstance(v, (int, np.integer)) else classes.index(str(v)))
    auroc = document["discrimination"]["test"]["auroc"]["estimate"]
    assert auroc == pytest.approx(roc_auc_score(y, test["score"]))
    _check_volume_saliency(tmp_path, table, document)


def _check_volume_saliency(tmp_path, table, document):
    """The audit's 3-D saliency section: full-depth maps, the peak slice and the hit rate recomputed by hand."""
    import torch

    from auditkit.data.volumes import VolumeDataset, read_volume_mask
    from auditkit.explain.volumes import explain_volumes
    from auditkit.results import validate_results
    from auditkit.train.volumes import load_volume_model

    part = {"saliency": document["saliency"], "gallery": document["gallery"]}  # from the CLI's audit
    validate_results(document)
    assert len(part["gallery"]) == 8 and {e["cohort"] for e in part["gallery"]} <= {"test", "site_C"}
    section = part["saliency"]["gradcam"]
    assert section["spatial_dims"] == 3 and section["input_size"] == [SIZE] * 3
    loaded = load_volume_model(tmp_path / "model")
    rows = table.set_index("id").loc[[e["id"] for e in part["gallery"]]].reset_index()
    inputs = torch.stack([VolumeDataset(rows, loaded.preprocess)[i][0] for i in range(len(rows))])
    maps = explain_volumes(loaded.model, inputs, method="gradcam", target_layer=loaded.target_layer)
    assert maps.shape[1:] == (SIZE,) * 3  # full depth, not the target layer's
    hits = []
    for i, entry in enumerate(part["gallery"]):
        assert entry["slice"] == int(np.argmax(np.clip(maps[i], 0, None).sum(axis=(1, 2))))
        for key in ("image", "mask") if entry["mask"] else ("image",):
            assert (tmp_path / "audit" / entry[key]).is_file()
        mask = rows.loc[i, "mask"]
        if isinstance(mask, str) and mask:
            hits.append(float(read_volume_mask(mask).ravel()[int(np.argmax(maps[i]))]))
    hit_rate = section["localization"]["hit_rate"]
    assert hit_rate["estimate"] == pytest.approx(np.mean(hits))
    assert hit_rate["ci_low"] <= hit_rate["estimate"] <= hit_rate["ci_high"]
    assert hit_rate["method"] == "percentile bootstrap over images"  # the shared bootstrap_mean, run context applied
    _check_viewer_cases(tmp_path / "audit", part["gallery"], maps, rows)


def _check_viewer_cases(folder, gallery, maps, rows):
    """explain/cases.json holds one viewer record per explained volume: every slice, opened on the saliency peak."""
    from PIL import Image

    from auditkit.data.volumes import read_volume_mask
    from auditkit.export.dicom import export_dicom
    from auditkit.viewer.data import build_payload, image_paths

    document = json.loads((folder / "explain" / "cases.json").read_text())
    cases, vmax = document["cases"], document["methods"]["gradcam"]["scale"]["vmax"]
    assert [c["id"] for c in cases] == [e["id"] for e in gallery]
    for i, case in enumerate(cases):
        volume = case["volume"]
        assert volume["depth"] == SIZE and volume["slice_shape"] == [SIZE, SIZE]
        with np.load(folder / volume["arrays"]) as saved:
            saved_map = saved["gradcam"]
        np.testing.assert_allclose(saved_map, maps[i], rtol=1e-5, atol=1e-6)  # the maps recomputed above
        mass = np.clip(saved_map, 0, None).sum(axis=(1, 2))  # by hand: each slice's positive saliency
        assert volume["slice"] == int(np.argmax(mass)) == gallery[i]["slice"]
        assert case["outcome"] == {"true_positive": "TP", "false_negative": "FN", "false_positive": "FP",
                                   "true_negative": "TN"}[gallery[i]["category"]]  # fmt: skip
        assert case["score"] == pytest.approx(gallery[i]["score"]) and case["source"]["format"] == "volume"
        mask = rows.loc[i, "mask"]
        lesion = read_volume_mask(mask).any(axis=(1, 2)) if isinstance(mask, str) and mask else np.zeros(SIZE, bool)
        assert volume["lesion_slices"] == [int(k) for k in np.flatnonzero(lesion)]
        sprite = np.asarray(Image.open(folder / volume["sprites"]["maps"]["gradcam"]))
        assert sprite.shape == (SIZE * SIZE, SIZE)  # D slices of H rows, stacked
        peak_png = sprite[volume["slice"] * SIZE : (volume["slice"] + 1) * SIZE]
        codes = np.round(np.clip(saved_map[volume["slice"]] / vmax, 0, 1) * 255)  # by hand: the shared uint8 scale
        assert np.abs(peak_png.astype(int) - codes).max() <= 1
    assert set(image_paths(build_payload(folder))) >= {c["volume"]["sprites"]["image"] for c in cases}
    summary = export_dicom(folder, folder.parent / "dicom")
    assert summary.skipped_volume == len(cases) and summary.files == []


@pytest.mark.slow
def test_a_multilabel_model_trains_predicts_and_is_audited_from_the_cli(tmp_path):
    phantom = generate_multilabel_phantom(tmp_path / "data", MultilabelPhantomConfig(n_images=300, size=16))
    assert run(["--quiet", "train", "--manifest", str(phantom.manifest_path), "--arch", "smallcnn",
                "--out", str(tmp_path / "model"), "--input-size", "16", "--epochs", "1"]) == 0  # fmt: skip
    meta = json.loads((tmp_path / "model" / "model.json").read_text())
    assert meta["task"] == {"kind": "multilabel", "findings": list(FINDINGS)}
    assert meta["output"]["activation"] == "sigmoid"
    assert run(["--quiet", "audit", "--model", str(tmp_path / "model"), "--manifest", str(phantom.manifest_path),
                "--out", str(tmp_path / "audit"), "--n-boot", "100", "--no-report"]) == 0  # fmt: skip
    document = json.loads((tmp_path / "audit" / "results.json").read_text())
    assert document["run"]["task"] == "multilabel" and sorted(document["findings"]) == sorted(FINDINGS)
    table = pd.read_parquet(tmp_path / "audit" / "predictions.parquet")
    assert [c for c in table.columns if c.startswith("score_")] == [f"score_{f}" for f in FINDINGS]
    assert table[[f"score_{f}" for f in FINDINGS]].stack().between(0, 1).all()
