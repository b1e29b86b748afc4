"""Explaining a sample: the one path from chosen images to each method's maps, for ``auditkit explain`` and the audit.

``auditkit explain`` (:func:`auditkit.explain.runner.explain_manifest`) and
the audit's saliency step (:func:`auditkit.audit.saliency.run_saliency`)
both hand :func:`explain_sample` their loaded checkpoint, one or more sets of
images with the class to explain in each, the methods and their
parameters, and a map cache. It builds every explainer's arguments the same
way (:func:`method_kwargs`: the caller's parameters plus, for a method whose
registry entry says its baseline is given in pixel terms, the checkpoint's
input normalization), runs each method through
:func:`auditkit.explain.runner.explain_inputs` (fixed batches, the method's
registered post-processing, the on-disk cache) and yields the maps method by
method, so a caller can draw or evaluate one method before the next is
computed.

Under ``torchrun`` every rank first computes its shard of every set and
method into the shared cache (:func:`auditkit.explain.shards.explain_shard`);
rank 0 then reads the maps back in order, so the maps do not depend on the
number of ranks, and the other ranks yield nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from auditkit import distributed
from auditkit.explain import methods as attribution_methods
from auditkit.explain.cache import MapCache
from auditkit.explain.images import normalization_of


@dataclass(frozen=True)
class ImageSet:
    """Inputs to explain, (N, C, H, W), and the class to explain in each."""

    inputs: torch.Tensor
    target: Any
    """``"predicted"`` (the explainer's own argmax of the logits), one class index, or one index per image."""


@dataclass(frozen=True)
class MethodMaps:
    """One method's maps of every set, with the explainer arguments that produced them."""

    method: str
    kwargs: dict[str, Any]
    """the explainer's keyword arguments (:func:`method_kwargs`)."""
    maps: dict[str, Any]
    """``{set name: MapSet}`` (:class:`auditkit.explain.runner.MapSet`)."""
    n_from_cache: int
    """maps found in the cache rather than computed (under torchrun: by every rank's shard pass)."""


def method_kwargs(method: str, params: Mapping[str, Any] | None, preprocess: Any) -> dict[str, Any]:
    """Return the keyword arguments of ``method``'s explainer: ``params`` plus the input normalization it needs.

    A method registered with ``normalized_baseline`` (IG) gets the
    checkpoint's ``mean``/``std`` (``preprocess``) unless ``params`` names them.
    """
    kwargs = dict(params or {})
    if attribution_methods.get(method).normalized_baseline:
        mean, std = normalization_of(preprocess)
        if mean is not None:
            kwargs.setdefault("mean", mean)
            kwargs.setdefault("std", std)
    return kwargs


def explain_sample(
    loaded: Any,
    sets: Mapping[str, ImageSet],
    *,
    methods: Sequence[str],
    params: Mapping[str, Mapping[str, Any]] | None = None,
    cache: MapCache,
    batch_size: int,
    ctx: distributed.Context | None = None,
    description: str | None = None,
) -> Iterator[MethodMaps]:
    """Yield each method's :class:`MethodMaps` of every set in ``sets``, in ``methods`` order.

    ``loaded``: :class:`auditkit.nets.checkpoint.LoadedModel` (its model,
    target layer, SHA-256 and preprocess are used). ``params``: per-method
    parameters (``{method: {name: value}}``). Under torchrun (``ctx`` active;
    default: the joined process group)
    each rank first computes its shard of every set and method into
    ``cache``; only rank 0 then yields, reading the maps from the cache.
    """
    from auditkit.explain.runner import explain_inputs
    from auditkit.explain.shards import explain_shard

    ctx = ctx or distributed.group_context()
    kwargs = {m: method_kwargs(m, (params or {}).get(m), loaded.preprocess) for m in methods}
    sharded: dict[str, int] = dict.fromkeys(methods, 0)
    if ctx.active:
        for name, image_set in sets.items():
            found = explain_shard(
                loaded.model, image_set.inputs, methods=methods, method_kwargs=kwargs.__getitem__,
                target=image_set.target, target_layer=loaded.target_layer, model_sha256=loaded.sha256,
                cache=cache, batch_size=batch_size, ctx=ctx, what=name,
            )  # fmt: skip
            for method, count in found.items():
                sharded[method] += count
        if not ctx.is_main:
            return
    for method in methods:
        maps = {
            name: explain_inputs(
                loaded.model, image_set.inputs, method=method, target=image_set.target,
                target_layer=loaded.target_layer, params=kwargs[method], model_sha256=loaded.sha256,
                cache=cache, batch_size=batch_size, description=description,
            )
            for name, image_set in sets.items()
        }
        found = sharded[method] if ctx.active else sum(m.n_from_cache for m in maps.values())
        yield MethodMaps(method, kwargs[method], maps, found)
