"""PNG/JPEG/TIFF/NumPy readers: planted arrays written by independent writers (OpenCV, tifffile, numpy)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image

from auditkit.data.readers import image_format, image_shape, read_image, read_mask
from auditkit.errors import ImageReadError

RNG = np.random.default_rng(7)
GRAY8 = RNG.integers(0, 256, (9, 13), dtype=np.uint8)
GRAY16 = RNG.integers(0, 65536, (9, 13), dtype=np.uint16)
RGB8 = RNG.integers(0, 256, (9, 13, 3), dtype=np.uint8)
RGB16 = RNG.integers(0, 65536, (9, 13, 3), dtype=np.uint16)


def test_png_8bit_gray_by_opencv(tmp_path):
    cv2.imwrite(str(tmp_path / "g.png"), GRAY8)
    image = read_image(tmp_path / "g.png")
    assert image.dtype == np.float32 and image.shape == (9, 13)
    np.testing.assert_allclose(image, GRAY8 / 255.0, rtol=0, atol=1e-7)
    assert image_shape(tmp_path / "g.png") == (9, 13)


def test_png_16bit_gray_by_opencv_is_exact(tmp_path):
    cv2.imwrite(str(tmp_path / "g16.png"), GRAY16)
    np.testing.assert_allclose(read_image(tmp_path / "g16.png"), GRAY16 / 65535.0, rtol=0, atol=1e-7)


@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_tiff_16bit_gray_by_tifffile_both_byte_orders(tmp_path, byteorder):
    tifffile.imwrite(tmp_path / "g16.tif", GRAY16.astype(f"{byteorder}u2"))
    np.testing.assert_allclose(read_image(tmp_path / "g16.tif"), GRAY16 / 65535.0, rtol=0, atol=1e-7)
    assert image_shape(tmp_path / "g16.tif") == (9, 13)


def test_tiff_float32_is_kept_as_stored(tmp_path):
    values = RNG.normal(0.5, 0.3, (9, 13)).astype(np.float32)
    tifffile.imwrite(tmp_path / "f.tif", values)
    np.testing.assert_array_equal(read_image(tmp_path / "f.tif"), values)


def test_png_8bit_rgb_by_opencv(tmp_path):
    cv2.imwrite(str(tmp_path / "c.png"), RGB8[..., ::-1])  # OpenCV writes BGR
    image = read_image(tmp_path / "c.png")
    assert image.shape == (9, 13, 3)
    np.testing.assert_allclose(image, RGB8 / 255.0, rtol=0, atol=1e-7)


def test_tiff_8bit_rgb_by_tifffile(tmp_path):
    tifffile.imwrite(tmp_path / "c.tif", RGB8, photometric="rgb")
    np.testing.assert_allclose(read_image(tmp_path / "c.tif"), RGB8 / 255.0, rtol=0, atol=1e-7)


def test_png_16bit_rgb_is_read_at_8bit_precision(tmp_path):
    # documented limit: Pillow keeps the high byte of 16-bit colour, so values are within 1/255
    cv2.imwrite(str(tmp_path / "c16.png"), RGB16[..., ::-1])
    image = read_image(tmp_path / "c16.png")
    assert image.shape == (9, 13, 3)
    np.testing.assert_allclose(image, RGB16 / 65535.0, rtol=0, atol=1.0 / 255 + 1e-6)


def test_jpeg_matches_opencv_decoder(tmp_path):
    smooth = cv2.GaussianBlur(RNG.integers(0, 256, (32, 40), dtype=np.uint8), (5, 5), 2)
    cv2.imwrite(str(tmp_path / "g.jpg"), smooth, [cv2.IMWRITE_JPEG_QUALITY, 95])
    reference = cv2.imread(str(tmp_path / "g.jpg"), cv2.IMREAD_UNCHANGED)
    # two libjpeg builds may round the IDCT differently by one level
    np.testing.assert_allclose(read_image(tmp_path / "g.jpg") * 255, reference, rtol=0, atol=1.01)


def test_alpha_and_palette_are_dropped_to_gray_or_rgb(tmp_path):
    rgba = np.dstack([RGB8, np.full((9, 13), 7, dtype=np.uint8)])
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    np.testing.assert_allclose(read_image(tmp_path / "a.png"), RGB8 / 255.0, atol=1e-7)
    gray_palette = Image.fromarray(GRAY8).convert("P")
    gray_palette.save(tmp_path / "p.png")
    expected = np.asarray(gray_palette.convert("L")) / 255.0
    assert read_image(tmp_path / "p.png").shape == (9, 13)
    np.testing.assert_allclose(read_image(tmp_path / "p.png"), expected, atol=1e-7)


def test_npy_dtypes_and_shapes(tmp_path):
    np.save(tmp_path / "u8.npy", GRAY8)
    np.save(tmp_path / "u16.npy", GRAY16)
    floats = RNG.normal(0.0, 2.0, (9, 13)).astype(np.float64)
    np.save(tmp_path / "f.npy", floats)
    np.save(tmp_path / "hw1.npy", GRAY8[..., None])
    np.save(tmp_path / "rgb.npy", RGB8)
    np.testing.assert_allclose(read_image(tmp_path / "u8.npy"), GRAY8 / 255.0, atol=1e-7)
    np.testing.assert_allclose(read_image(tmp_path / "u16.npy"), GRAY16 / 65535.0, atol=1e-7)
    np.testing.assert_allclose(read_image(tmp_path / "f.npy"), floats.astype(np.float32))
    assert read_image(tmp_path / "hw1.npy").shape == (9, 13)
    assert read_image(tmp_path / "rgb.npy").shape == (9, 13, 3)
    assert image_shape(tmp_path / "rgb.npy") == (9, 13)


@pytest.mark.parametrize(
    ("array", "fragment"),
    [
        (np.zeros((9, 13), dtype=np.int64), "ambiguous"),
        (np.zeros((3, 9, 13), dtype=np.float32), "channel-first"),
        (np.zeros((2, 3, 4, 5), dtype=np.float32), "expected (H, W)"),
        (np.full((9, 13), np.nan, dtype=np.float32), "NaN"),
    ],
)
def test_npy_refusals(tmp_path, array, fragment):
    np.save(tmp_path / "x.npy", array)
    with pytest.raises(ImageReadError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        read_image(tmp_path / "x.npy")


def test_npy_object_array_is_never_unpickled(tmp_path):
    np.save(tmp_path / "o.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(ImageReadError, match="never unpickles"):
        read_image(tmp_path / "o.npy")
    with pytest.raises(ImageReadError, match="never unpickles"):
        image_shape(tmp_path / "o.npy")


def test_multipage_tiff_needs_a_frame(tmp_path):
    pages = np.stack([GRAY8, 255 - GRAY8])
    tifffile.imwrite(tmp_path / "m.tif", pages)
    with pytest.raises(ImageReadError, match="2 frames"):
        read_image(tmp_path / "m.tif")
    np.testing.assert_allclose(read_image(tmp_path / "m.tif", frame_index=1), (255 - GRAY8) / 255.0, atol=1e-7)
    with pytest.raises(ImageReadError, match="frame index 5 does not exist"):
        read_image(tmp_path / "m.tif", frame_index=5)


def test_truncated_png_is_a_clear_error(tmp_path):
    cv2.imwrite(str(tmp_path / "g.png"), RNG.integers(0, 256, (64, 64), dtype=np.uint8))
    data = (tmp_path / "g.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    assert image_shape(tmp_path / "t.png") == (64, 64)  # the header is intact
    with pytest.raises(ImageReadError, match="truncated"):
        read_image(tmp_path / "t.png")


def test_unsupported_and_missing_files(tmp_path):
    (tmp_path / "x.gif2").write_bytes(b"GIF89a")
    with pytest.raises(ImageReadError, match="not a supported format"):
        image_format(tmp_path / "x.gif2")
    with pytest.raises(ImageReadError, match="does not exist"):
        read_image(tmp_path / "nope.png")


def test_read_mask_is_nonzero_any_channel(tmp_path):
    mask = np.zeros((9, 13, 3), dtype=np.uint8)
    mask[2:4, 5:9, 1] = 1
    cv2.imwrite(str(tmp_path / "m.png"), mask)
    np.save(tmp_path / "m.npy", mask[..., 1].astype(bool))
    expected = mask.any(axis=2)
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png"), expected)
    np.testing.assert_array_equal(read_mask(tmp_path / "m.npy"), expected)
    assert read_mask(tmp_path / "m.png").dtype == bool


def test_truncated_png_is_refused_even_after_weasyprint_relaxed_pillow(tmp_path):
    # WeasyPrint sets PIL.ImageFile.LOAD_TRUNCATED_IMAGES = True when imported (the report does)
    import weasyprint  # noqa: F401
    from PIL import ImageFile

    assert ImageFile.LOAD_TRUNCATED_IMAGES is True
    cv2.imwrite(str(tmp_path / "g.png"), RNG.integers(0, 256, (64, 64), dtype=np.uint8))
    data = (tmp_path / "g.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="truncated"):
        read_image(tmp_path / "t.png")
    with pytest.raises(ImageReadError):
        read_mask(tmp_path / "t.png")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the global is left as the caller had it


def test_an_image_past_pils_decompression_bomb_limit_is_an_input_error(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    cv2.imwrite(str(path), np.zeros((40, 40), dtype=np.uint8))
    # 1600 pixels > 2 x 700: PIL raises DecompressionBombError (not an OSError) when opening it.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 700)
    with pytest.raises(ImageReadError, match="too large to decode safely"):
        read_image(path)
