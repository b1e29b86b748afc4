"""Which output an attribution explains: the predicted class, the true class or a named one.

A model may end in K >= 2 logits (softmax) or in one logit (sigmoid, binary).
Attribution needs one score per class, so a one-logit model is explained
through :class:`ClassScores`, which presents it as the two scores
``(-z/2, +z/2)``: their softmax is exactly ``(1 - sigmoid(z), sigmoid(z))``, so
class scores and probabilities agree for every model, and the negative
class's map is the negation of the positive class's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from auditkit.errors import InvalidInputError

TargetSpec = str | int | Sequence[int] | np.ndarray | torch.Tensor
"""``"predicted"``, ``"true"``, one class index for every image, or one index per image."""


class ClassScores(nn.Module):
    """Wrap a one-logit binary model so that it returns the two class scores ``(-z/2, z/2)``, (N, 2)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Return the class scores (N, K) of the wrapped model on ``inputs`` (N, C, H, W).

        K logits pass through unchanged; one logit z becomes ``(-z/2, z/2)``,
        whose softmax is ``(1 - sigmoid(z), sigmoid(z))`` (see :func:`class_scores`).
        """
        return class_scores(self.model(inputs))


def class_scores(outputs: torch.Tensor) -> torch.Tensor:
    """Return one score per class, (N, K): the logits, or ``(-z/2, z/2)`` for a one-logit model."""
    if outputs.ndim != 2:
        raise InvalidInputError(
            f"the model returned an output of shape {tuple(outputs.shape)}; "
            "explanations need class scores of shape (N, K): wrap the model so it returns logits"
        )
    if outputs.shape[1] == 1:
        half = outputs / 2
        return torch.cat([-half, half], dim=1)
    return outputs


def class_probabilities(outputs: torch.Tensor) -> torch.Tensor:
    """Return class probabilities, (N, K): softmax of K logits, or (1 - p, p) with p = sigmoid(z)."""
    return torch.softmax(class_scores(outputs.float()), dim=1)


def resolve_targets(
    scores: torch.Tensor,
    target: TargetSpec,
    *,
    y_true: Sequence[int] | np.ndarray | torch.Tensor | None = None,
) -> torch.Tensor:
    """Return the class index explained for each image, (N,) int64 on ``scores``' device.

    ``scores`` are the class scores (N, K) of :func:`class_scores`. ``target`` is
    ``"predicted"`` (the arg-max class), ``"true"`` (needs ``y_true``), one class
    index for all images, or one index per image.
    """
    n, k = scores.shape
    device = scores.device
    if isinstance(target, str):
        if target == "predicted":
            return scores.argmax(dim=1)
        if target == "true":
            if y_true is None:
                raise InvalidInputError(
                    "target='true' needs the true labels (y_true); pass them or use target='predicted'"
                )
            out = _as_index_tensor(y_true, device)
        else:
            raise InvalidInputError(
                f"target must be 'predicted', 'true', a class index or one index per image, "
                f"got {target!r}"
            )
    elif isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        out = torch.full((n,), int(target), dtype=torch.long, device=device)
    else:
        out = _as_index_tensor(target, device)
    if out.shape[0] != n:
        raise InvalidInputError(
            f"got {out.shape[0]} targets for {n} images; give one class index per image"
        )
    if n and (int(out.min()) < 0 or int(out.max()) >= k):
        raise InvalidInputError(
            f"target class indices must lie in [0, {k - 1}] for a model with {k} classes, "
            f"got values from {int(out.min())} to {int(out.max())}"
        )
    return out


def _as_index_tensor(values: Any, device: torch.device) -> torch.Tensor:
    # A tensor may live on another device (a CUDA tensor cannot go through NumPy): move it instead.
    if isinstance(values, torch.Tensor):
        return values.detach().to(device=device, dtype=torch.long).reshape(-1)
    return torch.as_tensor(np.asarray(values), dtype=torch.long, device=device).reshape(-1)
