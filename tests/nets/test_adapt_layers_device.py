"""Channel/head adaptation by hand, Grad-CAM target lookup, and device selection logic."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from auditkit.errors import InvalidInputError
from auditkit.nets import device as dev
from auditkit.nets.adapt import fold_rgb_filters, replace_linear_head
from auditkit.nets.layers import resolve_target_layer
from auditkit.nets.smallcnn import SmallCNN


def test_fold_to_one_channel_equals_rgb_conv_on_replicated_gray():
    torch.manual_seed(0)
    rgb = torch.randn(4, 3, 3, 3)
    gray = torch.rand(1, 1, 9, 9)
    expected = F.conv2d(gray.repeat(1, 3, 1, 1), rgb)  # oracle: the RGB filters on replicated input
    torch.testing.assert_close(F.conv2d(gray, fold_rgb_filters(rgb, 1)), expected)


def test_fold_to_four_channels_repeats_rgb_scaled_by_three_quarters():
    rgb = torch.arange(6, dtype=torch.float32).view(1, 3, 1, 2)  # R=[0,1], G=[2,3], B=[4,5]
    folded = fold_rgb_filters(rgb, 4)
    hand = torch.tensor([[[[0, 1]], [[2, 3]], [[4, 5]], [[0, 1]]]], dtype=torch.float32) * 0.75
    assert torch.equal(folded, hand)


def test_replace_linear_head_keeps_input_width_and_changes_outputs():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 1000))
    replace_linear_head(model, "1", 3)
    assert model[1].in_features == 12 and model[1].out_features == 3
    assert model(torch.zeros(2, 3, 2, 2)).shape == (2, 3)


class _Declared(nn.Module):
    auditkit_target_layer = "body.0"

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Conv2d(2, 2, 3))

    def forward(self, x):
        return self.body(x).mean((2, 3))


def test_target_layer_explicit_declared_and_fallback():
    plain = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 8, 3), nn.AdaptiveAvgPool2d(1))
    assert resolve_target_layer(plain)[0] == "2"  # fallback: the last Conv2d
    assert resolve_target_layer(plain, "0")[1] is plain[0]
    assert resolve_target_layer(_Declared())[0] == "body.0"


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_target_layer_of_a_torchscript_smallcnn_is_found_by_original_class():
    scripted = torch.jit.script(SmallCNN(1, 2))
    name, module = resolve_target_layer(scripted)
    assert name == "features.3"
    assert module.original_name == "Sequential"


def test_target_layer_errors_say_how_to_name_one():
    no_conv = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(InvalidInputError, match="--target-layer"):
        resolve_target_layer(no_conv)
    with pytest.raises(InvalidInputError, match=r"'layer9'.*--target-layer.*features\.3"):
        resolve_target_layer(SmallCNN(1, 2), "layer9")


@pytest.fixture
def no_accelerators(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dev, "_mps_available", lambda: False)


@pytest.fixture
def fake_cuda(monkeypatch):
    """Pretend one CUDA device exists (only the selection logic runs; nothing is sent to it)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)


def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch, no_accelerators):
    assert dev.select_device() == torch.device("cpu")
    assert dev.select_device("auto") == torch.device("cpu")
    monkeypatch.setattr(dev, "_mps_available", lambda: True)
    assert dev.select_device() == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert dev.select_device() == torch.device("cuda", 0)


@pytest.mark.parametrize(
    ("requested", "message"),
    [
        ("cuda", "CUDA is not available"),
        ("cuda:1", "CUDA is not available"),
        ("mps", "MPS is not available"),
        ("gpu0", "not a device name"),
    ],
)
def test_unavailable_or_malformed_device_is_an_input_error(no_accelerators, requested, message):
    with pytest.raises(dev.DeviceUnavailableError, match=message):
        dev.select_device(requested)


def test_cuda_index_beyond_the_device_count_is_refused(fake_cuda):
    assert dev.select_device("cuda") == torch.device("cuda", 0)
    with pytest.raises(dev.DeviceUnavailableError, match="has 1 CUDA device"):
        dev.select_device("cuda:3")


@pytest.mark.parametrize(("bf16", "dtype", "scaler"), [(True, torch.bfloat16, False), (False, torch.float16, True)])
def test_cuda_mixed_precision_policy(monkeypatch, fake_cuda, bf16, dtype, scaler):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    cuda = torch.device("cuda", 0)
    assert dev.autocast_dtype(cuda) is dtype
    assert dev.needs_grad_scaler(cuda) is scaler
    assert dev.memory_format(cuda) is torch.channels_last


def test_cpu_runs_in_fp32_without_autocast_or_scaling():
    cpu = torch.device("cpu")
    assert dev.autocast_dtype(cpu) is None
    assert not dev.make_grad_scaler(cpu).is_enabled()
    assert dev.memory_format(cpu) is torch.contiguous_format
    with dev.autocast(cpu):
        assert not torch.is_autocast_enabled("cpu")
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
