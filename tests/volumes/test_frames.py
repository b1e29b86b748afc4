"""A manifest 'frame' column makes a 2-D audit of one frame of a multi-frame DICOM work end to end.

Oracles: pydicom's own ``pixel_array[k]`` of the file (scaled by its window by
hand), and the planted content of each frame (a bright square in frame k only).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from dicom_helpers import write_multiframe

from auditkit.cli import run
from auditkit.data.dataset import ImageDataset
from auditkit.data.manifest import read_manifest
from auditkit.data.transforms import Preprocess
from auditkit.errors import ManifestError

SIZE = 24
WINDOW = (2000.0, 4000.0)  # centre, width: stored 0..4000 map linearly onto [0, 1]


def _stack(rng: np.random.Generator, lesion_frame: int | None) -> np.ndarray:
    frames = rng.integers(800, 1200, size=(4, SIZE, SIZE)).astype(np.uint16)
    if lesion_frame is not None:
        frames[lesion_frame, 8:16, 8:16] = 3600
    return frames


def _data(tmp_path: Path, n: int = 24) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        label = i % 2
        frame = int(rng.integers(0, 4))
        path = write_multiframe(
            tmp_path / "img" / f"{i}.dcm", _stack(rng, frame if label else None), window=WINDOW
        )
        rows.append({"image": path.relative_to(tmp_path).as_posix(), "label": label, "frame": frame,
                     "patient_id": f"p{i}"})  # fmt: skip
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


def test_frame_column_reads_that_frame(tmp_path):
    manifest = read_manifest(_data(tmp_path, n=4))
    assert manifest.frame["frame"].dtype == "Int64" and "frame" not in manifest.attribute_columns
    dataset = ImageDataset(
        manifest.frame, Preprocess(input_size=(SIZE, SIZE), in_channels=1, mean=(0.0,), std=(1.0,))
    )
    for i in range(4):
        x, _, _ = dataset[i]
        k = int(manifest.frame.at[i, "frame"])
        stored = pydicom.dcmread(manifest.frame.at[i, "image"]).pixel_array[k].astype(float)
        # PS3.3 C.11.2.1.2.1 window by hand: centre 2000, width 4000
        expected = np.clip((stored - (WINDOW[0] - 0.5)) / (WINDOW[1] - 1) + 0.5, 0, 1)
        np.testing.assert_allclose(x[0].numpy(), expected, atol=1e-5)


@pytest.mark.parametrize(
    ("cell", "message"),
    [("7", "frame 7 does not exist"), ("-1", "integer >= 0"), ("x", "integer >= 0")],
)
def test_bad_frame_cells_name_row_and_column(tmp_path, cell, message):
    path = _data(tmp_path, n=2)
    table = pd.read_csv(path, dtype=str)
    table.loc[1, "frame"] = cell
    table.to_csv(path, index=False)
    with pytest.raises(ManifestError, match=rf"row 2, column 'frame'.*{message}"):
        read_manifest(path)


def test_multiframe_without_frame_says_which_column_to_add(tmp_path, capsys):
    path = _data(tmp_path, n=8)
    pd.read_csv(path).drop(columns="frame").to_csv(path, index=False)
    code = run(["--quiet", "train", "--manifest", str(path), "--arch", "smallcnn", "--out", str(tmp_path / "m"),
                "--epochs", "1", "--input-size", str(SIZE), "--device", "cpu"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "'frame' column" in err and "Traceback" not in err


@pytest.mark.slow
def test_train_and_predict_one_frame_from_the_command_line(tmp_path):
    manifest = _data(tmp_path)
    model = tmp_path / "model"
    assert run(["--quiet", "train", "--manifest", str(manifest), "--arch", "smallcnn", "--out", str(model),
                "--epochs", "1", "--input-size", str(SIZE), "--device", "cpu", "--no-augment",
                "--num-workers", "0"]) == 0  # fmt: skip
    out = tmp_path / "preds.parquet"
    assert (
        run(
            [
                "--quiet",
                "predict",
                "--model",
                str(model),
                "--manifest",
                str(manifest),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    table = pd.read_parquet(out)
    assert table["frame"].tolist() == pd.read_csv(manifest)["frame"].tolist()
    assert table["score"].between(0, 1).all() and len(table) == 24
