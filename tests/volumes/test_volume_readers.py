"""Volume readers and declared preprocessing, against planted voxels and hand-computed geometry.

Oracles: the Hounsfield values and positions written into synthetic DICOM
series / enhanced CT (files stored out of anatomical order, so only
ImagePositionPatient gives the order), a voxel planted at a known NIfTI index
under a flipped affine, and the window formula by hand.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from dicom_helpers import write_ct_series, write_enhanced_ct, write_multiframe

from auditkit.data.volumes import Volume, VolumePreprocess, read_volume, read_volume_mask
from auditkit.errors import ImageReadError, InvalidInputError


def _hu(depth=6, rows=10, cols=12):
    rng = np.random.default_rng(1)
    hu = rng.integers(-1000, 400, size=(depth, rows, cols)).astype(np.float32)
    hu[np.arange(depth), 0, 0] = np.arange(depth) * 100.0  # slice k carries 100 k HU in its corner
    return hu


def test_dicom_series_is_sorted_by_position_with_rescale_and_spacing(tmp_path):
    hu = _hu()
    folder = write_ct_series(tmp_path / "ct", hu, spacing=(2.5, 0.8, 0.7))  # files in reverse order
    volume = read_volume(folder)
    assert volume.kind == "dicom-series" and volume.units == "HU"
    np.testing.assert_array_equal(volume.array, hu)
    assert volume.spacing == pytest.approx((2.5, 0.8, 0.7))


def test_dicom_series_with_a_missing_slice_or_two_series_is_refused(tmp_path):
    hu = _hu()
    folder = write_ct_series(tmp_path / "gap", hu)
    (folder / "slice_002.dcm").unlink()
    with pytest.raises(ImageReadError, match=r"unevenly spaced.*missing"):
        read_volume(folder)
    mixed = write_ct_series(tmp_path / "mixed", hu[:3])
    write_ct_series(tmp_path / "other", hu[:3])
    (tmp_path / "other" / "slice_000.dcm").rename(mixed / "extra.dcm")
    with pytest.raises(ImageReadError, match="mixes 2 series"):
        read_volume(mixed)


def test_enhanced_multiframe_ct_uses_per_frame_positions_and_shared_rescale(tmp_path):
    hu = _hu(depth=5)
    hu = np.round(hu / 2) * 2  # representable with slope 2
    path = write_enhanced_ct(tmp_path / "ect.dcm", hu, spacing=(2.0, 0.7, 0.6), slope=2.0)
    volume = read_volume(path)
    assert volume.kind == "dicom-multiframe" and volume.units == "HU"
    np.testing.assert_array_equal(volume.array, hu)
    assert volume.spacing == pytest.approx((2.0, 0.7, 0.6))


def test_plain_multiframe_reads_frames_in_stored_order(tmp_path):
    frames = np.arange(4 * 5 * 6, dtype=np.uint16).reshape(4, 5, 6)
    volume = read_volume(write_multiframe(tmp_path / "mf.dcm", frames))
    np.testing.assert_array_equal(volume.array, frames.astype(np.float32))


def test_nifti_is_reoriented_to_canonical_and_transposed_to_depth_height_width(tmp_path):
    data = np.zeros((7, 5, 4), np.int16)  # stored (x, y, z)
    data[1, 2, 3] = 500
    affine = np.diag([-0.8, 0.9, 2.5, 1.0])  # x runs right-to-left: canonical RAS flips it
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "v.nii.gz")
    volume = read_volume(tmp_path / "v.nii.gz")
    assert volume.shape == (4, 5, 7) and volume.spacing == pytest.approx((2.5, 0.9, 0.8))
    # hand: z=3 -> D 3; y=2 -> H 2; x=1 flipped in a 7-wide axis -> W 5
    assert volume.array[3, 2, 5] == 500 and volume.array.sum() == 500
    nib.save(nib.Nifti1Image((data > 0).astype(np.uint8), affine), tmp_path / "m.nii")
    assert read_volume_mask(tmp_path / "m.nii")[3, 2, 5]


def test_npy_volume_and_refusals(tmp_path):
    np.save(tmp_path / "v.npy", np.ones((3, 4, 5), np.float32))
    assert read_volume(tmp_path / "v.npy").shape == (3, 4, 5)
    np.save(tmp_path / "flat.npy", np.ones((4, 5), np.float32))
    with pytest.raises(ImageReadError, match=r"\(D, H, W\)"):
        read_volume(tmp_path / "flat.npy")
    with pytest.raises(ImageReadError, match="does not exist"):
        read_volume(tmp_path / "nothing.nii")


def test_window_by_hand_and_resampling_keeps_image_and_mask_aligned(tmp_path):
    hu = np.full((8, 16, 16), -1000.0, np.float32)
    hu[2:4, 6:10, 4:8] = 60.0  # a nodule, slices 2-3 at 2 mm: 4-8 mm deep
    mask = hu > 0
    np.save(tmp_path / "v.npy", hu)
    volume = read_volume(tmp_path / "v.npy")
    volume = type(volume)(volume.array, (2.0, 1.0, 1.0), "npy")
    pre = VolumePreprocess(size=(16, 16, 16), spacing=(1.0, 1.0, 1.0), window=(40.0, 400.0))
    x = pre.prepare(volume)
    assert x.shape == (1, 16, 16, 16)
    # window by hand: (60 - (40 - 200)) / 400 = 0.55 inside; -1000 clips to 0
    core = x[0, 5, 7:9, 5:7]
    torch.testing.assert_close(core, torch.full_like(core, 0.55))
    assert float(x[0, 0].max()) == 0.0
    on_grid = pre.mask_to_input(mask, (2.0, 1.0, 1.0))
    assert on_grid.shape == (16, 16, 16)
    assert set(np.unique(np.nonzero(on_grid)[0])) == {4, 5, 6, 7}  # 4-8 mm at 1 mm
    inside = x[0].numpy()[on_grid]
    assert inside.min() > 0.3 and x[0].numpy()[~on_grid].max() < 0.3
    assert VolumePreprocess.from_dict(pre.to_dict()) == pre
    with pytest.raises(InvalidInputError, match="width > 0"):
        VolumePreprocess(size=(4, 4, 4), window=(0.0, 0.0))


def test_crop_and_pad_to_the_declared_size():
    volume = Volume(
        np.arange(4 * 6 * 10, dtype=np.float32).reshape(4, 6, 10), (1.0, 1.0, 1.0), "npy"
    )
    pre = VolumePreprocess(size=(6, 6, 6), spacing=(1.0, 1.0, 1.0))
    x = pre.prepare(volume)[0]
    assert x.shape == (6, 6, 6)
    # depth 4 -> 6: one padded slice each side (filled with the minimum, 0); width 10 -> 6: crop 2..8
    assert float(x[0].abs().max()) == 0.0 and float(x[5].abs().max()) == 0.0
    np.testing.assert_array_equal(x[1:5].numpy(), volume.array[:, :, 2:8])
