"""How many samples one forward+backward may hold: chunk sizes from the free memory.

Integrated Gradients and SmoothGrad evaluate the model on many scaled or
noisy copies of each image. Sending all of them at once (captum's
``internal_batch_size=None``) runs out of memory on a 512x512 DenseNet-121;
sending one at a time wastes the device. The chunk is sized so that its
forward+backward fits a fraction of the memory that is free now:
``torch.cuda.mem_get_info`` on CUDA, ``MemAvailable`` on a CPU, with a fixed
cap on a CPU where larger chunks no longer run faster but still cost memory.
"""

from __future__ import annotations

import os
import weakref

import torch
from torch import nn

from auditkit.explain.guard import borrowed_model

CUDA_FRACTION = 0.5
"""Share of the free GPU memory one chunk may use (the rest: cuDNN workspaces, fragmentation)."""
CPU_FRACTION = 0.25
"""Share of the available RAM one chunk may use on a CPU."""
CPU_CAP_BYTES = 2 << 30
"""At most 2 GiB per chunk on a CPU (enough for all 50 steps of a 224x224 ResNet-18 image, which
runs 1.65x faster than chunks of 11 there; benchmarks/RESULTS.md)."""
CPU_MAX_CHUNK = 256
"""At most 256 samples per chunk on a CPU (small models still gain from larger chunks up to here)."""
BACKWARD_FACTOR = 1.0
"""The sum of all leaf-module outputs of a forward pass, times this factor, estimates the peak of
forward + backward per sample on a CPU. Measured (peak RSS, benchmarks/attribution.py): 0.8x for
ResNet-18 at 224x224 and 0.86x for DenseNet-121 at 512x512, because in-place ReLUs and views
are counted twice in the sum; 1.0 keeps a margin."""


def available_memory_bytes(device: torch.device) -> int:
    """Return the bytes free for new tensors on ``device`` now."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def activation_bytes_per_sample(model: nn.Module, sample: torch.Tensor) -> int:
    """Return the bytes of all leaf-module outputs of one forward pass of ``sample`` (1, C, H, W)."""
    total = 0

    def count(module: nn.Module, args: object, output: object) -> None:
        nonlocal total
        if isinstance(output, torch.Tensor):
            total += output.numel() * output.element_size()

    handles = [m.register_forward_hook(count) for m in model.modules() if not list(m.children())]
    try:
        with borrowed_model(model), torch.no_grad():
            model(sample[:1])
    finally:
        for handle in handles:
            handle.remove()
    return max(total, sample[:1].numel() * sample.element_size())


_MEASURED: weakref.WeakKeyDictionary[nn.Module, dict[tuple, int]] = weakref.WeakKeyDictionary()
"""Probe results per model and input shape: a probe costs a forward+backward and a device sync,
which on a GPU outweighs a small attribution job itself (benchmarks/RESULTS.md)."""


def measured_cuda_bytes_per_sample(model: nn.Module, sample: torch.Tensor) -> int:
    """Return the peak CUDA bytes of one forward+backward to the input of ``sample`` (1, C, H, W).

    Measured once per model, input shape, dtype and device, then remembered.
    """
    key = (tuple(sample.shape[1:]), sample.dtype, str(sample.device))
    known = _MEASURED.setdefault(model, {})
    if key not in known:
        known[key] = _probe_cuda_bytes(model, sample)
    return known[key]


def _probe_cuda_bytes(model: nn.Module, sample: torch.Tensor) -> int:
    device = sample.device
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    with borrowed_model(model), torch.enable_grad():
        x = sample[:1].detach().clone().requires_grad_(True)
        out = model(x)
        (grad,) = torch.autograd.grad(out.float().sum(), x)
        del out, grad, x
    torch.cuda.synchronize(device)
    return max(1, int(torch.cuda.max_memory_allocated(device) - base))


def auto_chunk_size(
    model: nn.Module,
    sample: torch.Tensor,
    *,
    limit: int | None = None,
    budget_bytes: int | None = None,
) -> int:
    """Return how many samples like ``sample`` one forward+backward chunk may hold (>= 1).

    ``limit`` caps the answer (e.g. n_steps x n_images: no larger chunk is
    useful). ``budget_bytes`` overrides the memory budget (tests, benchmarks).
    """
    device = sample.device
    if device.type == "cuda":
        per_sample = measured_cuda_bytes_per_sample(model, sample)
        budget = (
            budget_bytes
            if budget_bytes is not None
            else int(available_memory_bytes(device) * CUDA_FRACTION)
        )
        cap = None
    else:
        per_sample = int(activation_bytes_per_sample(model, sample) * BACKWARD_FACTOR)
        budget = (
            budget_bytes
            if budget_bytes is not None
            else min(int(available_memory_bytes(device) * CPU_FRACTION), CPU_CAP_BYTES)
        )
        cap = CPU_MAX_CHUNK
    chunk = max(1, budget // max(per_sample, 1))
    if cap is not None:
        chunk = min(chunk, cap)
    if limit is not None:
        chunk = min(chunk, max(1, int(limit)))
    return int(chunk)
