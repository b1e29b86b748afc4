"""Gallery strips: panels side by side at print resolution, the ground-truth outline in the right pixels."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from auditkit.report.gallery import CONTOUR_RGB, GAP_PX, PANEL_DPI, contour, make_strip


def test_contour_of_a_square_is_its_border():
    mask = np.zeros((7, 7), dtype=bool)
    mask[1:6, 1:6] = True
    expected = mask.copy()
    expected[2:5, 2:5] = False  # the 3x3 interior is not on the outline
    assert np.array_equal(contour(mask), expected)
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
    # second panel: 40 px overlay enlarged x2 (not x5) to 80 px, centred in its 100 px cell (offset 10);
    # the 20 px mask is scaled x4 to it, so its corner (5, 5) lands on (20, 20) of the overlay
    left = 100 + GAP_PX + 10
    assert tuple(pixels[10 + 20, left + 20]) == CONTOUR_RGB
    assert tuple(pixels[10 + 30, left + 30]) == (200, 0, 0)
    assert tuple(pixels[5, left]) == (255, 255, 255)  # the white margin of the centred panel


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
