"""The saliency evidence of one attribution method: the section builder behind ``saliency.<method>``.

Given the maps of a sample (and of validation images with masks), the
images, the model and the run's settings, :func:`method_evidence` returns
the results.json block of one method: localisation against lesion masks
(Saporta et al. 2022), faithfulness (deletion/insertion against a random
order; Petsiuk et al. 2018), the model-randomisation sanity check (Adebayo
et al. 2018), the shortcut score, stability under noise and shifts, IG's
completeness, and per-subgroup values. Every interval is the run's
(:class:`~auditkit.run_context.RunContext`: seed, n_boot, ci_level and
ci_method), over images or, with patient ids, over patients. The audit's
saliency step (:mod:`auditkit.audit.saliency`) only sequences the sampling,
the attribution runs and the gallery around it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from auditkit.explain.config import SaliencyConfig
from auditkit.explain.evaluation.bootstrap import bootstrap_mean, bootstrap_ratio
from auditkit.explain.evaluation.faithfulness import perturbation_curves
from auditkit.explain.evaluation.localization import localization_scores, tune_threshold
from auditkit.explain.evaluation.sanity import sanity_check
from auditkit.explain.evaluation.shortcut import (
    corner_masses,
    corner_shares,
    diffuse_map_score,
    outside_roi_shares,
    region_name,
)
from auditkit.explain.evaluation.stability import noise_stability, shift_stability
from auditkit.explain.images import LoadedImages
from auditkit.explain.runner import DISPLAY_STEPS, METHOD_LABELS, MapSet, explain_inputs
from auditkit.progress import status


@dataclass(frozen=True, eq=False)
class EvidenceInputs:
    """What the evidence of one method is computed from (the sample, its maps, the model, the settings)."""

    method: str
    maps: MapSet
    val_maps: MapSet | None
    images: LoadedImages
    val_images: LoadedImages | None
    sample: pd.DataFrame
    """the explained rows (``_cohort`` column, attributes, ``patient_id`` when known)."""
    loaded: Any
    """:class:`auditkit.nets.checkpoint.LoadedModel`."""
    cfg: SaliencyConfig
    params: dict[str, Any]
    target_text: str
    mean: Any
    std: Any
    attributes: list[str]

    @property
    def patients(self) -> np.ndarray | None:
        """Return each sampled image's patient id (resampled together), or None."""
        if "patient_id" not in self.sample.columns:
            return None
        return self.sample["patient_id"].to_numpy(dtype=object)

    def mean_estimate(self, values: np.ndarray, rows: np.ndarray | None = None) -> dict[str, Any]:
        """Return the Estimate (dict) of the mean of ``values``, one per sample row selected by ``rows``."""
        patients = self.patients
        clusters = None if patients is None else (patients if rows is None else patients[rows])
        c = self.cfg
        return bootstrap_mean(
            values, clusters=clusters, n_boot=c.n_boot, ci_level=c.ci_level, ci_method=c.ci_method,
            random_state=c.seed,
        ).to_dict()  # fmt: skip

    def ratio_estimate(self, num: np.ndarray, den: np.ndarray, rows: np.ndarray | None = None) -> dict[str, Any]:
        """Return the Estimate (dict) of sum(num) / sum(den) over the sample rows selected by ``rows``."""
        patients = self.patients
        clusters = None if patients is None else (patients if rows is None else patients[rows])
        c = self.cfg
        return bootstrap_ratio(
            num, den, clusters=clusters, n_boot=c.n_boot, ci_level=c.ci_level, ci_method=c.ci_method,
            random_state=c.seed,
        ).to_dict()  # fmt: skip

    def explain(self, model: torch.nn.Module, x: torch.Tensor, t: torch.Tensor, *, display: bool) -> np.ndarray:
        """Return this method's maps of ``x`` for targets ``t`` (raw, or after the display steps)."""
        maps = explain_inputs(
            model, x, method=self.method, target=t.cpu().numpy(), target_layer=self.loaded.target_layer,
            params=self.params, batch_size=self.cfg.batch_size, show_progress=False,
        )  # fmt: skip
        return maps.display() if display else maps.maps


def subset(n: int, k: int, seed: int) -> np.ndarray:
    """Return ``k`` sorted row indices of ``n`` drawn with ``seed`` (all rows when n <= k)."""
    if n <= k:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


def _lesion_mask(images: LoadedImages) -> np.ndarray:
    return np.array([m is not None and bool(m.any()) for m in images.masks])


def _tuned_threshold(ev: EvidenceInputs) -> float | None:
    if ev.val_maps is None or ev.val_images is None:
        return None
    val_lesion = [i for i, m in enumerate(ev.val_images.masks) if m is not None and m.any()]
    if not val_lesion:
        return None
    return tune_threshold(ev.val_maps.display()[val_lesion], np.stack([ev.val_images.masks[i] for i in val_lesion]))


def localization(ev: EvidenceInputs, display: np.ndarray) -> tuple[dict[str, Any] | None, np.ndarray]:
    """Return the localisation block (None without lesion masks) and each image's pointing-game hit (NaN: no lesion)."""
    lesion = _lesion_mask(ev.images)
    hits = np.full(len(display), np.nan)
    if not lesion.any():
        return None, hits
    masks = np.stack([ev.images.masks[i] for i in np.flatnonzero(lesion)])
    threshold = _tuned_threshold(ev)
    scores = localization_scores(display[lesion], masks, threshold=threshold)
    hits[lesion] = scores.hit
    no_val = {"estimate": None, "ci_low": None, "ci_high": None,
              "reason": "no validation images with lesion masks to tune the threshold"}  # fmt: skip
    est = ev.mean_estimate
    block = {
        "hit_rate": est(scores.hit, lesion),
        "energy_pointing": est(scores.energy_pointing, lesion),
        "iou_otsu": est(scores.iou_otsu, lesion),
        "dice_otsu": est(scores.dice_otsu, lesion),
        "iou_tuned": est(scores.iou_tuned, lesion) if scores.iou_tuned is not None else no_val,
        "dice_tuned": est(scores.dice_tuned, lesion) if scores.dice_tuned is not None else no_val,
        "threshold_tuned": threshold,
        "n_images": int(lesion.sum()),
    }
    return block, hits


def faithfulness(
    ev: EvidenceInputs, display: np.ndarray, *, probability: Any = None, score: str | None = None
) -> dict[str, Any]:
    """Return the deletion/insertion AUCs of the method's order and of a random order.

    ``probability`` (logits -> probabilities) and ``score`` (its description)
    replace the checkpoint's calibrated softmax, e.g. ``torch.sigmoid`` for a
    multi-label head whose outputs are independent findings.
    """
    cfg, model = ev.cfg, ev.loaded.model
    pick = subset(len(display), cfg.faithfulness_images, cfg.seed)
    kwargs = dict(
        n_steps=cfg.faithfulness_steps, mean=ev.mean, std=ev.std, batch_size=max(cfg.batch_size * 4, 64),
        calibration=ev.loaded.meta, probability=probability,
    )
    x, shown, t = ev.images.inputs[pick], display[pick], ev.maps.targets[pick]
    ordered = perturbation_curves(model, x, shown, t, **kwargs)
    shuffled = perturbation_curves(model, x, shown, t, order="random", random_state=cfg.seed, **kwargs)
    est = ev.mean_estimate
    return {
        "deletion_auc": est(ordered.deletion_auc, pick),
        "insertion_auc": est(ordered.insertion_auc, pick),
        "deletion_auc_random": est(shuffled.deletion_auc, pick),
        "insertion_auc_random": est(shuffled.insertion_auc, pick),
        "n_images": len(pick),
        "n_steps": cfg.faithfulness_steps,
        "substrates": {"deletion": "black", "insertion": "blurred"},
        "score": score or _faithfulness_score(ev.loaded.meta),
    }


def _faithfulness_score(meta: dict[str, Any]) -> str:
    """Return which score the deletion/insertion curves follow, in words (results.json ``faithfulness.score``)."""
    record = meta.get("calibration") or {}
    if record.get("method") != "temperature":
        return "probability of the explained class (softmax of the logits; the checkpoint records no calibration)"
    offset = " with the prior logit offset" if record.get("logit_offset") is not None else ""
    return (
        "calibrated probability of the explained class, as predict reports it: softmax of the logits"
        f"{offset}, divided by the checkpoint's temperature {float(record['temperature']):.3g}"
    )


def sanity(ev: EvidenceInputs, display: np.ndarray) -> dict[str, Any]:
    """Return the model-randomisation sanity check (on a deep copy of the model, inside sanity_check)."""
    cfg = ev.cfg
    pick = subset(len(display), cfg.sanity_images, cfg.seed + 1)
    status(f"saliency: {METHOD_LABELS[ev.method]} randomisation sanity check on {len(pick)} images")
    targets = torch.as_tensor(ev.maps.targets)
    patients = ev.patients
    return sanity_check(
        ev.loaded.model, lambda m, x, t: ev.explain(m, x, t, display=False), ev.images.inputs[pick], targets[pick],
        max_blocks=cfg.sanity_blocks, independent=cfg.sanity_independent, random_state=cfg.seed,
    ).to_dict(
        n_boot=cfg.n_boot, random_state=cfg.seed, ci_level=cfg.ci_level, ci_method=cfg.ci_method,
        clusters=None if patients is None else patients[pick],
    )  # fmt: skip


def shortcut(ev: EvidenceInputs, display: np.ndarray) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """Return (the pooled shortcut score, the ``shortcut`` block, the ratio function for subgroups)."""
    cfg, images = ev.cfg, ev.images
    inside, mass = corner_masses(display, rois=images.rois, fraction=cfg.corner_fraction)

    def ratio(mask: np.ndarray) -> dict[str, Any]:
        return ev.ratio_estimate(inside[mask], mass[mask], mask)

    cohorts = ev.sample["_cohort"].to_numpy()
    outside_roi = None
    if any(r is not None for r in images.rois):
        outside_roi = ev.ratio_estimate(*outside_roi_shares(display, images.rois))
    block = {
        "region": region_name(images.rois),
        "corner_fraction": cfg.corner_fraction,
        "diffuse_map_score": diffuse_map_score(cfg.corner_fraction),
        "per_image_mean": ev.mean_estimate(corner_shares(inside, mass)),
        "outside_roi": outside_roi,
        "by_cohort": {str(c): ratio(cohorts == c) for c in pd.unique(cohorts)},
    }
    return ratio(np.ones(len(display), dtype=bool)), block, ratio


def stability(ev: EvidenceInputs, display: np.ndarray) -> dict[str, Any]:
    """Return SSIM of the maps under input noise and under a small shift."""
    cfg = ev.cfg
    pick = subset(len(display), cfg.stability_images, cfg.seed + 2)
    model = ev.loaded.model
    x, t = ev.images.inputs[pick], torch.as_tensor(ev.maps.targets)[pick]

    def shown(m: torch.nn.Module, xs: torch.Tensor, ts: torch.Tensor) -> np.ndarray:
        return ev.explain(m, xs, ts, display=True)

    noise = noise_stability(model, shown, x, t, display[pick], level=cfg.stability_noise, random_state=cfg.seed)
    moved = shift_stability(model, shown, x, t, display[pick], pixels=cfg.stability_shift)
    return {
        "noise_ssim": ev.mean_estimate(noise, pick),
        "shift_ssim": ev.mean_estimate(moved, pick),
        "noise_level": cfg.stability_noise,
        "shift_pixels": cfg.stability_shift,
        "n_images": len(pick),
    }


def completeness(maps: MapSet) -> dict[str, Any]:
    """Return IG's completeness summary: relative gaps between the map's sum and the score difference."""
    relative = np.array([e.get("relative_delta", np.nan) for e in maps.extras], dtype=float)
    passed = np.array([bool(e.get("completeness_passed", False)) for e in maps.extras])
    return {
        "tolerance": float(maps.batch_info.get("tolerance", maps.params.get("tolerance", 0.05))),
        "max_rel_delta": float(np.nanmax(relative)) if relative.size else None,
        "median_rel_delta": float(np.nanmedian(relative)) if relative.size else None,
        "n_failed": int((~passed).sum()),
        "passed": bool(passed.all()),
        "precision": maps.batch_info.get("precision", "fp32"),
    }


def by_group(ev: EvidenceInputs, hits: np.ndarray, ratio: Any) -> dict[str, Any]:
    """Return the shortcut score and hit rate per value of each subgroup attribute."""
    out: dict[str, Any] = {}
    for column in ev.attributes:
        values = ev.sample[column]
        out[column] = {}
        for v in sorted(values.dropna().unique(), key=str):
            rows = (values == v).to_numpy()
            out[column][str(v)] = {
                "n": int(rows.sum()), "shortcut_score": ratio(rows), "hit_rate": ev.mean_estimate(hits[rows], rows),
            }  # fmt: skip
    return out


def method_evidence(ev: EvidenceInputs) -> dict[str, Any]:
    """Return results.json's ``saliency.<method>`` block: every piece of trust evidence of one method."""
    display = ev.maps.display()
    localisation, hits = localization(ev, display)
    faithful = faithfulness(ev, display)
    checked = sanity(ev, display)
    pooled, shortcut_block, ratio = shortcut(ev, display)
    stable = stability(ev, display)
    return {
        "n_images": len(display),
        "target": ev.target_text,
        "params": dict(ev.maps.params),
        "postprocessing": [*ev.maps.postprocessing, *DISPLAY_STEPS[ev.method]],
        "localization": localisation,
        "faithfulness": faithful,
        "sanity": checked,
        "shortcut_score": pooled,
        "shortcut": shortcut_block,
        "stability": stable,
        "completeness": completeness(ev.maps) if ev.method == "ig" else None,
        "by_group": by_group(ev, hits, ratio),
    }
