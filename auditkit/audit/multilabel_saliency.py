"""Saliency per finding of a multi-label model: Grad-CAM and IG of each finding's own logit, localised and checked.

For a multi-label checkpoint (:mod:`auditkit.train.multilabel`: a sigmoid head,
one logit per finding) audited with ``--model --manifest``, every finding
``f`` (output ``k``) gets the saliency step of a single-label audit on its own
rows: a seeded sample of its internal-test and external images, stratified
by true and predicted label at ``f``'s own operating point (the one its
statistics chose on validation; :func:`auditkit.audit.saliency._sample`), plus
its worst false negatives and false positives per cohort
(:func:`auditkit.audit.failures.worst_cases`), explained through the shared
path (:func:`auditkit.explain.sample.explain_sample`, the map cache) with the
target **logit k** itself: no softmax across findings, which would make one
finding's map depend on the others'. The evidence reuses
:mod:`auditkit.explain.evidence`: localisation against ``f``'s lesion masks
(manifest column ``mask_<f>``, paths fenced inside the data root like
``mask``; pointing game, energy, IoU/Dice), the corner shortcut score with
its per-cohort split, the model-randomisation sanity check and IG's
completeness, faithfulness (deletion/insertion curves of the finding's own
sigmoid probability against a random order) and stability under noise and
shift, each with the run context's bootstrap interval over images, a
patient's images resampled together. Results nest as ``findings.<f>.saliency.<method>`` and
``findings.<f>.gallery`` (overlays under ``explain/<f>/``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from auditkit.explain.config import SaliencyConfig

#: worst false negatives / positives explained per cohort and finding (the single-label audit lists 5).
N_WORST = 2
#: manifest column naming a finding's suspected shortcut region (a mask: where a marker sits, burned-in text).
SHORTCUT_PREFIX = "shortcut_"
#: folders of explain/ that other steps write (a finding of that name gets ``finding-<name>``).
RESERVED = frozenset({"cache", "cases", "images", "overlays", "masks", "volumes"})
FAITHFULNESS_SCORE = (
    "sigmoid probability of the explained finding (its own output of the sigmoid head; the other findings' "
    "outputs play no part)"
)


@dataclass(frozen=True, eq=False)
class FindingModel:
    """A multi-label checkpoint as the explain path reads a model: network, target layer, SHA-256, preprocess."""

    model: torch.nn.Module
    target_layer: str
    sha256: str
    preprocess: Any
    meta: dict[str, Any]
    findings: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class FindingSaliency:
    """One finding's saliency: its results.json section and gallery, and the explained sample with its maps."""

    section: dict[str, Any]
    """``{method: block}`` (``findings.<f>.saliency``)."""
    gallery: list[dict[str, Any]]
    sample: pd.DataFrame
    """the explained rows (``_cohort``, ``y_true``, ``y_pred``, ``_score``, resolved ``mask``)."""
    displays: dict[str, np.ndarray]
    """each method's display maps of ``sample`` (N, H, W), at the model's input grid."""
    masks: list[np.ndarray | None]


def finding_model(loaded: Any) -> FindingModel:
    """Return the explainable view of a :class:`~auditkit.train.multilabel.LoadedMultilabelModel`.

    The Grad-CAM layer is the one the checkpoint records (found structurally
    when it was trained, :func:`auditkit.nets.layers.resolve_target_layer`),
    or found the same way when the record has none.
    """
    layer = loaded.meta.get("target_layer")
    if not layer:
        from auditkit.nets.layers import resolve_target_layer

        size = (int(loaded.meta.get("in_channels", 1)), *loaded.preprocess.input_size)
        layer, _ = resolve_target_layer(loaded.model, input_size=size)
    return FindingModel(loaded.model, str(layer), loaded.sha256, loaded.preprocess, loaded.meta,
                        tuple(loaded.findings))  # fmt: skip


def _rows_of(frame: pd.DataFrame, finding: str, threshold: float | None, policy: str) -> pd.DataFrame:
    """Return the finding's labelled rows with ``mask`` = its own lesion mask, ``y_pred`` and ``_score``."""
    from auditkit.audit.multilabel import finding_table

    rows = finding_table(frame.drop(columns=["mask"], errors="ignore"), finding, policy=policy)
    column = f"mask_{finding}"
    rows["mask"] = rows[column] if column in rows.columns else None
    rows["_score"] = rows["score"].to_numpy(dtype=float)
    rows["y_pred"] = (rows["_score"] >= (0.5 if threshold is None else float(threshold))).astype(np.int64)
    return rows


def _worst(rows: pd.DataFrame, threshold: float | None, attributes: Sequence[str], cfg: SaliencyConfig) -> pd.DataFrame:
    """Return the finding's worst false negatives and positives per cohort (``_cohort``, ``_category``, ``_rank``)."""
    from auditkit.audit.failures import worst_cases
    from auditkit.audit.saliency import _cohort_of, _worst_rows

    if threshold is None or not cfg.gallery_max:
        return rows.iloc[0:0]
    cohorts = _cohort_of(rows)
    failures = worst_cases(rows, cohorts, rows["y_true"].to_numpy() == 1, rows["_score"].to_numpy(),
                           threshold=float(threshold), attributes=list(attributes), n_worst=N_WORST)  # fmt: skip
    return _worst_rows(rows, failures)


def _evidence(method: str, maps: Any, images: Any, sample: pd.DataFrame, fm: FindingModel, cfg: SaliencyConfig,
              kwargs: dict[str, Any], target_text: str, attributes: list[str],
              regions: list[np.ndarray | None]) -> dict[str, Any]:  # fmt: skip
    """Return ``findings.<f>.saliency.<method>``: localisation, shortcut, sanity, completeness of one method."""
    from auditkit.explain import evidence
    from auditkit.explain.images import normalization_of
    from auditkit.explain.runner import DISPLAY_STEPS

    mean, std = normalization_of(fm.preprocess)
    ev = evidence.EvidenceInputs(method, maps, None, images, None, sample, fm, cfg, kwargs, target_text,
                                 mean, std, attributes)  # fmt: skip
    display = maps.display()
    localisation, hits = evidence.localization(ev, display)
    pooled, shortcut, ratio = evidence.shortcut(ev, display)
    shortcut["positives_by_cohort"] = _positives_by_cohort(ev, display)
    shortcut["declared_region"] = _declared_region(ev, display, regions)
    return {
        "n_images": len(display),
        "target": target_text,
        "params": dict(maps.params),
        "postprocessing": [*maps.postprocessing, *DISPLAY_STEPS[method]],
        "localization": localisation,
        "faithfulness": evidence.faithfulness(ev, display, probability=torch.sigmoid, score=FAITHFULNESS_SCORE),
        "sanity": evidence.sanity(ev, display),
        "shortcut_score": pooled,
        "shortcut": shortcut,
        "stability": evidence.stability(ev, display),
        "completeness": evidence.completeness(maps) if method == "ig" else None,
        "by_group": evidence.by_group(ev, hits, ratio),
    }


def _positives_by_cohort(ev: Any, display: np.ndarray) -> dict[str, Any]:
    """Return the corner share pooled over each cohort's images where the finding is present.

    A marker that rides on one site's positives (the phantom's effusion
    shortcut) draws the finding's saliency into a corner on those images
    only, so this share drops at a site without it while the negatives'
    share stays alike.
    """
    from auditkit.explain.evaluation.shortcut import corner_masses

    inside, mass = corner_masses(display, rois=ev.images.rois, fraction=ev.cfg.corner_fraction)
    return _pooled_on_positives(ev, inside, mass, np.ones(len(display), dtype=bool))


def _pooled_on_positives(ev: Any, inside: np.ndarray, mass: np.ndarray, among: np.ndarray) -> dict[str, Any]:
    """Return ``{cohort: {n, share}}``: saliency mass ``inside`` over ``mass``, pooled over each cohort's
    images in ``among`` where the finding is present, with the run's interval."""
    cohorts = ev.sample["_cohort"].to_numpy()
    present = ev.sample["y_true"].to_numpy() == 1
    out = {}
    for cohort in pd.unique(cohorts):
        rows = among & (cohorts == cohort) & present
        if rows.any():
            out[str(cohort)] = {"n": int(rows.sum()), **ev.ratio_estimate(inside[rows], mass[rows], rows)}
    return out


def _regions(rows: pd.DataFrame, column: str, preprocess: Any) -> list[np.ndarray | None]:
    """Return each row's declared shortcut region (column ``shortcut_<f>``) at the model's input grid, or None."""
    from auditkit.data.readers import read_mask

    if column not in rows.columns:
        return [None] * len(rows)
    out: list[np.ndarray | None] = []
    for value in rows[column]:
        empty = value is None or (isinstance(value, float) and np.isnan(value)) or not str(value)
        out.append(None if empty else np.asarray(preprocess.mask_to_input(read_mask(str(value))), dtype=bool))
    return out


def _declared_region(ev: Any, display: np.ndarray, regions: list[np.ndarray | None]) -> dict[str, Any] | None:
    """Return the share of positive saliency inside each image's declared shortcut region (None: none declared).

    Pooled by mass over the images with a region, overall and over each
    cohort's images where the finding is present, with the run's interval.
    """
    given = np.array([r is not None for r in regions])
    if not given.any():
        return None
    positive = np.clip(np.asarray(display, dtype=np.float64), 0, None)
    inside = np.array([positive[i][r].sum() if r is not None else 0.0 for i, r in enumerate(regions)])
    mass = positive.reshape(len(positive), -1).sum(axis=1)
    area = float(np.mean([r.mean() for r in regions if r is not None]))
    by_cohort = _pooled_on_positives(ev, inside, mass, given)
    return {
        "n_images": int(given.sum()), "share": ev.ratio_estimate(inside[given], mass[given], given),
        "diffuse_map_share": area, "positives_by_cohort": by_cohort,
    }  # fmt: skip


def finding_saliency(
    fm: FindingModel,
    frame: pd.DataFrame,
    finding: str,
    *,
    out_dir: str | Path,
    cfg: SaliencyConfig,
    threshold: float | None,
    policy: str = "ignore",
    cache: Any = None,
) -> FindingSaliency | None:
    """Return finding ``finding``'s saliency on the resolved multi-label ``frame`` (None when nothing is audited).

    ``frame``: the multi-label predictions table (``label_<f>``, ``score_<f>``,
    ``image`` and ``mask_<f>`` paths already resolved inside the data root).
    ``threshold``: the finding's operating point (gallery categories, worst cases).
    """
    from auditkit.audit.saliency import _attributes, _sample
    from auditkit.explain.cache import MapCache
    from auditkit.explain.images import load_images
    from auditkit.explain.sample import ImageSet, explain_sample

    k = fm.findings.index(finding)
    rows = _rows_of(frame, finding, threshold, policy)
    sample = _sample(rows, cfg)
    if sample.empty:
        return None
    attributes = _attributes(None, sample, cfg)
    images = load_images(sample, fm.preprocess, description=f"saliency ({finding}): reading images")
    regions = _regions(sample, f"{SHORTCUT_PREFIX}{finding}", fm.preprocess)
    sets = {"sample": ImageSet(images.inputs, k)}
    worst = _worst(rows, threshold, attributes, cfg)
    worst_images = None
    if len(worst):
        worst_images = load_images(worst, fm.preprocess, description=f"saliency ({finding}): worst cases")
        sets["worst"] = ImageSet(worst_images.inputs, k)
    target_text = f"logit of finding {finding!r} (output {k} of the sigmoid head; no softmax across findings)"
    section: dict[str, Any] = {}
    displays: dict[str, np.ndarray] = {}
    worst_displays: dict[str, np.ndarray] = {}
    params = {m: _method_params(m, cfg) for m in cfg.methods}
    cache = cache or MapCache(cfg.cache_dir or Path(out_dir) / "explain" / "cache")
    for entry in explain_sample(fm, sets, methods=cfg.methods, params=params, cache=cache,
                                batch_size=cfg.batch_size, description=f"saliency ({finding})"):  # fmt: skip
        displays[entry.method] = entry.maps["sample"].display()
        if "worst" in entry.maps:
            worst_displays[entry.method] = entry.maps["worst"].display()
        section[entry.method] = _evidence(entry.method, entry.maps["sample"], images, sample, fm, cfg,
                                          entry.kwargs, target_text, attributes, regions)  # fmt: skip
    gallery = _gallery(fm, finding, sample, images, displays, worst, worst_images, worst_displays,
                       out_dir=Path(out_dir), cfg=cfg, attributes=attributes)  # fmt: skip
    return FindingSaliency(section, gallery, sample, displays, list(images.masks))


def _method_params(method: str, cfg: SaliencyConfig) -> dict[str, Any]:
    from auditkit.audit.saliency import _method_params as params

    return params(method, cfg)


def _gallery(fm: FindingModel, finding: str, sample: pd.DataFrame, images: Any, displays: dict[str, np.ndarray],
             worst: pd.DataFrame, worst_images: Any, worst_displays: dict[str, np.ndarray], *, out_dir: Path,
             cfg: SaliencyConfig, attributes: list[str]) -> list[dict[str, Any]]:  # fmt: skip
    """Return the finding's gallery: its worst cases first, then sampled cases per category and cohort."""
    from auditkit.explain.gallery import (
        ExplainedSet,
        GalleryStyle,
        categories_of,
        gallery_entries,
        gallery_rows,
        shared_scales,
    )
    from auditkit.explain.images import normalization_of

    if not displays or not cfg.gallery_max:
        return []
    scales = shared_scales(displays)
    mean, std = normalization_of(fm.preprocess)
    style = GalleryStyle(out_dir, cfg, attributes, mean, std, ("absent", "present"), 1,
                         base=f"explain/{folder_of(finding)}", fields={"finding": finding})  # fmt: skip
    categories = categories_of(sample, 1)
    entries = []
    if worst_images is not None and worst_displays:
        entries += gallery_entries(ExplainedSet(worst, worst_images, worst_displays, scales), range(len(worst)), style)
    entries += gallery_entries(ExplainedSet(sample.assign(_category=categories), images, displays, scales),
                               gallery_rows(sample, categories, cfg, attributes), style)  # fmt: skip
    return entries


def folder_of(finding: str) -> str:
    """Return the folder under ``explain/`` that holds a finding's overlays (a file-name-safe stem)."""
    from auditkit.explain.runner import safe_names

    stem = safe_names([finding])[0]
    return f"finding-{stem}" if stem in RESERVED else stem


def resolved_frame(frame: pd.DataFrame, findings: Sequence[str], *, root: Path, where: str,
                   allow_outside_root: bool = False) -> pd.DataFrame:  # fmt: skip
    """Return ``frame`` with its ``image``, ``roi`` and ``mask_<f>`` paths resolved inside ``root`` (PathEscapeError otherwise)."""
    from auditkit.data.paths import resolve_paths

    frame = frame.reset_index(drop=True).copy()
    for column in ("image", "roi", *(f"{p}{f}" for f in findings for p in ("mask_", SHORTCUT_PREFIX))):
        if column in frame.columns:
            frame[column] = resolve_paths(
                frame[column], root=root, allow_outside_root=allow_outside_root,
                where=lambda row, column=column: f"{where} row {row + 1}, column '{column}'",
            )  # fmt: skip
    return frame


def multilabel_saliency(
    model_dir: str | Path,
    frame: pd.DataFrame,
    findings: dict[str, dict[str, Any]],
    *,
    out_dir: str | Path,
    settings: Any,
    root: Path,
    where: str,
    policy: str = "ignore",
    allow_outside_root: bool = False,
) -> list[str]:
    """Add ``saliency`` and ``gallery`` to each finding's sections in ``findings`` (in place); return those explained.

    ``frame``: the multi-label predictions table the statistics audited (rows
    in manifest order, so a refused path names the manifest's row);
    ``root``: the data root its paths must stay inside; ``settings``: the
    audit settings (run context, attributes, ``saliency:`` section).
    """
    from auditkit.explain.cache import MapCache
    from auditkit.progress import status
    from auditkit.train.multilabel import load_multilabel_model

    fm = finding_model(load_multilabel_model(model_dir))
    cfg = SaliencyConfig.from_any(settings)
    if cfg.attributes is None and getattr(settings, "attributes", None):
        cfg = cfg.model_copy(update={"attributes": tuple(settings.attributes)})
    if "image" not in frame.columns:
        return []
    names = [f for f in findings if f in fm.findings]
    frame = resolved_frame(frame, names, root=root, where=where, allow_outside_root=allow_outside_root)
    cache = MapCache(cfg.cache_dir or Path(out_dir) / "explain" / "cache")
    done = []
    for name in names:
        threshold = (findings[name].get("operating_point") or {}).get("threshold")
        status(f"saliency: finding {name!r} (logit {fm.findings.index(name)}) with {', '.join(cfg.methods)}")
        result = finding_saliency(fm, frame, name, out_dir=out_dir, cfg=cfg, threshold=threshold,
                                  policy=policy, cache=cache)  # fmt: skip
        if result is not None:
            findings[name]["saliency"] = result.section
            findings[name]["gallery"] = result.gallery
            done.append(name)
    return done
