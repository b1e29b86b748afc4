"""A compact CNN that learns the 64×64 phantom in about a minute on two CPU cores.

Four convolutional blocks (two 3×3 conv–BatchNorm–ReLU layers each; a 2×2 max
pool opens blocks 2–4), global average pooling, dropout and one linear head:
the VGG recipe (Simonyan & Zisserman, ICLR 2015) with batch normalisation
(Ioffe & Szegedy, ICML 2015) and the global-average-pooling head of Lin et al.
("Network in Network", ICLR 2014), which keeps Grad-CAM's class activation map
well defined (Zhou et al., CVPR 2016; Selvaraju et al., ICCV 2017).

The pools open blocks rather than close them so the last block (the Grad-CAM
target, ``features.3``) is the highest-resolution map the head sees: 8×8 for a
64×64 input. Its final ReLU is not in place, so a forward hook on the block
sees the tensor the head pools.
"""

from __future__ import annotations

import torch
from torch import nn

DEFAULT_WIDTHS: tuple[int, ...] = (16, 32, 64, 128)


def _block(in_channels: int, out_channels: int, *, pool: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.MaxPool2d(2)] if pool else []
    layers += [
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        # not in place: this is the output Grad-CAM hooks (see module docstring)
        nn.ReLU(inplace=False),
    ]
    return nn.Sequential(*layers)


class SmallCNN(nn.Module):
    """A four-block BatchNorm CNN with a global-average-pooling head.

    ``forward(x)`` maps ``(N, in_channels, H, W)`` to logits ``(N, num_classes)``;
    ``features`` is a ``Sequential`` of the four blocks, ``fc`` the linear head
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
        blocks = []
        previous = in_channels
        for index, width in enumerate(widths):
            blocks.append(_block(previous, width, pool=index > 0))
            previous = width
        self.features = nn.Sequential(*blocks)
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
