"""Prediction: splits from the checkpoint's record, the table contract, metadata, embeddings."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from safetensors.numpy import load_file

from auditkit.errors import ManifestError
from auditkit.nets import load_checkpoint
from auditkit.predict import predict, resolve_splits


def _frame(rows):
    return pd.DataFrame(rows, columns=["patient_id", "site", "split"])


RECORD = pd.DataFrame({"patient_id": ["a", "b", "c", "x"], "split": ["train", "val", "test", "external"]})


def test_recorded_patients_keep_their_split_and_new_ones_are_test_or_external():
    frame = _frame([("a", "s1", None), ("b", "s1", None), ("c", "s1", "test"), ("x", "s9", None),
                    ("new", "s1", None), ("new2", "s9", None), ("new3", "s1", "external")])  # fmt: skip
    split = resolve_splits(frame, RECORD, external_sites=["s9"])
    assert split.tolist() == ["train", "val", "test", "external", "test", "external", "external"]
    assert resolve_splits(_frame([("q", "s1", None)]), None).tolist() == ["test"]


@pytest.mark.parametrize(
    ("row", "external", "message"),
    [
        (("a", "s1", "test"), [], r"row 1, column 'split'.*'test'.*'train'"),
        (("new", "s1", "train"), [], r"row 1, column 'split'.*never saw patient 'new'"),
        (("b", "s2", None), ["s2"], r"row 1, column 'site'.*'s2' is declared external.*'val'"),
    ],
)
def test_a_manifest_that_contradicts_the_checkpoint_is_refused(row, external, message):
    with pytest.raises(ManifestError, match=message):
        resolve_splits(_frame([row]), RECORD, external_sites=external, where="m.csv")


@pytest.mark.slow
def test_predictions_table_follows_the_contract(quick_predictions, quick_phantom, trained_smallcnn):
    table = pd.read_parquet(quick_predictions)
    manifest = pd.read_csv(quick_phantom.manifest_path, dtype=str, keep_default_na=False)
    assert list(table.columns[:3]) == ["id", "y_true", "score"]
    assert table["id"].tolist() == manifest["id"].tolist()
    assert table["y_true"].tolist() == (manifest["label"] == "lesion").astype(int).tolist()
    assert table["score"].between(0, 1).all()
    for column in ("patient_id", "site", "sex", "age_group"):
        assert table[column].tolist() == manifest[column].tolist()
    root = quick_phantom.out_dir.resolve()
    masks = [None if pd.isna(v) else v for v in table["mask"]]
    assert masks == [str(root / m) if m else None for m in manifest["mask"]]
    assert table["image"].tolist() == [str(root / m) for m in manifest["image"]]
    # every row's split is its patient's split in the checkpoint (oracle: a pandas join)
    splits = pd.read_csv(trained_smallcnn / "splits.csv", dtype=str)
    expected = table[["patient_id"]].merge(splits, on="patient_id", how="left")["split"]
    assert table["split"].tolist() == expected.tolist()
    metadata = json.loads(pq.read_schema(quick_predictions).metadata[b"auditkit"])
    weights = (trained_smallcnn / "weights.safetensors").read_bytes()
    assert metadata == {
        "classes": ["normal", "lesion"],
        "positive_class": "lesion",
        "model_name": trained_smallcnn.name,
        "model_sha256": hashlib.sha256(weights).hexdigest(),
        "data_root": str(quick_phantom.manifest_path.parent.resolve()),
    }


@pytest.mark.slow
def test_embeddings_are_the_heads_input(quick_embeddings, quick_predictions, trained_smallcnn):
    embeddings = pd.read_parquet(quick_embeddings)
    table = pd.read_parquet(quick_predictions)
    assert embeddings["id"].tolist() == table["id"].tolist()
    values = embeddings.drop(columns="id").to_numpy(dtype=np.float64)
    assert values.shape == (len(table), 128)
    # oracle: the linear head applied by hand with the stored weights (read by safetensors itself)
    state = load_file(str(trained_smallcnn / "weights.safetensors"))
    logits = values @ state["fc.weight"].T.astype(np.float64) + state["fc.bias"]
    # the released model's calibration, applied by hand from model.json: (logits + offset) / T
    calibration = json.loads((trained_smallcnn / "model.json").read_text())["calibration"]
    logits = (logits + np.asarray(calibration["logit_offset"])) / calibration["temperature"]
    prob = np.exp(logits - logits.max(1, keepdims=True))
    prob /= prob.sum(1, keepdims=True)
    np.testing.assert_allclose(prob[:, 1], table["score"].to_numpy(), atol=1e-5)


@pytest.mark.slow
def test_csv_and_npy_outputs_and_the_callers_model_is_left_as_it_was(
    phantom_subset, quick_phantom, trained_smallcnn, quick_predictions, tmp_path
):
    manifest = phantom_subset(10)
    loaded = load_checkpoint(trained_smallcnn, device="cpu")
    loaded.model.train()
    flags = [p.requires_grad for p in loaded.model.parameters()]
    table = predict(
        loaded, manifest, out=tmp_path / "p.csv", embeddings_out=tmp_path / "e.npy",
        data_root=quick_phantom.out_dir, num_workers=0,
    )  # fmt: skip
    assert loaded.model.training and [p.requires_grad for p in loaded.model.parameters()] == flags
    assert all(not m._forward_pre_hooks and not m._forward_hooks for m in loaded.model.modules())
    from_csv = pd.read_csv(tmp_path / "p.csv", dtype={"id": str})
    reference = pd.read_parquet(quick_predictions).set_index("id").loc[from_csv["id"]]
    np.testing.assert_allclose(from_csv["score"].to_numpy(), reference["score"].to_numpy(), atol=1e-6)
    assert from_csv["split"].tolist() == reference["split"].tolist() == table.frame["split"].tolist()
    # predict returns the validated table; the file it wrote is an artefact of the same table
    from auditkit.predictions_table import PredictionsTable, read_predictions

    assert isinstance(table, PredictionsTable) and table.path == tmp_path / "p.csv"
    again = read_predictions(tmp_path / "p.csv")
    np.testing.assert_allclose(table.probs, again.probs, rtol=0, atol=1e-12)
    assert table.frame["id"].tolist() == again.frame["id"].tolist()
    record = np.load(tmp_path / "e.npy", allow_pickle=False)
    assert record.dtype.names == ("id", "embedding") and record["id"].tolist() == from_csv["id"].tolist()
    assert record["embedding"].shape == (len(from_csv), 128)


@pytest.mark.slow
def test_multiclass_scores_sum_to_one(phantom_subset, quick_phantom, tmp_path):
    from auditkit.train import train

    manifest = phantom_subset(30)
    frame = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    frame["label"] = frame["age_group"]  # a four-class task
    frame.to_csv(manifest, index=False)
    train(manifest, arch="smallcnn", out=tmp_path / "m", epochs=1, batch_size=16, seed=0, device="cpu",
          input_size=32, num_workers=0, data_root=quick_phantom.out_dir)  # fmt: skip
    table = predict(tmp_path / "m", manifest, data_root=quick_phantom.out_dir, device="cpu", num_workers=0)
    classes = sorted(frame["label"].unique())
    columns = [f"score_{c}" for c in classes]
    assert [c for c in table.frame.columns if c.startswith("score")] == columns
    np.testing.assert_allclose(table.frame[columns].sum(axis=1), 1.0, atol=1e-6)
    assert table.frame["y_true"].tolist() == [classes.index(v) for v in frame["label"]]
