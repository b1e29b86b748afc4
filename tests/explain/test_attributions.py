"""Attribution methods against hand computations and the reference libraries (captum, pytorch-grad-cam)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients as CaptumIG
from captum.attr import LayerAttribution, LayerGradCam
from explain_tiny_models import ConvGapLinear, LinearModel
from pytorch_grad_cam import GradCAM as PeerGradCAM
from pytorch_grad_cam import GradCAMPlusPlus as PeerGradCAMPlusPlus
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from auditkit.errors import InvalidInputError
from auditkit.explain.api import attribute
from auditkit.explain.gradcam import GradCAM, GradCAMPlusPlus
from auditkit.explain.guard import model_state_fingerprint
from auditkit.explain.integrated_gradients import IntegratedGradients
from auditkit.explain.postprocess import apply_steps
from auditkit.explain.smoothgrad import SmoothGrad

X3 = torch.tensor([[[[1.0, 2.0, 0.5], [0.0, 3.0, 1.0], [2.0, 1.0, 0.5]]]])


# --- Grad-CAM: hand computations ------------------------------------------------------------


@pytest.mark.parametrize("implementation", ["fast", "captum"])
def test_gradcam_equals_hand_computation_on_conv_gap_linear(conv_gap_linear, implementation):
    # A_k = a_k x; y_c = sum_k W_ck mean(A_k) + b_c, so dy_c/dA_k = W_ck / 9 everywhere and
    # cam_c = x * sum_k W_ck a_k / 9: class 0 -> (0.5*1 + 1.5*-2)/9 = -2.5/9, class 1 -> -1.5/9.
    explainer = GradCAM(conv_gap_linear, "conv", implementation=implementation)
    for target, factor in ((0, -2.5 / 9), (1, -1.5 / 9)):
        maps = explainer.attribute(X3, target)
        np.testing.assert_allclose(maps.numpy(), factor * X3[:, 0].numpy(), rtol=1e-6, atol=1e-7)


def test_gradcam_predicted_target_is_the_argmax(conv_gap_linear):
    # mean(x) = 11/9: y0 = -2.5*11/9 + 0.1 = -2.956, y1 = -1.5*11/9 - 0.2 = -2.033 -> class 1
    out = GradCAM(conv_gap_linear, "conv").explain(X3)
    assert out.targets.tolist() == [1]
    np.testing.assert_allclose(out.scores.numpy(), [[-2.5 * 11 / 9 + 0.1, -1.5 * 11 / 9 - 0.2]], rtol=1e-6)


def test_gradcampp_equals_hand_computation(conv_gap_linear):
    # The gradient g_k = W_ck / 9 is constant over the 9 positions, S_k = sum(A_k) = a_k * sum(x);
    # alpha_k = g^2 / (2 g^2 + S_k g^3 + 1e-6); w_k = 9 * relu(g_k) * alpha_k (Chattopadhay eq. 19).
    a = np.array([1.0, -2.0])
    w_row = np.array([-1.0, 0.25])  # class 1
    g = w_row / 9
    s = a * X3.numpy().sum()
    alpha = g**2 / (2 * g**2 + s * g**3 + 1e-6)
    weights = 9 * np.maximum(g, 0) * alpha
    expected = sum(weights[k] * a[k] * X3[0, 0].numpy() for k in range(2))
    maps = GradCAMPlusPlus(conv_gap_linear, "conv").attribute(X3, 1)
    np.testing.assert_allclose(maps[0].numpy(), expected, rtol=1e-5, atol=1e-7)


# --- Grad-CAM: reference libraries ----------------------------------------------------------


@pytest.mark.parametrize(
    ("ours", "peer"), [(GradCAM, PeerGradCAM), (GradCAMPlusPlus, PeerGradCAMPlusPlus)]
)
def test_cams_equal_pytorch_grad_cam_on_resnet18(resnet18, ours, peer):
    torch.manual_seed(1)
    x = torch.randn(4, 3, 64, 64)
    targets = torch.tensor([0, 1, 2, 1])  # multi-class: a named class per image
    maps = ours(resnet18, "layer4").attribute(x, targets)
    # pytorch-grad-cam applies ReLU, min-max, resizes (cv2 bilinear) and min-maxes again; the same
    # named steps in our order give the same map because min-max commutes with bilinear resizing.
    mine, names = apply_steps(maps, ["relu", "upsample", "minmax"], size=(64, 64))
    assert names == ["relu", "upsample(64x64)", "minmax"]
    peer_model = copy.deepcopy(resnet18)  # the peer calls model.eval() on what it is given
    with peer(peer_model, [peer_model.layer4]) as cam:
        expected = cam(x, [ClassifierOutputTarget(int(t)) for t in targets])
    np.testing.assert_allclose(mine.numpy(), expected, atol=2e-5)


def test_fast_gradcam_equals_captum_layergradcam(resnet18):
    torch.manual_seed(2)
    x = torch.randn(3, 3, 64, 64)
    fast = GradCAM(resnet18, "layer4").explain(x, "predicted")
    reference = LayerGradCam(resnet18, resnet18.layer4).attribute(x, target=fast.targets)
    np.testing.assert_allclose(fast.maps.numpy(), reference[:, 0].detach().numpy(), rtol=1e-5, atol=1e-6)
    up, _ = apply_steps(fast.maps, ["upsample"], size=(64, 64))
    ref_up = LayerAttribution.interpolate(reference, (64, 64), "bilinear")[:, 0]
    np.testing.assert_allclose(up.numpy(), ref_up.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_fast_gradcam_on_densenet_is_not_changed_by_the_inplace_relu():
    import torchvision

    torch.manual_seed(3)
    model = torchvision.models.densenet121(weights=None, num_classes=2).eval()
    x = torch.randn(2, 3, 64, 64)
    maps = GradCAM(model, "features").attribute(x, 1)
    # DenseNet.forward is relu(features(x), inplace) -> avgpool -> classifier: recomputed here with
    # an out-of-place ReLU on a leaf copy of the activations, the hand decomposition.
    with torch.no_grad():
        acts = model.features(x)
    acts = acts.clone().requires_grad_(True)
    logits = model.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(torch.relu(acts), 1), 1))
    (grads,) = torch.autograd.grad(logits[:, 1].sum(), acts)
    expected = (grads.mean(dim=(2, 3))[:, :, None, None] * acts).sum(dim=1)
    np.testing.assert_allclose(maps.numpy(), expected.detach().numpy(), rtol=1e-4, atol=1e-6)
    assert (expected < 0).any()  # the raw activations were kept: a ReLU'd copy would differ


def test_one_logit_binary_model_explains_negative_class_as_negated_map():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 1)).eval()
    x = torch.randn(2, 1, 8, 8)
    explainer = GradCAM(model, "0")
    np.testing.assert_allclose(explainer.attribute(x, 0).numpy(), -explainer.attribute(x, 1).numpy(), atol=1e-7)
    captum_path = GradCAM(model, "0", implementation="captum").attribute(x, 0)
    np.testing.assert_allclose(captum_path.numpy(), explainer.attribute(x, 0).numpy(), rtol=1e-5, atol=1e-7)


# --- Integrated Gradients and SmoothGrad ----------------------------------------------------


def test_ig_on_a_linear_model_is_input_minus_baseline_times_weight():
    torch.manual_seed(5)
    weight, bias = torch.randn(3, 2 * 4 * 4), torch.randn(3)
    model = LinearModel(weight, bias).eval()
    x = torch.rand(2, 2, 4, 4)
    mean, std = (0.5, 0.25), (0.2, 0.4)
    out = IntegratedGradients(model, n_steps=7, baseline="black", mean=mean, std=std).explain(x, 2)
    black = torch.tensor([(0 - 0.5) / 0.2, (0 - 0.25) / 0.4]).view(1, 2, 1, 1)
    expected = (x - black) * weight[2].view(1, 2, 4, 4)
    np.testing.assert_allclose(out.attributions.numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.delta.numpy(), 0, atol=1e-4)
    assert out.completeness_passed.all()


def test_ig_on_a_quadratic_model_matches_the_closed_form():
    # F(x) = sum_i w_i x_i^2 with a zero baseline: IG_i = x_i * int_0^1 2 w_i (a x_i) da = w_i x_i^2,
    # which Gauss-Legendre quadrature integrates exactly.
    w = torch.tensor([[1.0, -2.0, 0.5, 3.0]])

    class Quadratic(nn.Module):
        def forward(self, x):
            return torch.cat([torch.zeros(x.shape[0], 1), (w * x.flatten(1) ** 2).sum(1, keepdim=True)], 1)

    x = torch.tensor([[[[0.5, -1.0], [2.0, 0.25]]]])
    out = IntegratedGradients(Quadratic(), n_steps=4, baseline="zeros").explain(x, 1)
    np.testing.assert_allclose(out.attributions.flatten().numpy(), (w * x.flatten(1) ** 2).flatten().numpy(), rtol=1e-5)


def test_ig_chunked_equals_captum_unchunked_and_is_complete(resnet18):
    torch.manual_seed(6)
    x = torch.randn(3, 3, 32, 32)
    ours = IntegratedGradients(resnet18, n_steps=16, baseline="blurred", internal_batch_size=5).explain(x, 1)
    blurred = __import__("auditkit.explain.baselines", fromlist=["x"]).make_baselines(x, "blurred")
    reference = CaptumIG(resnet18).attribute(x, baselines=blurred, target=1, n_steps=16, method="gausslegendre")
    np.testing.assert_allclose(ours.attributions.numpy(), reference.detach().numpy(), rtol=1e-4, atol=1e-6)
    assert ours.internal_batch_size == 5
    complete = IntegratedGradients(resnet18, n_steps=64, baseline="black").explain(x, 1)
    gain = complete.scores[:, 1] - resnet18(torch.zeros_like(x))[:, 1].detach()
    np.testing.assert_allclose(complete.attributions.sum(dim=(1, 2, 3)).numpy(), gain.numpy(), atol=0.005)
    assert complete.completeness_passed.all()


def test_smoothgrad_on_a_linear_model_is_the_weight_and_batch_independent():
    torch.manual_seed(7)
    weight, bias = torch.randn(2, 16), torch.zeros(2)
    model = LinearModel(weight, bias).eval()
    x = torch.rand(3, 1, 4, 4)
    attributions = SmoothGrad(model, n_samples=5, noise_level=0.2).attribute(x, 0)
    np.testing.assert_allclose(attributions.numpy(), weight[0].view(1, 1, 4, 4).expand(3, 1, 4, 4).numpy(), rtol=1e-5)


def test_smoothgrad_map_of_an_image_does_not_depend_on_its_batch(resnet18):
    torch.manual_seed(8)
    x = torch.randn(3, 3, 32, 32)
    state = torch.random.get_rng_state()
    sg = SmoothGrad(resnet18, n_samples=4, random_state=3)
    together = sg.attribute(x, 0)
    alone = sg.attribute(x[2:3], 0)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's RNG is untouched
    np.testing.assert_allclose(together[2:3].numpy(), alone.numpy(), rtol=1e-5, atol=1e-7)
    assert not np.allclose(together[0].numpy(), together[1].numpy())


# --- The caller's model is never changed ----------------------------------------------------


def _mixed_state_model() -> tuple[nn.Module, list[int]]:
    model = ConvGapLinear(a=[1.0, -2.0], w=[[0.5, 1.5], [-1.0, 0.25]], b=[0.1, -0.2])
    model.train()
    model.fc.eval()  # mixed modes: each module's own flag must come back
    model.conv.weight.requires_grad_(False)
    calls: list[int] = []
    model.conv.register_forward_hook(lambda m, i, o: calls.append(1))
    return model, calls


@pytest.mark.parametrize("method", ["gradcam", "gradcampp", "ig", "smoothgrad"])
def test_attribute_leaves_mode_flags_hooks_and_grads_as_they_were(method):
    model, calls = _mixed_state_model()
    before = model_state_fingerprint(model)
    params = {"n_steps": 4} if method == "ig" else {"n_samples": 2} if method == "smoothgrad" else {}
    result = attribute(model, X3.repeat(2, 1, 1, 1), method=method, target_layer="conv", **params)
    assert model_state_fingerprint(model) == before
    assert result.maps.shape == (2, 3, 3) and result.maps.dtype == np.float32
    assert calls  # the caller's own hook still fires and was not removed


@pytest.mark.parametrize("method", ["gradcam", "gradcampp", "ig", "smoothgrad"])
def test_model_is_restored_when_the_attribution_raises_midway(method):
    model, _ = _mixed_state_model()
    before = model_state_fingerprint(model)
    # target="true" without labels fails after the forward pass, with our hook registered.
    with pytest.raises(InvalidInputError, match="true labels"):
        attribute(model, X3, method=method, target="true", target_layer="conv")
    assert model_state_fingerprint(model) == before

    class Exploding(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = copy.deepcopy(model)

        def forward(self, x):
            self.inner(x)
            raise RuntimeError("boom")

    exploding = Exploding()
    before = model_state_fingerprint(exploding)
    with pytest.raises(RuntimeError, match="boom"):
        attribute(exploding, X3, method=method, target_layer="inner.conv")
    assert model_state_fingerprint(exploding) == before


def test_bad_arguments_are_input_errors(conv_gap_linear):
    with pytest.raises(InvalidInputError, match="method must be one of"):
        attribute(conv_gap_linear, X3, method="lime")
    with pytest.raises(InvalidInputError, match="unknown parameter"):
        attribute(conv_gap_linear, X3, method="ig", steps=3)
    with pytest.raises(InvalidInputError, match="not a submodule"):
        attribute(conv_gap_linear, X3, method="gradcam", target_layer="layer9")
    with pytest.raises(InvalidInputError, match=r"\(N, C, H, W\)"):
        attribute(conv_gap_linear, X3[0], method="gradcam", target_layer="conv")
    with pytest.raises(InvalidInputError, match=r"class indices must lie in \[0, 1\]"):
        attribute(conv_gap_linear, X3, method="gradcam", target=5, target_layer="conv")


def test_chunk_size_follows_the_memory_budget_by_hand():
    from auditkit.explain.batching import (
        BACKWARD_FACTOR,
        activation_bytes_per_sample,
        auto_chunk_size,
    )

    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU()).eval()
    x = torch.rand(3, 1, 4, 4)
    # leaf outputs of one sample: conv 2x4x4 float32 = 128 bytes, ReLU 128 bytes
    assert activation_bytes_per_sample(model, x) == 256
    per_sample = 256 * BACKWARD_FACTOR
    assert auto_chunk_size(model, x, budget_bytes=int(10 * per_sample)) == 10
    assert auto_chunk_size(model, x, budget_bytes=int(10 * per_sample), limit=4) == 4
    assert auto_chunk_size(model, x, budget_bytes=1) == 1


    assert auto_chunk_size(model, x, budget_bytes=int(10 * per_sample), limit=4) == 4
    assert auto_chunk_size(model, x, budget_bytes=1) == 1


def test_targets_given_as_a_tensor_that_numpy_cannot_take_are_used_as_they_are():
    from auditkit.explain.targets import resolve_targets

    scores = torch.tensor([[0.1, 0.9], [0.8, 0.2]])
    # A tensor that requires grad (or lives on a GPU) cannot pass through NumPy.
    wanted = torch.tensor([1.0, 0.0], requires_grad=True)
    assert resolve_targets(scores, wanted).tolist() == [1, 0]
    assert resolve_targets(scores, "true", y_true=wanted).tolist() == [1, 0]
