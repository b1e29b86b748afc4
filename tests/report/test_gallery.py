"""Gallery strips: panels side by side at print resolution, the ground-truth outline in the right pixels."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from auditkit.explain.overlay import OverlayScale, write_image, write_mask, write_overlay
from auditkit.report.gallery import CONTOUR_RGB, GAP_PX, PANEL_DPI, contour, make_strip


def test_contour_of_a_square_is_its_border():
    mask = np.zeros((7, 7), dtype=bool)
    mask[1:6, 1:6] = True
    expected = mask.copy()
    expected[2:5, 2:5] = False  # the 3x3 interior is not on the outline
    assert np.array_equal(contour(mask, thickness=1), expected)
    assert np.array_equal(contour(mask, thickness=2), mask & ~np.pad(np.ones((1, 1), bool), 3))


@pytest.fixture()
def case(tmp_path):
    folder = tmp_path / "report"
    (folder / "explain").mkdir(parents=True)
    gray = np.full((20, 20), 100, dtype=np.uint8)
    Image.fromarray(gray, mode="L").save(folder / "explain" / "img.png")
    overlay = np.zeros((40, 40, 3), dtype=np.uint8)
    overlay[..., 0] = 200
    Image.fromarray(overlay, mode="RGB").save(folder / "explain" / "cam.png")
    mask = np.zeros((20, 20), dtype=np.uint8)
    mask[5:10, 5:10] = 255
    Image.fromarray(mask, mode="L").save(folder / "explain" / "mask.png")
    return folder


def _decode(strip) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(strip.data)).convert("RGB")).astype(int)


def _is_contour(pixels: np.ndarray) -> np.ndarray:
    return np.all(pixels == np.array(CONTOUR_RGB), axis=-1)


def test_the_outline_is_registered_with_the_lesion_on_every_panel(tmp_path):
    """A planted 10x10 lesion at rows 10-19, columns 30-39 of a 64 px image, written as the audit writes it."""
    folder = tmp_path / "report"
    size = 64
    image = np.full((size, size), 0.3)
    lesion = np.zeros((size, size), dtype=bool)
    lesion[10:20, 30:40] = True
    image[lesion] = 0.8
    saliency = np.zeros((size, size))
    saliency[40:50, 5:15] = 1.0  # the heatmap looks elsewhere, so colour cannot be mistaken for the outline
    scale = OverlayScale(0.0, 1.0, "Grad-CAM, relu, shared scale")
    write_image(folder / "explain/img.png", image)
    write_overlay(folder / "explain/cam.png", image, saliency, scale, mask=lesion)
    write_mask(folder / "explain/mask.png", lesion)
    with Image.open(folder / "explain/cam.png") as overlay:
        assert overlay.size[0] > 256  # the file carries its colour bar to the right of the 256 px heatmap
    strip = make_strip(folder, ["explain/img.png", "explain/cam.png"], mask="explain/mask.png", image_format="png")
    pixels = _decode(strip)
    assert pixels.shape == (256, 2 * 256 + GAP_PX, 3)  # the heatmap panel is as large as the image
    # by hand: x4 to 256 px, the lesion spans rows 40-79 and columns 120-159; a 2 px outline inside it
    expected = np.zeros((256, 256), dtype=bool)
    expected[40:80, 120:160] = True
    expected[42:78, 122:158] = False
    image_panel, heat_panel = pixels[:, :256], pixels[:, 256 + GAP_PX:]
    assert np.array_equal(_is_contour(image_panel), expected)
    assert np.array_equal(_is_contour(heat_panel), expected)
    assert tuple(image_panel[60, 140]) == (204, 204, 204)  # inside the lesion: the image, not the outline
    assert tuple(heat_panel[60, 140]) == (204, 204, 204)  # zero saliency there leaves the image unchanged
    assert heat_panel[180, 40, 0] > heat_panel[180, 40, 2]  # the heatmap where it was planted (inferno: warm)


def test_an_overlay_without_a_recorded_panel_is_cropped_to_the_image(tmp_path):
    folder = tmp_path / "report"
    (folder / "explain").mkdir(parents=True)
    Image.fromarray(np.full((30, 30), 90, dtype=np.uint8), mode="L").save(folder / "explain/img.png")
    legacy = np.zeros((30, 42, 3), dtype=np.uint8)
    legacy[:, :30] = (10, 200, 10)
    legacy[:, 30:] = (255, 255, 255)  # a colour bar strip of 12 px that must not be shown
    Image.fromarray(legacy, mode="RGB").save(folder / "explain/cam.png")
    pixels = _decode(make_strip(folder, ["explain/img.png", "explain/cam.png"], panel_px=60, image_format="png"))
    heat = pixels[:, 60 + GAP_PX:]
    assert (heat == (10, 200, 10)).all()  # 30 px enlarged x2 fills the 60 px cell: no colour bar, no margin


def test_strip_puts_panels_side_by_side_with_the_outline(case):
    strip = make_strip(case, ["explain/img.png", "explain/cam.png"], mask="explain/mask.png", panel_px=100,
                       image_format="png")
    pixels = _decode(strip)
    assert pixels.shape == (100, 2 * 100 + GAP_PX, 3)
    assert strip.problems == ()
    assert strip.width_mm == pytest.approx((200 + GAP_PX) / PANEL_DPI * 25.4, abs=0.01)
    # 20 px image enlarged x5 by nearest neighbour: the mask's top-left corner (5, 5) lands on (25, 25)
    assert tuple(pixels[25, 25]) == CONTOUR_RGB
    assert tuple(pixels[35, 35]) == (100, 100, 100)  # inside the lesion, not on its outline
    assert tuple(pixels[5, 5]) == (100, 100, 100)  # background


def test_jpeg_is_the_default_encoding(case):
    strip = make_strip(case, ["explain/img.png"], panel_px=60)
    assert strip.mime == "image/jpeg" and strip.data[:2] == b"\xff\xd8"


def test_missing_and_escaping_images_become_problems(case):
    outside = case.parent / "outside.png"
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(outside)
    strip = make_strip(case, ["explain/img.png", "explain/nope.png", "../outside.png", None], panel_px=40,
                       mask="../outside.png", image_format="png")
    assert len(strip.problems) == 4
    assert "mask not drawn" in strip.problems[0] and "outside the report folder" in strip.problems[0]
    assert "no such file" in strip.problems[1]
    assert "outside the report folder" in strip.problems[2]
    assert strip.problems[3] == "no image recorded"
    pixels = _decode(strip)
    assert tuple(pixels[0, 40 + GAP_PX + 1]) == (235, 235, 235)  # the crossed grey placeholder


def test_unreadable_image_is_a_problem_not_an_exception(case):
    (case / "explain" / "broken.png").write_bytes(b"not an image")
    strip = make_strip(case, ["explain/broken.png"], panel_px=40)
    assert "cannot be read as an image" in strip.problems[0]
