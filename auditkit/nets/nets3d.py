"""3-D CNNs for volumes: torchvision's video ResNets adapted to one channel, and a small 3-D CNN for CPUs.

- ``r3d_18``, ``mc3_18``, ``r2plus1d_18`` (Tran et al., CVPR 2018): torchvision's
  implementations built with ``weights=None`` (nothing downloads); the stem's
  first ``Conv3d`` is rebuilt for ``in_channels`` (same kernel, stride and
  padding) and the head ``fc`` for ``num_classes``. Their stems keep the depth
  at stride 1 and the later stages halve it three times, so a 32-slice volume
  reaches ``layer4`` with 4 slices: Grad-CAM maps are upsampled trilinearly
  back to the full depth (:mod:`auditkit.explain.postprocess`).
- ``smallcnn3d``: a strided 3x3x3 stem and two conv-BN-ReLU blocks with global
  average pooling (the 2-D :mod:`auditkit.nets.smallcnn` recipe in 3-D), about
  30 k parameters: trains on 32^3 phantoms in seconds on a CPU. Its Grad-CAM
  target is its last block, ``features`` (4^3 for a 32^3 input).

Every model maps ``(N, C, D, H, W)`` to ``(N, num_classes)`` logits. The
Grad-CAM target is found by :func:`auditkit.nets.layers.resolve_target_layer`
from the data flow (``layer4`` for the ResNets).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torchvision
from torch import nn

from auditkit.errors import InvalidInputError


class SmallCNN3D(nn.Module):
    """A strided stem + two conv-BN-ReLU blocks (max pool opening the second) + global average pooling."""

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        *,
        widths: tuple[int, int, int] = (8, 16, 32),
    ) -> None:
        super().__init__()
        a, b, c = widths

        def block(
            cin: int, cout: int, *, stride: int = 1, pool: bool = False, inplace: bool = True
        ) -> nn.Sequential:
            layers: list[nn.Module] = [nn.MaxPool3d(2)] if pool else []
            layers += [
                nn.Conv3d(cin, cout, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm3d(cout),
                nn.ReLU(inplace=inplace),
            ]
            return nn.Sequential(*layers)

        # the last ReLU is not in place: it is the output Grad-CAM hooks
        self.features = nn.Sequential(
            block(in_channels, a, stride=2),
            block(a, b, pool=True),
            block(b, c, pool=True, inplace=False),
        )
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(c, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):  # (N, C, D, H, W) -> (N, K)
        return self.fc(self.pool(self.features(x)).flatten(1))


@dataclass(frozen=True)
class Arch3D:
    """What auditkit knows about one 3-D architecture."""

    name: str
    builder: Callable[..., nn.Module]
    default_input_size: tuple[int, int, int]
    min_input_size: int
    head: str


def _video_resnet(name: str) -> Callable[..., nn.Module]:
    def build(in_channels: int, num_classes: int) -> nn.Module:
        model = getattr(torchvision.models.video, name)(weights=None, num_classes=num_classes)
        stem = model.stem[0]
        model.stem[0] = nn.Conv3d(
            in_channels,
            stem.out_channels,
            kernel_size=stem.kernel_size,
            stride=stem.stride,
            padding=stem.padding,
            bias=stem.bias is not None,
        )
        nn.init.kaiming_normal_(model.stem[0].weight, mode="fan_out", nonlinearity="relu")
        return model

    return build


ARCHITECTURES_3D: dict[str, Arch3D] = {
    "smallcnn3d": Arch3D("smallcnn3d", SmallCNN3D, (32, 32, 32), 8, "fc"),
    "r3d_18": Arch3D("r3d_18", _video_resnet("r3d_18"), (64, 64, 64), 16, "fc"),
    "mc3_18": Arch3D("mc3_18", _video_resnet("mc3_18"), (64, 64, 64), 16, "fc"),
    "r2plus1d_18": Arch3D("r2plus1d_18", _video_resnet("r2plus1d_18"), (64, 64, 64), 16, "fc"),
}


def build_model_3d(arch: str, *, in_channels: int = 1, num_classes: int = 2) -> nn.Module:
    """Return the named 3-D architecture with ``in_channels`` inputs and ``num_classes`` logits, in train mode."""
    spec = ARCHITECTURES_3D.get(arch)
    if spec is None:
        raise InvalidInputError(
            f"unknown 3-D architecture {arch!r}: use one of {sorted(ARCHITECTURES_3D)}"
        )
    if in_channels < 1 or num_classes < 1:
        raise InvalidInputError(
            f"in_channels and num_classes must be 1 or more, got {in_channels} and {num_classes}"
        )
    return spec.builder(in_channels, num_classes)
