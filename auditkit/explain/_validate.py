"""Validation shared by the attribution methods at their public boundary."""

from __future__ import annotations

import torch

from auditkit.errors import InvalidInputError


def check_inputs(inputs: torch.Tensor) -> None:
    """Raise InvalidInputError unless ``inputs`` is a non-empty floating (N, C, H, W) or (N, C, D, H, W) tensor."""
    if not isinstance(inputs, torch.Tensor) or inputs.ndim not in (4, 5):
        shape = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs).__name__
        raise InvalidInputError(
            f"inputs must be a (N, C, H, W) image or (N, C, D, H, W) volume tensor, got {shape}"
        )
    if inputs.shape[0] == 0:
        raise InvalidInputError("inputs hold no images (N = 0); give at least one image")
    if not torch.is_floating_point(inputs):
        raise InvalidInputError(f"inputs must be floating point, got {inputs.dtype}")
