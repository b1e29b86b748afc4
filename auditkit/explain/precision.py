"""Mixed precision for attribution: where it is safe, and how to turn it on for a device.

Autocast is used only where the numbers survive it: the forward pass of
Grad-CAM (the channel weights and the weighted sum are then computed in
float32). Integrated Gradients runs in float32 unless asked, and falls back to
float32 when its completeness check fails under autocast. On a CPU autocast is
a no-op, so the same code runs unchanged on CUDA and CPU.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch


def autocast_context(device: torch.device, *, enabled: bool = True) -> contextlib.AbstractContextManager[Any]:
    """Return an autocast context for ``device`` (bf16 on CUDA when supported, else fp16; none on CPU).

    Uses ``auditkit.nets.device.autocast`` when that module is present, so the
    whole package agrees on one precision policy.
    """
    if not enabled or device.type != "cuda":
        return contextlib.nullcontext()
    try:
        from auditkit.nets.device import autocast as nets_autocast
    except ImportError:  # the nets layer is optional for explain's pure-torch paths
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast(device_type="cuda", dtype=dtype)
    return nets_autocast(device, enabled=True)
