"""The audit's gallery entries: which explained cases are shown, and their image, overlay and mask files.

One writer for the audit's single-label saliency step (:mod:`auditkit.audit.saliency`,
files under ``explain/``) and the multi-label one
(:mod:`auditkit.audit.multilabel_saliency`, files under ``explain/<finding>/``):
:class:`GalleryStyle` says where the files go and how outcomes are named,
:class:`ExplainedSet` holds one explained image set with its display maps and
their shared scales (computed once per run, so every entry and every case
record reads on the same colour scale).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from auditkit.explain.config import SaliencyConfig
from auditkit.explain.images import LoadedImages, display_images
from auditkit.explain.overlay import write_image, write_mask, write_overlay
from auditkit.explain.runner import display_scale, safe_names

CATEGORIES = ("true_positive", "false_negative", "false_positive", "true_negative")


@dataclass(frozen=True, eq=False)
class ExplainedSet:
    """Explained rows (``id``, ``y_true``, ``y_pred``, ``_score``, ``_cohort``; optional ``_category``, ``_rank``),
    their loaded images, each method's display maps (N, h, w) and the maps' shared scales."""

    rows: pd.DataFrame
    images: LoadedImages
    displays: dict[str, np.ndarray]
    scales: dict[str, Any]


@dataclass(frozen=True)
class GalleryStyle:
    """Where a gallery's files go and how its outcomes are named.

    ``base``: the folder under ``out_dir`` (``explain`` or ``explain/<finding>``);
    ``class_names``: the names of ``y_true``/``y_pred`` codes; ``fields``: extra
    entry fields (``{"finding": f}``).
    """

    out_dir: Path
    cfg: SaliencyConfig
    attributes: Sequence[str]
    mean: Any
    std: Any
    class_names: Sequence[str]
    positive: int | None
    base: str = "explain"
    fields: Mapping[str, Any] = field(default_factory=dict)


def shared_scales(displays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Return each method's display scale over all of its maps (one colour bar per method)."""
    return {m: display_scale(m, d) for m, d in displays.items()}


def category(y_true: int, y_pred: int, positive: int | None) -> str:
    """Return the gallery category of one outcome (``true_positive`` ... ``true_negative``)."""
    if positive is None:
        return "true_positive" if y_true == y_pred else "false_negative"
    if y_true == positive:
        return "true_positive" if y_pred == positive else "false_negative"
    return "false_positive" if y_pred == positive else "true_negative"


def categories_of(rows: pd.DataFrame, positive: int | None) -> list[str]:
    """Return the gallery category of every row (its ``y_true`` against its ``y_pred``)."""
    return [category(int(a), int(b), positive) for a, b in zip(rows["y_true"], rows["y_pred"], strict=True)]


def gallery_rows(
    sample: pd.DataFrame, categories: Sequence[str], cfg: SaliencyConfig, attributes: Sequence[str]
) -> list[int]:
    """Return the positions of ``sample`` shown: per cohort and category, then one per unseen attribute value."""
    rng = np.random.default_rng(cfg.seed)
    chosen: list[int] = []
    for cohort in pd.unique(sample["_cohort"]):
        for name in CATEGORIES:
            k = cfg.gallery_per_category if name != "true_negative" else min(1, cfg.gallery_per_category)
            rows = np.flatnonzero((sample["_cohort"].to_numpy() == cohort) & (np.asarray(categories) == name))
            if len(rows) and k:
                chosen.extend(sorted(rng.choice(rows, size=min(k, len(rows)), replace=False).tolist()))
    for column in attributes:
        for value in sorted(sample[column].dropna().unique(), key=str):
            shown = set(sample.loc[chosen, column]) if chosen else set()
            if value not in shown:
                rows = np.flatnonzero((sample[column] == value).to_numpy())
                chosen.append(int(rng.choice(rows)))
    return list(dict.fromkeys(chosen))[: cfg.gallery_max]


def plain(value: Any) -> Any:
    """Return a table cell as a JSON value (numpy scalars unwrapped, NaN as None, anything else as text)."""
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if value is None or pd.isna(value):
        return None
    return value if isinstance(value, (int, float, bool, str)) else str(value)


def _name(names: Sequence[str], code: int) -> str:
    return str(names[code]) if 0 <= code < len(names) else str(code)


def gallery_entries(explained: ExplainedSet, chosen: Sequence[int], style: GalleryStyle) -> list[dict[str, Any]]:
    """Return the gallery entries of the ``chosen`` positions of ``explained``, their files written."""
    if not len(chosen):
        return []
    rows, images, cfg = explained.rows, explained.images, style.cfg
    stems = safe_names([str(i) for i in rows["id"]])
    ext = "jpg" if cfg.overlay_format == "jpeg" else "png"
    shown = display_images(images.inputs[torch.as_tensor(list(chosen), dtype=torch.long)], mean=style.mean,
                           std=style.std)  # fmt: skip
    attributes = [c for c in style.attributes if c in rows.columns]
    out = []
    for j, i in enumerate(chosen):
        row = rows.iloc[i]
        image_rel = f"{style.base}/images/{stems[i]}.{ext}"
        write_image(style.out_dir / image_rel, shown[j], fmt=cfg.overlay_format)
        overlays = {}
        for method, maps in explained.displays.items():
            overlays[method] = f"{style.base}/overlays/{stems[i]}__{method}.{ext}"
            write_overlay(style.out_dir / overlays[method], shown[j], maps[i], explained.scales[method],
                          mask=images.masks[i], fmt=cfg.overlay_format)  # fmt: skip
        mask_rel = None
        if images.masks[i] is not None:
            mask_rel = f"{style.base}/masks/{stems[i]}.png"
            write_mask(style.out_dir / mask_rel, images.masks[i])
        y_true, y_pred = int(row["y_true"]), int(row["y_pred"])
        entry = {
            "id": str(row["id"]), **style.fields, "cohort": str(row["_cohort"]),
            "category": str(row["_category"]) if "_category" in rows.columns
            else category(y_true, y_pred, style.positive),
            "y_true": _name(style.class_names, y_true), "y_pred": _name(style.class_names, y_pred),
            "score": float(row["_score"]), "attributes": {c: plain(row[c]) for c in attributes},
            "image": image_rel, "overlays": overlays,
            "overlay_scales": {m: s.to_dict() for m, s in explained.scales.items()}, "mask": mask_rel,
        }  # fmt: skip
        if "_rank" in rows.columns:
            entry["worst_rank"] = int(row["_rank"])
        out.append(entry)
    return out
