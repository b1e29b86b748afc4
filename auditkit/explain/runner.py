"""Explaining many images: fixed batches through the on-disk cache, and ``auditkit explain`` over a manifest.

:func:`explain_inputs` computes one method's maps for a stack of inputs in
batches whose composition depends only on the order of the inputs, so a rerun
after an interruption recomputes exactly the batches that were not finished
and produces identical maps. Each finished map is written to the
:class:`~auditkit.explain.cache.MapCache` before the next batch starts.

:func:`explain_manifest` is the command's work: load the checkpoint and the
manifest, choose the images (``--select``, ``--limit``), explain them with each
method through :func:`auditkit.explain.sample.explain_sample` (the audit's
saliency step uses the same function), and write overlays, the plain images
and an index table.
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
from auditkit.explain.guard import model_device
from auditkit.explain.postprocess import apply_steps
from auditkit.fileio import guards_inputs
from auditkit.progress import track

DISPLAY_STEPS: dict[str, tuple[str, ...]] = {
    m: attribution_methods.get(m).display_steps for m in attribution_methods.names()
}
"""Steps after the raw map for display and evaluation: positive evidence for the class
(Grad-CAM's own ReLU, Selvaraju et al. 2017; IG's positive attributions), and
SmoothGrad's absolute value (Smilkov et al. 2017)."""

METHOD_LABELS: dict[str, str] = attribution_methods.labels()


def display_scale(method: str, display: np.ndarray) -> Any:
    """Return the OverlayScale shared by every panel of ``method``'s ``display`` maps, labelled with its steps."""
    from auditkit.explain.overlay import shared_scale

    steps = ", ".join(DISPLAY_STEPS.get(method, ()))
    return shared_scale(display, label=f"{METHOD_LABELS.get(method, method)}, {steps}, shared scale")


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
            cache_key(model_sha256=sha, input_sha256=input_digest(inputs[i]), method=method, params=recorded,
                      postprocessing=steps, target=specs[i])
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
        batch_info.update({k: result.extras[k] for k in _BATCH_FACTS if k in result.extras})
        for j, i in enumerate(range(start, stop)):
            entry = _entry(result, j)
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
        params=recorded, postprocessing=names, n_from_cache=from_cache, batch_info=batch_info,
    )  # fmt: skip


_BATCH_FACTS = ("internal_batch_size", "precision", "tolerance")
"""Batch-level diagnostics of a result (one value per batch, not per image)."""
_IMAGE_FACTS = ("delta", "relative_delta", "completeness_passed")
"""Per-image diagnostics of a result, kept with each cached map."""


def _entry(result: Any, j: int) -> CachedMap:
    """Return the cache entry of image ``j`` of an :class:`~auditkit.explain.api.AttributionResult`."""
    extras = {
        k: (v[j].item() if isinstance(v, np.ndarray) else v) for k, v in result.extras.items() if k in _IMAGE_FACTS
    }
    return CachedMap(map=result.maps[j], target=int(result.targets[j]), scores=result.scores[j], extras=extras,
                     postprocessing=result.postprocessing)  # fmt: skip


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


@guards_inputs(model_dir="the model folder", manifest_path="the manifest")
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
    ``true`` or a class name/index. The images are scored by
    :func:`auditkit.predict.score_frame` and explained by
    :func:`auditkit.explain.sample.explain_sample`, as in the audit; under
    torchrun both are split over the ranks and rank 0 writes every output.
    """
    from auditkit import distributed
    from auditkit.data.manifest import read_manifest
    from auditkit.explain.images import load_images
    from auditkit.explain.sample import ImageSet, explain_sample
    from auditkit.nets.checkpoint import load_checkpoint
    from auditkit.nets.device import select_device

    methods = parse_methods(methods)
    out = Path(out)
    run_device = select_device(distributed.rank_device(device))
    ctx = distributed.init(run_device)
    loaded = load_checkpoint(model_dir, device=run_device, trust_code=trust_code)
    manifest = read_manifest(
        manifest_path, class_spec=loaded.classes, data_root=data_root, allow_outside_root=allow_outside_root
    )
    wanted = resolve_target(str(target), loaded.classes)
    size = int(batch_size or 16)
    frame, probs = _chosen(loaded, manifest.frame.reset_index(drop=True), select=select, limit=limit,
                           wanted=wanted, random_state=random_state, batch_size=size, ctx=ctx)  # fmt: skip
    if len(frame) == 0:
        raise InvalidInputError(
            f"{manifest_path}: no images to explain after --select {select}"
            + (f" --limit {limit}" if limit is not None else "")
            + "; choose another selection"
        )
    images = load_images(frame, loaded.preprocess, description="reading images")
    pages = _Pages(out, loaded, images, overlay_format) if ctx.is_main else None
    record: dict[str, Any] = {}
    n_cached = 0
    for entry in explain_sample(  # under torchrun: every rank's shard first; rank 0 alone gets the maps
        loaded, {"images": ImageSet(images.inputs, _explained_class(wanted, frame, probs))}, methods=methods,
        params=params, cache=MapCache(out / "cache"), batch_size=size, ctx=ctx,
    ):  # fmt: skip
        n_cached += entry.n_from_cache
        record[entry.method] = pages.method(entry.method, entry.maps["images"], frame, probs)
    summary = ExplainSummary(out=out, index=out / "explanations.csv", n_images=len(frame), methods=methods,
                             n_from_cache=n_cached)  # fmt: skip
    if pages is not None:
        selection = {"how": select, "limit": limit, "target": str(target), "n_images": len(frame)}
        pages.finish(summary.index, manifest_path, manifest.sha256, selection, record, ctx)
    return summary


def _chosen(
    loaded: Any, frame: pd.DataFrame, *, select: str, limit: int | None, wanted: str | int,
    random_state: int, batch_size: int, ctx: Any,
) -> tuple[pd.DataFrame, np.ndarray]:  # fmt: skip
    """Return the rows ``--select``/``--limit`` choose and their released class probabilities (N, K).

    ``errors``, ``top`` and ``stratified`` rank by score, so every row is
    scored first (under torchrun each rank its shard); the other selections
    score only the chosen rows.
    """
    from auditkit.explain.sampling import select as select_rows
    from auditkit.predict import score_frame

    if select in ("errors", "top", "stratified"):
        probs = score_frame(loaded, frame, batch_size=batch_size, ctx=ctx)
        frame = frame.assign(y_pred=probs.argmax(axis=1))
        column = int(wanted) if isinstance(wanted, int) else None
        frame["score"] = probs[np.arange(len(frame)), frame["y_pred"]] if column is None else probs[:, column]
        keep = select_rows(frame, how=select, limit=limit, random_state=random_state)
        probs = probs[frame.index.get_indexer(keep)]
        return frame.loc[keep].reset_index(drop=True), probs
    keep = select_rows(frame, how=select, limit=limit, random_state=random_state)
    frame = frame.loc[keep].reset_index(drop=True)
    return frame, score_frame(loaded, frame, batch_size=batch_size, ctx=ctx)


def _explained_class(wanted: str | int, frame: pd.DataFrame, probs: np.ndarray) -> Any:
    """Return the class to explain per image: the true class, the released model's prediction, or one index."""
    if wanted == "true":
        return frame["y_true"].to_numpy(dtype=np.int64)
    if wanted == "predicted":
        # the class the released (calibrated) model predicts, as predict reports it
        return probs.argmax(axis=1).astype(np.int64)
    return wanted


class _Pages:
    """What ``auditkit explain`` writes on rank 0: the plain images, each method's overlays, the index."""

    def __init__(self, out: Path, loaded: Any, images: Any, overlay_format: str) -> None:
        from auditkit.explain.images import display_images, normalization_of
        from auditkit.explain.overlay import write_image

        self.out, self.loaded, self.images, self.format = out, loaded, images, overlay_format
        self.ext = "jpg" if overlay_format == "jpeg" else "png"
        mean, std = normalization_of(loaded.preprocess)
        self.shown = display_images(images.inputs, mean=mean, std=std)
        self.stems = safe_names(images.ids)
        self.rows: list[dict[str, Any]] = []
        for i, stem in enumerate(self.stems):
            write_image(out / "images" / f"{stem}.{self.ext}", self.shown[i], fmt=overlay_format)

    def method(self, method: str, result: MapSet, frame: pd.DataFrame, probs: np.ndarray) -> dict[str, Any]:
        """Write ``method``'s overlays on one shared scale, add its index rows; return its explain.json record."""
        from auditkit.explain.overlay import write_overlay

        display = result.display()
        steps = [*result.postprocessing, *DISPLAY_STEPS[method]]
        scale = display_scale(method, display)
        for i, stem in enumerate(self.stems):
            overlay = f"overlays/{stem}__{method}.{self.ext}"
            write_overlay(self.out / overlay, self.shown[i], display[i], scale, mask=self.images.masks[i], fmt=self.format)
            k = int(result.targets[i])
            self.rows.append({
                "id": self.images.ids[i],
                "method": method,
                "target_index": k,
                "target_class": _class_name(self.loaded.classes, k),
                "probability": float(probs[i, k]) if probs.size else float("nan"),
                "y_true": int(frame.loc[i, "y_true"]) if "y_true" in frame.columns else None,
                "image": f"images/{stem}.{self.ext}",
                "overlay": overlay,
                **result.extras[i],
            })  # fmt: skip
        return {"params": result.params, "postprocessing": steps, "overlay_scale": scale.to_dict(), **result.batch_info}

    def finish(
        self, index: Path, manifest_path: Any, manifest_sha256: str, selection: dict[str, Any],
        record: dict[str, Any], ctx: Any,
    ) -> None:  # fmt: skip
        """Write explanations.csv and explain.json (model, manifest, selection, methods, world size)."""
        from auditkit.fileio import write_csv, write_json

        write_csv(index, pd.DataFrame(self.rows))
        loaded = self.loaded
        write_json(
            self.out / "explain.json",
            {
                "model": {"name": loaded.name, "sha256": loaded.sha256, "target_layer": loaded.target_layer},
                "manifest": {"path": str(manifest_path), "sha256": manifest_sha256},
                "selection": selection,
                "methods": record,
                **({"distributed": {"world_size": ctx.world_size}} if ctx.active else {}),
            },
        )


def _class_name(classes: Any, index: int) -> str:
    names = list(getattr(classes, "classes", []))
    return names[index] if 0 <= index < len(names) else str(index)
