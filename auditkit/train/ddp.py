"""Training under torchrun: DistributedDataParallel, a DistributedSampler, and validation on every rank's predictions.

* The model is wrapped in ``DistributedDataParallel`` (gradients averaged
  over ranks by all-reduce after every backward); on CUDA its BatchNorm
  layers become ``SyncBatchNorm`` (batch statistics over the global batch;
  gloo on the CPU has no SyncBatchNorm, so each rank normalises its own
  half-batch there).
* Each rank draws ``batch_size // world_size`` images per step from a
  ``DistributedSampler`` reshuffled per epoch (``set_epoch``), so the global
  batch, the number of steps and the learning-rate schedule are those of the
  single-process run.
* Validation: each rank scores a contiguous shard of the validation split;
  the probabilities are gathered to every rank in order and the AUROC and the
  loss are computed once on all of them (never a mean of per-rank AUROCs), so
  every rank takes the same early-stopping decision.
* Rank 0 alone writes the checkpoint, history, resume state and calibration;
  the others wait at a barrier and read the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from auditkit import distributed
from auditkit.train.loop import EvalOutput, evaluate


@dataclass(frozen=True)
class DdpPlan:
    """How one rank trains: its batch size and the process-group context."""

    ctx: distributed.Context
    batch_size: int
    """images per rank per step (the global batch divided by the world size)."""


def plan(ctx: distributed.Context, batch_size: int) -> DdpPlan:
    """Return the rank's plan: ``batch_size`` is the global batch, split evenly (at least 2 per rank, for BatchNorm)."""
    return DdpPlan(ctx=ctx, batch_size=max(2, batch_size // ctx.world_size))


def record(p: DdpPlan, device: torch.device) -> dict[str, Any]:
    """Return model.json's ``training.distributed`` record: world size, backend, per-rank batch, BatchNorm mode."""
    return {
        "world_size": p.ctx.world_size,
        "backend": p.ctx.backend,
        "batch_size_per_rank": p.batch_size,
        "batchnorm": "SyncBatchNorm" if device.type == "cuda" else "per-rank batch statistics (gloo)",
        "validation": "AUROC and loss on the probabilities gathered from every rank",
    }


def wrap_model(model: nn.Module, device: torch.device) -> nn.Module:
    """Return ``model`` inside DistributedDataParallel (SyncBatchNorm on CUDA)."""
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return DistributedDataParallel(model, device_ids=[device.index or 0])
    return DistributedDataParallel(model)


def unwrap(model: nn.Module) -> nn.Module:
    """Return the module a DistributedDataParallel wraps (the model itself otherwise)."""
    return getattr(model, "module", model)


def train_loader(dataset: Dataset, p: DdpPlan, *, device: torch.device, seed: int, num_workers: int | None) -> DataLoader:
    """Return this rank's training loader: a DistributedSampler (shuffled by seed and epoch) in batches of ``p.batch_size``."""
    from torch.utils.data.distributed import DistributedSampler

    from auditkit.data.dataset import default_num_workers

    sampler = DistributedSampler(
        dataset, num_replicas=p.ctx.world_size, rank=p.ctx.rank, shuffle=True, seed=seed, drop_last=False
    )
    per_rank = len(sampler)
    workers = default_num_workers(dataset, device) if num_workers is None else int(num_workers)
    return DataLoader(
        dataset,
        batch_size=p.batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        # a last batch of one image would break BatchNorm's batch statistics
        drop_last=per_rank % p.batch_size == 1,
        **({"persistent_workers": True, "prefetch_factor": 4} if workers > 0 else {}),
    )


def shard_loader(dataset: Dataset, p: DdpPlan, *, device: torch.device, num_workers: int | None) -> DataLoader:
    """Return a loader of this rank's contiguous shard of ``dataset`` (validation; no padding, no shuffling)."""
    from auditkit.data.dataset import make_loader

    start, stop = distributed.shard_bounds(len(dataset), p.ctx)
    return make_loader(
        Subset(dataset, range(start, stop)), batch_size=p.batch_size, shuffle=False, device=device,
        num_workers=num_workers,
    )  # fmt: skip


def sync_buffers(model: nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank, so all evaluate rank 0's model."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        for buffer in unwrap(model).buffers():
            dist.broadcast(buffer.data, src=0)


def gathered_evaluate(
    model: nn.Module,
    batches: Any,
    *,
    device: torch.device,
    class_weight: torch.Tensor | None,
    mixed_precision: bool,
) -> EvalOutput:
    """Return the evaluation of every rank's shard, gathered in rank order (the whole validation split).

    The class-weighted mean loss of the whole split is recombined exactly
    from each shard's mean and its total class weight.
    """
    sync_buffers(model)
    part = evaluate(
        unwrap(model), batches, device=device, class_weight=class_weight, mixed_precision=mixed_precision
    )
    weights = class_weight.detach().cpu().numpy() if class_weight is not None else None
    total = float(weights[part.y_true].sum()) if weights is not None and part.y_true.size else float(part.y_true.size)
    parts = distributed.all_gather((part.loss, total, part.prob, part.y_true, part.index))
    kept = [p for p in parts if p[3].size]
    if not kept:
        return part
    weight_sum = sum(p[1] for p in kept)
    loss = sum(p[0] * p[1] for p in kept) / weight_sum if weight_sum > 0 else float("nan")
    return EvalOutput(
        loss=float(loss),
        prob=np.concatenate([p[2] for p in kept]),
        y_true=np.concatenate([p[3] for p in kept]),
        index=np.concatenate([p[4] for p in kept]),
    )
