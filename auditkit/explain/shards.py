"""Explanation split over torchrun ranks: each rank computes its shard's maps into the shared map cache.

The images to explain are chosen identically on every rank; rank ``r``
explains the contiguous slice :func:`auditkit.distributed.shard_bounds`
gives it, in whole batches, so every batch holds the same images as in a
single-process run and the maps are the same. Maps go to the on-disk
:class:`~auditkit.explain.cache.MapCache` (atomic per map), so a killed rank
loses at most its unfinished batch and a rerun recomputes only that. After a
barrier rank 0 reads every map back from the cache, in manifest order, to
draw the overlays and write the index, as a single process would.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from auditkit import distributed
from auditkit.explain.cache import MapCache
from auditkit.fileio import write_json
from auditkit.progress import status

SHARDS_FILE = "shards.json"
_SLUG = re.compile(r"[^A-Za-z0-9_-]")


def explain_shard(
    model: nn.Module,
    inputs: torch.Tensor,
    *,
    methods: Sequence[str],
    method_kwargs: Callable[[str], Mapping[str, Any]],
    target: Any,
    target_layer: Any,
    model_sha256: str,
    cache: MapCache,
    batch_size: int,
    ctx: distributed.Context,
    what: str = "images",
) -> dict[str, int]:
    """Compute this rank's shard of every method's maps into ``cache``; return per method the maps all ranks found cached.

    Returns after every rank has finished (a collective); rank 0 records the
    split in ``cache/shards.json`` (``what`` = ``images``; another set of
    images: ``cache/shards-<what>.json``): world size and each rank's rows.
    """
    from auditkit.explain.runner import METHOD_LABELS, explain_inputs

    n = int(inputs.shape[0])
    start, stop = distributed.shard_bounds(n, ctx, align=batch_size)
    status(
        f"{ctx.label()}: explaining shard {what} {start + 1}-{stop} ({stop - start} of {n}) "
        f"with {', '.join(methods)}"
    )
    found = dict.fromkeys(methods, 0)
    for k, method in enumerate(methods):
        if stop > start:
            shard_target = target if isinstance(target, (str, int, np.integer)) else np.asarray(target)[start:stop]
            result = explain_inputs(
                model, inputs[start:stop], method=method, target=shard_target, target_layer=target_layer,
                params=method_kwargs(method), model_sha256=model_sha256, cache=cache, batch_size=batch_size,
                description=f"{METHOD_LABELS.get(method, method)} ({ctx.label()})",
            )  # fmt: skip
            found[method] = result.n_from_cache
        if k == 0:
            distributed.maybe_fault(ctx)  # the resume test: killed with later methods unfinished
    bounds = distributed.all_gather((start, stop, found))
    if ctx.is_main:
        name = SHARDS_FILE if what == "images" else f"shards-{_SLUG.sub('_', what)}.json"
        write_json(
            Path(cache.root) / name,
            {
                "world_size": ctx.world_size,
                "shards": [{"rank": r, "rows": [a, b]} for r, (a, b, _) in enumerate(bounds)],
            },
        )
    return {m: int(sum(f[m] for _, _, f in bounds)) for m in methods}
