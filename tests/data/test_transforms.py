"""Preprocess and Augment against Pillow, scikit-image and hand computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.transform import resize

from auditkit.data.transforms import Augment, Preprocess
from auditkit.errors import InvalidInputError

RNG = np.random.default_rng(11)
IDENTITY = {"mean": (0.0,), "std": (1.0,)}


def test_rgb_to_gray_is_bt601_luma_like_pillow():
    rgb = RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    gray = Preprocess((20, 30), 1, **IDENTITY)(rgb / 255.0)
    assert gray.shape == (1, 20, 30)
    pillow = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float64)  # rounds to integers
    np.testing.assert_allclose(gray[0].numpy() * 255, pillow, rtol=0, atol=0.5 + 1e-3)


def test_gray_is_replicated_for_three_channel_models():
    gray = RNG.random((20, 30)).astype(np.float32)
    out = Preprocess((20, 30), 3, **IDENTITY)(gray)
    assert out.shape == (3, 20, 30)
    for channel in range(3):
        np.testing.assert_array_equal(out[channel].numpy(), gray)


def test_normalisation_by_hand():
    image = RNG.random((8, 8, 3)).astype(np.float32)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    out = Preprocess((8, 8), 3, mean, std)(image).numpy()
    expected = (image.transpose(2, 0, 1) - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)


def test_bilinear_upsampling_matches_pillow_and_skimage():
    image = RNG.random((40, 50)).astype(np.float32)
    out = Preprocess((64, 80), 1, **IDENTITY).prepare(image)[0].numpy()
    pillow = np.asarray(Image.fromarray(image, mode="F").resize((80, 64), Image.BILINEAR))
    scikit = resize(image, (64, 80), order=1, mode="edge", anti_aliasing=False)
    np.testing.assert_allclose(out, pillow, atol=1e-5)
    np.testing.assert_allclose(out, scikit, atol=1e-5)


def test_antialiased_downsampling_matches_pillow():
    image = RNG.random((100, 120)).astype(np.float32)
    out = Preprocess((64, 64), 1, **IDENTITY).prepare(image)[0].numpy()
    pillow = np.asarray(Image.fromarray(image, mode="F").resize((64, 64), Image.BILINEAR))
    np.testing.assert_allclose(out, pillow, atol=1e-5)


@pytest.mark.parametrize("shape", [(40, 50), (100, 120)])
def test_mask_resize_is_nearest_pixel_centre_like_pillow(shape):
    mask = RNG.random(shape) > 0.5
    out = Preprocess((64, 80), 1, **IDENTITY).mask_to_input(mask)
    pillow = np.asarray(Image.fromarray(mask.astype(np.uint8)).resize((80, 64), Image.NEAREST)) > 0
    assert out.dtype == bool
    np.testing.assert_array_equal(out, pillow)


@pytest.mark.parametrize("shape", [(37, 53), (150, 90)])
def test_mask_stays_aligned_with_its_image(shape):
    # a bright rectangle and its mask: after resizing, the mask covers where the image is bright
    image = np.zeros(shape, dtype=np.float32)
    mask = np.zeros(shape, dtype=bool)
    r0, r1, c0, c1 = shape[0] // 4, shape[0] // 2, shape[1] // 3, 2 * shape[1] // 3
    image[r0:r1, c0:c1] = 1.0
    mask[r0:r1, c0:c1] = True
    pre = Preprocess((64, 64), 1, **IDENTITY)
    bright = pre.prepare(image)[0].numpy() > 0.5
    small = pre.mask_to_input(mask)
    assert (bright != small).sum() <= 2 * (64 + 64) * 0.1  # only along the edges, if at all
    rows, cols = np.nonzero(small)
    brows, bcols = np.nonzero(bright)
    assert abs(rows.mean() - brows.mean()) < 0.5 and abs(cols.mean() - bcols.mean()) < 0.5


def test_to_dict_round_trip_and_validation():
    pre = Preprocess((224, 224), 3, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    record = pre.to_dict()
    assert record["input_size"] == [224, 224] and record["rgb_to_gray"] == "itu_r_bt601_luma"
    assert Preprocess.from_dict(record) == pre
    assert Preprocess((64, 64), 3, (0.5,), (0.25,)).mean == (0.5, 0.5, 0.5)
    with pytest.raises(InvalidInputError, match="in_channels"):
        Preprocess((64, 64), 2)
    with pytest.raises(InvalidInputError, match="std"):
        Preprocess((64, 64), 1, (0.5,), (0.0,))
    with pytest.raises(InvalidInputError, match="one per channel"):
        Preprocess((64, 64), 3, (0.5, 0.5), (0.25,))
    with pytest.raises(InvalidInputError, match="input_size"):
        Preprocess.from_dict({"in_channels": 1, "mean": [0.5], "std": [0.5]})


def test_the_callers_array_is_never_shared_or_changed():
    image = RNG.random((16, 16)).astype(np.float32)
    before = image.copy()
    prepared = Preprocess((16, 16), 1, **IDENTITY).prepare(image)
    prepared += 1.0
    np.testing.assert_array_equal(image, before)


def test_to_display_inverts_the_normalisation():
    pre = Preprocess((16, 16), 1, (0.3,), (0.2,))
    image = RNG.random((16, 16)).astype(np.float32)
    np.testing.assert_allclose(pre.to_display(pre(image)), image, atol=1e-6)


def _blob(size=64, row=20, col=14) -> torch.Tensor:
    yy, xx = np.mgrid[:size, :size]
    return torch.from_numpy(np.exp(-((yy - row) ** 2 + (xx - col) ** 2) / 8.0).astype(np.float32))[None]


def test_augment_moves_little_never_flips_and_stays_in_range():
    augment = Augment(max_shift=0.05, max_rotation=5.0, brightness=0.05, contrast=0.1)
    image = _blob()
    torch.manual_seed(0)
    bound = 0.05 * 64 + np.deg2rad(5.0) * np.hypot(20 - 31.5, 14 - 31.5) + 1.0
    for _ in range(40):
        out = augment(image)
        assert out.shape == image.shape and float(out.min()) >= 0.0 and float(out.max()) <= 1.0
        row, col = np.unravel_index(int(out[0].argmax()), out.shape[1:])
        # a horizontal flip would put the blob near column 49; a shift/rotation keeps it near 14
        assert np.hypot(row - 20, col - 14) <= bound


def test_augment_is_reproducible_under_torch_seed_and_varies_between_draws():
    augment = Augment()
    image = _blob()
    torch.manual_seed(5)
    first, second = augment(image), augment(image)
    torch.manual_seed(5)
    assert torch.equal(augment(image), first)
    assert not torch.equal(first, second)
