"""Adapting a network's first convolution to N input channels and its head to K classes.

Medical images are mostly single-channel while ImageNet networks expect RGB.
When ImageNet weights are present, the RGB filters of the first convolution
are folded into the new channel count so a grayscale image gives the first
layer the response its RGB replication would (the activation statistics the
pretrained BatchNorm layers expect): for one channel the three filters are
averaged and multiplied by three (that is, summed), for N channels the RGB
filters are repeated cyclically and scaled by 3/N. This is the rule of timm's
``adapt_input_conv`` (Wightman, pytorch-image-models); the fold is exact for a
grayscale image replicated into RGB when the three channels share one
normalisation.
"""

from __future__ import annotations

import torch
from torch import nn


def set_submodule(model: nn.Module, path: str, module: nn.Module) -> None:
    """Replace the submodule at dotted ``path`` (e.g. ``"classifier.6"``) with ``module``."""
    parent_path, _, leaf = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    if isinstance(parent, nn.Sequential) and leaf.isdigit():
        parent[int(leaf)] = module
    else:
        setattr(parent, leaf, module)


def first_conv_path(model: nn.Module) -> str:
    """Return the dotted name of the first ``nn.Conv2d`` in module registration order."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name
    raise ValueError(f"{type(model).__name__} has no nn.Conv2d layer")


def fold_rgb_filters(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Return first-layer filters ``(O, in_channels, kH, kW)`` folded from RGB filters ``(O, 3, kH, kW)``.

    One channel: the sum of the RGB filters (3 × their mean), so ``conv(g)`` on a
    grayscale ``g`` equals the RGB convolution of ``g`` replicated three times.
    N channels: the RGB filters repeated cyclically, scaled by 3/N so the
    expected response magnitude is unchanged (timm's ``adapt_input_conv``).
    """
    if weight.ndim != 4 or weight.shape[1] != 3:
        raise ValueError(f"expected RGB filters of shape (O, 3, kH, kW), got {tuple(weight.shape)}")
    if in_channels == 3:
        return weight.clone()
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = -(-in_channels // 3)
    return weight.repeat(1, repeats, 1, 1)[:, :in_channels] * (3.0 / in_channels)


def adapt_input_channels(model: nn.Module, in_channels: int, *, pretrained: bool) -> nn.Module:
    """Return ``model`` with its first convolution taking ``in_channels`` channels (changed in place).

    With ``pretrained`` the RGB filters are folded (:func:`fold_rgb_filters`);
    otherwise the new filters get He-normal initialisation (fan-out, ReLU gain),
    as torchvision's ResNet, VGG and EfficientNet builders initialise theirs.
    """
    path = first_conv_path(model)
    old = model.get_submodule(path)
    if not isinstance(old, nn.Conv2d):  # pragma: no cover - first_conv_path returns a Conv2d
        raise TypeError(f"{path!r} is not an nn.Conv2d")
    if old.in_channels == in_channels:
        return model
    new = nn.Conv2d(
        in_channels,
        old.out_channels,
        kernel_size=old.kernel_size,  # type: ignore[arg-type]
        stride=old.stride,  # type: ignore[arg-type]
        padding=old.padding,  # type: ignore[arg-type]
        dilation=old.dilation,  # type: ignore[arg-type]
        groups=old.groups,
        bias=old.bias is not None,
        padding_mode=old.padding_mode,
    )
    with torch.no_grad():
        if pretrained:
            new.weight.copy_(fold_rgb_filters(old.weight, in_channels))
            if old.bias is not None and new.bias is not None:
                new.bias.copy_(old.bias)
        else:
            nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
            if new.bias is not None:
                nn.init.zeros_(new.bias)
    set_submodule(model, path, new)
    return model


def replace_linear_head(model: nn.Module, path: str, num_classes: int) -> nn.Module:
    """Return ``model`` with the ``nn.Linear`` at ``path`` replaced by a fresh one with ``num_classes`` outputs.

    The new head has the old one's input width and torchvision's classifier
    initialisation (normal, std 0.01; zero bias).
    """
    old = model.get_submodule(path)
    if not isinstance(old, nn.Linear):
        raise ValueError(f"{path!r} is a {type(old).__name__}, not an nn.Linear head")
    if old.out_features == num_classes:
        return model
    new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    nn.init.normal_(new.weight, 0.0, 0.01)
    if new.bias is not None:
        nn.init.zeros_(new.bias)
    set_submodule(model, path, new)
    return model


def last_linear_path(model: nn.Module) -> str | None:
    """Return the dotted name of the last ``nn.Linear`` in registration order, or None."""
    found = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) or getattr(module, "original_name", None) == "Linear":
            found = name
    return found
