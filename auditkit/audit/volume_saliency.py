"""The audit's saliency section for a 3-D model: full-depth Grad-CAM on sampled volumes, 3-D localisation, slice gallery.

For a volume checkpoint audited with ``--model --manifest``, the audited
table's internal-test and external volumes are sampled (positives and
negatives alike, seeded), explained with Grad-CAM at the input's full depth
(:func:`auditkit.explain.volumes.explain_volumes`), and scored against their
3-D masks (hit rate and energy pointing; the run context's bootstrap
intervals over volumes, :func:`auditkit.explain.evaluation.bootstrap.bootstrap_mean`,
as the 2-D evidence). Each volume gives one gallery entry: the representative slice
through the attribution peak (the slice with the most positive saliency),
its overlay and the lesion outline on that slice, as PNGs under
``explain/volumes/``, so the report's gallery shows them like 2-D cases;
``slices`` names the most salient slices and the lesion's. Each volume is
also a viewer case in ``explain/cases.json`` (:func:`auditkit.explain.cases.write_cases`
with every slice from :func:`auditkit.explain.cases.write_volume_slices`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from auditkit.run_context import RunContext

STEPS = ["upsample (trilinear, full depth)", "relu"]
METHOD_LABEL = "Grad-CAM (3-D, full depth)"


def _interval(values: np.ndarray, rows: pd.DataFrame, run_context: RunContext) -> dict[str, Any]:
    """Return the mean of ``values`` over volumes (NaN left out) with the run's bootstrap interval (patients together)."""
    from auditkit.explain.evaluation.bootstrap import bootstrap_mean
    from auditkit.results import Estimate

    if not np.isfinite(values).any():
        return Estimate.undefined("no volume with a mask").to_dict()
    clusters = rows["patient_id"].to_numpy(dtype=object) if "patient_id" in rows.columns else None
    return bootstrap_mean(
        values, clusters=clusters, n_boot=run_context.n_boot, ci_level=run_context.ci_level,
        ci_method=run_context.ci_method, random_state=run_context.seed,
    ).to_dict()  # fmt: skip


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


def _masks(rows: pd.DataFrame, shape: tuple[int, ...], loaded: Any) -> list[np.ndarray | None]:
    """Return each sampled volume's 3-D lesion mask on the model's input grid (None without one)."""
    from auditkit.data.volumes import read_volume, read_volume_mask

    masks: list[np.ndarray | None] = []
    for path, image in zip(rows.get("mask", pd.Series([None] * len(rows))), rows["image"], strict=True):
        if path is None or (isinstance(path, float) and np.isnan(path)) or not str(path):
            masks.append(None)
            continue
        mask = read_volume_mask(path)
        if mask.shape != shape:
            mask = loaded.preprocess.mask_to_input(mask, read_volume(image).spacing)
        masks.append(mask)
    return masks


def _cohort(row: pd.Series) -> str:
    return str(row["split"]) if row["split"] == "test" else str(row["site"])


def volume_saliency_section(
    model_dir: str | os.PathLike[str],
    table: pd.DataFrame,
    out_dir: str | os.PathLike[str],
    *,
    threshold: float | None,
    n_cases: int = 8,
    seed: int = 0,
    run_context: RunContext | None = None,
    attributes: list[str] | tuple[str, ...] = (),
) -> dict[str, Any]:
    """Return ``{"saliency": {"gradcam": ...}, "gallery": [...]}`` of a 3-D checkpoint's audited ``table`` ({} if empty).

    Also writes the viewer's case records (``explain/cases.json``, one per
    sampled volume, with every slice). ``run_context``: the audit's intervals
    (n_boot, level, method; its seed); None: the defaults with ``seed``.
    """
    from auditkit.data.volumes import VolumeDataset
    from auditkit.explain.overlay import shared_scale, write_image, write_mask, write_overlay
    from auditkit.explain.runner import safe_names
    from auditkit.explain.volumes import explain_volumes, top_slices, volume_saliency_scores
    from auditkit.train.volumes import load_volume_model

    run_context = RunContext(seed=seed) if run_context is None else run_context
    loaded = load_volume_model(model_dir)
    rows = _sample(table, threshold, n_cases, run_context.seed)
    if rows.empty:
        return {}
    dataset = VolumeDataset(rows, loaded.preprocess)
    inputs = torch.stack([dataset[i][0] for i in range(len(dataset))])
    maps = explain_volumes(loaded.model, inputs, method="gradcam", target_layer=loaded.target_layer, target=1)
    masks = _masks(rows, maps.shape[1:], loaded)
    scores = volume_saliency_scores(maps, masks)
    out = Path(out_dir)
    scale = shared_scale(maps, label="Grad-CAM, full depth, shared scale")
    gallery, shown, peaks = [], [], []
    names = list(loaded.classes.classes)
    stems = safe_names([str(v) for v in rows["id"]])
    for i, stem in enumerate(stems):
        slices = top_slices(maps[i], masks[i])
        peak = slices["saliency"][0]
        shown.append(loaded.preprocess.to_display(inputs[i]))
        peaks.append(peak)
        image_rel, overlay_rel = f"explain/volumes/{stem}.png", f"explain/volumes/{stem}__gradcam.png"
        write_image(out / image_rel, shown[i][peak])
        lesion = None if masks[i] is None else masks[i][peak]
        write_overlay(out / overlay_rel, shown[i][peak], maps[i][peak], scale, mask=lesion)
        mask_rel = None
        if lesion is not None and lesion.any():
            mask_rel = f"explain/volumes/{stem}__mask.png"
            write_mask(out / mask_rel, lesion)
        gallery.append({
            "id": str(rows.loc[i, "id"]), "cohort": _cohort(rows.loc[i]), "category": str(rows.loc[i, "category"]),
            "y_true": names[int(rows.loc[i, "y_true"])], "score": float(rows.loc[i, "score"]),
            "attributes": {"slice": f"{peak} of {maps.shape[1]} (saliency peak)",
                           "lesion slices": _span(slices["lesion"])},
            "image": image_rel, "overlays": {"gradcam": overlay_rel}, "overlay_scales": {"gradcam": scale.to_dict()},
            "mask": mask_rel, "spatial_dims": 3, "slice": int(peak),
            "slices": {"most_salient": slices["saliency"], "lesion": slices["lesion"]},
        })  # fmt: skip
    _write_viewer_cases(out, rows, stems, shown, maps, masks, peaks, scale, names=names, threshold=threshold,
                        attributes=[a for a in attributes if a in rows.columns], target_layer=loaded.target_layer)  # fmt: skip
    localization = {
        "n_images": int(sum(m is not None for m in masks)),
        "hit_rate": _interval(scores.hit, rows, run_context),
        "energy_pointing": _interval(scores.energy_pointing, rows, run_context),
    }
    section = {"n_images": len(rows), "spatial_dims": 3, "input_size": list(loaded.preprocess.size),
               "steps": STEPS, "target_layer": loaded.target_layer, "localization": localization}  # fmt: skip
    return {"saliency": {"gradcam": section}, "gallery": gallery}


def _write_viewer_cases(
    out: Path, rows: pd.DataFrame, stems: list[str], shown: list[np.ndarray], maps: np.ndarray,
    masks: list[np.ndarray | None], peaks: list[int], scale: Any, *, names: list[str], threshold: float | None,
    attributes: list[str], target_layer: str | None,
) -> Path:  # fmt: skip
    """Return the path of ``explain/cases.json`` written for the explained volumes (every slice, for the viewer)."""
    from auditkit.explain.cases import write_cases, write_volume_slices
    from auditkit.explain.config import SaliencyConfig

    scales = {"gradcam": scale}
    volumes = [
        write_volume_slices(out, stem, shown[i], {"gradcam": maps[i]}, masks[i], scales, representative=peaks[i])
        for i, stem in enumerate(stems)
    ]
    cut = 0.5 if threshold is None else float(threshold)
    sample = rows.assign(
        y_pred=(rows["score"].to_numpy(dtype=float) >= cut).astype(int), _score=rows["score"].astype(float),
        _cohort=[_cohort(rows.loc[i]) for i in range(len(rows))],
    )  # fmt: skip
    at_peak = [None if m is None else m[p] for m, p in zip(masks, peaks, strict=True)]
    return write_cases(
        out, sample, shown=[s[p] for s, p in zip(shown, peaks, strict=True)], masks=at_peak,
        rois=[None] * len(rows), displays={"gradcam": np.stack([maps[i][p] for i, p in enumerate(peaks)])},
        scales=scales, categories=list(rows["category"]), class_names=names, positive=1, threshold=threshold,
        attributes=attributes, corner_fraction=SaliencyConfig.model_fields["corner_fraction"].default,
        methods={"gradcam": {"label": METHOD_LABEL, "params": {"target_layer": target_layer}, "postprocessing": STEPS}},
        stems=stems, volumes=volumes,
    )  # fmt: skip


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
                                   run_context=config.settings.run_context,
                                   attributes=list(config.settings.attributes))  # fmt: skip
