"""CUDA paths against float32 CPU oracles (captum, scikit-learn); skipped on machines without a GPU.

CI has no GPU, so these run only where one is present (`pytest tests/gpu`).
Mixed precision (bf16/fp16 autocast) changes the numbers slightly: each test
states the tolerance it accepts and why.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients as CaptumIG
from captum.attr import LayerGradCam
from sklearn.metrics import roc_auc_score

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def resnet18_pair():
    """The same randomly initialised ResNet-18 (non-trivial BatchNorm statistics) on CPU and on CUDA."""
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=3)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    model.eval()
    return model, copy.deepcopy(model).cuda()


def _relative_error(ours: np.ndarray, reference: np.ndarray) -> float:
    return float(np.abs(ours - reference).max() / np.abs(reference).max())


def test_gradcam_on_cuda_under_autocast_matches_captum_fp32_on_cpu(resnet18_pair):
    from auditkit.explain.gradcam import GradCAM

    cpu_model, gpu_model = resnet18_pair
    torch.manual_seed(1)
    x = torch.randn(8, 3, 96, 96)
    out = GradCAM(gpu_model, "layer4", autocast=True).explain(x.cuda(), "predicted")
    targets = out.targets.cpu()
    reference = (
        LayerGradCam(cpu_model, cpu_model.layer4)
        .attribute(x, target=targets)[:, 0]
        .detach()
        .numpy()
    )
    ours = out.maps.cpu().numpy()
    # bf16 keeps about 3 significant digits in the forward pass; weights and sums are float32.
    assert _relative_error(ours, reference) < 0.05
    for a, b in zip(ours, reference, strict=True):
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.99
    fp32 = GradCAM(gpu_model, "layer4", autocast=False).explain(x.cuda(), targets.cuda())
    # TF32 convolutions on Hopper round mantissas to 10 bits; float32 otherwise.
    assert _relative_error(fp32.maps.cpu().numpy(), reference) < 0.01


def test_integrated_gradients_on_cuda_is_complete_and_matches_captum_on_cpu(resnet18_pair):
    from auditkit.explain.baselines import make_baselines
    from auditkit.explain.integrated_gradients import IntegratedGradients

    cpu_model, gpu_model = resnet18_pair
    torch.manual_seed(2)
    x = torch.randn(3, 3, 64, 64)
    baseline = make_baselines(x, "blurred")
    reference = (
        CaptumIG(cpu_model)
        .attribute(x, baselines=baseline, target=1, n_steps=32, method="gausslegendre")
        .detach()
        .numpy()
    )
    for use_autocast in (False, True):
        out = IntegratedGradients(
            gpu_model, n_steps=32, baseline="blurred", autocast=use_autocast
        ).explain(x.cuda(), 1)
        assert out.completeness_passed.all(), (use_autocast, out.relative_delta)
        assert out.precision in ({"autocast", "fp32_fallback"} if use_autocast else {"fp32"})
        ours = out.attributions.cpu().numpy()
        for a, b in zip(ours, reference, strict=True):
            assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > (0.95 if use_autocast else 0.999)


def test_attribution_on_cuda_restores_the_model(resnet18_pair):
    from auditkit.explain.api import attribute
    from auditkit.explain.guard import model_state_fingerprint

    _, gpu_model = resnet18_pair
    model = copy.deepcopy(gpu_model).train()
    model.fc.eval()
    model.conv1.weight.requires_grad_(False)
    before = model_state_fingerprint(model)
    x = torch.randn(2, 3, 64, 64, device="cuda")
    for method, params in (
        ("gradcam", {}),
        ("ig", {"n_steps": 8}),
        ("smoothgrad", {"n_samples": 4}),
    ):
        attribute(model, x, method=method, target_layer="layer4", **params)
        assert model_state_fingerprint(model) == before, method
    assert all(p.grad is None for p in model.parameters())


def test_training_on_cuda_learns_and_its_predictions_agree_with_cpu(quick_phantom, tmp_path):
    from auditkit.predict import predict
    from auditkit.progress import set_quiet
    from auditkit.train import train

    set_quiet(True)
    try:
        result = train(
            quick_phantom.manifest_path, arch="smallcnn", out=tmp_path / "m", epochs=8, batch_size=32,
            lr=3e-3, patience=4, seed=0, device="cuda", input_size=(48, 48), augment=False,
            num_workers=2,
        )  # fmt: skip
        on_gpu = predict(
            result.model_dir, quick_phantom.manifest_path, device="cuda", num_workers=2
        )
        on_cpu = predict(result.model_dir, quick_phantom.manifest_path, device="cpu", num_workers=0)
    finally:
        set_quiet(False)
    meta = json.loads((result.model_dir / "model.json").read_text())
    assert "cuda" in str(meta["training"]["device"]).lower()
    merged = on_gpu.frame.merge(on_cpu.frame, on="id", suffixes=("_gpu", "_cpu"))
    assert len(merged) == len(on_gpu) == len(on_cpu)
    score = "score"  # binary phantom: one score column, P(positive)
    gap = np.abs(merged[f"{score}_gpu"] - merged[f"{score}_cpu"])
    assert gap.max() < 0.02  # bf16 inference on the GPU, float32 on the CPU
    test = merged[merged["split_gpu"] == "test"]
    auroc_gpu = roc_auc_score(test["y_true_gpu"], test[f"{score}_gpu"])
    auroc_cpu = roc_auc_score(test["y_true_cpu"], test[f"{score}_cpu"])
    assert auroc_gpu > 0.8
    assert abs(auroc_gpu - auroc_cpu) < 0.01


def test_the_cuda_memory_probe_runs_once_per_model_and_shape(resnet18_pair):
    from auditkit.explain.batching import auto_chunk_size

    _, gpu_model = resnet18_pair
    calls: list[int] = []
    handle = gpu_model.conv1.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    try:
        x = torch.randn(1, 3, 40, 40, device="cuda")
        first = auto_chunk_size(gpu_model, x, limit=10_000)
        assert calls == [1]
        assert auto_chunk_size(gpu_model, x, limit=10_000) == first
        assert calls == [1]
        auto_chunk_size(gpu_model, torch.randn(1, 3, 48, 48, device="cuda"), limit=10_000)
        assert calls == [1, 1]
    finally:
        handle.remove()
