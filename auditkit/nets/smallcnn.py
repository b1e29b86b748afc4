"""A compact CNN that learns the 64×64 phantom in about a minute on two CPU cores.

A strided 3×3 stem (halving the resolution where convolutions are most
expensive), then three 3×3 conv–BatchNorm–ReLU blocks, a 2×2 max pool
opening the second and third; global average pooling, dropout and one linear
head. It is the VGG recipe (Simonyan & Zisserman, ICLR 2015) with batch
normalisation (Ioffe & Szegedy, ICML 2015) and the global-average-pooling
head of Lin et al. ("Network in Network", ICLR 2014), which keeps Grad-CAM's
class activation map well defined (Zhou et al., CVPR 2016; Selvaraju et al.,
ICCV 2017). About 0.1 M parameters, one conv per block: on a CPU the cost is
in the high-resolution layers (measured single-threaded, a stride-1 design
with two convs per block trained 3.5× slower per image).

The pools open blocks rather than close them so the last block (the Grad-CAM
target, ``features.3``) is the highest-resolution map the head sees: 8×8 for
a 64×64 input. Its ReLU is not in place, so a forward hook on the block sees
the tensor the head pools.
"""

from __future__ import annotations

import torch
from torch import nn

DEFAULT_WIDTHS: tuple[int, ...] = (16, 32, 64, 128)


def _conv_bn_relu(in_channels: int, out_channels: int, *, stride: int = 1, inplace: bool = True) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=inplace),
    ]


class SmallCNN(nn.Module):
    """A strided stem + three conv–BN–ReLU blocks with a global-average-pooling head.

    ``forward(x)`` maps ``(N, in_channels, H, W)`` to logits ``(N, num_classes)``;
    ``features`` is a ``Sequential`` of the stem and the blocks, ``fc`` the linear head
    whose input is the penultimate embedding ``(N, widths[-1])``.
    """

    target_layer = "features.3"

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        *,
        widths: tuple[int, ...] = DEFAULT_WIDTHS,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if in_channels < 1 or num_classes < 1:
            raise ValueError(
                f"SmallCNN needs in_channels >= 1 and num_classes >= 1, "
                f"got {in_channels} and {num_classes}"
            )
        if len(widths) < 2:
            raise ValueError(f"SmallCNN needs at least two widths (stem + one block), got {widths}")
        # stem (stride 2), then one block per further width; pools open blocks 2.. (see module docstring)
        blocks = [nn.Sequential(*_conv_bn_relu(in_channels, widths[0], stride=2))]
        for index in range(1, len(widths)):
            last = index == len(widths) - 1
            layers = [nn.MaxPool2d(2)] if index > 1 else []
            # the last ReLU is not in place: it is the output Grad-CAM hooks
            layers += _conv_bn_relu(widths[index - 1], widths[index], inplace=not last)
            blocks.append(nn.Sequential(*layers))
        previous = widths[-1]
        self.features = nn.Sequential(*blocks)
        self.auditkit_target_layer = f"features.{len(blocks) - 1}"
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(previous, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                # He et al. (ICCV 2015) initialisation, as torchvision's ResNet/VGG
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.fc.weight, 0.0, 0.01)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the logits ``(N, num_classes)`` of a batch ``(N, C, H, W)``."""
        x = self.features(x)  # (N, widths[-1], H/8, W/8)
        x = torch.flatten(self.pool(x), 1)  # (N, widths[-1])
        return self.fc(self.dropout(x))
