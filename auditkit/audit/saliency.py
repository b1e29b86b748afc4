"""The ``saliency`` and ``gallery`` sections of results.json: attributions and the evidence they can be trusted.

On a seeded sample of each cohort (up to ``max_images`` of the internal test
split and of each external site, stratified by true and predicted label),
every configured method's maps are computed through the on-disk cache and
evaluated: localisation against lesion masks or boxes (pointing game, energy,
IoU/Dice after Otsu and after a threshold tuned on validation images; Saporta
et al. 2022), faithfulness (deletion/insertion AUC against a random order;
Petsiuk et al. 2018), the model-randomisation sanity check (Adebayo et al.
2018; verdict of Arun et al. 2021), the shortcut score (positive saliency
outside the anatomical ROI, or in the border frame), stability under noise and
shifts, and IG's completeness. Each number is an Estimate with a bootstrap CI
over images (a patient's images resampled together when the table has
``patient_id``), also per cohort and per subgroup. Overlays of a small gallery
(true/false positives and negatives per cohort, every subgroup represented)
are written under ``<out_dir>/explain/`` and named relative to ``out_dir``.

Saliency is not validated localisation: the report says so next to these
numbers (all methods fall short of radiologists; Saporta et al. 2022).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from auditkit import distributed
from auditkit.data.paths import data_root_or, resolve_paths
from auditkit.errors import InvalidInputError
from auditkit.explain import methods as attribution_methods
from auditkit.explain.cache import MapCache
from auditkit.explain.cases import record_cases
from auditkit.explain.config import SaliencyConfig
from auditkit.explain.evidence import EvidenceInputs, method_evidence
from auditkit.explain.gallery import (
    ExplainedSet,
    GalleryStyle,
    categories_of,
    gallery_entries,
    gallery_rows,
    shared_scales,
)
from auditkit.explain.images import LoadedImages, load_images, normalization_of
from auditkit.explain.sample import ImageSet, explain_sample
from auditkit.explain.sampling import stratified_sample
from auditkit.progress import status

PATH_COLUMNS = ("image", "mask", "roi")
"""Columns of the predictions table that name files the saliency step reads."""
MAX_GROUP_VALUES = 20


def run_saliency(
    loaded_model: Any,
    predictions: Any,
    *,
    out_dir: str | Path,
    config: Any = None,
    data_root: str | os.PathLike[str] | None = None,
    allow_outside_root: bool = False,
    failures: Any = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Return ``(results["saliency"], results["gallery"])`` for a checkpoint and its predictions table.

    ``failures`` (results.json ``failures``): its worst false negatives and
    positives per cohort are explained too, as a separate image set, and added
    to the gallery with their rank (``worst_rank``, categories
    ``worst_false_negative``/``worst_false_positive``); the trust evidence is
    computed on the stratified sample only, so it stays an unbiased sample.

    ``loaded_model``: :class:`auditkit.nets.checkpoint.LoadedModel`.
    ``predictions``: :class:`auditkit.audit.predictions.PredictionsTable` (or a
    DataFrame with ``id``, ``y_true``, ``image`` and ``score``/``score_<class>``).
    ``config``: :class:`~auditkit.explain.config.SaliencyConfig`, a mapping, or
    the audit settings (their ``seed``, ``n_boot``, ``ci_level``,
    ``attributes`` and ``saliency`` section are used). Writes overlays under
    ``out_dir/explain/``; the map cache under ``out_dir/explain/cache``.

    The table's ``image``, ``mask`` and ``roi`` paths are untrusted: each is
    taken relative to the data root (``data_root``; default: the predictions
    table's folder, or the current folder for a bare DataFrame) and must
    resolve, symlinks followed, inside it unless ``allow_outside_root``
    (:func:`auditkit.data.paths.resolve_path`); otherwise PathEscapeError
    names the table, row and column.
    """
    ctx = distributed.group_context()
    cfg = SaliencyConfig.from_any(config)
    if ctx.active:  # every rank explains with rank 0's settings (its frozen operating point, its data root,
        # its worst cases: every rank must explain the same image sets, or the shard gathers never meet)
        cfg, data_root, allow_outside_root, failures = distributed.broadcast(
            (cfg, data_root, allow_outside_root, failures)
        )
    out_dir = Path(out_dir)
    frame, classes, positive = _resolved_table(predictions, cfg, data_root, allow_outside_root)
    sample = _sample(frame, cfg)
    if sample.empty:
        return {}, []
    status(f"saliency: explaining {len(sample)} images with {', '.join(cfg.methods)}")
    sets, images, val_images, worst, worst_images = _image_sets(
        loaded_model, frame, sample, failures, cfg, classes, positive
    )
    target_text = _target(cfg.target, classes, positive, sample)[1]
    mean, std = normalization_of(loaded_model.preprocess)
    attributes = _attributes(predictions, sample, cfg)
    section: dict[str, Any] = {}
    displays: dict[str, np.ndarray] = {}
    worst_displays: dict[str, np.ndarray] = {}
    for entry in explain_sample(  # under torchrun: every rank's shard first; rank 0 alone gets the maps
        loaded_model, sets, methods=cfg.methods, params={m: _method_params(m, cfg) for m in cfg.methods},
        cache=MapCache(cfg.cache_dir or out_dir / "explain" / "cache"), batch_size=cfg.batch_size, ctx=ctx,
    ):  # fmt: skip
        maps = entry.maps["sample"]
        displays[entry.method] = maps.display()
        if "worst" in entry.maps:
            worst_displays[entry.method] = entry.maps["worst"].display()
        section[entry.method] = method_evidence(EvidenceInputs(
            entry.method, maps, entry.maps.get("validation"), images, val_images, sample, loaded_model, cfg,
            entry.kwargs, target_text, mean, std, attributes,
        ))  # fmt: skip
    if not ctx.is_main:
        return {}, []
    scales = shared_scales(displays)  # one per method: the gallery, the worst cases and the case records share it
    style = GalleryStyle(out_dir, cfg, attributes, mean, std, list(classes.classes), positive)
    categories = categories_of(sample, positive)
    gallery = gallery_entries(ExplainedSet(sample, images, displays, scales),
                              gallery_rows(sample, categories, cfg, attributes), style)  # fmt: skip
    if worst_images is not None and worst_displays:
        gallery += gallery_entries(ExplainedSet(worst, worst_images, worst_displays, scales),
                                   range(len(worst)), style)  # fmt: skip
    # every explained case for the viewer and exports (explain/cases.json)
    record_cases(out_dir, ExplainedSet(sample, images, displays, scales), section, style)
    return section, gallery


def _image_sets(
    loaded_model: Any, frame: pd.DataFrame, sample: pd.DataFrame, failures: Any, cfg: SaliencyConfig,
    classes: Any, positive: int | None,
) -> tuple[dict[str, ImageSet], LoadedImages, LoadedImages | None, pd.DataFrame, LoadedImages | None]:  # fmt: skip
    """Return (the image sets to explain, the sample's, validation's and worst cases' images, the worst rows).

    The sample carries the trust evidence; validation images with masks feed the
    localisation check; the worst cases of ``failures`` only get gallery panels.
    """
    images = load_images(sample, loaded_model.preprocess, description="saliency: reading images")
    sets = {"sample": ImageSet(images.inputs, _target(cfg.target, classes, positive, sample)[0])}
    val_frame = _validation_with_masks(frame, cfg)
    val_images = None
    if len(val_frame):
        val_images = load_images(val_frame, loaded_model.preprocess, description="saliency: validation images")
        sets["validation"] = ImageSet(val_images.inputs, _target(cfg.target, classes, positive, val_frame)[0])
    worst = _worst_rows(frame, failures) if cfg.gallery_max else frame.iloc[0:0]  # no gallery: no panels
    worst_images = None
    if len(worst):
        worst_images = load_images(worst, loaded_model.preprocess, description="saliency: worst cases")
        sets["worst"] = ImageSet(worst_images.inputs, _target(cfg.target, classes, positive, worst)[0])
    return sets, images, val_images, worst, worst_images


def _resolved_table(
    predictions: Any, cfg: SaliencyConfig, data_root: str | os.PathLike[str] | None, allow_outside_root: bool
) -> tuple[pd.DataFrame, Any, int | None]:
    """Return (the table's rows with ``y_pred``/``_score`` and fenced file paths, classes, positive index)."""
    frame, probs, classes, base = _table(predictions)
    if "image" not in frame.columns or frame["image"].isna().all():
        raise InvalidInputError(
            "the predictions table has no 'image' column, so saliency maps cannot be computed; "
            "audit with --model and --manifest, or pass --no-explain"
        )
    positive = _positive_index(classes)
    frame = _with_predictions(frame, probs, positive, cfg.threshold)
    root = data_root_or(data_root, base if base is not None else Path.cwd())
    where = "the predictions table" if base is None else str(predictions.path)
    for column in PATH_COLUMNS:
        if column in frame.columns:
            frame[column] = resolve_paths(
                frame[column], root=root, allow_outside_root=allow_outside_root,
                where=lambda row, column=column: f"{where} row {row + 1}, column '{column}'",
            )  # fmt: skip
    return frame, classes, positive


# --- the table ----------------------------------------------------------------------------


def _table(predictions: Any) -> tuple[pd.DataFrame, np.ndarray, Any, Path | None]:
    """Return (frame, probabilities (n, K), classes, folder relative paths are resolved against)."""
    if isinstance(predictions, pd.DataFrame):
        frame = predictions.reset_index(drop=True).copy()
        score_cols = [c for c in frame.columns if str(c).startswith("score_")]
        if score_cols:
            probs = frame[score_cols].to_numpy(dtype=float)
            names = tuple(str(c)[len("score_") :] for c in score_cols)
        else:
            p = frame["score"].to_numpy(dtype=float)
            probs = np.stack([1 - p, p], axis=1)
            names = ("0", "1")
        from auditkit.labels import ClassSpec

        return frame, probs, ClassSpec(names, names[1] if len(names) == 2 else None), None
    frame = predictions.frame.reset_index(drop=True).copy()
    base = Path(predictions.path).parent if getattr(predictions, "path", None) is not None else None
    return frame, np.asarray(predictions.probs, dtype=float), predictions.classes, base


def _positive_index(classes: Any) -> int | None:
    names = list(classes.classes)
    if len(names) != 2:
        return None
    return names.index(classes.positive_class) if classes.positive_class in names else 1


def _with_predictions(
    frame: pd.DataFrame, probs: np.ndarray, positive: int | None, threshold: float | None
) -> pd.DataFrame:
    frame = frame.copy()
    if positive is not None:
        frame["_score"] = probs[:, positive]
        frame["y_pred"] = np.where(
            frame["_score"] >= (0.5 if threshold is None else threshold), positive, 1 - positive
        )
    else:
        frame["y_pred"] = probs.argmax(axis=1)
        frame["_score"] = probs[np.arange(len(frame)), frame["y_pred"].to_numpy()]
    return frame


def _cohort_of(frame: pd.DataFrame) -> pd.Series:
    """Return the cohort of each row: ``test``, an external site's name, or None (train/val)."""
    if "split" not in frame.columns:
        return pd.Series("test", index=frame.index)
    split = frame["split"].astype("string").fillna("").to_numpy(dtype=object)
    if (split == "").all():
        return pd.Series("test", index=frame.index)
    site = (
        frame["site"].astype("string").fillna("external").to_numpy(dtype=object)
        if "site" in frame.columns
        else np.full(len(frame), "external", dtype=object)
    )
    cohort = np.where(split == "test", "test", np.where(split == "external", site, None))
    return pd.Series(cohort, index=frame.index, dtype="object")


def _sample(frame: pd.DataFrame, cfg: SaliencyConfig) -> pd.DataFrame:
    frame = frame.assign(_cohort=_cohort_of(frame))
    parts = []
    cohorts = [c for c in pd.unique(frame["_cohort"].dropna())]
    ordered = (["test"] if "test" in cohorts else []) + sorted(c for c in cohorts if c != "test")
    for k, cohort in enumerate(ordered):
        rows = frame[frame["_cohort"] == cohort]
        keep = stratified_sample(
            rows, n=cfg.max_images, strata=["y_true", "y_pred"], random_state=cfg.seed + k
        )
        parts.append(rows.loc[keep])
    return pd.concat(parts).reset_index(drop=True) if parts else frame.iloc[0:0]


def _has_lesion(frame: pd.DataFrame) -> pd.Series:
    has = pd.Series(False, index=frame.index)
    if "mask" in frame.columns:
        has |= frame["mask"].notna()
    box = [c for c in ("bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1") if c in frame.columns]
    if len(box) == 4:
        has |= frame[box].notna().all(axis=1)
    return has


def _validation_with_masks(frame: pd.DataFrame, cfg: SaliencyConfig) -> pd.DataFrame:
    if "split" not in frame.columns or cfg.max_val_images == 0:
        return frame.iloc[0:0]
    rows = frame[(frame["split"] == "val") & _has_lesion(frame)]
    if len(rows) > cfg.max_val_images:
        rows = rows.loc[
            stratified_sample(rows, n=cfg.max_val_images, strata=["y_true"], random_state=cfg.seed)
        ]
    return rows.reset_index(drop=True)


def _target(spec: str, classes: Any, positive: int | None, rows: pd.DataFrame) -> tuple[Any, str]:
    names = list(classes.classes)
    if spec == "positive":
        if positive is None:
            return "predicted", "predicted class"
        return positive, f"positive class {names[positive]!r}"
    if spec == "predicted":
        return "predicted", "predicted class"
    if spec == "true":
        return rows["y_true"].to_numpy(dtype=np.int64), "true class"
    if spec in names:
        return names.index(spec), f"class {spec!r}"
    raise InvalidInputError(
        f"saliency target {spec!r} is not positive, predicted, true or one of the classes {names}"
    )


def _method_params(method: str, cfg: SaliencyConfig) -> dict[str, Any]:
    """Return ``method``'s parameters from the saliency settings (its registry entry's ``audit_settings``).

    The input normalization IG needs is added by :func:`auditkit.explain.sample.method_kwargs`.
    """
    return {param: getattr(cfg, name) for param, name in attribution_methods.get(method).audit_settings}


def _attributes(predictions: Any, sample: pd.DataFrame, cfg: SaliencyConfig) -> list[str]:
    if cfg.attributes is not None:
        columns = [c for part in cfg.attributes for c in str(part).split("+")]
    else:
        columns = list(getattr(predictions, "attribute_columns", ()))
    out = []
    for column in dict.fromkeys(columns):
        if column in sample.columns and 1 < sample[column].nunique(dropna=True) <= MAX_GROUP_VALUES:
            out.append(column)
    return out


# --- gallery ------------------------------------------------------------------------------


def _worst_rows(frame: pd.DataFrame, failures: Any) -> pd.DataFrame:
    """Return the table rows of ``failures``' worst cases, with ``_cohort``, ``_category`` and ``_rank``."""
    cohorts = (failures or {}).get("cohorts") if isinstance(failures, dict) else None
    if not isinstance(cohorts, dict):
        return frame.iloc[0:0]
    by_id = {str(i): k for k, i in enumerate(frame["id"])}
    picked: list[tuple[int, str, str, int]] = []
    for cohort, block in cohorts.items():
        for category in ("false_negative", "false_positive"):
            cases = ((block or {}).get(category) or {}).get("worst") or []
            for rank, case in enumerate(cases, start=1):
                row = by_id.get(str(case.get("id")))
                if row is not None:
                    picked.append((row, str(cohort), f"worst_{category}", rank))
    if not picked:
        return frame.iloc[0:0]
    out = frame.iloc[[p[0] for p in picked]].reset_index(drop=True)
    return out.assign(_cohort=[p[1] for p in picked], _category=[p[2] for p in picked],
                      _rank=[p[3] for p in picked])  # fmt: skip
