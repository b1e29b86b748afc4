"""The audit's saliency section for a 3-D model: full-depth Grad-CAM on sampled volumes, 3-D localisation, slice gallery.

For a volume checkpoint audited with ``--model --manifest``, the audited
table's internal-test and external volumes are sampled (positives and
negatives alike, seeded), explained with Grad-CAM at the input's full depth
(:func:`auditkit.explain.volumes.explain_volumes`), and scored against their
3-D masks (hit rate and energy pointing with percentile-bootstrap intervals
over volumes). Each volume gives one gallery entry: the representative slice
through the attribution peak (the slice with the most positive saliency),
its overlay and the lesion outline on that slice, as PNGs under
``explain/volumes/``, so the report's gallery shows them like 2-D cases;
``slices`` names the most salient slices and the lesion's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

STEPS = ["upsample (trilinear, full depth)", "relu"]


def _interval(values: np.ndarray, *, seed: int, n_boot: int = 1000, level: float = 0.95) -> dict[str, Any]:
    """Return the mean of ``values`` (NaN left out) with a percentile-bootstrap interval over volumes."""
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return {"estimate": None, "ci_low": None, "ci_high": None, "reason": "no volume with a mask"}
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (n_boot, len(values)))].mean(axis=1)
    low, high = np.percentile(means, [50 * (1 - level), 50 * (1 + level)])
    return {"estimate": float(values.mean()), "ci_low": float(low), "ci_high": float(high),
            "method": "percentile bootstrap over volumes", "n": len(values)}  # fmt: skip


def _span(slices: list[int]) -> str:
    """Return ``"7-10"`` for the lesion's slices (``"none"`` without a lesion)."""
    return f"{min(slices)}-{max(slices)}" if slices else "none"


def _sample(frame: pd.DataFrame, threshold: float | None, n_cases: int, seed: int) -> pd.DataFrame:
    audited = frame[frame["split"].isin(["test", "external"])].reset_index(drop=True)
    positive = audited["y_true"].astype(int) == 1
    rng = np.random.default_rng(seed)
    chosen = []
    for part, k in ((audited[positive], (n_cases + 1) // 2), (audited[~positive], n_cases // 2)):
        if len(part):
            chosen.append(part.iloc[np.sort(rng.choice(len(part), min(k, len(part)), replace=False))])
    rows = pd.concat(chosen).reset_index(drop=True) if chosen else audited.iloc[:0]
    cut = 0.5 if threshold is None else float(threshold)
    called = rows["score"].to_numpy(dtype=float) >= cut
    truth = rows["y_true"].astype(int).to_numpy() == 1
    rows["category"] = np.select([truth & called, truth & ~called, ~truth & called],
                                 ["true_positive", "false_negative", "false_positive"], "true_negative")  # fmt: skip
    return rows


def volume_saliency_section(
    model_dir: str | os.PathLike[str],
    table: pd.DataFrame,
    out_dir: str | os.PathLike[str],
    *,
    threshold: float | None,
    n_cases: int = 8,
    seed: int = 0,
) -> dict[str, Any]:
    """Return ``{"saliency": {"gradcam": ...}, "gallery": [...]}`` of a 3-D checkpoint's audited ``table`` ({} if empty)."""
    from auditkit.data.volumes import VolumeDataset, read_volume, read_volume_mask
    from auditkit.explain.overlay import shared_scale, write_image, write_mask, write_overlay
    from auditkit.explain.runner import safe_names
    from auditkit.explain.volumes import explain_volumes, top_slices, volume_saliency_scores
    from auditkit.train.volumes import load_volume_model

    loaded = load_volume_model(model_dir)
    rows = _sample(table, threshold, n_cases, seed)
    if rows.empty:
        return {}
    dataset = VolumeDataset(rows, loaded.preprocess)
    inputs = torch.stack([dataset[i][0] for i in range(len(dataset))])
    maps = explain_volumes(loaded.model, inputs, method="gradcam", target_layer=loaded.target_layer, target=1)
    masks: list[np.ndarray | None] = []
    for path, image in zip(rows.get("mask", pd.Series([None] * len(rows))), rows["image"], strict=True):
        if path is None or (isinstance(path, float) and np.isnan(path)) or not str(path):
            masks.append(None)
            continue
        mask = read_volume_mask(path)
        if mask.shape != maps.shape[1:]:
            mask = loaded.preprocess.mask_to_input(mask, read_volume(image).spacing)
        masks.append(mask)
    scores = volume_saliency_scores(maps, masks)
    out = Path(out_dir)
    scale = shared_scale(maps, label="Grad-CAM, full depth, shared scale")
    gallery = []
    names = list(loaded.classes.classes)
    for i, stem in enumerate(safe_names([str(v) for v in rows["id"]])):
        slices = top_slices(maps[i], masks[i])
        peak = slices["saliency"][0]
        shown = loaded.preprocess.to_display(inputs[i])[peak]
        image_rel, overlay_rel = f"explain/volumes/{stem}.png", f"explain/volumes/{stem}__gradcam.png"
        write_image(out / image_rel, shown)
        lesion = None if masks[i] is None else masks[i][peak]
        write_overlay(out / overlay_rel, shown, maps[i][peak], scale, mask=lesion)
        mask_rel = None
        if lesion is not None and lesion.any():
            mask_rel = f"explain/volumes/{stem}__mask.png"
            write_mask(out / mask_rel, lesion)
        gallery.append({
            "id": str(rows.loc[i, "id"]), "cohort": str(rows.loc[i, "split"]) if rows.loc[i, "split"] == "test"
            else str(rows.loc[i, "site"]), "category": str(rows.loc[i, "category"]),
            "y_true": names[int(rows.loc[i, "y_true"])], "score": float(rows.loc[i, "score"]),
            "attributes": {"slice": f"{peak} of {maps.shape[1]} (saliency peak)",
                           "lesion slices": _span(slices["lesion"])},
            "image": image_rel, "overlays": {"gradcam": overlay_rel}, "overlay_scales": {"gradcam": scale.to_dict()},
            "mask": mask_rel, "spatial_dims": 3, "slice": int(peak),
            "slices": {"most_salient": slices["saliency"], "lesion": slices["lesion"]},
        })  # fmt: skip
    localization = {
        "n_images": int(sum(m is not None for m in masks)),
        "hit_rate": _interval(scores.hit, seed=seed),
        "energy_pointing": _interval(scores.energy_pointing, seed=seed),
    }
    section = {"n_images": len(rows), "spatial_dims": 3, "input_size": list(loaded.preprocess.size),
               "steps": STEPS, "target_layer": loaded.target_layer, "localization": localization}  # fmt: skip
    return {"saliency": {"gradcam": section}, "gallery": gallery}


def volume_explain_section(config: Any, table: Any, out_dir: Path, sections: dict[str, Any]) -> dict[str, Any]:
    """Return the 3-D saliency and gallery sections when ``config`` audits a volume ``--model`` ({} otherwise).

    ``config`` is the audit's config as given (before the volume model's run
    was scored into a table); ``table`` the audited PredictionsTable. The
    gallery's categories use the operating point frozen on validation.
    """
    from auditkit.train.kinds import VOLUME, checkpoint_kind

    if config.model is None or not config.explain or checkpoint_kind(config.model) != VOLUME:
        return {}
    frame = table.frame.copy()
    frame["score"] = table.probs[:, 1]
    threshold = (sections.get("operating_point") or {}).get("threshold")
    return volume_saliency_section(config.model, frame, out_dir, threshold=threshold,
                                   seed=config.settings.run_context.seed)  # fmt: skip
