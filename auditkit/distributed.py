"""Running under ``torchrun``: who this process is, the process group, and its share of the work.

``torchrun`` (torch.distributed.run) starts one process per device and tells
each its place in the environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``,
plus the rendezvous ``MASTER_ADDR``/``MASTER_PORT``). :func:`context` reads
it; :func:`init` joins the process group with NCCL when the process works on
a CUDA device and gloo otherwise, and moves a bare ``cuda`` request to the
rank's own GPU (``cuda:LOCAL_RANK``). Without torchrun everything here is a
no-op and the world has one rank.

Work is split in contiguous shards in manifest order (:func:`shard_bounds`),
aligned to whole batches so every batch has the same images as in a
single-process run (the same scores, bit for bit on the same hardware, and
the same maps). Outputs are files shared by all ranks (one output folder on a
filesystem every node sees); rank 0 merges them after a barrier.

Fault injection for the resume tests: with ``AUDITKIT_FAULT_KILL_RANK=r``
rank ``r`` kills itself (SIGKILL) at :func:`maybe_fault` — after its shard's
work is done but before the shard is written, the worst moment.
"""

from __future__ import annotations

import datetime
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported where it is used: fileio asks launched() without it
    import torch

FAULT_ENV = "AUDITKIT_FAULT_KILL_RANK"
#: how long a rank waits for the others at a barrier (a slow shard on a big run takes hours).
TIMEOUT = datetime.timedelta(hours=6)


@dataclass(frozen=True)
class Context:
    """This process's place in the run: rank, world size, local rank, and the backend in use."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    backend: str | None = None

    @property
    def active(self) -> bool:
        """Return whether the work is split over more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Return whether this process is rank 0 (the one that merges, writes and reports)."""
        return self.rank == 0

    def label(self) -> str:
        """Return ``"rank R/W"`` for progress lines ('' in a single process)."""
        return f"rank {self.rank}/{self.world_size}" if self.active else ""


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip().lstrip("-").isdigit() else default


def launched() -> bool:
    """Return whether this process was started by torchrun with more than one process."""
    return _env_int("WORLD_SIZE", 1) > 1


def env_rank() -> int:
    """Return this process's rank from torchrun's environment (0 when not launched by torchrun)."""
    return max(0, _env_int("RANK", 0)) if launched() else 0


def context() -> Context:
    """Return this process's Context: from the live process group, else from torchrun's environment."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return Context(
            world_size=dist.get_world_size(),
            rank=dist.get_rank(),
            local_rank=_env_int("LOCAL_RANK", 0),
            backend=str(dist.get_backend()),
        )
    return Context(
        world_size=max(1, _env_int("WORLD_SIZE", 1)),
        rank=max(0, _env_int("RANK", 0)),
        local_rank=max(0, _env_int("LOCAL_RANK", 0)),
    )


def group_context() -> Context:
    """Return the live process group's Context, or the single-process one when no group was joined.

    For a step that only splits work when the run's earlier steps joined the
    group (the audit's saliency after its sharded prediction).
    """
    import torch.distributed as dist

    return context() if dist.is_available() and dist.is_initialized() else Context()


def rank_device(device: str | torch.device | None) -> str | torch.device | None:
    """Return the device this rank should use for ``device``: a bare ``cuda`` becomes ``cuda:LOCAL_RANK``.

    Under torchrun with CUDA available and no device given, that is the
    rank's own GPU too; a device with an explicit index is left as asked.
    """
    import torch

    if not launched():
        return device
    local = _env_int("LOCAL_RANK", 0)
    if device is None:
        return f"cuda:{local}" if torch.cuda.is_available() else None
    text = str(device)
    if text == "cuda":
        return f"cuda:{local}"
    return device


def init(device: torch.device | None = None) -> Context:
    """Join torchrun's process group (NCCL for a CUDA ``device``, gloo otherwise) and return the Context.

    A no-op returning the single-process Context when not launched by
    torchrun; idempotent when the group already exists.
    """
    import torch
    import torch.distributed as dist

    if not launched() or not dist.is_available():
        return context()
    if not dist.is_initialized():
        use_nccl = device is not None and torch.device(device).type == "cuda" and dist.is_nccl_available()
        if use_nccl:
            torch.cuda.set_device(torch.device(device))
        dist.init_process_group(
            backend="nccl" if use_nccl else "gloo",
            timeout=TIMEOUT,
            **({"device_id": torch.device(device)} if use_nccl else {}),
        )
    return context()


def shard_bounds(n: int, ctx: Context, *, align: int = 1) -> tuple[int, int]:
    """Return the ``[start, stop)`` rows of ``ctx``'s rank: contiguous, in order, in whole blocks of ``align``.

    The ``ceil(n / align)`` blocks are dealt in contiguous runs whose sizes
    differ by at most one block, so each rank gets about ``n / world_size``
    rows and the shards of ranks 0..W-1 concatenate to ``0..n``. With fewer
    blocks than ranks the rows themselves are dealt (batches then differ from
    a single process's; scores agree to float rounding).
    """
    align = max(1, int(align))
    if -(-n // align) < ctx.world_size:  # fewer batches than ranks: balance rows over every rank instead
        align = 1
    blocks = -(-n // align)
    first = ctx.rank * blocks // ctx.world_size
    last = (ctx.rank + 1) * blocks // ctx.world_size
    return min(n, first * align), min(n, last * align)


def barrier() -> None:
    """Wait until every rank reaches this point (no-op in a single process)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_gather(value: Any) -> list[Any]:
    """Return every rank's ``value`` (picklable, produced by this program), in rank order."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return [value]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return out


def broadcast(value: Any) -> Any:
    """Return rank 0's ``value`` on every rank (picklable, produced by this program)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shutdown() -> None:
    """Leave the process group, if one was joined."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def maybe_fault(ctx: Context, *, wait_for: Sequence[Path] = ()) -> None:
    """Kill this rank with SIGKILL when ``AUDITKIT_FAULT_KILL_RANK`` names it (the resume tests only).

    It first waits (up to a minute) for the files ``wait_for`` — the other
    ranks' finished work — so the test knows what survived the kill.
    """
    wanted = os.environ.get(FAULT_ENV, "")
    if ctx.active and wanted.isdigit() and int(wanted) == ctx.rank:
        deadline = time.monotonic() + 60.0
        while not all(Path(p).exists() for p in wait_for) and time.monotonic() < deadline:
            time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGKILL)
