"""Reference inputs x' for Integrated Gradients: black, blurred or mean image.

The choice changes the attribution (Sundararajan et al. 2017; Sturmfels et
al. 2020, "Visualizing the impact of feature attribution baselines", Distill),
so it is a named parameter and is recorded with every map. Baselines are built
in the model's input space: a *black* image is raw intensity 0 passed through
the model's normalisation, ``(0 - mean) / std`` per channel, not the tensor 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from auditkit.errors import InvalidInputError

BASELINES: tuple[str, ...] = ("black", "blurred", "mean", "zeros")


def gaussian_blur(inputs: torch.Tensor, sigma: float) -> torch.Tensor:
    """Return ``inputs`` (N, C, H, W) blurred by a separable Gaussian of ``sigma`` pixels (same shape).

    Borders are replicated, so any sigma works on any image size.
    """
    if sigma <= 0:
        return inputs.clone()
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32, device=inputs.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(inputs.dtype)
    n, c, h, w = inputs.shape
    flat = inputs.reshape(n * c, 1, h, w)
    flat = F.pad(flat, (radius, radius, 0, 0), mode="replicate")
    flat = F.conv2d(flat, kernel.view(1, 1, 1, -1))
    flat = F.pad(flat, (0, 0, radius, radius), mode="replicate")
    flat = F.conv2d(flat, kernel.view(1, 1, -1, 1))
    return flat.reshape(n, c, h, w)


def make_baselines(
    inputs: torch.Tensor,
    kind: str = "black",
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    blur_sigma: float | None = None,
) -> torch.Tensor:
    """Return one baseline per input, (N, C, H, W), on the inputs' device.

    ``kind``: ``"black"`` raw intensity 0 after the normalisation ``mean``/``std``
    (the tensor 0 when no normalisation is given); ``"zeros"`` the tensor 0;
    ``"blurred"`` the input blurred with a Gaussian of ``blur_sigma`` pixels
    (default: 1/16 of the larger side; Sturmfels et al. 2020); ``"mean"`` each
    image's per-channel mean as a constant image.
    """
    if kind == "zeros":
        return torch.zeros_like(inputs)
    if kind == "black":
        if mean is None or std is None:
            return torch.zeros_like(inputs)
        channels = inputs.shape[1]
        mean_t = _per_channel(mean, channels, "mean", inputs)
        std_t = _per_channel(std, channels, "std", inputs)
        return ((0 - mean_t) / std_t).expand_as(inputs).clone()
    if kind == "blurred":
        if inputs.ndim != 4:
            raise InvalidInputError(
                "baseline 'blurred' is defined for 2-D images; use 'black', 'zeros' or 'mean' for volumes"
            )
        sigma = blur_sigma if blur_sigma is not None else max(inputs.shape[-2:]) / 16
        return gaussian_blur(inputs, float(sigma))
    if kind == "mean":
        spatial = tuple(range(2, inputs.ndim))
        return inputs.mean(dim=spatial, keepdim=True).expand_as(inputs).clone()
    raise InvalidInputError(f"baseline must be one of {', '.join(BASELINES)}, got {kind!r}")


def _per_channel(
    values: Sequence[float], channels: int, name: str, like: torch.Tensor
) -> torch.Tensor:
    values = [float(v) for v in values]
    if len(values) == 1:
        values = values * channels
    if len(values) != channels:
        raise InvalidInputError(
            f"normalisation {name} has {len(values)} values for an input with {channels} channels; "
            "give one value or one per channel"
        )
    # (1, C, 1, 1) for images, (1, C, 1, 1, 1) for volumes
    shape = (1, channels, *([1] * (like.ndim - 2)))
    return torch.tensor(values, dtype=like.dtype, device=like.device).view(shape)
