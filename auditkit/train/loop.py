"""One training epoch and one evaluation pass: the hot loops, kept lean.

No host synchronisation per batch (losses are summed on the device and read
once per epoch), non-blocking copies from pinned memory on CUDA, autocast and
loss scaling only where :mod:`auditkit.nets.device` says so, and
``zero_grad(set_to_none=True)``. The benchmark ``benchmarks/train_throughput.py``
compares this loop with a bare PyTorch loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from auditkit.nets.device import autocast, memory_format

INCEPTION_AUX_WEIGHT = 0.4  # torchvision's reference recipe for Inception v3


def split_outputs(output: object) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Return ``(logits, aux_logits or None)`` of a forward output (Inception v3 returns both in training)."""
    logits = getattr(output, "logits", None)
    if isinstance(logits, torch.Tensor):
        aux = getattr(output, "aux_logits", None)
        return logits, aux if isinstance(aux, torch.Tensor) else None
    if isinstance(output, torch.Tensor):
        return output, None
    raise TypeError(f"the model returned {type(output).__name__}; expected a logits tensor")


def single_threaded_fetch(batches: Iterable) -> Iterator:
    """Yield the batches of ``batches``, fetching each with one intra-op thread.

    In-process loading (no DataLoader workers) runs many tiny per-image tensor
    ops (resize, augmentation); with several OpenMP threads each op pays a
    fork/join that dwarfs its work, and on shared cores a descheduled thread
    stalls it (measured: an augmentation call took 0.5 ms on one thread and
    25 ms on two busy cores). The model then runs with all threads again.
    """
    iterator = iter(batches)
    threads = torch.get_num_threads()
    while True:
        torch.set_num_threads(1)
        try:
            batch = next(iterator)
        except StopIteration:
            return
        finally:
            torch.set_num_threads(threads)
        yield batch


def _batches(batches: Iterable) -> Iterable:
    return single_threaded_fetch(batches) if getattr(batches, "num_workers", 1) == 0 else batches


@dataclass(frozen=True)
class EvalOutput:
    """Predictions of one pass over a loader: ``prob`` ``(N, K)`` float64, ``y_true`` ``(N,)``, ``index`` ``(N,)``."""

    loss: float
    prob: np.ndarray
    y_true: np.ndarray
    index: np.ndarray


def train_one_epoch(
    model: nn.Module,
    batches: Iterable,
    *,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    class_weight: torch.Tensor | None,
    device: torch.device,
    mixed_precision: bool = True,
    on_step: Callable[[], None] | None = None,
) -> float:
    """Return the mean training loss of one epoch over ``batches`` of ``(x, y, index)``; steps the scheduler per batch."""
    model.train()
    fmt = memory_format(device)
    non_blocking = device.type == "cuda"
    total = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    for x, y, _ in _batches(batches):
        x = x.to(device, non_blocking=non_blocking, memory_format=fmt)
        y = y.to(device, non_blocking=non_blocking)
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, enabled=mixed_precision):
            logits, aux = split_outputs(model(x))
            loss = F.cross_entropy(logits.float(), y, weight=class_weight)
            if aux is not None:
                loss = loss + INCEPTION_AUX_WEIGHT * F.cross_entropy(aux.float(), y, weight=class_weight)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        total += loss.detach() * x.shape[0]
        count += int(x.shape[0])
        if on_step is not None:
            on_step()
    return float(total.item()) / max(count, 1)


def evaluate(
    model: nn.Module,
    batches: Iterable,
    *,
    device: torch.device,
    class_weight: torch.Tensor | None = None,
    mixed_precision: bool = True,
) -> EvalOutput:
    """Return the (class-weighted) cross-entropy and softmax probabilities of ``model`` over ``batches``.

    Runs in eval mode under ``torch.inference_mode``; the model's previous
    train/eval mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    fmt = memory_format(device)
    non_blocking = device.type == "cuda"
    logits_parts, y_parts, index_parts = [], [], []
    try:
        with torch.inference_mode():
            for x, y, index in _batches(batches):
                x = x.to(device, non_blocking=non_blocking, memory_format=fmt)
                with autocast(device, enabled=mixed_precision):
                    logits, _ = split_outputs(model(x))
                logits_parts.append(logits.float())
                y_parts.append(torch.as_tensor(y))
                index_parts.append(torch.as_tensor(index))
    finally:
        model.train(was_training)
    if not logits_parts:
        empty = np.zeros((0,), dtype=np.int64)
        return EvalOutput(math.nan, np.zeros((0, 0)), empty, empty)
    logits = torch.cat(logits_parts)
    y_true = torch.cat(y_parts).to(logits.device)
    weight = class_weight.to(logits.device) if class_weight is not None else None
    loss = float(F.cross_entropy(logits, y_true, weight=weight).item())
    prob = torch.softmax(logits, dim=1).double().cpu().numpy()
    return EvalOutput(loss, prob, y_true.cpu().numpy(), torch.cat(index_parts).cpu().numpy())
