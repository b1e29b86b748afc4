"""The model side of a training run: which network, its input geometry, Grad-CAM layer and head."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from auditkit.errors import InvalidInputError
from auditkit.nets import custom
from auditkit.nets.adapt import last_linear_path
from auditkit.nets.layers import resolve_target_layer
from auditkit.nets.weights import read_safetensors
from auditkit.nets.zoo import ARCHITECTURES, build_model, get_arch


@dataclass(frozen=True)
class Network:
    """A freshly built network and what model.json records about it."""

    model: nn.Module
    kind: str  # "zoo", "factory" or "torchscript"
    arch: str  # the name model.json records ("torchscript" for an archive)
    in_channels: int
    input_size: tuple[int, int]
    target_layer: str
    head: str | None
    torchscript_source: str | None
    imagenet: bool


def architecture_kind(arch: str) -> str:
    """Return ``"zoo"``, ``"factory"`` or ``"torchscript"`` for ``--arch``; InvalidInputError otherwise."""
    if arch in ARCHITECTURES:
        return "zoo"
    if custom.is_factory_spec(arch):
        return "factory"
    if custom.is_torchscript_path(arch):
        return "torchscript"
    get_arch(arch)  # raises the zoo's error: the known names and the two custom forms
    raise InvalidInputError(f"unknown architecture {arch!r}")  # pragma: no cover


def build_network(
    arch: str,
    *,
    num_classes: int,
    in_channels: int | None,
    input_size: tuple[int, int] | None,
    weights_path: str | os.PathLike[str] | None,
    target_layer: str | None,
) -> Network:
    """Return the untrained (or ImageNet-/user-initialised) network for ``arch`` with its geometry.

    Zoo architectures default to their registered channels and input size; a
    custom model takes ``in_channels`` from its first convolution and needs
    ``input_size``; its output shape is checked against ``num_classes``.
    """
    kind = architecture_kind(arch)
    if kind == "zoo":
        spec = ARCHITECTURES[arch]
        channels = in_channels or spec.default_in_channels
        size = input_size or spec.default_input_size
        model = build_model(
            arch, in_channels=channels, num_classes=num_classes, weights_path=weights_path, input_size=size
        )
        layer, _ = resolve_target_layer(model, target_layer, input_size=tuple(size))
        return Network(model, kind, arch, channels, tuple(size), layer, spec.head, None, weights_path is not None)
    if kind == "torchscript":
        model = custom.load_torchscript(arch)
    else:
        model = custom.build_factory_model(arch, in_channels=in_channels or 1, num_classes=num_classes)
    channels = in_channels or custom.infer_in_channels(model) or 1
    if input_size is None:
        raise InvalidInputError(f"--arch {arch!r} is your own model: give its input size with --input-size")
    if weights_path is not None:
        state = read_safetensors(weights_path, what="initial weights file")
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise InvalidInputError(
                f"initial weights {os.fspath(weights_path)!r} do not fit {arch!r} "
                f"({str(exc).strip().splitlines()[0]}); give weights saved from this model"
            ) from None
    custom.check_output_shape(
        model, in_channels=channels, num_classes=num_classes, input_size=tuple(input_size),
        device=torch.device("cpu"), where=f"--arch {arch!r}",
    )  # fmt: skip
    layer, _ = resolve_target_layer(model, target_layer, input_size=tuple(input_size))
    head = None if kind == "torchscript" else last_linear_path(model)
    return Network(
        model=model,
        kind=kind,
        arch=custom.TORCHSCRIPT if kind == "torchscript" else arch,
        in_channels=channels,
        input_size=tuple(input_size),
        target_layer=layer,
        head=head,
        torchscript_source=str(Path(arch)) if kind == "torchscript" else None,
        imagenet=False,
    )
