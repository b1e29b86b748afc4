"""The learning-rate schedule: linear warm-up, then cosine decay to zero, stepped per batch.

Cosine annealing without restarts (Loshchilov & Hutter, "SGDR", ICLR 2017)
after a linear warm-up (Goyal et al., "Accurate, Large Minibatch SGD", 2017),
which steadies AdamW's first steps while its moment estimates are still noisy.
"""

from __future__ import annotations

import math
from functools import partial

import torch


def warmup_cosine_factor(step: int, *, total_steps: int, warmup_steps: int) -> float:
    """Return the multiplier of the base learning rate at optimiser step ``step`` (0-based).

    Rises linearly from ``1/(warmup_steps+1)`` to 1 over ``warmup_steps`` steps,
    then follows ``0.5 * (1 + cos(pi * t))`` with ``t`` going from 0 to 1 over
    the remaining steps.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    decay_steps = max(total_steps - warmup_steps, 1)
    progress = min(max(step - warmup_steps, 0) / decay_steps, 1.0)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def default_warmup_steps(total_steps: int, steps_per_epoch: int) -> int:
    """Return the warm-up length: one epoch, but at most 5% of all steps."""
    return min(steps_per_epoch, int(0.05 * total_steps))


def make_scheduler(
    optimizer: torch.optim.Optimizer, *, total_steps: int, warmup_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Return a per-step ``LambdaLR`` following :func:`warmup_cosine_factor`."""
    factor = partial(warmup_cosine_factor, total_steps=total_steps, warmup_steps=warmup_steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=factor)
