"""Tiny models with hand-set weights whose attributions can be worked out by hand."""

from __future__ import annotations

import torch
from torch import nn


class ConvGapLinear(nn.Module):
    """x (N,1,H,W) -> 1x1 conv with weights a_k (no bias) -> global average pool -> linear W, b."""

    def __init__(self, a: list[float], w: list[list[float]], b: list[float]) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, len(a), kernel_size=1, bias=False)
        self.fc = nn.Linear(len(a), len(b))
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor(a).view(-1, 1, 1, 1))
            self.fc.weight.copy_(torch.tensor(w))
            self.fc.bias.copy_(torch.tensor(b))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).mean(dim=(2, 3)))


class LinearModel(nn.Module):
    """logits = W vec(x) + b: Integrated Gradients is exactly (x - x') * W[target]."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        super().__init__()
        self.fc = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.fc.weight.copy_(weight)
            self.fc.bias.copy_(bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


class PatchReader(nn.Module):
    """Two logits (0, s) where s = sum of the pixels in rows r0:r1, cols c0:c1: only that patch matters."""

    def __init__(self, r0: int, r1: int, c0: int, c1: int, gain: float = 1.0) -> None:
        super().__init__()
        self.box = (r0, r1, c0, c1)
        self.gain = nn.Parameter(torch.tensor(float(gain)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r0, r1, c0, c1 = self.box
        s = self.gain * x[:, :, r0:r1, c0:c1].sum(dim=(1, 2, 3)) - 1.0
        return torch.stack([torch.zeros_like(s), s], dim=1)
