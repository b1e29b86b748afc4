"""Grad-CAM target layers found from the data flow on networks from the field (random weights only).

Oracles: MONAI's own GradCAM documentation names ``class_layers.relu`` for its
DenseNet121 (monai.visualize.class_activation_maps.GradCAM docstring) and
``layer4`` for its ResNets; the layer whose output the pooling module actually
consumes, observed with a hook; and the channel width of the linear head.
Nothing is downloaded: MONAI nets are built with ``pretrained=False``,
TorchXRayVision's with ``weights=None`` (its ResNet insists on a weights name,
so its module layout is rebuilt around torchvision's resnet50, as its
``__init__`` does, without the download).
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from auditkit.explain.gradcam import GradCAM
from auditkit.nets.layers import find_target_layer, resolve_target_layer

monai_nets = pytest.importorskip("monai.networks.nets")
xrv = pytest.importorskip("torchxrayvision")


def _pool_input(model: nn.Module, pool: nn.Module, x: torch.Tensor) -> torch.Tensor:
    seen: list[torch.Tensor] = []
    handle = pool.register_forward_hook(lambda _m, args, _o: seen.append(args[0]))
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        handle.remove()
    return seen[0]


def _output(model: nn.Module, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    seen: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _a, out: seen.append(out.clone()))
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        handle.remove()
    return seen[0]


def test_monai_densenet121_target_is_what_its_pool_sees_not_a_conv_in_denselayer16():
    torch.manual_seed(0)
    model = monai_nets.DenseNet121(spatial_dims=2, in_channels=1, out_channels=3, pretrained=False)
    name, layer = resolve_target_layer(model, input_size=(64, 64))
    assert name == "class_layers.relu"  # MONAI's GradCAM docstring uses this layer for DenseNet121
    x = torch.randn(1, 1, 64, 64)
    target = _output(model, layer, x)
    assert target.shape[1] == model.class_layers.out.in_features == 1024
    torch.testing.assert_close(target, _pool_input(model, model.class_layers.pool, x))
    # the old class-name lookup fell back to the last Conv2d: 32 channels inside denselayer16
    last_conv = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)][-1]
    assert "denselayer16" in last_conv and model.get_submodule(last_conv).out_channels == 32


def test_monai_densenet_3d_and_resnet_3d_targets():
    torch.manual_seed(0)
    dense = monai_nets.DenseNet(  # DenseNet121's layout with small blocks: same data flow, a CPU-sized test
        spatial_dims=3,
        in_channels=1,
        out_channels=2,
        init_features=8,
        growth_rate=4,
        block_config=(2, 2),
    )
    assert resolve_target_layer(dense, input_size=(32, 32, 32))[0] == "class_layers.relu"
    resnet = monai_nets.resnet10(spatial_dims=3, n_input_channels=1, num_classes=2)
    assert resolve_target_layer(resnet, input_size=(32, 32, 32))[0] == "layer4"  # MONAI's docs


def test_torchxrayvision_densenet_target_avoids_its_in_place_relu():
    torch.manual_seed(0)
    model = xrv.models.DenseNet(weights=None)  # 18 pathologies, one channel, random init
    found = find_target_layer(model, (1, 224, 224))
    assert found is not None and found.name == "features.denseblock4"
    # XRV's features2 applies F.relu(features, inplace=True): `features` itself would be overwritten
    assert found.output_shape[1] == model.classifier.in_features


def _xrv_resnet50() -> nn.Module:
    model = xrv.models.ResNet.__new__(xrv.models.ResNet)
    nn.Module.__init__(model)
    model.weights = None
    model.apply_sigmoid = False
    model.op_threshs = None
    model.model = torchvision.models.resnet50(num_classes=18, weights=None)
    model.model.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model


def test_torchxrayvision_resnet_keeps_torchvision_under_model_so_the_target_is_model_layer4():
    torch.manual_seed(0)
    model = _xrv_resnet50()
    name, layer = resolve_target_layer(model, input_size=(64, 64))
    assert name == "model.layer4"  # a lookup of ResNet -> "layer4" names no module here
    x = torch.randn(2, 1, 64, 64)
    torch.testing.assert_close(_output(model, layer, x), _pool_input(model, model.model.avgpool, x))
    maps = GradCAM(model, layer).attribute(x, target=7)  # "Effusion"
    assert maps.shape == (2, 2, 2) and torch.isfinite(maps).all()


def test_tracing_leaves_the_model_as_it_was():
    model = monai_nets.DenseNet(
        spatial_dims=2,
        in_channels=1,
        out_channels=2,
        init_features=8,
        growth_rate=4,
        block_config=(2, 2),
    )
    model.train()
    before = [m.training for m in model.modules()]
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    assert resolve_target_layer(model, input_size=(32, 32))[0] == "class_layers.relu"
    assert [m.training for m in model.modules()] == before
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()) == hooks


def test_a_monai_model_trained_through_auditkit_records_the_right_target_layer():
    from auditkit.train.network import build_network

    network = build_network(
        "auditkit.nets.field:monai_densenet121",
        num_classes=2,
        in_channels=1,
        input_size=(64, 64),
        weights_path=None,
        target_layer=None,
    )
    assert network.target_layer == "class_layers.relu"  # what checkpoint model.json records
