"""The model's class probabilities, computed in one place: class scores, the checkpoint's calibration, softmax.

``auditkit predict``, ``auditkit explain`` (its ``probability`` column,
``--target predicted`` and ``--select errors/top/stratified``) and every
other reader of a checkpoint's scores call :func:`calibrated_probabilities`,
so a released model scores an image the same way everywhere: K logits (or
one logit z, presented as ``(-z/2, z/2)`` whose softmax is
``(1 - sigmoid(z), sigmoid(z))``), plus the checkpoint's prior correction
``logit_offset``, divided by its ``temperature`` (model.json ``calibration``,
fitted on the validation split at training time), then the softmax.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def as_class_scores(outputs: Any) -> Any:
    """Return one score per class (N, K): K logits unchanged, one logit z as ``(-z/2, z/2)``."""
    if outputs.shape[1] != 1:
        return outputs
    half = outputs / 2
    if isinstance(outputs, torch.Tensor):
        return torch.cat([-half, half], dim=1)
    return np.concatenate([-half, half], axis=1)


def calibrate_logits(logits: Any, meta: dict[str, Any]) -> Any:
    """Return ``(logits + logit_offset) / temperature`` for a checkpoint's calibration (identity if none).

    ``logits`` is a torch tensor or NumPy array of shape (N, K).
    """
    record = meta.get("calibration") or {}
    if record.get("method") != "temperature":
        return logits
    offset = record.get("logit_offset")
    if offset is not None:
        if isinstance(logits, torch.Tensor):
            logits = logits + logits.new_tensor(offset)
        else:
            logits = logits + np.asarray(offset)
    return logits / float(record["temperature"])


def calibrated_probabilities(outputs: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
    """Return the released model's class probabilities (N, K) float32 from its raw outputs (N, K) or (N, 1)."""
    return torch.softmax(calibrate_logits(as_class_scores(outputs.float()), meta), dim=1)
