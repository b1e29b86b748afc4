"""Explaining many images: fixed batches through the on-disk cache, and ``auditkit explain`` over a manifest.

:func:`explain_inputs` computes one method's maps for a stack of inputs in
batches whose composition depends only on the order of the inputs, so a rerun
after an interruption recomputes exactly the batches that were not finished
and produces identical maps. Each finished map is written to the
:class:`~auditkit.explain.cache.MapCache` before the next batch starts.

:func:`explain_manifest` is the command's work: load the checkpoint and the
manifest, choose the images (``--select``, ``--limit``), explain them with each
method, and write overlays, the plain images and an index table.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from auditkit.errors import InvalidInputError
from auditkit.explain import methods as attribution_methods
from auditkit.explain.api import (
    DEFAULT_POSTPROCESS,
    METHODS,
    make_explainer,
    method_params,
    run_explainer,
)
from auditkit.explain.cache import CachedMap, MapCache, cache_key, input_digest
from auditkit.explain.guard import borrowed_model, model_device
from auditkit.explain.postprocess import apply_steps
from auditkit.explain.targets import class_probabilities
from auditkit.nets.scores import calibrated_probabilities
from auditkit.progress import track

DISPLAY_STEPS: dict[str, tuple[str, ...]] = {
    m: attribution_methods.get(m).display_steps for m in attribution_methods.names()
}
"""Steps after the raw map for display and evaluation: positive evidence for the class
(Grad-CAM's own ReLU, Selvaraju et al. 2017; IG's positive attributions), and
SmoothGrad's absolute value (Smilkov et al. 2017)."""

METHOD_LABELS: dict[str, str] = attribution_methods.labels()


@dataclass(frozen=True)
class MapSet:
    """One method's maps for a list of inputs, with what they explain."""

    method: str
    maps: np.ndarray
    """Maps after ``postprocessing``, (N, H, W) float32 (raw signed unless a step says otherwise)."""
    targets: np.ndarray
    """The class explained per image, (N,) int64."""
    scores: np.ndarray
    """Class scores (logits) per image, (N, K) float32."""
    extras: list[dict[str, Any]]
    """Per-image diagnostics (IG: delta, relative_delta, completeness_passed)."""
    params: dict[str, Any]
    postprocessing: tuple[str, ...]
    n_from_cache: int = 0
    batch_info: dict[str, Any] = field(default_factory=dict)
    """Batch-level facts: IG's internal batch size and precision."""

    def display(self) -> np.ndarray:
        """Return the maps after :data:`DISPLAY_STEPS` for this method, (N, H, W) float32."""
        steps = DISPLAY_STEPS[self.method]
        out, _ = apply_steps(torch.from_numpy(np.ascontiguousarray(self.maps)), steps)
        return out.numpy()


def model_digest(model: nn.Module) -> str:
    """Return the hex SHA-256 of a model's state dict (names, shapes, dtypes, bytes)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        array = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(array.shape)}:{array.dtype}".encode())
        digest.update(array.view(torch.uint8).numpy().tobytes() if array.numel() else b"")
    return digest.hexdigest()


def _target_specs(target: Any, n: int) -> tuple[list[str], Any]:
    """Return the cache target spec per image and the target to hand to the explainer."""
    if isinstance(target, str):
        if target != "predicted":
            raise InvalidInputError(f"target must be 'predicted' or class indices here, got {target!r}")
        return ["predicted"] * n, "predicted"
    if isinstance(target, (int, np.integer)):
        values = np.full(n, int(target), dtype=np.int64)
    else:
        values = np.asarray(target, dtype=np.int64).reshape(-1)
        if values.shape[0] != n:
            raise InvalidInputError(f"got {values.shape[0]} targets for {n} images; give one per image")
    return [f"class:{int(v)}" for v in values], values


def explain_inputs(
    model: nn.Module,
    inputs: torch.Tensor,
    *,
    method: str,
    target: str | int | Sequence[int] | np.ndarray = "predicted",
    target_layer: nn.Module | str | None = None,
    params: Mapping[str, Any] | None = None,
    model_sha256: str | None = None,
    cache: MapCache | None = None,
    batch_size: int = 16,
    postprocess: Sequence[str] | None = None,
    description: str | None = None,
    show_progress: bool = True,
) -> MapSet:
    """Return ``method``'s maps of ``inputs`` (N, C, H, W), through ``cache`` when given.

    ``target``: ``"predicted"``, one class index, or one per image. Batches are
    the consecutive slices of ``batch_size`` inputs; a batch whose maps are
    all cached is not recomputed, a partly cached one is recomputed whole (so
    its maps are the same as in an uninterrupted run) and only the missing
    entries are written.
    """
    if method not in METHODS:
        raise InvalidInputError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    n = int(inputs.shape[0])
    specs, explainer_target = _target_specs(target, n)
    explainer = make_explainer(model, method, target_layer=target_layer, **dict(params or {}))
    recorded = method_params(explainer)
    steps = tuple(DEFAULT_POSTPROCESS[method] if postprocess is None else postprocess)
    keys: list[str] = []
    if cache is not None:
        sha = model_sha256 or model_digest(model)
        keys = [
            cache_key(
                model_sha256=sha,
                input_sha256=input_digest(inputs[i]),
                method=method,
                params=recorded,
                postprocessing=steps,
                target=specs[i],
            )
            for i in range(n)
        ]
    device = model_device(model)
    entries: list[CachedMap | None] = [None] * n
    names: tuple[str, ...] | None = None
    batch_info: dict[str, Any] = {}
    from_cache = 0
    size = max(1, int(batch_size))
    starts = list(range(0, n, size))
    label = description or f"{METHOD_LABELS.get(method, method)}"
    batches = starts if not show_progress else track(starts, total=len(starts), description=label)
    for start in batches:
        stop = min(n, start + size)
        cached = [cache.get(keys[i]) if cache is not None else None for i in range(start, stop)]
        if all(c is not None for c in cached):
            entries[start:stop] = cached
            from_cache += stop - start
            continue
        batch_target = explainer_target if isinstance(explainer_target, str) else explainer_target[start:stop]
        result = run_explainer(explainer, inputs[start:stop].to(device), target=batch_target, postprocess=steps)
        names = result.postprocessing
        for key in ("internal_batch_size", "precision", "tolerance"):
            if key in result.extras:
                batch_info[key] = result.extras[key]
        for j, i in enumerate(range(start, stop)):
            extras = {
                k: (v[j].item() if isinstance(v, np.ndarray) else v)
                for k, v in result.extras.items()
                if k in ("delta", "relative_delta", "completeness_passed")
            }
            entry = CachedMap(
                map=result.maps[j],
                target=int(result.targets[j]),
                scores=result.scores[j],
                extras=extras,
                postprocessing=result.postprocessing,
            )
            if cache is not None and cached[j] is None:
                cache.put(keys[i], entry)
            entries[i] = entry if cached[j] is None else cached[j]
    if names is None:
        names = next((e.postprocessing for e in entries if e is not None), ())
    done = [e for e in entries if e is not None]
    return MapSet(
        method=method,
        maps=np.stack([e.map for e in done]) if done else np.empty((0, *inputs.shape[-2:]), np.float32),
        targets=np.array([e.target for e in done], dtype=np.int64),
        scores=np.stack([e.scores for e in done]) if done else np.empty((0, 0), np.float32),
        extras=[dict(sorted(e.extras.items())) for e in done],  # one key order, fresh or cached
        params=recorded,
        postprocessing=names,
        n_from_cache=from_cache,
        batch_info=batch_info,
    )


def class_probabilities_of(
    model: nn.Module, inputs: torch.Tensor, *, batch_size: int = 64, meta: Mapping[str, Any] | None = None
) -> np.ndarray:
    """Return the model's class probabilities for ``inputs`` (N, C, H, W), (N, K) float64.

    With a checkpoint's ``meta`` they are the released, calibrated scores
    (:func:`auditkit.nets.scores.calibrated_probabilities`, as ``auditkit
    predict`` computes them); without, the raw softmax.
    """
    device = model_device(model)
    out = []
    with borrowed_model(model), torch.no_grad():
        for start in range(0, inputs.shape[0], batch_size):
            outputs = model(inputs[start : start + batch_size].to(device))
            probs = class_probabilities(outputs) if meta is None else calibrated_probabilities(outputs, dict(meta))
            out.append(probs.double().cpu())
    return torch.cat(out).numpy() if out else np.empty((0, 0))


_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def safe_names(ids: Sequence[str]) -> list[str]:
    """Return one file-name-safe, unique stem per id (unsafe characters replaced, a hash suffix when changed)."""
    out: list[str] = []
    seen: set[str] = set()
    for raw in ids:
        stem = _SAFE.sub("_", str(raw))[:80].lstrip(".") or "image"
        if stem != str(raw) or stem in seen:
            stem = f"{stem}-{hashlib.sha256(str(raw).encode()).hexdigest()[:8]}"
        seen.add(stem)
        out.append(stem)
    return out


# --- auditkit explain -----------------------------------------------------------------------


@dataclass(frozen=True)
class ExplainSummary:
    """What ``auditkit explain`` wrote."""

    out: Path
    index: Path
    """explanations.csv: one row per image and method."""
    n_images: int
    methods: tuple[str, ...]
    n_from_cache: int


def parse_methods(text: str | Sequence[str]) -> tuple[str, ...]:
    """Return the method names of a comma-separated list, checked against :data:`METHODS`."""
    items = [m.strip().lower() for m in (text.split(",") if isinstance(text, str) else text) if m.strip()]
    aliases = attribution_methods.aliases()
    items = [aliases.get(m, m) for m in items]
    bad = [m for m in items if m not in METHODS]
    if bad or not items:
        raise InvalidInputError(
            f"--methods got {', '.join(bad) or 'nothing'}; choose from {', '.join(METHODS)} (comma-separated)"
        )
    return tuple(dict.fromkeys(items))


def resolve_target(text: str, classes: Any) -> str | int:
    """Return ``"predicted"``, ``"true"`` or a class index from ``--target`` (a class name or index)."""
    if text in ("predicted", "true"):
        return text
    names = list(getattr(classes, "classes", []))
    if text in names:
        return names.index(text)
    if text.isdigit() and int(text) < max(len(names), 1):
        return int(text)
    raise InvalidInputError(
        f"--target {text!r} is not 'predicted', 'true' or one of the model's classes {names}; "
        "give a class name or index"
    )


def explain_manifest(
    model_dir: str | os.PathLike[str],
    manifest_path: str | os.PathLike[str],
    *,
    methods: Sequence[str],
    out: str | os.PathLike[str],
    limit: int | None = None,
    select: str = "all",
    target: str = "predicted",
    device: str | None = None,
    batch_size: int | None = None,
    overlay_format: str = "png",
    random_state: int = 0,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    data_root: str | os.PathLike[str] | None = None,
    allow_outside_root: bool = False,
    trust_code: bool = False,
) -> ExplainSummary:
    """Explain the images of a manifest with a checkpoint; write overlays and explanations.csv under ``out``.

    ``select``: ``all`` (manifest order), ``random``, ``errors`` (misclassified,
    most confident first), ``top`` (highest score of the explained class) or
    ``stratified``; ``limit`` caps the count. ``target``: ``predicted``,
    ``true`` or a class name/index.
    """
    from auditkit.data.manifest import read_manifest
    from auditkit.explain.images import display_images, load_images, normalization_of
    from auditkit.explain.overlay import shared_scale, write_image, write_overlay
    from auditkit.explain.sampling import select as select_rows
    from auditkit.fileio import write_csv, write_json
    from auditkit.nets.checkpoint import load_checkpoint
    from auditkit.nets.device import select_device

    methods = parse_methods(methods)
    out = Path(out)
    from auditkit import distributed

    run_device = select_device(distributed.rank_device(device))
    ctx = distributed.init(run_device)
    loaded = load_checkpoint(model_dir, device=run_device, trust_code=trust_code)
    manifest = read_manifest(
        manifest_path, class_spec=loaded.classes, data_root=data_root, allow_outside_root=allow_outside_root
    )
    frame = manifest.frame.reset_index(drop=True)
    wanted = resolve_target(str(target), loaded.classes)
    size = int(batch_size or 16)

    if select in ("errors", "top", "stratified"):
        images = load_images(frame, loaded.preprocess, description="reading images")
        probs = class_probabilities_of(loaded.model, images.inputs, batch_size=size, meta=loaded.meta)
        frame = frame.assign(y_pred=probs.argmax(axis=1))
        column = int(wanted) if isinstance(wanted, int) else None
        frame["score"] = probs[np.arange(len(frame)), frame["y_pred"]] if column is None else probs[:, column]
        keep = select_rows(frame, how=select, limit=limit, random_state=random_state)
        positions = frame.index.get_indexer(keep)
        frame = frame.loc[keep].reset_index(drop=True)
        images = type(images)(
            ids=[images.ids[p] for p in positions],
            inputs=images.inputs[torch.as_tensor(positions, dtype=torch.long)],
            masks=[images.masks[p] for p in positions],
            rois=[images.rois[p] for p in positions],
        )
        probs = probs[positions]
    else:
        keep = select_rows(frame, how=select, limit=limit, random_state=random_state)
        frame = frame.loc[keep].reset_index(drop=True)
        images = load_images(frame, loaded.preprocess, description="reading images")
        probs = class_probabilities_of(loaded.model, images.inputs, batch_size=size, meta=loaded.meta)
    if len(frame) == 0:
        raise InvalidInputError(
            f"{manifest_path}: no images to explain after --select {select}"
            + (f" --limit {limit}" if limit is not None else "")
            + "; choose another selection"
        )

    if wanted == "true":
        target_arg: Any = frame["y_true"].to_numpy(dtype=np.int64)
    elif wanted == "predicted":
        # the class the released (calibrated) model predicts, as predict reports it
        target_arg = probs.argmax(axis=1).astype(np.int64)
    else:
        target_arg = wanted
    mean, std = normalization_of(loaded.preprocess)
    shown = display_images(images.inputs, mean=mean, std=std)
    stems = safe_names(images.ids)
    cache = MapCache(out / "cache")
    ext = "jpg" if overlay_format == "jpeg" else "png"
    rows: list[dict[str, Any]] = []
    record: dict[str, Any] = {}
    n_cached = 0

    def kwargs_of(method: str) -> dict[str, Any]:
        method_kwargs = dict((params or {}).get(method, {}))
        if method == "ig" and mean is not None:
            method_kwargs.setdefault("mean", mean)
            method_kwargs.setdefault("std", std)
        return method_kwargs

    if ctx.active:  # torchrun: each rank fills the cache with its shard; rank 0 draws from it
        from auditkit.explain.shards import explain_shard

        n_cached = explain_shard(
            loaded.model, images.inputs, methods=methods, method_kwargs=kwargs_of, target=target_arg,
            target_layer=loaded.target_layer, model_sha256=loaded.sha256, cache=cache, batch_size=size, ctx=ctx,
        )  # fmt: skip
        if not ctx.is_main:
            return ExplainSummary(out=out, index=out / "explanations.csv", n_images=len(frame),
                                  methods=methods, n_from_cache=n_cached)  # fmt: skip
    for i, stem in enumerate(stems):
        write_image(out / "images" / f"{stem}.{ext}", shown[i], fmt=overlay_format)
    for method in methods:
        method_kwargs = kwargs_of(method)
        result = explain_inputs(
            loaded.model,
            images.inputs,
            method=method,
            target=target_arg,
            target_layer=loaded.target_layer,
            params=method_kwargs,
            model_sha256=loaded.sha256,
            cache=cache,
            batch_size=size,
        )
        n_cached += 0 if ctx.active else result.n_from_cache
        display = result.display()
        steps = [*result.postprocessing, *DISPLAY_STEPS[method]]
        scale = shared_scale(display, label=f"{METHOD_LABELS[method]}, {', '.join(DISPLAY_STEPS[method])}, shared scale")
        for i, stem in enumerate(stems):
            path = out / "overlays" / f"{stem}__{method}.{ext}"
            write_overlay(path, shown[i], display[i], scale, mask=images.masks[i], fmt=overlay_format)
            row = {
                "id": images.ids[i],
                "method": method,
                "target_index": int(result.targets[i]),
                "target_class": _class_name(loaded.classes, int(result.targets[i])),
                "probability": float(probs[i, int(result.targets[i])]) if probs.size else float("nan"),
                "y_true": int(frame.loc[i, "y_true"]) if "y_true" in frame.columns else None,
                "image": f"images/{stem}.{ext}",
                "overlay": f"overlays/{stem}__{method}.{ext}",
            }
            row.update({k: v for k, v in result.extras[i].items()})
            rows.append(row)
        record[method] = {
            "params": result.params,
            "postprocessing": steps,
            "overlay_scale": scale.to_dict(),
            **result.batch_info,
        }
    table = pd.DataFrame(rows)
    index = out / "explanations.csv"
    write_csv(index, table)
    write_json(
        out / "explain.json",
        {
            "model": {"name": loaded.name, "sha256": loaded.sha256, "target_layer": loaded.target_layer},
            "manifest": {"path": str(manifest_path), "sha256": manifest.sha256},
            "selection": {"how": select, "limit": limit, "target": str(target), "n_images": len(frame)},
            "methods": record,
            **({"distributed": {"world_size": ctx.world_size}} if ctx.active else {}),
        },
    )
    return ExplainSummary(out=out, index=index, n_images=len(frame), methods=methods, n_from_cache=n_cached)


def _class_name(classes: Any, index: int) -> str:
    names = list(getattr(classes, "classes", []))
    return names[index] if 0 <= index < len(names) else str(index)
