"""The training loop of the clinical tests' tiny CNNs (Adam, cross-entropy, seeded shuffles, batch 64)."""

from __future__ import annotations

import torch
from torch import nn


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, lr: float, seed: int) -> nn.Module:
    """Return ``model`` trained on normalised inputs ``x`` and labels ``y`` for ``epochs`` seeded epochs (eval mode)."""
    opt = torch.optim.Adam(model.parameters(), lr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), 64):
            idx = order[i : i + 64]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()
