"""The architectures auditkit can train, by name, built from torchvision.

Every architecture is the torchvision implementation (nothing hand-copied)
built with ``weights=None``, so nothing is ever downloaded; ImageNet weights
are used only when the user points to a local file (safetensors, or the
``.pth`` torchvision distributes, read with ``weights_only=True``). The first
convolution is adapted to N input channels and the classification head to K
classes (:mod:`auditkit.nets.adapt`).

Outputs: every model returns K logits, also for a binary task (K = 2). The
score of a binary task is the softmax probability of class index 1 (the
positive class), so predict, explain (``target=1``) and the statistics agree
on what a score means; the checkpoint's model.json says so under ``output``.

Grad-CAM target layers (Selvaraju et al., ICCV 2017: the last convolutional
block, whose output is spatial and feeds the pooling head):

- ResNet (He et al., CVPR 2016): ``layer4``.
- DenseNet (Huang et al., CVPR 2017): ``features.denseblock4``. Not
  ``features``/``features.norm5``: DenseNet's forward applies
  ``F.relu(..., inplace=True)`` to that output, so a forward hook that keeps a
  reference sees post-ReLU values while the gradients it receives are taken
  before the ReLU. ``denseblock4``'s output only feeds ``norm5``, so every
  hook-based Grad-CAM (captum, pytorch-grad-cam, ours) sees one consistent
  activation/gradient pair.
- VGG-BN (Simonyan & Zisserman, ICLR 2015): the last ReLU of ``features``,
  before the final max pool (``features.27`` for vgg11_bn, ``features.42``
  for vgg16_bn), as in the Grad-CAM paper.
- Inception v3 (Szegedy et al., CVPR 2016): ``Mixed_7c``. Its auxiliary
  classifier needs inputs of at least 299×299; below that the model is built
  without it. In training mode with it, the loss adds 0.4 × the auxiliary
  loss (torchvision's reference recipe). The minimum input is 75×75.
- EfficientNet-B0 (Tan & Le, ICML 2019): ``features`` (its last stage, the
  1×1 convolution to 1280 channels).
- smallcnn (:mod:`auditkit.nets.smallcnn`): ``features.3``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import torchvision
from torch import nn

from auditkit.errors import CheckpointError, InvalidInputError
from auditkit.nets.adapt import adapt_input_channels, replace_linear_head
from auditkit.nets.smallcnn import SmallCNN
from auditkit.nets.weights import read_state_dict

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
# The TF-ported Inception v3 weights expect (x - 0.5) / 0.5, which torchvision's
# ``transform_input`` computes from ImageNet-normalised RGB; auditkit turns
# ``transform_input`` off (it assumes 3 channels) and normalises this way directly.
INCEPTION_MEAN: tuple[float, float, float] = (0.5, 0.5, 0.5)
INCEPTION_STD: tuple[float, float, float] = (0.5, 0.5, 0.5)
INCEPTION_AUX_MIN_SIZE = 299


@dataclass(frozen=True)
class ArchSpec:
    """What auditkit knows about one architecture: how to build it and how to feed and explain it."""

    name: str
    builder: Callable[..., nn.Module]
    default_input_size: tuple[int, int]
    min_input_size: int
    target_layer: str
    head: str
    default_in_channels: int
    imagenet_normalization: tuple[tuple[float, ...], tuple[float, ...]] | None
    family: str

    def normalization(self, in_channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Return ``(mean, std)`` of the ImageNet normalisation for ``in_channels`` channels.

        One channel gets the mean of the RGB means and stds (the pair that goes
        with the summed first-layer filters); other counts repeat them cyclically.
        """
        if self.imagenet_normalization is None:
            raise ValueError(f"{self.name} has no ImageNet normalisation")
        mean, std = self.imagenet_normalization
        if in_channels == 1:
            return (sum(mean) / 3.0,), (sum(std) / 3.0,)
        return (
            tuple(mean[i % 3] for i in range(in_channels)),
            tuple(std[i % 3] for i in range(in_channels)),
        )


def _imagenet() -> tuple[tuple[float, ...], tuple[float, ...]]:
    return IMAGENET_MEAN, IMAGENET_STD


def _spec(name: str, family: str, size: int, minimum: int, target: str, head: str, **kw) -> ArchSpec:
    builder = getattr(torchvision.models, name)
    return ArchSpec(
        name=name,
        builder=builder,
        default_input_size=(size, size),
        min_input_size=minimum,
        target_layer=target,
        head=head,
        default_in_channels=kw.get("in_channels", 3),
        imagenet_normalization=kw.get("normalization", _imagenet()),
        family=family,
    )


ARCHITECTURES: dict[str, ArchSpec] = {
    "smallcnn": ArchSpec(
        name="smallcnn",
        builder=SmallCNN,
        default_input_size=(64, 64),
        min_input_size=8,
        target_layer=SmallCNN.target_layer,
        head="fc",
        default_in_channels=1,
        imagenet_normalization=None,
        family="smallcnn",
    ),
    "resnet18": _spec("resnet18", "resnet", 224, 32, "layer4", "fc"),
    "resnet34": _spec("resnet34", "resnet", 224, 32, "layer4", "fc"),
    "resnet50": _spec("resnet50", "resnet", 224, 32, "layer4", "fc"),
    "densenet121": _spec("densenet121", "densenet", 224, 32, "features.denseblock4", "classifier"),
    "vgg11_bn": _spec("vgg11_bn", "vgg", 224, 32, "features.27", "classifier.6"),
    "vgg16_bn": _spec("vgg16_bn", "vgg", 224, 32, "features.42", "classifier.6"),
    "inception_v3": _spec(
        "inception_v3",
        "inception",
        299,
        75,
        "Mixed_7c",
        "fc",
        normalization=(INCEPTION_MEAN, INCEPTION_STD),
    ),
    "efficientnet_b0": _spec("efficientnet_b0", "efficientnet", 224, 32, "features", "classifier.1"),
}


def get_arch(arch: str) -> ArchSpec:
    """Return the ArchSpec named ``arch``; InvalidInputError lists the known names otherwise."""
    try:
        return ARCHITECTURES[arch]
    except KeyError:
        raise InvalidInputError(
            f"unknown architecture {arch!r}: use one of {sorted(ARCHITECTURES)} "
            "or your own model as 'package.module:factory' or a TorchScript file"
        ) from None


def _builder_kwargs(spec: ArchSpec, num_classes: int, input_size: tuple[int, int] | None) -> dict:
    kwargs: dict = {"weights": None, "num_classes": num_classes}
    if spec.family == "inception":
        size = min(input_size) if input_size is not None else min(spec.default_input_size)
        kwargs.update(
            aux_logits=size >= INCEPTION_AUX_MIN_SIZE,
            transform_input=False,
            init_weights=True,
        )
    return kwargs


def build_model(
    arch: str,
    *,
    in_channels: int,
    num_classes: int,
    weights_path: str | os.PathLike[str] | None = None,
    input_size: tuple[int, int] | None = None,
) -> nn.Module:
    """Return the named architecture with ``in_channels`` inputs and ``num_classes`` logits, in train mode.

    ``weights_path`` (optional) is a LOCAL file with the torchvision ImageNet
    weights of this architecture (1000 classes); they are loaded strictly,
    then the first convolution is folded to ``in_channels`` and the head
    replaced for ``num_classes``. Nothing is downloaded: torchvision's
    ``weights=`` argument is always ``None``. ``input_size`` only matters for
    inception_v3 (auxiliary classifier only from 299×299; minimum 75×75).
    """
    spec = get_arch(arch)
    if in_channels < 1:
        raise InvalidInputError(f"in_channels must be 1 or more, got {in_channels}")
    if num_classes < 2:
        raise InvalidInputError(
            f"num_classes must be 2 or more (a binary task uses 2 softmax outputs), got {num_classes}"
        )
    if input_size is not None and min(input_size) < spec.min_input_size:
        raise InvalidInputError(
            f"{arch} needs inputs of at least {spec.min_input_size}×{spec.min_input_size} pixels, "
            f"got {input_size[0]}×{input_size[1]}; raise --input-size"
        )
    if spec.family == "smallcnn":
        if weights_path is not None:
            raise InvalidInputError(
                "smallcnn has no ImageNet weights; drop --weights or choose a torchvision architecture"
            )
        return SmallCNN(in_channels, num_classes)
    if weights_path is None:
        model = spec.builder(**_builder_kwargs(spec, num_classes, input_size))
        return adapt_input_channels(model, in_channels, pretrained=False)
    model = spec.builder(**_builder_kwargs(spec, 1000, input_size))
    state = read_state_dict(weights_path, what=f"ImageNet weights file for {arch}")
    if spec.family == "inception" and getattr(model, "AuxLogits", None) is None:
        state = {k: v for k, v in state.items() if not k.startswith("AuxLogits.")}
    try:
        result = model.load_state_dict(state, strict=False)
        problem = ""
        if result.missing_keys or result.unexpected_keys:
            problem = (
                f"missing keys: {', '.join(result.missing_keys[:3]) or 'none'}; "
                f"unexpected keys: {', '.join(result.unexpected_keys[:3]) or 'none'}"
            )
    except RuntimeError as exc:  # a tensor of the wrong shape
        problem = str(exc).strip().splitlines()[-1].strip()
    if problem:
        raise CheckpointError(
            f"ImageNet weights file {os.fspath(weights_path)!r} does not fit torchvision's {arch} "
            f"({problem}); give the {arch} weights"
        )
    adapt_input_channels(model, in_channels, pretrained=True)
    replace_linear_head(model, spec.head, num_classes)
    if getattr(model, "AuxLogits", None) is not None:
        replace_linear_head(model, "AuxLogits.fc", num_classes)
    return model
