"""DICOM through pydicom's own shipped files, checked against pydicom's documented transforms.

The oracle for grayscale is ``pydicom.pixels.apply_voi_lut(apply_modality_lut(ds.pixel_array,
ds), ds)`` (PS3.3 C.11), scaled by the output range PS3.3 defines for that transform, plus
hand computations of the window formula on Hounsfield units. Only files shipped inside the
pydicom wheel are used (nothing is downloaded).
"""

from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, get_decoder
from pydicom.uid import JPEGLSLossless

from auditkit.data.readers import image_format, image_shape, read_image
from auditkit.errors import ImageReadError


def _file(name: str) -> str:
    path = get_testdata_file(name)
    assert path is not None, f"{name} is not shipped with this pydicom"
    return path


def _window_linear(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 (LINEAR) by hand, output range [0, 1]."""
    c, w = center - 0.5, width - 1.0
    out = (values - c) / w + 0.5
    return np.clip(np.where(values <= c - w / 2, 0.0, np.where(values > c + w / 2, 1.0, out)), 0, 1)


def test_mr_small_window_matches_pydicom_and_the_standard():
    path = _file("MR_small.dcm")
    ds = pydicom.dcmread(path)
    assert (float(ds.WindowCenter), float(ds.WindowWidth)) == (600.0, 1600.0)
    image = read_image(path)
    assert image.shape == (64, 64) and image.dtype == np.float32
    # oracle 1: pydicom's transforms, output range [y_min, y_max] of a signed 16-bit image
    voi = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds)
    bits = int(ds.BitsStored)
    y_min, y_max = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    np.testing.assert_allclose(image, (voi - y_min) / (y_max - y_min), rtol=0, atol=1e-6)
    # oracle 2: the LINEAR window formula by hand on the stored values (no rescale in MR_small)
    np.testing.assert_allclose(image, _window_linear(ds.pixel_array.astype(float), 600, 1600), atol=1e-6)


def test_ct_small_rescale_then_window_by_hand(tmp_path):
    ds = pydicom.dcmread(_file("CT_small.dcm"))
    assert (float(ds.RescaleSlope), float(ds.RescaleIntercept)) == (1.0, -1024.0)
    ds.WindowCenter, ds.WindowWidth = 40, 400  # a soft-tissue window on Hounsfield units
    ds.save_as(tmp_path / "ct_window.dcm")
    hounsfield = ds.pixel_array.astype(float) * 1.0 - 1024.0
    np.testing.assert_allclose(read_image(tmp_path / "ct_window.dcm"), _window_linear(hounsfield, 40, 400), atol=1e-6)


def test_ct_small_without_window_is_minmax_of_hounsfield_units():
    path = _file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    hounsfield = apply_modality_lut(ds.pixel_array, ds).astype(float)
    assert np.array_equal(hounsfield, ds.pixel_array * 1.0 - 1024.0)
    expected = (hounsfield - hounsfield.min()) / (hounsfield.max() - hounsfield.min())
    np.testing.assert_allclose(read_image(path), expected, atol=1e-6)
    assert image_shape(path) == (128, 128)


def test_voi_lut_sequence_is_applied_and_scaled_by_its_depth(tmp_path):
    ds = pydicom.dcmread(_file("CT_small.dcm"))
    hounsfield = apply_modality_lut(ds.pixel_array, ds)
    first, entries = int(hounsfield.min()) + 50, 512
    item = Dataset()
    # first mapped value is signed (Hounsfield units), so the descriptor is SS
    item.add_new(0x00283002, "SS", [entries, first, 16])
    # a gamma-shaped table: not a straight line, so an accidental window would not match
    item.add_new(0x00283006, "US", [round(65535 * (i / (entries - 1)) ** 0.5) for i in range(entries)])
    ds.VOILUTSequence = [item]
    ds.save_as(tmp_path / "ct_voilut.dcm")
    reread = pydicom.dcmread(tmp_path / "ct_voilut.dcm")
    oracle = apply_voi_lut(np.rint(apply_modality_lut(reread.pixel_array, reread)).astype(np.int64), reread)
    np.testing.assert_allclose(read_image(tmp_path / "ct_voilut.dcm"), oracle / 65535.0, atol=1e-6)


def test_monochrome1_is_inverted_after_the_window(tmp_path):
    ds = pydicom.dcmread(_file("MR_small.dcm"))
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(tmp_path / "mono1.dcm")
    expected = 1.0 - _window_linear(ds.pixel_array.astype(float), 600, 1600)
    np.testing.assert_allclose(read_image(tmp_path / "mono1.dcm"), expected, atol=1e-6)


@pytest.mark.parametrize("name", ["MR_small_RLE.dcm", "MR_small_bigendian.dcm", "MR_small_jp2klossless.dcm"])
def test_other_encodings_of_mr_small_read_identically(name):
    path = _file(name)
    syntax = pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
    if syntax.is_compressed and not get_decoder(syntax).is_available:
        pytest.skip(f"no decoder for {syntax.name} installed")
    np.testing.assert_allclose(read_image(path), read_image(_file("MR_small.dcm")), atol=1e-6)


def test_missing_codec_is_a_clear_error_naming_the_file():
    path = _file("MR_small_jpeg_ls_lossless.dcm")
    if get_decoder(JPEGLSLossless).is_available:
        pytest.skip("a JPEG-LS decoder is installed here")
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    message = str(info.value)
    assert path in message and "JPEG-LS" in message and "install" in message


def test_multiframe_is_refused_unless_a_frame_is_named():
    path = _file("rtdose.dcm")
    with pytest.raises(ImageReadError, match="multi-frame DICOM with 15 frames"):
        read_image(path)
    ds = pydicom.dcmread(path)
    frame = ds.pixel_array[3].astype(float)
    expected = (frame - frame.min()) / (frame.max() - frame.min())
    np.testing.assert_allclose(read_image(path, frame_index=3), expected, atol=1e-6)
    with pytest.raises(ImageReadError, match="frame index 15 does not exist"):
        read_image(path, frame_index=15)


def test_object_without_pixel_data_is_refused():
    with pytest.raises(ImageReadError, match="has no pixel data"):
        read_image(_file("rtplan.dcm"))


def test_truncated_pixel_data_is_a_clear_error():
    with pytest.raises(ImageReadError, match="cannot be decoded"):
        read_image(_file("MR_truncated.dcm"))


def test_colour_dicom_rgb_ybr_and_palette():
    rgb_path = _file("examples_rgb_color.dcm")
    rgb = pydicom.dcmread(rgb_path)
    np.testing.assert_allclose(read_image(rgb_path), rgb.pixel_array / 255.0, atol=1e-6)
    ybr_path = _file("SC_ybr_full_422_uncompressed.dcm")
    ybr = pydicom.dcmread(ybr_path)
    # pydicom converts YBR_FULL_422 to RGB in pixel_array (its documented default)
    np.testing.assert_allclose(read_image(ybr_path), ybr.pixel_array / 255.0, atol=1e-6)
    palette_path = _file("examples_palette.dcm")
    palette = pydicom.dcmread(palette_path)
    depth = int(palette.RedPaletteColorLookupTableDescriptor[2])
    expected = apply_color_lut(palette.pixel_array, palette) / (2**depth - 1)
    np.testing.assert_allclose(read_image(palette_path), expected, atol=1e-6)


def test_dicom_is_recognised_by_its_preamble_without_a_suffix(tmp_path):
    shutil.copy(_file("CT_small.dcm"), tmp_path / "IM0001")
    assert image_format(tmp_path / "IM0001") == "dicom"
    np.testing.assert_allclose(read_image(tmp_path / "IM0001"), read_image(_file("CT_small.dcm")))
