"""Named post-processing steps for raw attribution maps, run on the maps' device.

Attribution methods return raw signed maps. Everything done to them after
that (summing colour channels, upsampling a layer map to the input, ReLU or
absolute value, normalisation) is an explicit step with a name, and the names
travel with the maps (``AttributionResult.postprocessing``, results.json), so a
reader of the report knows what the colours mean. Normalisation is never
implied: ``"max"`` and ``"minmax"`` are steps one asks for.

Step names: ``sum_channels``, ``upsample`` (bilinear, to the input size, with
captum's ``LayerAttribution.interpolate``; trilinear to the full (D, H, W) of a
volume, depth included), ``relu``, ``abs``, ``max`` (divide
each map by its largest absolute value) and ``minmax`` (map each map to [0, 1]
as pytorch-grad-cam's ``scale_cam_image`` does, with the same 1e-7 guard).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from captum.attr import LayerAttribution

from auditkit.errors import InvalidInputError

STEPS: tuple[str, ...] = ("sum_channels", "upsample", "relu", "abs", "max", "minmax")

_EPS = 1e-7


def sum_channels(attributions: torch.Tensor) -> torch.Tensor:
    """Return input attributions (N, C, H, W) or (N, C, D, H, W) summed over channels, (N, H, W) / (N, D, H, W)."""
    return attributions.sum(dim=1)


def upsample(maps: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Return maps resized to ``size`` (align_corners=False): (N, h, w) bilinearly to (N, H, W),
    (N, d, h, w) trilinearly to (N, D, H, W)."""
    if tuple(maps.shape[1:]) == tuple(size):
        return maps
    if len(size) == 3:
        # every axis, depth included, goes back to the input's: a CAM has as many slices as the volume
        return F.interpolate(
            maps.unsqueeze(1).float(), size=tuple(size), mode="trilinear", align_corners=False
        )[:, 0]
    return LayerAttribution.interpolate(maps.unsqueeze(1).float(), tuple(size), "bilinear")[:, 0]


def relu(maps: torch.Tensor) -> torch.Tensor:
    """Return the positive part of ``maps`` (same shape)."""
    return maps.clamp_min(0)


def absolute(maps: torch.Tensor) -> torch.Tensor:
    """Return the absolute value of ``maps`` (same shape)."""
    return maps.abs()


def _per_map(values: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    return values.view(-1, *([1] * (maps.ndim - 1)))


def normalize_max(maps: torch.Tensor) -> torch.Tensor:
    """Return each map (N, H, W) or (N, D, H, W) divided by its largest absolute value (zero maps stay zero)."""
    scale = maps.flatten(1).abs().amax(dim=1).clamp_min(_EPS)
    return maps / _per_map(scale, maps)


def normalize_minmax(maps: torch.Tensor) -> torch.Tensor:
    """Return each map shifted to minimum 0 and divided by (1e-7 + its maximum), same shape."""
    flat = maps.flatten(1)
    shifted = maps - _per_map(flat.amin(dim=1), maps)
    return shifted / _per_map(_EPS + shifted.flatten(1).amax(dim=1), maps)


def apply_steps(
    maps: torch.Tensor, steps: Sequence[str], *, size: tuple[int, ...] | None = None
) -> tuple[torch.Tensor, list[str]]:
    """Return the maps after ``steps`` in order, (N, H, W) or (N, D, H, W), and the step names applied.

    ``maps`` is (N, H, W) or, before ``sum_channels``, (N, C, H, W); for
    volumes (N, D, H, W) or (N, C, D, H, W). ``size`` is the input's (H, W) or
    (D, H, W): it tells images from volumes and is needed by ``upsample``,
    which is recorded with its target size, e.g. ``"upsample(224x224)"`` or
    ``"upsample(30x64x64)"``.
    """
    rank = len(size) if size is not None else 2  # spatial dimensions
    names: list[str] = []
    for step in steps:
        if step == "sum_channels":
            if maps.ndim == rank + 2:
                maps = sum_channels(maps)
                names.append(step)
            continue
        if maps.ndim != rank + 1:
            expected = "(N, H, W)" if rank == 2 else "(N, D, H, W)"
            raise InvalidInputError(
                f"post-processing step {step!r} needs maps of shape {expected}, got "
                f"{tuple(maps.shape)}; add 'sum_channels' first"
            )
        if step == "upsample":
            if size is None:
                raise InvalidInputError("post-processing step 'upsample' needs the input size")
            if tuple(maps.shape[1:]) != tuple(size):
                maps = upsample(maps, size)
                names.append(f"upsample({'x'.join(str(s) for s in size)})")
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
