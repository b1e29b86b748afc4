"""Is the map stable under changes a reader would call irrelevant? Noise and 1-2 pixel shifts.

A map that changes when the image gets a little noise or moves by a pixel or
two cannot be read as "where the model looked" (Alvarez-Melis & Jaakkola
2018, "On the robustness of interpretability methods"; Kindermans et al.
2019, "The (un)reliability of saliency methods"). Per image: SSIM between the
map and the map of the perturbed image; for a shift, the second map is
shifted back and only the pixels both maps see are compared.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from auditkit.explain.evaluation.sanity import ExplainFn
from auditkit.explain.evaluation.similarity import map_ssim


def add_noise(inputs: torch.Tensor, *, level: float, random_state: int) -> torch.Tensor:
    """Return ``inputs`` (N, C, H, W) plus Gaussian noise of sd ``level`` x each image's range (same shape)."""
    generator = torch.Generator(device="cpu").manual_seed(int(random_state))
    noise = torch.randn(inputs.shape, generator=generator, dtype=torch.float32).to(inputs.device, inputs.dtype)
    spread = (inputs.flatten(1).amax(1) - inputs.flatten(1).amin(1)).clamp_min(1e-6)
    return inputs + noise * level * spread[:, None, None, None]


def shift(inputs: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Return ``inputs`` (N, C, H, W) moved down by ``dy`` and right by ``dx`` pixels, borders replicated."""
    h, w = inputs.shape[-2:]
    pad = (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0))
    padded = F.pad(inputs, pad, mode="replicate")
    top, left = max(-dy, 0), max(-dx, 0)
    return padded[:, :, top : top + h, left : left + w]


def noise_stability(
    model: nn.Module,
    explain: ExplainFn,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    maps: np.ndarray,
    *,
    level: float = 0.02,
    random_state: int = 0,
) -> np.ndarray:
    """Return the SSIM of each map (N, H, W) with the map of its noisy image, (N,)."""
    noisy = add_noise(inputs, level=level, random_state=random_state)
    other = np.asarray(explain(model, noisy, targets))
    return np.array([map_ssim(a, b) for a, b in zip(maps, other, strict=True)])


def shift_stability(
    model: nn.Module,
    explain: ExplainFn,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    maps: np.ndarray,
    *,
    pixels: int = 2,
) -> np.ndarray:
    """Return the SSIM of each map (N, H, W) with the map of its image shifted by ``pixels`` (diagonally), shifted back, (N,).

    Only the region both maps cover (``pixels`` trimmed from every side) is compared.
    """
    moved = shift(inputs, pixels, pixels)
    other = np.asarray(explain(model, moved, targets))
    p = int(pixels)
    back = other[:, p:, p:]  # undo the shift: pixel (i, j) of the original is (i + p, j + p) here
    h, w = back.shape[1:]
    trim = slice(p, None)
    a = np.asarray(maps)[:, :h, :w][:, trim, trim]
    b = back[:, trim, trim]
    return np.array([map_ssim(x, y) for x, y in zip(a, b, strict=True)])
