"""Manifest reading: the contract's columns, fallbacks, and one clear error per bad input."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from data_helpers import write_csv, write_png

from auditkit.data.manifest import read_manifest
from auditkit.errors import AuditkitError, ManifestError, PathEscapeError
from auditkit.labels import ClassSpec

HEADER = "image,label,patient_id,site,mask,sex,age_group"
ROWS = [
    "img/0.png,normal,p0,A,,F,40-60",
    "img/1.png,lesion,p0,A,masks/1.png,F,40-60",
    "img/2.png,normal,p1,A,,M,18-40",
    "img/3.png,lesion,,B,masks/3.png,M,80+",
    "img/4.png,normal,p2,,,,60-80",
    "img/5.png,lesion,p2,B,,M,60-80",
]


def test_valid_manifest_fills_the_contract(small_dataset):
    path = write_csv(small_dataset / "m.csv", HEADER, ROWS)
    manifest = read_manifest(path)
    frame = manifest.frame
    # id falls back to the image value as written; patient_id to id; site to "default"
    assert frame["id"].tolist() == [f"img/{i}.png" for i in range(6)]
    assert frame["patient_id"].tolist() == ["p0", "p0", "p1", "img/3.png", "p2", "p2"]
    assert frame["site"].tolist() == ["A", "A", "A", "B", "default", "B"]
    assert frame["image"].tolist() == [str((small_dataset / f"img/{i}.png").resolve()) for i in range(6)]
    assert frame["label"].tolist() == ["normal", "lesion"] * 3
    # "normal" is a recognised negative, so "lesion" is the positive class (index 1)
    assert manifest.classes == ClassSpec(("normal", "lesion"), "lesion")
    assert frame["y_true"].tolist() == [0, 1, 0, 1, 0, 1]
    assert frame["mask"].notna().tolist() == [False, True, False, True, False, False]
    assert frame.loc[1, "mask"] == str((small_dataset / "masks/1.png").resolve())
    assert manifest.attribute_columns == ("sex", "age_group")
    assert frame["age_group"].tolist() == ["40-60", "40-60", "18-40", "80+", "60-80", "60-80"]
    assert pd.isna(frame.loc[4, "sex"])
    assert frame["split"].isna().all()
    assert frame["bbox_x0"].isna().all()
    assert manifest.has_masks and not manifest.has_roi and not manifest.has_boxes
    assert manifest.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert manifest.root == small_dataset.resolve()


def test_parquet_manifest_reads_like_the_csv(small_dataset):
    csv = write_csv(small_dataset / "m.csv", HEADER, ROWS)
    table = pd.read_csv(csv, dtype=str, keep_default_na=False)
    table.to_parquet(small_dataset / "m.parquet", index=False)
    from_csv = read_manifest(csv).frame
    from_parquet = read_manifest(small_dataset / "m.parquet").frame
    pd.testing.assert_frame_equal(from_csv, from_parquet)


def test_parquet_integer_columns_become_text_attributes(small_dataset):
    table = pd.DataFrame(
        {"image": [f"img/{i}.png" for i in range(4)], "label": [0, 1, 0, 1], "age": [45, 71, 30, 88]}
    )
    table.to_parquet(small_dataset / "m.parquet", index=False)
    manifest = read_manifest(small_dataset / "m.parquet")
    assert manifest.classes == ClassSpec(("0", "1"), "1")
    assert manifest.frame["age"].tolist() == ["45", "71", "30", "88"]


def test_class_spec_from_a_checkpoint_is_used_not_inferred(small_dataset):
    # the model's order is ("lesion", "normal") with "normal" as index 1: encode under it
    spec = ClassSpec(("lesion", "normal"), "normal")
    path = write_csv(small_dataset / "m.csv", HEADER, ROWS)
    manifest = read_manifest(path, class_spec=spec)
    assert manifest.classes == spec
    assert manifest.frame["y_true"].tolist() == [1, 0, 1, 0, 1, 0]


def test_positive_class_flag_names_the_positive(small_dataset):
    rows = [f"img/{i}.png,{'cat' if i % 2 else 'dog'}" for i in range(4)]
    path = write_csv(small_dataset / "m.csv", "image,label", rows)
    with pytest.raises(AuditkitError, match="--positive-class"):
        read_manifest(path)
    manifest = read_manifest(path, positive_class="dog")
    assert manifest.classes == ClassSpec(("cat", "dog"), "dog")
    assert manifest.frame["y_true"].tolist() == [1, 0, 1, 0]


def test_explicit_id_column_and_data_root_elsewhere(small_dataset, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("manifests")
    path = write_csv(elsewhere / "m.csv", "id,image,label", ["a,img/0.png,0", "b,img/1.png,1"])
    manifest = read_manifest(path, data_root=small_dataset)
    assert manifest.frame["id"].tolist() == ["a", "b"]
    assert manifest.frame["patient_id"].tolist() == ["a", "b"]
    assert manifest.frame["image"].tolist()[1] == str((small_dataset / "img/1.png").resolve())


def test_roi_and_bbox_columns(small_dataset):
    header = "image,label,roi,bbox_x0,bbox_y0,bbox_x1,bbox_y1"
    rows = ["img/0.png,0,masks/1.png,,,,", "img/1.png,1,,1,2,5.5,8"]
    manifest = read_manifest(write_csv(small_dataset / "m.csv", header, rows))
    frame = manifest.frame
    assert manifest.has_roi and manifest.has_boxes and not manifest.has_masks
    assert "roi" not in manifest.attribute_columns
    assert np.isnan(frame.loc[0, "bbox_x0"])
    assert frame.loc[1, ["bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1"]].tolist() == [1.0, 2.0, 5.5, 8.0]


def test_split_values_are_validated_and_kept(small_dataset):
    rows = ["img/0.png,0,Train", "img/1.png,1,", "img/2.png,0,external"]
    manifest = read_manifest(write_csv(small_dataset / "m.csv", "image,label,split", rows))
    assert manifest.frame["split"].tolist()[0] == "train"
    assert pd.isna(manifest.frame["split"].tolist()[1])
    assert manifest.frame["split"].tolist()[2] == "external"


# --- one clear error per bad input: file, row and column named -------------------------------


def _error(tmp: Path, header: str, rows: list[str], **kwargs) -> str:
    path = write_csv(tmp / "m.csv", header, rows)
    with pytest.raises(AuditkitError) as info:
        read_manifest(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert str(tmp / "m.csv") in message
    return message


def test_missing_required_column(small_dataset):
    message = _error(small_dataset, "image,Label", ["img/0.png,0", "img/1.png,1"])
    assert "required column 'label' is missing" in message
    assert "found 'Label'" in message


def test_empty_manifest_header_only(small_dataset):
    assert "no rows" in _error(small_dataset, "image,label", [])


def test_empty_file(small_dataset):
    (small_dataset / "m.csv").write_text("")
    with pytest.raises(ManifestError, match="is empty"):
        read_manifest(small_dataset / "m.csv")


def test_missing_manifest_file(tmp_path):
    with pytest.raises(ManifestError, match="does not exist"):
        read_manifest(tmp_path / "nope.csv")


def test_duplicate_ids(small_dataset):
    message = _error(small_dataset, "id,image,label", ["a,img/0.png,0", "b,img/1.png,1", "a,img/2.png,0"])
    assert "row 3, column 'id'" in message and "repeats row 1" in message


def test_duplicate_images_without_id_column(small_dataset):
    message = _error(small_dataset, "image,label", ["img/0.png,0", "img/1.png,1", "img/1.png,0"])
    assert "row 3, column 'image'" in message and "'img/1.png' repeats row 2" in message


def test_empty_label(small_dataset):
    message = _error(small_dataset, "image,label", ["img/0.png,0", "img/1.png,", "img/2.png,1"])
    assert "row 2, column 'label'" in message and "empty" in message


def test_unknown_label_under_a_model_class_spec(small_dataset):
    rows = ["img/0.png,normal", "img/1.png,lesion", "img/2.png,nodule"]
    message = _error(
        small_dataset, "image,label", rows, class_spec=ClassSpec(("normal", "lesion"), "lesion")
    )
    assert "row 3, column 'label'" in message and "'nodule'" in message


def test_missing_image_file(small_dataset):
    message = _error(small_dataset, "image,label", ["img/0.png,0", "img/17.png,1"])
    assert "row 2, column 'image': file 'img/17.png' does not exist" in message


def test_unreadable_image(small_dataset):
    (small_dataset / "img" / "bad.png").write_bytes(b"this is not a PNG at all")
    message = _error(small_dataset, "image,label", ["img/0.png,0", "img/bad.png,1"])
    assert "row 2, column 'image'" in message and "cannot be read" in message


def test_unsupported_image_format(small_dataset):
    (small_dataset / "img" / "notes.txt").write_text("hello")
    message = _error(small_dataset, "image,label", ["img/0.png,0", "img/notes.txt,1"])
    assert "row 2, column 'image'" in message and "not a supported format" in message


def test_mask_size_mismatch(small_dataset):
    write_png(small_dataset / "masks" / "small.png", np.zeros((4, 4), dtype=np.uint8))
    message = _error(small_dataset, "image,label,mask", ["img/0.png,0,", "img/1.png,1,masks/small.png"])
    assert "row 2, column 'mask'" in message and "4x4" in message and "8x10" in message


@pytest.mark.parametrize(
    ("cells", "column", "fragment"),
    [
        ("1,2,,8", "bbox_x1", "incomplete"),
        ("1,two,5,8", "bbox_y0", "got 'two'"),
        ("5,2,1,8", "bbox_x1", "x1 > x0"),
        ("1,2,5,99", "bbox_y1", "beyond"),
        ("-1,2,5,8", "bbox_x0", ">= 0"),
    ],
)
def test_malformed_bbox(small_dataset, cells, column, fragment):
    header = "image,label,bbox_x0,bbox_y0,bbox_x1,bbox_y1"
    message = _error(small_dataset, header, ["img/0.png,0,,,,", f"img/1.png,1,{cells}"])
    assert f"row 2, column '{column}'" in message and fragment in message


def test_partial_bbox_columns(small_dataset):
    message = _error(small_dataset, "image,label,bbox_x0,bbox_y0", ["img/0.png,0,1,2"])
    assert "give all four" in message


def test_unknown_split_value(small_dataset):
    message = _error(small_dataset, "image,label,split", ["img/0.png,0,train", "img/1.png,1,training"])
    assert "row 2, column 'split'" in message and "'training'" in message


def test_reserved_site_name(small_dataset):
    message = _error(small_dataset, "image,label,site", ["img/0.png,0,A", "img/1.png,1,test"])
    assert "row 2, column 'site'" in message and "reserved" in message


def test_reserved_y_true_column(small_dataset):
    assert "reserved" in _error(small_dataset, "image,label,y_true", ["img/0.png,0,0"])


# --- paths that escape the data root ---------------------------------------------------------


def test_dotdot_path_is_refused_then_allowed(small_dataset, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside")
    write_png(outside / "x.png", np.zeros((8, 10), dtype=np.uint8))
    relative = os.path.relpath(outside / "x.png", small_dataset)
    assert relative.startswith("..")
    path = write_csv(small_dataset / "m.csv", "image,label", ["img/0.png,0", f"{relative},1"])
    with pytest.raises(PathEscapeError) as info:
        read_manifest(path)
    assert "row 2, column 'image'" in str(info.value) and "--allow-outside-root" in str(info.value)
    manifest = read_manifest(path, allow_outside_root=True)
    assert manifest.frame["image"].tolist()[1] == str((outside / "x.png").resolve())


def test_data_root_is_the_base_of_relative_paths_and_the_fence(small_dataset):
    sub = small_dataset / "lists"
    sub.mkdir()
    # relative to the data root (the parent), not to the manifest's folder
    path = write_csv(sub / "m.csv", "image,label", ["img/0.png,0", "img/1.png,1"])
    with pytest.raises(ManifestError, match=re.escape("row 1, column 'image': file 'img/0.png' does not exist")):
        read_manifest(path)
    assert len(read_manifest(path, data_root=small_dataset)) == 2
    write_csv(path, "image,label", ["img/0.png,0", "../img/1.png,1"])
    with pytest.raises(PathEscapeError, match="row 2, column 'image'"):
        read_manifest(path, data_root=small_dataset)


def test_absolute_path_elsewhere_is_refused(small_dataset, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside")
    write_png(outside / "x.png", np.zeros((8, 10), dtype=np.uint8))
    inside = (small_dataset / "img" / "0.png").resolve()
    path = write_csv(small_dataset / "m.csv", "image,label", [f"{inside},0", f"{outside / 'x.png'},1"])
    with pytest.raises(PathEscapeError, match="row 2, column 'image'"):
        read_manifest(path)


def test_symlink_pointing_out_is_refused(small_dataset, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside")
    write_png(outside / "secret.png", np.zeros((8, 10), dtype=np.uint8))
    (small_dataset / "img" / "link.png").symlink_to(outside / "secret.png")
    path = write_csv(small_dataset / "m.csv", "image,label", ["img/0.png,0", "img/link.png,1"])
    with pytest.raises(PathEscapeError, match="row 2, column 'image'"):
        read_manifest(path)
    # a symlink that stays inside the root is fine
    (small_dataset / "img" / "inner.png").symlink_to(small_dataset / "img" / "1.png")
    write_csv(path, "image,label", ["img/0.png,0", "img/inner.png,1"])
    assert read_manifest(path).frame["image"].tolist()[1] == str((small_dataset / "img/1.png").resolve())


def test_mask_path_escape_is_refused(small_dataset):
    path = write_csv(small_dataset / "m.csv", "image,label,mask", ["img/0.png,0,", "img/1.png,1,/etc/passwd"])
    with pytest.raises(PathEscapeError, match="row 2, column 'mask'"):
        read_manifest(path)


def test_check_files_false_skips_existence_but_not_escape(small_dataset):
    path = write_csv(small_dataset / "m.csv", "image,label", ["img/0.png,0", "img/404.png,1"])
    assert len(read_manifest(path, check_files=False)) == 2
    write_csv(path, "image,label", ["img/0.png,0", "../404.png,1"])
    with pytest.raises(PathEscapeError):
        read_manifest(path, check_files=False)
