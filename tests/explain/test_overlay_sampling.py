"""Overlays (colours, scale metadata, lesion outline) and the choice of images to explain."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
from matplotlib import colormaps
from PIL import Image

from auditkit.explain.overlay import (
    CONTOUR_RGB,
    OverlayScale,
    encode,
    render_overlay,
    shared_scale,
    write_overlay,
)
from auditkit.explain.runner import safe_names
from auditkit.explain.sampling import allocate, select, stratified_sample


def test_overlay_blends_inferno_by_value_and_outlines_the_mask():
    image = np.full((32, 32), 0.5)
    saliency = np.zeros((32, 32))
    saliency[:, 16:] = 2.0  # right half at the top of the scale, left half at zero
    mask = np.zeros((32, 32), bool)
    mask[8:24, 2:10] = True
    scale = OverlayScale(0.0, 2.0, "Grad-CAM, relu, shared scale")
    out = np.asarray(render_overlay(image, saliency, scale, mask=mask, panel_px=64, colorbar=False))
    assert out.shape == (64, 64, 3)
    gray = round(0.5 * 255)
    assert tuple(out[2, 2]) == (gray, gray, gray)  # zero saliency: the image unchanged
    top = np.round(np.array(colormaps["inferno"](1.0)[:3]) * 255)
    expected = np.round(gray * 0.4 + top * 0.6)  # value at vmax: 60% of inferno's top colour
    np.testing.assert_allclose(out[40, 50], expected, atol=1)
    assert tuple(out[16, 4]) == CONTOUR_RGB  # the mask's left edge (column 2 -> 4 after 2x)


def test_overlay_files_carry_the_scale_and_jpeg_is_smaller(tmp_path):
    rng = np.random.default_rng(0)
    image, saliency = rng.random((48, 48)), rng.random((48, 48))
    scale = shared_scale(saliency[None], label="IG, relu, shared scale")
    assert scale.vmax == np.percentile(saliency, 99) and scale.vmin == 0
    png = write_overlay(tmp_path / "a.png", image, saliency, scale)
    jpg = write_overlay(tmp_path / "a.jpg", image, saliency, scale, fmt="jpeg")
    with Image.open(png) as im:
        # the scale, and the 256 x 256 box of the heatmap (the colour bar is to its right)
        assert json.loads(im.text["auditkit:scale"]) == {**scale.to_dict(), "panel": [256, 256]}
        assert im.width > im.height == 256
    with Image.open(jpg) as im:
        assert json.loads(im.info["comment"]) == {**scale.to_dict(), "panel": [256, 256]}
    assert jpg.stat().st_size < png.stat().st_size
    assert Image.open(io.BytesIO(encode(Image.new("RGB", (4, 4)), fmt="png"))).format == "PNG"


def test_allocation_is_proportional_with_one_per_stratum_by_hand():
    assert allocate([10, 30, 60], 10) == [1, 3, 6]
    assert allocate([1, 99], 10) == [1, 9]
    assert allocate([2, 0, 50], 10) == [1, 0, 9]  # 1 each, then 8 split 0.16 / 7.84 -> largest remainder
    assert allocate([3, 3], 10) == [3, 3]


def test_stratified_sample_covers_every_stratum_and_is_seeded():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"y_true": rng.integers(0, 2, 500), "y_pred": rng.integers(0, 2, 500)})
    frame.loc[frame.index[:3], ["y_true", "y_pred"]] = [1, 0]  # a rare stratum is planted
    a = stratified_sample(frame, n=40, strata=["y_true", "y_pred"], random_state=5)
    b = stratified_sample(frame, n=40, strata=["y_true", "y_pred"], random_state=5)
    assert list(a) == list(b) and len(a) == 40 and a.is_monotonic_increasing
    assert frame.loc[a].groupby(["y_true", "y_pred"]).size().min() >= 1


def test_select_errors_puts_confident_mistakes_first_and_top_the_highest_scores():
    frame = pd.DataFrame({"y_true": [1, 0, 1, 0], "y_pred": [0, 0, 0, 1], "score": [0.6, 0.9, 0.8, 0.7]})
    assert list(select(frame, how="errors", limit=None)) == [2, 3, 0]
    assert list(select(frame, how="top", limit=2)) == [1, 2]


def test_safe_names_are_unique_and_file_system_safe():
    names = safe_names(["a/b.png", "a_b.png", "ok-1", "ok-1"])
    assert len(set(names)) == 4 and names[2] == "ok-1"
    assert all("/" not in n for n in names)


def test_images_are_loaded_at_the_input_geometry_with_masks_from_files_or_boxes(tmp_path):
    from auditkit.data.transforms import Preprocess
    from auditkit.explain.images import display_images, load_images

    image = np.zeros((40, 40), np.uint8)
    image[10:20, 20:30] = 200
    Image.fromarray(image).save(tmp_path / "a.png")
    lesion = np.zeros((40, 40), np.uint8)
    lesion[10:20, 20:30] = 255
    Image.fromarray(lesion).save(tmp_path / "a_mask.png")
    frame = pd.DataFrame({
        "id": ["with_mask", "with_box", "nothing"],
        "image": [str(tmp_path / "a.png")] * 3,
        "mask": [str(tmp_path / "a_mask.png"), None, None],
        "bbox_x0": [np.nan, 20.0, np.nan], "bbox_y0": [np.nan, 10.0, np.nan],
        "bbox_x1": [np.nan, 30.0, np.nan], "bbox_y1": [np.nan, 20.0, np.nan],
    })
    preprocess = Preprocess(input_size=(20, 20), in_channels=1, mean=(0.5,), std=(0.25,))
    loaded = load_images(frame, preprocess)
    assert tuple(loaded.inputs.shape) == (3, 1, 20, 20)
    expected = np.zeros((20, 20), bool)
    expected[5:10, 10:15] = True  # the 10x10 lesion at (10, 20) halves to 5x5 at (5, 10)
    assert np.array_equal(loaded.masks[0], expected) and np.array_equal(loaded.masks[1], expected)
    assert loaded.masks[2] is None and loaded.rois == [None, None, None]
    shown = display_images(loaded.inputs, mean=(0.5,), std=(0.25,))
    np.testing.assert_allclose(shown[0][7, 12], 200 / 255, atol=0.01)  # normalisation undone (centre pixel)
    np.testing.assert_allclose(shown[0][0, 0], 0.0, atol=1e-6)
