"""Reading and validating the predictions table: every problem names the file, row and column."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from auditkit.audit.predictions import read_embeddings, read_predictions
from auditkit.errors import AuditkitError, PredictionsError

from .conftest import make_table


def test_reads_csv_binary_table(predictions_csv):
    table = read_predictions(predictions_csv)
    assert table.classes.classes == ("0", "1") and table.classes.positive_class == "1"
    assert set(table.attribute_columns) == {"sex", "age_group"}
    np.testing.assert_allclose(table.probs[:, 1], pd.read_csv(predictions_csv)["score"])
    assert table.model is None and len(table.sha256) == 64


def test_reads_parquet_with_auditkit_metadata(tmp_path):
    frame = make_table(200)
    frame["y_true"] = np.where(frame["y_true"] == 1, "pneumonia", "normal")
    arrow = pa.Table.from_pandas(frame, preserve_index=False)
    meta = {
        "classes": ["normal", "pneumonia"],
        "positive_class": "pneumonia",
        "model_name": "m1",
        "model_sha256": "ab" * 32,
    }
    arrow = arrow.replace_schema_metadata(
        {**(arrow.schema.metadata or {}), b"auditkit": json.dumps(meta).encode()}
    )
    path = tmp_path / "p.parquet"
    pq.write_table(arrow, path)
    table = read_predictions(path)
    assert table.classes.positive_class == "pneumonia"
    assert table.model == {"name": "m1", "sha256": "ab" * 32}
    assert (table.frame["y_true"] == (frame["y_true"] == "pneumonia")).all()


def test_multiclass_score_columns(tmp_path):
    rng = np.random.default_rng(0)
    p = rng.dirichlet([1, 1, 1], 50)
    frame = pd.DataFrame({"id": range(50), "y_true": rng.choice(["cat", "dog", "eel"], 50)})
    for k, name in enumerate(["dog", "eel", "cat"]):
        frame[f"score_{name}"] = p[:, k]
    path = tmp_path / "m.csv"
    frame.to_csv(path, index=False)
    table = read_predictions(path)
    assert table.classes.classes == ("cat", "dog", "eel")
    np.testing.assert_allclose(table.probs[:, 0], p[:, 2])
    frame.loc[7, "score_dog"] += 0.2
    frame.to_csv(path, index=False)
    with pytest.raises(PredictionsError, match="row 8: the score_<class> columns sum to"):
        read_predictions(path)


def _write(tmp_path, frame, name="bad.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda f: f.drop(columns="y_true"), "required column 'y_true' is missing"),
        (lambda f: f.assign(score=f["score"].where(f.index != 4)), "row 5, column 'score' is nan"),
        (
            lambda f: f.assign(score=f["score"].where(f.index != 2, 1.3)),
            r"row 3, column 'score' is 1.3, outside \[0, 1\]",
        ),
        (
            lambda f: f.assign(score=f["score"].astype(object).where(f.index != 1, "high")),
            "row 2, column 'score' is 'high'",
        ),
        (
            lambda f: f.assign(id=f["id"].where(f.index != 9, f["id"][3])),
            r"duplicate value 'img00003' \(rows 4 and 10\)",
        ),
        (
            lambda f: f.assign(y_true=f["y_true"].astype(object).where(f.index != 6, 3)),
            "row 7 has label 3",
        ),
        (
            lambda f: f.assign(split=f["split"].where(f.index != 0, "holdout")),
            "row 1, column 'split' is 'holdout'",
        ),
        (
            lambda f: f.assign(patient_id=f["patient_id"].where(f.index != 5)),
            "row 6, column 'patient_id' is empty",
        ),
        (lambda f: f.assign(score_1=f["score"]), "either one 'score' column"),
        (lambda f: f.drop(columns="score"), "no score column"),
    ],
)
def test_bad_tables_are_refused_with_file_row_and_column(tmp_path, edit, match):
    path = _write(tmp_path, edit(make_table(60)))
    with pytest.raises(AuditkitError, match=match) as info:
        read_predictions(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_external_sites_are_checked(predictions_csv):
    with pytest.raises(PredictionsError, match="--external-site 'Z' is not in column 'site'"):
        read_predictions(predictions_csv, external_sites=["Z"])
    with pytest.raises(PredictionsError, match="declared external but the row is in split"):
        read_predictions(predictions_csv, external_sites=["A"])
    frame = make_table(300)
    frame.loc[frame["site"] == "B", "split"] = "test"
    table = read_predictions(_write(predictions_csv.parent, frame, "b.csv"), external_sites=["B"])
    assert (table.frame.loc[table.frame["site"] == "B", "split"] == "external").all()


def test_unsupported_or_missing_files(tmp_path):
    with pytest.raises(PredictionsError, match="no such predictions file"):
        read_predictions(tmp_path / "none.csv")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(PredictionsError, match=r"unsupported predictions file type '\.json'"):
        read_predictions(tmp_path / "x.json")


def test_embeddings_are_aligned_by_id(tmp_path):
    ids = [f"img{i}" for i in range(5)]
    values = np.arange(15, dtype=np.float32).reshape(5, 3)
    frame = pd.DataFrame(values, columns=["emb_0", "emb_1", "emb_2"])
    frame.insert(0, "id", ids)
    frame.iloc[::-1].to_parquet(tmp_path / "e.parquet", index=False)
    np.testing.assert_array_equal(read_embeddings(tmp_path / "e.parquet", ids), values)
    record = np.zeros(5, dtype=[("id", "<U8"), ("embedding", "<f4", (3,))])
    record["id"], record["embedding"] = ids, values
    np.save(tmp_path / "e.npy", record)
    np.testing.assert_array_equal(read_embeddings(tmp_path / "e.npy", ids[::-1]), values[::-1])
    with pytest.raises(
        PredictionsError, match="id 'img9' of the predictions table has no embedding"
    ):
        read_embeddings(tmp_path / "e.parquet", ["img9"])
