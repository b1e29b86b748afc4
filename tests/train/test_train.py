"""Training end to end: held-out AUROC, the checkpoint's record, exact resume, external sites, user models."""

from __future__ import annotations

import hashlib
import json
import random
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score
from sklearn.utils.class_weight import compute_class_weight

from auditkit.errors import InvalidInputError, OutputExistsError
from auditkit.nets import load_checkpoint
from auditkit.progress import set_quiet
from auditkit.train import train

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _quiet():
    set_quiet(True)
    yield
    set_quiet(False)


def test_trained_smallcnn_beats_chance_on_held_out_phantom_data(quick_predictions):
    table = pd.read_parquet(quick_predictions)
    test = table[table["split"] == "test"]
    assert test["y_true"].nunique() == 2 and len(test) >= 60
    assert roc_auc_score(test["y_true"], test["score"]) > 0.8


def test_checkpoint_records_what_regulators_ask_for(trained_smallcnn, quick_phantom):
    meta = json.loads((trained_smallcnn / "model.json").read_text())
    manifest = pd.read_csv(quick_phantom.manifest_path, dtype=str, keep_default_na=False)
    splits = pd.read_csv(trained_smallcnn / "splits.csv", dtype=str)
    # hashes: recomputed with hashlib
    weights = (trained_smallcnn / "weights.safetensors").read_bytes()
    assert meta["sha256"] == meta["weights"]["sha256"] == hashlib.sha256(weights).hexdigest()
    fingerprint = meta["training"]["data_fingerprint"]
    assert fingerprint["manifest_sha256"] == hashlib.sha256(quick_phantom.manifest_path.read_bytes()).hexdigest()
    # split counts: recounted from the manifest and splits.csv with pandas
    rows = manifest.merge(splits, on="patient_id", suffixes=("_manifest", ""))
    assert len(rows) == len(manifest)
    for split, group in rows.groupby("split"):
        assert fingerprint["splits"][split] == {
            "n_images": len(group),
            "n_patients": group["patient_id"].nunique(),
            "n_positive": int((group["label"] == "lesion").sum()),
        }
    train_labels = (rows.loc[rows["split"] == "train", "label"] == "lesion").astype(int)
    expected = compute_class_weight("balanced", classes=np.array([0, 1]), y=train_labels)
    np.testing.assert_allclose(meta["training"]["class_weights"], expected)
    assert meta["classes"] == {"classes": ["normal", "lesion"], "positive_class": "lesion"}
    assert meta["output"]["score"].startswith("softmax probability of the positive class")
    assert meta["library_versions"]["torch"] == torch.__version__
    assert meta["target_layer"] == "features.3" and meta["training"]["completed"] is True
    assert meta["n_parameters"] == sum(p.numel() for p in load_checkpoint(trained_smallcnn).model.parameters())


def test_best_epoch_and_early_stopping_follow_the_history(trained_smallcnn):
    meta = json.loads((trained_smallcnn / "model.json").read_text())
    history = pd.read_csv(trained_smallcnn / "history.csv")
    assert list(history.columns) == ["epoch", "train_loss", "val_loss", "val_auroc", "lr"]
    assert history["epoch"].tolist() == list(range(1, len(history) + 1))
    best = int(history.loc[history["val_auroc"].idxmax(), "epoch"])  # first maximum
    assert meta["training"]["best_epoch"] == best == meta["metrics"]["epoch"]
    assert meta["metrics"]["val_auroc"] == pytest.approx(history["val_auroc"].max(), rel=1e-9)
    if meta["training"]["stopped_early"]:
        assert len(history) - best == meta["training"]["early_stopping"]["patience"]
    else:
        assert len(history) == meta["training"]["epochs"]


def test_splits_keep_patients_together_and_the_external_site_out(trained_smallcnn, quick_phantom):
    manifest = pd.read_csv(quick_phantom.manifest_path, dtype=str, keep_default_na=False)
    splits = pd.read_csv(trained_smallcnn / "splits.csv", dtype=str)
    assert splits["patient_id"].is_unique
    sites = manifest.groupby("patient_id")["site"].first()
    external = set(manifest.loc[manifest["split"] == "external", "site"])
    assert external  # the phantom declares its external site in the manifest
    for patient, split in zip(splits["patient_id"], splits["split"], strict=True):
        assert (split == "external") == (sites[patient] in external)


def _small_run(manifest, root, out, **kwargs):
    args = {
        "arch": "smallcnn", "epochs": 3, "batch_size": 16, "lr": 3e-3, "seed": 1, "device": "cpu",
        "input_size": 32, "num_workers": 0, "data_root": root,
    }  # fmt: skip
    args.update(kwargs)
    return train(manifest, out=out, **args)


def test_resume_after_an_interruption_matches_an_uninterrupted_run(phantom_subset, quick_phantom, tmp_path):
    manifest = phantom_subset(60)
    root = quick_phantom.out_dir
    torch_state, np_state, py_state = torch.get_rng_state(), np.random.get_state(), random.getstate()
    deterministic = torch.are_deterministic_algorithms_enabled()
    whole = _small_run(manifest, root, tmp_path / "whole")
    # the caller's RNG streams and determinism flag are untouched
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.random.get_state()[1].tolist() == np_state[1].tolist() and random.getstate() == py_state
    assert torch.are_deterministic_algorithms_enabled() == deterministic

    cut = _small_run(manifest, root, tmp_path / "cut", on_epoch_end=lambda row: row["epoch"] == 1)
    assert not cut.completed and cut.epochs_run == 1
    assert (tmp_path / "cut" / "resume" / "state.json").is_file()
    with pytest.raises(InvalidInputError, match="lr"):
        _small_run(manifest, root, tmp_path / "cut", resume=True, lr=1e-2)
    resumed = _small_run(manifest, root, tmp_path / "cut", resume=True)
    assert resumed.completed and not (tmp_path / "cut" / "resume").exists()
    assert resumed.history == whole.history
    a = (tmp_path / "whole" / "weights.safetensors").read_bytes()
    b = (tmp_path / "cut" / "weights.safetensors").read_bytes()
    assert a == b  # identical weights, bit for bit
    assert (tmp_path / "whole" / "history.csv").read_bytes() == (tmp_path / "cut" / "history.csv").read_bytes()
    with pytest.raises(OutputExistsError, match="--force"):
        _small_run(manifest, root, tmp_path / "whole")


def test_external_site_flag_keeps_a_site_out_of_training_and_validation(phantom_subset, quick_phantom, tmp_path):
    manifest = phantom_subset(40)
    result = _small_run(manifest, quick_phantom.out_dir, tmp_path / "m", epochs=1, external_sites=("site_B",))
    rows = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    splits = pd.read_csv(tmp_path / "m" / "splits.csv", dtype=str)
    merged = rows.merge(splits, on="patient_id", suffixes=("_manifest", ""))
    assert set(merged.loc[merged["site"] == "site_B", "split"]) == {"external"}
    assert set(merged.loc[merged["split"].isin(["train", "val"]), "site"]) == {"site_A"}
    assert result.meta["training"]["external_sites"] == ["site_B", "site_C"]


def test_epochs_zero_packages_a_user_factory_model_and_predicts_with_it(phantom_subset, quick_phantom, tmp_path, monkeypatch):
    from auditkit.predict import predict

    (tmp_path / "user_train_nets.py").write_text(
        textwrap.dedent(
            """
            from torch import nn
            def build(in_channels, num_classes):
                return nn.Sequential(nn.Conv2d(in_channels, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                     nn.Flatten(), nn.Linear(4, num_classes))
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    manifest = phantom_subset(20)
    result = _small_run(manifest, quick_phantom.out_dir, tmp_path / "m", arch="user_train_nets:build", epochs=0)
    assert result.completed and result.history[0]["epoch"] == 0
    from auditkit.cli import run

    common = ["predict", "--model", str(tmp_path / "m"), "--manifest", str(manifest), "--device", "cpu",
              "--data-root", str(quick_phantom.out_dir), "--num-workers", "0"]  # fmt: skip
    assert run([*common, "--out", str(tmp_path / "refused.csv")]) == 2  # its code is not run unasked
    assert not (tmp_path / "refused.csv").exists()
    assert run([*common, "--out", str(tmp_path / "p.csv"), "--trust-model-code"]) == 0
    loaded = load_checkpoint(tmp_path / "m", device="cpu", trust_code=True)
    # the Grad-CAM target is what the global pool consumes: the ReLU after the conv (nets.layers)
    assert loaded.target_layer == "1" and loaded.meta["embedding_layer"] == "4"
    table = predict(loaded, manifest, data_root=quick_phantom.out_dir, device="cpu", num_workers=0)
    # oracle: the same network applied by hand to the preprocessed images
    from auditkit.data.manifest import read_manifest

    frame = read_manifest(manifest, data_root=quick_phantom.out_dir).frame
    from auditkit.data.readers import read_image

    x = torch.stack([loaded.preprocess(read_image(p)) for p in frame["image"]])
    calibration = loaded.meta["calibration"]  # fitted on validation even without training
    offset = torch.tensor(calibration["logit_offset"])
    with torch.no_grad():
        logits = (loaded.model(x) + offset) / calibration["temperature"]
        expected = torch.softmax(logits, dim=1)[:, 1].numpy()
    np.testing.assert_allclose(table.frame["score"].to_numpy(), expected, rtol=1e-5, atol=1e-6)
