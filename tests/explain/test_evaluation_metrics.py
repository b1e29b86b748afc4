"""Saliency evaluation metrics on synthetic maps and tiny models whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from explain_tiny_models import PatchReader
from scipy import stats
from skimage.feature import hog
from skimage.filters import threshold_otsu
from skimage.metrics import structural_similarity
from sklearn.metrics import f1_score, jaccard_score

from auditkit.explain.evaluation.bootstrap import bootstrap_mean, bootstrap_ratio
from auditkit.explain.evaluation.faithfulness import curve_auc, perturbation_curves
from auditkit.explain.evaluation.localization import (
    binarize_otsu,
    box_mask,
    dice,
    energy_pointing,
    hit,
    iou,
    localization_scores,
    otsu_threshold,
    tune_threshold,
)
from auditkit.explain.evaluation.shortcut import (
    corner_masks,
    corner_masses,
    corner_shares,
    diffuse_map_score,
    outside_roi_shares,
    pooled_share,
    region_name,
    shortcut_scores,
)
from auditkit.explain.evaluation.similarity import hog_features, hog_similarity, spearman, ssim
from auditkit.explain.evaluation.stability import shift, shift_stability

# --- localisation ---------------------------------------------------------------------------


def _square(size: int, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    mask[r0:r1, c0:c1] = True
    return mask


def test_pointing_game_hits_misses_and_is_undefined_for_a_flat_map():
    mask = _square(16, 4, 8, 4, 8)
    inside = np.zeros((16, 16))
    inside[5, 6] = 2.0
    outside = np.zeros((16, 16))
    outside[12, 1] = 2.0
    flat = np.full((16, 16), 0.3)
    result = hit(np.stack([inside, outside, flat]), np.stack([mask] * 3))
    assert result[:2].tolist() == [1.0, 0.0] and np.isnan(result[2])


def test_energy_pointing_is_the_positive_mass_inside_by_hand():
    mask = _square(8, 0, 4, 0, 4)  # 16 pixels
    saliency = np.where(mask, 1.0, 0.0)
    saliency[6, :] = 0.5  # 8 pixels outside at 0.5 -> 4 units of mass
    saliency[7, :] = -3.0  # negative evidence is not mass
    np.testing.assert_allclose(energy_pointing(saliency[None], mask[None]), [16 / 20])
    assert np.isnan(energy_pointing(-np.ones((1, 8, 8)), mask[None])[0])


def test_otsu_threshold_equals_skimage():
    rng = np.random.default_rng(0)
    for values in (rng.random((32, 32)), np.concatenate([rng.normal(0, 1, 500), rng.normal(5, 1, 300)])):
        assert otsu_threshold(values) == pytest.approx(threshold_otsu(values), rel=1e-12)


def test_iou_and_dice_match_sklearn_and_hand_values():
    mask = _square(6, 1, 3, 1, 3)
    pred = _square(6, 1, 3, 2, 4)  # overlaps by 2 pixels of 4: IoU 2/6, Dice 4/8
    np.testing.assert_allclose(iou(pred[None], mask[None]), [1 / 3])
    np.testing.assert_allclose(dice(pred[None], mask[None]), [0.5])
    rng = np.random.default_rng(1)
    a, b = rng.random((5, 10, 10)) > 0.6, rng.random((5, 10, 10)) > 0.5
    np.testing.assert_allclose(iou(a, b), [jaccard_score(y.ravel(), x.ravel()) for x, y in zip(a, b, strict=True)])
    np.testing.assert_allclose(dice(a, b), [f1_score(y.ravel(), x.ravel()) for x, y in zip(a, b, strict=True)])


def test_otsu_binarisation_recovers_a_planted_lesion():
    rng = np.random.default_rng(2)
    mask = _square(32, 10, 20, 12, 22)
    saliency = np.where(mask, 1.0, 0.0) + rng.normal(0, 0.05, (32, 32))
    binary = binarize_otsu(saliency[None])
    scaled = (saliency - saliency.min()) / (saliency.max() - saliency.min())
    assert np.array_equal(binary[0], scaled > threshold_otsu(scaled))  # skimage's convention
    assert iou(binary, mask[None])[0] > 0.95


def test_tuned_threshold_is_the_lowest_grid_value_that_excludes_the_distractor():
    # lesion at 1.0, a distractor ring at 0.55, background at 0: thresholds 0.2-0.5 keep the ring
    # (IoU < 1), 0.6-0.8 give IoU 1, and ties go to the lowest: 0.6.
    mask = _square(20, 8, 12, 8, 12)
    ring = _square(20, 6, 14, 6, 14) & ~mask
    saliency = np.where(mask, 1.0, np.where(ring, 0.55, 0.0))
    threshold = tune_threshold(np.stack([saliency] * 3), np.stack([mask] * 3))
    assert threshold == pytest.approx(0.6)
    scores = localization_scores(saliency[None], mask[None], threshold=threshold)
    assert scores.iou_tuned.tolist() == [1.0] and scores.dice_tuned.tolist() == [1.0]


def test_box_mask_takes_pixels_whose_centres_are_in_the_box():
    mask = box_mask((4, 5), 1.0, 0.4, 3.0, 2.6)  # columns 1-2, rows 0-2 (centres 0.5, 1.5, 2.5)
    expected = np.zeros((4, 5), bool)
    expected[0:3, 1:3] = True
    assert np.array_equal(mask, expected)


# --- similarity -----------------------------------------------------------------------------


def test_ssim_and_hog_equal_skimage():
    rng = np.random.default_rng(3)
    a = rng.random((40, 48))
    b = 0.6 * a + 0.4 * rng.random((40, 48))
    assert ssim(a, b, data_range=1.0) == pytest.approx(structural_similarity(a, b, data_range=1.0), abs=1e-12)
    np.testing.assert_allclose(hog_features(a), hog(a), atol=1e-6)
    expected = np.corrcoef(hog(a), hog(b))[0, 1]
    assert hog_similarity(a, b) == pytest.approx(expected, abs=1e-6)  # both already span ~[0, 1]


def test_spearman_is_pearson_of_ranks():
    rng = np.random.default_rng(4)
    a, b = rng.random((8, 8)), rng.random((8, 8))
    expected = np.corrcoef(stats.rankdata(a.ravel()), stats.rankdata(b.ravel()))[0, 1]
    assert spearman(a, b) == pytest.approx(expected)
    assert np.isnan(spearman(np.ones((8, 8)), b))


# --- faithfulness ---------------------------------------------------------------------------


def _sigmoid(z: float) -> float:
    return 1 / (1 + np.exp(-z))


def test_deletion_curve_of_a_patch_reading_model_by_hand():
    # 8x8 image of ones, the model's logit is sum(patch 2x2) - 1. With 16 steps, 4 pixels go per
    # step; a map that ranks the patch first deletes it in step 1: p = s(3), then s(-1) for 16 steps.
    model = PatchReader(2, 4, 5, 7)
    x = torch.ones(1, 1, 8, 8)
    saliency = np.zeros((1, 8, 8))
    saliency[0, 2:4, 5:7] = 1.0
    curves = perturbation_curves(model, x, saliency, [1], n_steps=16, deletion_substrate="zeros")
    expected = [_sigmoid(3)] + [_sigmoid(-1)] * 16
    np.testing.assert_allclose(curves.deletion[0], expected, rtol=1e-6)
    auc = (_sigmoid(3) / 2 + 15 * _sigmoid(-1) + _sigmoid(-1) / 2) / 16
    assert curves.deletion_auc[0] == pytest.approx(auc, rel=1e-6)
    np.testing.assert_allclose(curves.fractions, np.arange(17) / 16)


def test_deletion_curve_follows_the_checkpoint_calibrated_probability():
    # Same model and map as above, with a checkpoint calibration: logits (0, s) + offset (0.4, -0.2),
    # divided by T = 2, so P(class 1) = sigmoid((s - 0.6) / 2): s(1.2) intact, s(-0.8) once deleted.
    model = PatchReader(2, 4, 5, 7)
    x = torch.ones(1, 1, 8, 8)
    saliency = np.zeros((1, 8, 8))
    saliency[0, 2:4, 5:7] = 1.0
    meta = {"calibration": {"method": "temperature", "temperature": 2.0, "logit_offset": [0.4, -0.2]}}
    curves = perturbation_curves(model, x, saliency, [1], n_steps=16, deletion_substrate="zeros", calibration=meta)
    expected = [_sigmoid((3 - 0.6) / 2)] + [_sigmoid((-1 - 0.6) / 2)] * 16
    np.testing.assert_allclose(curves.deletion[0], expected, rtol=1e-6)
    raw = perturbation_curves(model, x, saliency, [1], n_steps=16, deletion_substrate="zeros")
    assert raw.deletion[0, 0] == pytest.approx(_sigmoid(3), rel=1e-6)  # no record: the plain softmax


def test_deletion_curve_of_a_multi_label_head_follows_each_findings_own_sigmoid():
    # Two independent findings: output 0 reads patch A (rows 0:2, cols 0:2), output 1 is a constant 2.
    # With probability=sigmoid, finding 0's curve is s(sum A - 1) alone (a softmax would mix in the
    # constant: s(sum A - 1 - 2)); deleting A first (4 of 64 pixels a step) drops it to s(-1) at once.
    class TwoFindings(torch.nn.Module):
        def forward(self, x):
            a = x[:, :, 0:2, 0:2].sum(dim=(1, 2, 3)) - 1.0
            return torch.stack([a, torch.full_like(a, 2.0)], dim=1)

    x = torch.ones(1, 1, 8, 8)
    saliency = np.zeros((1, 8, 8))
    saliency[0, 0:2, 0:2] = 1.0
    curves = perturbation_curves(TwoFindings(), x, saliency, [0], n_steps=16, deletion_substrate="zeros",
                                 probability=torch.sigmoid)  # fmt: skip
    np.testing.assert_allclose(curves.deletion[0], [_sigmoid(3)] + [_sigmoid(-1)] * 16, rtol=1e-6)
    other = perturbation_curves(TwoFindings(), x, saliency, [1], n_steps=16, deletion_substrate="zeros",
                                probability=torch.sigmoid)  # fmt: skip
    np.testing.assert_allclose(other.deletion[0], [_sigmoid(2)] * 17, rtol=1e-6)  # finding 1 ignores patch A
    softmax = perturbation_curves(TwoFindings(), x, saliency, [0], n_steps=16, deletion_substrate="zeros")
    assert softmax.deletion[0, 0] == pytest.approx(_sigmoid(3 - 2), rel=1e-6)


def test_saliency_on_the_relevant_patch_beats_a_random_order():
    # Only the 6x6 patch counts (logit 0.075 * sum - 1, about +3 when intact); outside it the
    # image is dark, so blurring (the insertion canvas) spills the patch and lowers the logit.
    model = PatchReader(10, 16, 4, 10, gain=0.075)
    rng = np.random.default_rng(5)
    x = torch.zeros(4, 1, 24, 24)
    x[:, :, 10:16, 4:10] = torch.tensor(1 + rng.random((4, 1, 6, 6)), dtype=torch.float32)
    saliency = np.zeros((4, 24, 24))
    saliency[:, 10:16, 4:10] = 1 + rng.random((4, 6, 6))
    kwargs = dict(n_steps=12, deletion_substrate="zeros", batch_size=20)
    good = perturbation_curves(model, x, saliency, [1] * 4, **kwargs)
    rand = perturbation_curves(model, x, saliency, [1] * 4, order="random", **kwargs)
    assert (good.deletion_auc < rand.deletion_auc).all()
    assert (good.insertion_auc > rand.insertion_auc).all()


def test_curve_auc_equals_numpy_trapezoid():
    curves = np.random.default_rng(6).random((3, 11))
    expected = [np.trapezoid(c, np.linspace(0, 1, 11)) for c in curves]
    np.testing.assert_allclose(curve_auc(curves), expected)


# --- shortcut, stability, bootstrap -----------------------------------------------------------


def test_shortcut_score_corner_centre_and_uniform_maps_by_hand():
    corner = np.zeros((64, 64))
    corner[0:4, 60:64] = 1.0  # a marker in the top-right corner
    centre = np.zeros((64, 64))
    centre[28:36, 28:36] = 1.0
    uniform = np.ones((64, 64))
    split = np.zeros((64, 64))
    split[0:16, 0:16] = 1.0  # 256 units in the top-left corner square (16 = a quarter of 64)
    split[0:16, 48:64] = 3.0  # 768 units in the top-right one: the heaviest corner
    split[30:34, 30:34] = 16.0  # 256 units in the middle
    scores = shortcut_scores(np.stack([corner, centre, uniform, split]))
    np.testing.assert_allclose(scores, [1.0, 0.0, 1 / 16, 768 / 1280])
    assert [m.sum() for m in corner_masks((64, 64))] == [256] * 4
    roi = np.zeros((64, 64), bool)
    roi[0:8, 56:64] = True  # anatomy reaching into the top-right corner is not a shortcut
    np.testing.assert_allclose(shortcut_scores(corner[None], rois=[roi]), [0.0])
    inside, total = corner_masses(np.stack([corner, uniform]))
    assert pooled_share(inside, total) == pytest.approx((16 + 256) / (16 + 4096))
    outside, mass = outside_roi_shares(np.stack([centre, uniform]), [roi, None])
    assert outside[0] == 64 and np.isnan(outside[1]) and mass.tolist() == [64, 4096]
    assert region_name([roi, None]) == "corners_outside_roi_where_given" and region_name(None) == "corners"


def test_corner_shares_are_the_shortcut_scores_and_a_diffuse_map_scores_a_corner_share():
    # the audit takes the masses once (pooled) and the per-image scores from them: same numbers
    maps = np.stack([np.ones((64, 64)), np.zeros((64, 64))])
    maps[1, 0:4, 60:64] = 2.0
    inside, total = corner_masses(maps)
    np.testing.assert_array_equal(corner_shares(inside, total), shortcut_scores(maps))
    np.testing.assert_allclose(corner_shares(inside, total), [256 / 4096, 1.0])
    assert np.isnan(corner_shares(np.array([0.0]), np.array([0.0]))[0])  # no positive mass
    assert diffuse_map_score() == 0.0625 == shortcut_scores(np.ones((1, 64, 64)))[0]
    assert diffuse_map_score(0.5) == 0.25


def test_shift_moves_content_and_shift_stability_of_an_input_copying_method_is_one():
    x = torch.arange(36.0).view(1, 1, 6, 6)
    moved = shift(x, 1, 2)
    assert torch.equal(moved[0, 0, 1:, 2:], x[0, 0, :5, :4])
    rng = np.random.default_rng(7)
    images = torch.tensor(rng.random((2, 1, 24, 24)), dtype=torch.float32)

    def copy_input(model, inputs, targets):
        return inputs[:, 0].numpy()

    maps = copy_input(None, images, None)
    np.testing.assert_allclose(shift_stability(None, copy_input, images, None, maps, pixels=2), 1.0)


def test_bootstrap_mean_agrees_with_scipy_percentile_bootstrap():
    rng = np.random.default_rng(8)
    values = rng.normal(0.4, 0.2, 300)
    ours = bootstrap_mean(np.append(values, np.nan), n_boot=4000, random_state=1)
    ref = stats.bootstrap((values,), np.mean, n_resamples=4000, method="percentile", random_state=2)
    assert ours.estimate == pytest.approx(values.mean())
    assert ours.ci_low == pytest.approx(ref.confidence_interval.low, abs=0.01)
    assert ours.ci_high == pytest.approx(ref.confidence_interval.high, abs=0.01)
    assert bootstrap_mean(np.array([np.nan, np.nan])).estimate is None


def _cluster_bootstrap_by_hand(numerator, denominator, patients, *, n_boot, seed, level=0.95):
    """A cluster bootstrap written out: draw the patients (sorted ids) with replacement, pool their images."""
    ids = np.unique(patients)
    draws = np.random.default_rng(seed).integers(0, len(ids), size=(n_boot, len(ids)))
    ratios = []
    for row in draws:
        rows = np.concatenate([np.flatnonzero(patients == ids[k]) for k in row])
        ratios.append(numerator[rows].sum() / denominator[rows].sum())
    return np.quantile(ratios, [(1 - level) / 2, (1 + level) / 2])


def test_a_patients_identical_images_widen_the_interval_like_one_image():
    # the hand roll is a percentile interval, so ask for one (the default "auto" is BCa when clustered)
    # planted: 6 patients, 5 identical images each: 30 images, but only 6 independent values
    values = np.repeat([0.10, 0.20, 0.90, 0.15, 0.80, 0.30], 5)
    patients = np.repeat([f"p{k}" for k in range(6)], 5)
    naive = bootstrap_mean(values, n_boot=2000, random_state=4, ci_method="percentile")
    clustered = bootstrap_mean(values, clusters=patients, n_boot=2000, random_state=4, ci_method="percentile")
    assert clustered.estimate == pytest.approx(values.mean()) and naive.estimate == pytest.approx(values.mean())
    # the interval of 6 values, not of 30: wider by about sqrt(5)
    assert clustered.ci_high - clustered.ci_low > 1.8 * (naive.ci_high - naive.ci_low)
    assert "patients" in clustered.method and "patients" not in naive.method
    np.testing.assert_allclose(
        [clustered.ci_low, clustered.ci_high],
        _cluster_bootstrap_by_hand(values, np.ones(30), patients, n_boot=2000, seed=4),
        rtol=1e-12,
    )
    # and the same as the bootstrap of the 6 patient values themselves
    alone = bootstrap_mean(values[::5], n_boot=2000, random_state=4, ci_method="percentile")
    assert (clustered.ci_low, clustered.ci_high) == pytest.approx((alone.ci_low, alone.ci_high), rel=1e-12)


def test_cluster_bootstrap_of_a_ratio_matches_a_hand_rolled_one_and_ignores_row_order():
    rng = np.random.default_rng(11)
    sizes = [1, 4, 2, 6, 3, 3, 5, 2]  # unequal: a resample pools the drawn patients' images
    patients = np.repeat([f"patient-{k:02d}" for k in range(len(sizes))], sizes)
    den = rng.uniform(1, 3, patients.size)
    num = den * np.repeat(rng.uniform(0.05, 0.6, len(sizes)), sizes)
    ours = bootstrap_ratio(np.append(num, 1.0), np.append(den, 0.0), clusters=np.append(patients, "x"),
                           n_boot=1500, random_state=2, ci_method="percentile")  # fmt: skip
    assert ours.estimate == pytest.approx(num.sum() / den.sum())
    np.testing.assert_allclose(
        [ours.ci_low, ours.ci_high],
        _cluster_bootstrap_by_hand(num, den, patients, n_boot=1500, seed=2),
        rtol=1e-12,
    )
    order = rng.permutation(patients.size)
    shuffled = bootstrap_ratio(num[order], den[order], clusters=patients[order], n_boot=1500, random_state=2, ci_method="percentile")
    assert (shuffled.ci_low, shuffled.ci_high) == pytest.approx((ours.ci_low, ours.ci_high), rel=1e-12)


def test_cluster_bootstrap_edge_cases():
    from auditkit.errors import InvalidInputError

    one = bootstrap_mean(np.array([0.2, 0.4, 0.6]), clusters=["a", "a", "a"])
    assert one.estimate == pytest.approx(0.4) and one.ci_low is None and "1 patient(s)" in one.reason
    # NaN scores are left out with their patient ids; a missing id is an image on its own
    left = bootstrap_mean(np.array([0.1, np.nan, 0.5, 0.9]), clusters=["a", "b", None, None], n_boot=200)
    assert left.estimate == pytest.approx(0.5) and left.ci_low is not None and "patients" not in left.method
    with pytest.raises(InvalidInputError, match="clusters has 2 entries for 3 images"):
        bootstrap_mean(np.zeros(3), clusters=["a", "b"])


# --- sanity checks ----------------------------------------------------------------------------


def test_randomisation_blocks_run_from_the_output_down(resnet18):
    from auditkit.explain.evaluation.sanity import randomization_blocks
    from auditkit.nets.smallcnn import SmallCNN

    # containers without parameters of their own (layer1..4, features) are opened one level
    expected = ["fc", *(f"layer{i}.{j}" for i in (4, 3, 2, 1) for j in (1, 0)), "bn1", "conv1"]
    assert randomization_blocks(resnet18) == expected
    assert randomization_blocks(resnet18, max_blocks=2) == ["fc", "layer4.1"]
    assert randomization_blocks(SmallCNN()) == ["fc", "features.3", "features.2", "features.1", "features.0"]


def test_an_edge_detector_fails_the_randomisation_check_and_the_model_is_untouched(resnet18):
    from scipy import ndimage

    from auditkit.explain.evaluation.sanity import sanity_check
    from auditkit.explain.guard import model_state_fingerprint

    def edges(model, inputs, targets):  # ignores the model: the failure mode of guided backprop
        gray = inputs.mean(dim=1).numpy()
        return np.stack([np.hypot(ndimage.sobel(g, 0), ndimage.sobel(g, 1)) for g in gray])

    x = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(9))
    before = {k: v.clone() for k, v in resnet18.state_dict().items()}
    fingerprint = model_state_fingerprint(resnet18)
    result = sanity_check(resnet18, edges, x, torch.zeros(6, dtype=torch.long), max_blocks=3)
    assert result.passed is False
    for step in result.cascading + result.independent:
        np.testing.assert_allclose(step.ssim, 1.0)
        np.testing.assert_allclose(step.spearman, 1.0)
    assert result.baseline_ssim.size == 15 and result.baseline_ssim.mean() < 0.99  # 6 maps: 15 pairs
    assert all(torch.equal(before[k], v) for k, v in resnet18.state_dict().items())
    assert model_state_fingerprint(resnet18) == fingerprint


def test_bootstrap_ratio_is_a_ratio_of_sums_with_an_interval_around_it():
    rng = np.random.default_rng(10)
    den = rng.uniform(1, 3, 200)
    num = den * rng.uniform(0.1, 0.3, 200)
    result = bootstrap_ratio(np.append(num, 5.0), np.append(den, 0.0), n_boot=2000)  # zero mass left out
    assert result.estimate == pytest.approx(num.sum() / den.sum())
    assert result.ci_low < result.estimate < result.ci_high
    # a delta-method standard error of the ratio of means (Cochran 1977, eq. 6.13) as the oracle
    r = num.sum() / den.sum()
    se = np.sqrt(np.sum((num - r * den) ** 2) / (len(den) * (len(den) - 1))) / den.mean()
    assert result.ci_high - result.ci_low == pytest.approx(2 * 1.96 * se, rel=0.15)
