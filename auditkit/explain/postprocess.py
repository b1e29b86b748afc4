"""Named post-processing steps for raw attribution maps, run on the maps' device.

Attribution methods return raw signed maps. Everything done to them after
that (summing colour channels, upsampling a layer map to the input, ReLU or
absolute value, normalisation) is an explicit step with a name, and the names
travel with the maps (``AttributionResult.postprocessing``, results.json), so a
reader of the report knows what the colours mean. Normalisation is never
implied: ``"max"`` and ``"minmax"`` are steps one asks for.

Step names: ``sum_channels``, ``upsample`` (bilinear, to the input size, with
captum's ``LayerAttribution.interpolate``), ``relu``, ``abs``, ``max`` (divide
each map by its largest absolute value) and ``minmax`` (map each map to [0, 1]
as pytorch-grad-cam's ``scale_cam_image`` does, with the same 1e-7 guard).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from captum.attr import LayerAttribution

from auditkit.errors import InvalidInputError

STEPS: tuple[str, ...] = ("sum_channels", "upsample", "relu", "abs", "max", "minmax")

_EPS = 1e-7


def sum_channels(attributions: torch.Tensor) -> torch.Tensor:
    """Return input attributions (N, C, H, W) summed over channels, (N, H, W)."""
    return attributions.sum(dim=1)


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Return maps (N, h, w) resized bilinearly (align_corners=False) to ``size``, (N, H, W)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return LayerAttribution.interpolate(maps.unsqueeze(1).float(), tuple(size), "bilinear")[:, 0]


def relu(maps: torch.Tensor) -> torch.Tensor:
    """Return the positive part of ``maps`` (same shape)."""
    return maps.clamp_min(0)


def absolute(maps: torch.Tensor) -> torch.Tensor:
    """Return the absolute value of ``maps`` (same shape)."""
    return maps.abs()


def normalize_max(maps: torch.Tensor) -> torch.Tensor:
    """Return each map (N, H, W) divided by its largest absolute value (zero maps stay zero)."""
    scale = maps.flatten(1).abs().amax(dim=1).clamp_min(_EPS)
    return maps / scale[:, None, None]


def normalize_minmax(maps: torch.Tensor) -> torch.Tensor:
    """Return each map (N, H, W) shifted to minimum 0 and divided by (1e-7 + its maximum)."""
    flat = maps.flatten(1)
    shifted = maps - flat.amin(dim=1)[:, None, None]
    return shifted / (_EPS + shifted.flatten(1).amax(dim=1))[:, None, None]


def apply_steps(
    maps: torch.Tensor, steps: Sequence[str], *, size: tuple[int, int] | None = None
) -> tuple[torch.Tensor, list[str]]:
    """Return the maps after ``steps`` in order, (N, H, W), and the list of step names applied.

    ``maps`` is (N, H, W) or, before ``sum_channels``, (N, C, H, W). ``size`` is
    the input's (H, W), needed by ``upsample``. ``upsample`` is recorded with
    its target size, e.g. ``"upsample(224x224)"``.
    """
    names: list[str] = []
    for step in steps:
        if step == "sum_channels":
            if maps.ndim == 4:
                maps = sum_channels(maps)
                names.append(step)
            continue
        if maps.ndim != 3:
            raise InvalidInputError(
                f"post-processing step {step!r} needs maps of shape (N, H, W), got "
                f"{tuple(maps.shape)}; add 'sum_channels' first"
            )
        if step == "upsample":
            if size is None:
                raise InvalidInputError("post-processing step 'upsample' needs the input size")
            if tuple(maps.shape[-2:]) != tuple(size):
                maps = upsample(maps, size)
                names.append(f"upsample({size[0]}x{size[1]})")
        elif step == "relu":
            maps = relu(maps)
            names.append(step)
        elif step == "abs":
            maps = absolute(maps)
            names.append(step)
        elif step == "max":
            maps = normalize_max(maps)
            names.append(step)
        elif step == "minmax":
            maps = normalize_minmax(maps)
            names.append(step)
        else:
            raise InvalidInputError(
                f"unknown post-processing step {step!r}; choose from {', '.join(STEPS)}"
            )
    return maps, names
