"""The architecture zoo: every family builds offline, adapts channels/classes, and has a spatial Grad-CAM layer."""

from __future__ import annotations

import pickle
import socket

import pytest
import torch
import torchvision
from safetensors.torch import save_file
from torch import nn

from auditkit.errors import AuditkitError, CheckpointError, InvalidInputError
from auditkit.nets import ARCHITECTURES, build_model, resolve_target_layer
from auditkit.nets.adapt import first_conv_path

# small but legal inputs: inception_v3's minimum is 75; 107 leaves a 2x2 Mixed_7c map
_PROBE_SIZE = {"smallcnn": 32, "inception_v3": 107}


@pytest.fixture
def no_network(monkeypatch):
    """Make every download path raise, so a build that tries the network fails loudly."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize(("in_channels", "num_classes"), [(1, 2), (3, 3)])
def test_every_architecture_builds_offline_and_runs(no_network, arch, in_channels, num_classes):
    size = _PROBE_SIZE.get(arch, 64)
    model = build_model(arch, in_channels=in_channels, num_classes=num_classes, input_size=(size, size))
    model.eval()
    conv = model.get_submodule(first_conv_path(model))
    assert conv.in_channels == in_channels

    name, layer = resolve_target_layer(model)
    assert name == ARCHITECTURES[arch].target_layer
    seen: list[torch.Tensor] = []
    snapshot: list[torch.Tensor] = []
    order: list[str] = []

    def hook(_m, _i, out):
        seen.append(out)
        snapshot.append(out.clone())
        order.append("target")

    handles = [layer.register_forward_hook(hook)]
    handles += [
        m.register_forward_hook(lambda *_: order.append("conv"))
        for m in model.modules()
        if isinstance(m, nn.Conv2d)
    ]
    try:
        with torch.no_grad():
            logits = model(torch.randn(2, in_channels, size, size))
    finally:
        for handle in handles:
            handle.remove()
    # the last convolutional block: its output comes after every convolution the forward runs
    assert order[-1] != "conv" and "conv" not in order[order.index("target") :]
    assert logits.shape == (2, num_classes)
    assert torch.isfinite(logits).all()
    activation = seen[0]
    assert activation.ndim == 4 and activation.shape[0] == 2
    assert activation.shape[2] >= 1 and activation.shape[3] >= 1
    # the rest of the forward never overwrites the hooked activation in place
    # (DenseNet's F.relu(inplace=True) after `features` would; see zoo docstring)
    assert torch.equal(activation, snapshot[0])
    head = model.get_submodule(ARCHITECTURES[arch].head)
    assert isinstance(head, nn.Linear) and head.out_features == num_classes


def test_densenet_features_output_is_overwritten_in_place_which_is_why_denseblock4_is_the_target():
    """The planted pitfall: a hook on `features` sees its tensor changed by DenseNet's in-place ReLU."""
    model = torchvision.models.densenet121(weights=None, num_classes=2).eval()
    with torch.no_grad():
        model.features.norm5.bias.fill_(-1.0)  # make negative activations certain
    seen, snapshot = [], []

    def hook(_m, _i, out):
        seen.append(out)
        snapshot.append(out.clone())

    handle = model.features.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    handle.remove()
    assert snapshot[0].min() < 0
    assert seen[0].min() == 0  # overwritten by the functional in-place ReLU


def test_vgg_target_is_the_last_relu_before_the_final_max_pool():
    model = build_model("vgg11_bn", in_channels=1, num_classes=2)
    _, layer = resolve_target_layer(model)
    children = list(model.features.children())
    assert isinstance(children[-1], nn.MaxPool2d)
    assert layer is children[-2] and isinstance(layer, nn.ReLU)


def _reference_resnet18(tmp_path, suffix):
    """A torchvision resnet18 with random 'ImageNet' weights saved to a local file."""
    torch.manual_seed(7)
    reference = torchvision.models.resnet18(weights=None).eval()
    path = tmp_path / f"resnet18{suffix}"
    state = {k: v.contiguous() for k, v in reference.state_dict().items()}
    if suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, str(path))
    return reference, path


def _trunk(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The resnet's pooled features (the head's input)."""
    captured = []
    handle = model.fc.register_forward_pre_hook(lambda _m, inputs: captured.append(inputs[0]))
    with torch.no_grad():
        model(x)
    handle.remove()
    return captured[0]


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_local_imagenet_weights_fold_rgb_into_one_channel(tmp_path, suffix):
    reference, path = _reference_resnet18(tmp_path, suffix)
    model = build_model("resnet18", in_channels=1, num_classes=2, weights_path=path).eval()
    assert torch.equal(model.layer3[0].conv1.weight, reference.layer3[0].conv1.weight)
    assert model.fc.out_features == 2
    gray = torch.rand(2, 1, 48, 48)
    # oracle: torchvision's model on the grayscale image replicated into RGB
    expected = _trunk(reference, gray.repeat(1, 3, 1, 1))
    torch.testing.assert_close(_trunk(model, gray), expected, rtol=1e-4, atol=1e-5)


def test_local_imagenet_weights_keep_rgb_models_identical(tmp_path):
    reference, path = _reference_resnet18(tmp_path, ".safetensors")
    model = build_model("resnet18", in_channels=3, num_classes=3, weights_path=path).eval()
    x = torch.rand(2, 3, 40, 40)
    torch.testing.assert_close(_trunk(model, x), _trunk(reference, x))
    assert model.fc.out_features == 3


def test_inception_auxiliary_head_follows_input_size_with_local_weights(tmp_path):
    torch.manual_seed(0)
    reference = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    path = tmp_path / "inception.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))

    small = build_model("inception_v3", in_channels=1, num_classes=3, weights_path=path, input_size=(96, 96))
    assert small.AuxLogits is None
    assert torch.equal(small.Mixed_7c.branch1x1.conv.weight, reference.Mixed_7c.branch1x1.conv.weight)

    full = build_model("inception_v3", in_channels=3, num_classes=3, weights_path=path, input_size=(299, 299))
    assert full.AuxLogits is not None and full.AuxLogits.fc.out_features == 3
    assert torch.equal(full.AuxLogits.conv0.conv.weight, reference.AuxLogits.conv0.conv.weight)


def test_weights_of_another_architecture_are_refused_with_the_file_named(tmp_path):
    path = tmp_path / "resnet34.safetensors"
    state = torchvision.models.resnet34(weights=None).state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    with pytest.raises(CheckpointError, match=r"resnet34\.safetensors.*resnet18"):
        build_model("resnet18", in_channels=3, num_classes=2, weights_path=path)


class _Boom:
    """Unpickling this runs code: the test checks it never happens."""

    def __init__(self, sentinel):
        self.sentinel = str(sentinel)

    def __reduce__(self):
        return (open, (self.sentinel, "w"))


def test_pickled_weights_with_code_are_refused_without_running_it(tmp_path):
    sentinel = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": _Boom(sentinel)}, str(path))
    with pytest.raises(CheckpointError, match=r"evil\.pth"):
        build_model("resnet18", in_channels=3, num_classes=2, weights_path=path)
    assert not sentinel.exists()
    legacy = tmp_path / "evil.pkl"
    legacy.write_bytes(pickle.dumps({"conv1.weight": _Boom(sentinel)}, protocol=2))
    with pytest.raises(CheckpointError):
        build_model("resnet18", in_channels=3, num_classes=2, weights_path=legacy)
    assert not sentinel.exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"arch": "alexnet"}, "unknown architecture 'alexnet'"),
        ({"arch": "smallcnn", "weights_path": "w.safetensors"}, "smallcnn has no ImageNet weights"),
        ({"arch": "inception_v3", "input_size": (64, 64)}, "at least 75"),
        ({"arch": "resnet18", "num_classes": 1}, "num_classes must be 2 or more"),
    ],
)
def test_bad_build_requests_are_input_errors(kwargs, message):
    args = {"in_channels": 1, "num_classes": 2, **kwargs}
    with pytest.raises(AuditkitError, match=message) as info:
        build_model(args.pop("arch"), **args)
    assert isinstance(info.value, InvalidInputError)
