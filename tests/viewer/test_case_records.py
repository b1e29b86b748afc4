"""explain/cases.json and its images: what the viewer and the DICOM export read, against planted truth."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from tests.viewer.conftest import LESION, SIZE


def test_each_case_records_its_planted_outcome_flags_and_files(planted_report):
    folder, planted = planted_report
    document = json.loads((folder / "explain/cases.json").read_text())
    assert document["schema_version"] == "1"
    assert document["operating_point"] == {"threshold": 0.5}
    cases = document["cases"]
    assert [c["outcome"] for c in cases] == planted["outcome"]
    for i, case in enumerate(cases):
        marker = i % 3 == 0  # the planted corner marker
        positive = bool(planted["frame"].y_true[i] == 1)
        assert case["flags"]["shortcut_suspected"] is marker, case["id"]
        # the pointing game only has a lesion to miss on positive cases
        assert case["flags"]["peak_outside_lesion"] is (marker and positive), case["id"]
        for method in ("gradcam", "ig"):
            assert (folder / case["maps"][method]).is_file()
        assert (case["mask"] is not None) is positive
        assert case["error"] == abs(float(positive) - case["score"])


def test_map_png_is_the_map_quantised_on_the_shared_scale_and_npz_holds_the_floats(planted_report):
    folder, planted = planted_report
    case = json.loads((folder / "explain/cases.json").read_text())["cases"][4]
    codes = np.asarray(Image.open(folder / case["maps"]["gradcam"]))
    truth = planted["displays"]["gradcam"][4]
    # scale 0..1 (the fixture's): code = round(255 * value)
    assert np.array_equal(codes, np.round(np.clip(truth, 0, 1) * 255).astype(np.uint8))
    with np.load(folder / case["arrays"]) as arrays:
        assert np.array_equal(arrays["gradcam"], truth)


def test_the_mask_png_is_the_lesion_in_the_images_pixel_grid(planted_report):
    folder, _ = planted_report
    case = json.loads((folder / "explain/cases.json").read_text())["cases"][0]
    mask = np.asarray(Image.open(folder / case["mask"])) > 0
    image = np.asarray(Image.open(folder / case["image"]))
    expected = np.zeros((SIZE, SIZE), dtype=bool)
    expected[LESION] = True
    assert mask.shape == image.shape == (SIZE, SIZE)
    assert np.array_equal(mask, expected)
    assert (image[mask] == round(0.8 * 255)).all()


def test_the_npz_bytes_do_not_depend_on_when_they_were_written(tmp_path):
    from auditkit.explain.cases import npz_bytes

    arrays = {"gradcam": np.arange(6, dtype=np.float32).reshape(2, 3)}
    first = npz_bytes(arrays)
    path = tmp_path / "a.npz"
    path.write_bytes(first)
    with np.load(path, allow_pickle=False) as loaded:
        assert np.array_equal(loaded["gradcam"], arrays["gradcam"])
    assert npz_bytes(arrays) == first
