"""Grad-CAM and Integrated Gradients on volumes: full-depth maps, library oracles, chunked IG.

Oracles: captum's LayerGradCam and IntegratedGradients on the same 3-D model
(5-D inputs), pytorch-grad-cam's 3-D GradCAM (its scaled, resized map), the
input's own depth (pytorch-grad-cam issue #497: a 30-slice input gave an
8-slice CAM), and planted masks for 3-D localisation.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients as CaptumIG
from captum.attr import LayerGradCam
from scipy.stats import spearmanr

from auditkit.explain.api import attribute
from auditkit.explain.evaluation.localization import localization_scores
from auditkit.explain.gradcam import GradCAM
from auditkit.explain.guard import model_state_fingerprint
from auditkit.explain.integrated_gradients import IntegratedGradients
from auditkit.nets.layers import resolve_target_layer
from auditkit.nets.nets3d import SmallCNN3D, build_model_3d


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    model = SmallCNN3D(1, 2).eval()
    # a few steps of BN statistics so activations are not degenerate
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(4, 1, 30, 32, 32))
    return model.eval()


def test_gradcam_map_has_the_volume_full_depth(net):
    x = torch.randn(2, 1, 30, 32, 32)
    name, _ = resolve_target_layer(net, input_size=(30, 32, 32))
    result = attribute(net, x, method="gradcam", target=1, target_layer=name)
    assert result.maps.shape == (2, 30, 32, 32)  # not the layer's 4 slices
    assert "upsample(30x32x32)" in result.postprocessing


def test_fast_gradcam_equals_captum_layer_gradcam_on_volumes(net):
    x = torch.randn(3, 1, 16, 24, 24)
    layer = net.features
    ours = GradCAM(net, layer).attribute(x, target=1)
    reference = LayerGradCam(net, layer).attribute(x, target=1, relu_attributions=False)[:, 0]
    torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-6)


def test_full_depth_map_agrees_with_pytorch_grad_cam_3d(net):
    from pytorch_grad_cam import GradCAM as PGCGradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    x = torch.randn(2, 1, 30, 32, 32)
    before = model_state_fingerprint(net)
    ours = attribute(
        net,
        x,
        method="gradcam",
        target=1,
        target_layer="features",
        postprocess=("upsample", "relu", "minmax"),
    )
    assert model_state_fingerprint(net) == before
    with PGCGradCAM(model=net, target_layers=[net.features]) as cam:
        theirs = cam(
            input_tensor=x, targets=[ClassifierOutputTarget(1)] * 2
        )  # (N, D, H, W), spline-resized
    assert theirs.shape == ours.maps.shape == (2, 30, 32, 32)
    for a, b in zip(ours.maps, theirs, strict=True):
        assert spearmanr(a.ravel(), b.ravel()).statistic > 0.9
        assert abs(int(a.sum(axis=(1, 2)).argmax()) - int(b.sum(axis=(1, 2)).argmax())) <= 2


def test_chunked_ig_on_volumes_equals_captum_and_is_complete(net):
    x = torch.randn(2, 1, 8, 12, 12)
    ours = IntegratedGradients(net, n_steps=16, internal_batch_size=5).explain(x, target=1)
    reference = CaptumIG(net).attribute(
        x, baselines=torch.zeros_like(x), target=1, n_steps=16, method="gausslegendre"
    )
    torch.testing.assert_close(ours.attributions, reference, rtol=1e-4, atol=1e-6)
    assert ours.internal_batch_size == 5 and ours.attributions.shape == x.shape
    # completeness by hand: the sum of attributions is F(x) - F(0) up to quadrature error
    with torch.no_grad():
        gain = net(x)[:, 1] - net(torch.zeros_like(x))[:, 1]
    torch.testing.assert_close(ours.attributions.flatten(1).sum(1), gain, rtol=0.05, atol=0.02)


def test_ig_maps_through_the_api_sum_channels_at_full_size(net):
    x = torch.randn(1, 1, 12, 16, 16)
    result = attribute(net, x, method="ig", target=1, n_steps=8, internal_batch_size=8)
    assert result.maps.shape == (1, 12, 16, 16) and result.postprocessing == ("sum_channels",)


def test_torchvision_video_resnets_take_one_channel_and_explain_at_full_depth():
    torch.manual_seed(0)
    model = build_model_3d("mc3_18", in_channels=1, num_classes=2).eval()
    name, _ = resolve_target_layer(model, input_size=(16, 16, 16))
    assert name == "layer4"
    x = torch.randn(1, 1, 10, 16, 16)
    result = attribute(model, x, method="gradcam", target=0, target_layer=name)
    assert result.maps.shape == (1, 10, 16, 16)


def test_localisation_scores_work_on_volumes_against_a_planted_mask():
    masks = np.zeros((2, 8, 8, 8), bool)
    masks[:, 2:4, 2:4, 2:4] = True
    maps = np.zeros((2, 8, 8, 8))
    maps[0, 3, 3, 3] = 1.0  # peak inside the lesion, all energy inside
    maps[1, 6, 6, 6] = 1.0  # peak outside
    maps[1, 2, 2, 2] = 0.5
    scores = localization_scores(maps, masks)
    np.testing.assert_allclose(scores.hit, [1.0, 0.0])
    np.testing.assert_allclose(scores.energy_pointing, [1.0, 0.5 / 1.5])  # by hand
