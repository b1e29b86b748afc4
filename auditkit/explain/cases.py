"""The per-case record of an explanation run: ``explain/cases.json`` and the images the viewer shows.

The report shows a gallery of a dozen cases; a clinician reviewing a model
pages through every explained case. For each case of the saliency sample this
module writes, at the model's input geometry (the grid the maps were computed
on, so a lesion outline drawn on it coincides with the lesion):

- ``explain/cases/<stem>.png``: the image as the model saw it (8-bit grey or RGB);
- ``explain/cases/<stem>__<method>.png``: each method's display map (after its
  display steps), quantised to 8 bits on the method's shared scale
  (``value = vmin + code / 255 * (vmax - vmin)``);
- ``explain/cases/<stem>__mask.png``: the lesion mask (255 = lesion), when known;
- ``explain/cases/<stem>.npz``: the same maps as float32 (keys = method names),
  for exports that need the values (DICOM Parametric Maps);

and ``explain/cases.json`` (``CASES_SCHEMA_VERSION``; JSON Schema
``auditkit/results/cases.schema.json``) with each case's outcome, score,
labels, operating point, attributes, per-method metrics (peak in lesion,
energy in lesion, IoU after Otsu, corner share) and flags. Nothing here
computes a new statistic: the per-image values are those the saliency step
pools into results.json (the same functions on the same maps).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from auditkit.explain.evaluation.localization import localization_scores
from auditkit.explain.evaluation.shortcut import corner_masses, corner_shares, outside_roi_shares
from auditkit.explain.overlay import OverlayScale, to_rgb_uint8
from auditkit.fileio import atomic_write_bytes, plain_cell, write_json
from auditkit.progress import track

CASES_SCHEMA_VERSION = "1"
CASES_FILE = "explain/cases.json"
CASES_DIR = "explain/cases"
VOLUMES_DIR = "explain/volumes"
VOLUME_SOURCE_FORMAT = "volume"
"""``source.format`` of a volume case: a 3-D source (NIfTI, DICOM series, .npy), not one 2-D image file."""

SHORTCUT_FLAG = 0.25
"""A case is "shortcut suspected" when one off-anatomy corner holds at least this share of
its map's positive mass: four times a diffuse map's share (0.0625 for quarter corners)."""
LOW_LOCALISATION_IOU = 0.1
"""A case with a lesion is "low localisation" when the map's Otsu IoU with it is below this."""

OUTCOME_CODES = {
    "true_positive": "TP",
    "false_positive": "FP",
    "false_negative": "FN",
    "true_negative": "TN",
}


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """Return an ``.npz`` of ``arrays`` (deflated, fixed timestamps: same arrays, same bytes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            item = io.BytesIO()
            np.lib.format.write_array(item, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, item.getvalue())
    return buffer.getvalue()


def quantise(values: np.ndarray, scale: OverlayScale) -> np.ndarray:
    """Return ``values`` (H, W) as uint8 codes on ``scale``: 0 at ``vmin``, 255 at ``vmax`` (clipped)."""
    span = scale.vmax - scale.vmin if scale.vmax > scale.vmin else 1.0
    codes = np.clip((np.asarray(values, dtype=np.float64) - scale.vmin) / span, 0, 1) * 255
    return codes.round().astype(np.uint8)


def _float(value: Any) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def _text(frame: pd.DataFrame, column: str, i: int) -> str | None:
    if column not in frame.columns:
        return None
    value = plain_cell(frame[column].iloc[i])
    return None if value is None or value == "" else str(value)


def _frame(frame: pd.DataFrame, i: int) -> int | None:
    """Return row ``i``'s frame of a multi-frame source (manifest column 'frame'), or None."""
    value = plain_cell(frame["frame"].iloc[i]) if "frame" in frame.columns else None
    return None if value is None else int(value)


def _source_format(path: str | None) -> str | None:
    if path is None:
        return None
    from auditkit.data.readers import image_format

    try:
        return image_format(path)
    except Exception:  # the file is gone since it was read: the record says unknown
        return None


def _metrics(
    display: np.ndarray,
    masks: Sequence[np.ndarray | None],
    rois: Sequence[np.ndarray | None],
    corner_fraction: float,
) -> list[dict[str, Any]]:
    """Return one dict of per-image saliency values per map of ``display`` (N, H, W)."""
    inside, mass = corner_masses(display, rois=rois, fraction=corner_fraction)
    share = corner_shares(inside, mass)
    outside = (
        outside_roi_shares(display, rois) if any(r is not None for r in rois) else None
    )
    lesion = np.array([m is not None and bool(np.any(m)) for m in masks])
    hit = np.full(len(display), np.nan)
    energy = np.full(len(display), np.nan)
    iou = np.full(len(display), np.nan)
    if lesion.any():
        scores = localization_scores(
            display[lesion], np.stack([masks[i] for i in np.flatnonzero(lesion)])
        )
        hit[lesion], energy[lesion], iou[lesion] = scores.hit, scores.energy_pointing, scores.iou_otsu
    out = []
    for i in range(len(display)):
        roi_share = None
        if outside is not None and np.isfinite(outside[0][i]) and outside[1][i] > 0:
            roi_share = float(outside[0][i] / outside[1][i])
        out.append(
            {
                "corner_share": _float(share[i]),
                "outside_roi_share": roi_share,
                "peak_in_lesion": None if not np.isfinite(hit[i]) else bool(hit[i] > 0),
                "energy_in_lesion": _float(energy[i]),
                "iou_otsu": _float(iou[i]),
                "flags": {
                    "shortcut_suspected": bool(np.isfinite(share[i]) and share[i] >= SHORTCUT_FLAG),
                    "peak_outside_lesion": bool(np.isfinite(hit[i]) and hit[i] == 0),
                    "low_localisation": bool(np.isfinite(iou[i]) and iou[i] < LOW_LOCALISATION_IOU),
                },
            }
        )
    return out


def write_cases(
    out_dir: str | Path,
    sample: pd.DataFrame,
    *,
    shown: Sequence[np.ndarray],
    masks: Sequence[np.ndarray | None],
    rois: Sequence[np.ndarray | None],
    displays: dict[str, np.ndarray],
    scales: dict[str, OverlayScale],
    categories: Sequence[str],
    class_names: Sequence[str],
    positive: int | None,
    threshold: float | None,
    attributes: Sequence[str],
    methods: dict[str, dict[str, Any]],
    corner_fraction: float,
    stems: Sequence[str],
    volumes: Sequence[dict[str, Any]] | None = None,
) -> Path:
    """Return the path of ``explain/cases.json`` after writing it and every case's images under ``out_dir``.

    ``sample``: the explained rows in the order of the maps (columns ``id``,
    ``y_true``, ``y_pred``, ``_score``, ``_cohort``, optional ``split``,
    ``site``, ``image`` and the attribute columns). ``shown``: each input with
    the normalisation undone, (h, w) or (h, w, 3) in [0, 1]. ``displays``:
    method -> (N, h, w) display maps; ``scales``: the shared scale of each
    method; ``methods``: method -> {label, params, postprocessing}.
    ``volumes``: each case's ``volume`` entry (:func:`write_volume_slices`)
    when the cases are volumes; the other fields then describe the
    representative slice (``shown``, ``masks`` and ``displays`` are that slice's).
    """
    out_dir = Path(out_dir)
    per_method = {m: _metrics(d, masks, rois, corner_fraction) for m, d in displays.items()}
    cases = []
    for i in track(range(len(sample)), total=len(sample), description="saliency: case records for the viewer"):
        files = _write_case_files(out_dir, stems[i], shown[i], masks[i], {m: d[i] for m, d in displays.items()}, scales)
        metrics = {m: values[i] for m, values in per_method.items()}
        case = _case(sample, i, stems[i], files, metrics, categories[i], class_names, positive, attributes,
                     shape=list(np.asarray(shown[i]).shape[:2]))  # fmt: skip
        if volumes is not None:
            case["volume"] = volumes[i]
            case["source"]["format"] = VOLUME_SOURCE_FORMAT
        cases.append(case)
    document = {
        "schema_version": CASES_SCHEMA_VERSION,
        "classes": list(class_names),
        "positive_class": class_names[positive] if positive is not None else None,
        "operating_point": {"threshold": 0.5 if threshold is None else float(threshold)},
        "attributes": list(attributes),
        "methods": {
            m: {**methods.get(m, {}), "scale": scales[m].to_dict(), "quantisation": "uint8"}
            for m in displays
        },
        "flag_rules": {
            "shortcut_suspected": f"corner_share >= {SHORTCUT_FLAG}",
            "peak_outside_lesion": "the map's maximum lies outside the lesion (pointing game miss)",
            "low_localisation": f"iou_otsu < {LOW_LOCALISATION_IOU}",
            "corner_fraction": corner_fraction,
        },
        "cases": cases,
    }
    return write_json(out_dir / CASES_FILE, document)


def _write_case_files(
    out_dir: Path, stem: str, shown: np.ndarray, mask: np.ndarray | None, maps: dict[str, np.ndarray],
    scales: dict[str, OverlayScale],
) -> dict[str, Any]:  # fmt: skip
    """Write one case's image, quantised maps, mask and float maps; return their paths relative to ``out_dir``."""
    image_rel = f"{CASES_DIR}/{stem}.png"
    atomic_write_bytes(out_dir / image_rel, _png(_grey_or_rgb(shown)))
    map_paths = {}
    for method, values in maps.items():
        rel = f"{CASES_DIR}/{stem}__{method}.png"
        atomic_write_bytes(out_dir / rel, _png(quantise(values, scales[method])))
        map_paths[method] = rel
    mask_rel = None
    if mask is not None:
        mask_rel = f"{CASES_DIR}/{stem}__mask.png"
        atomic_write_bytes(out_dir / mask_rel, _png(np.asarray(mask, dtype=np.uint8) * 255))
    arrays_rel = f"{CASES_DIR}/{stem}.npz"
    atomic_write_bytes(out_dir / arrays_rel, npz_bytes({m: np.asarray(v, dtype=np.float32) for m, v in maps.items()}))
    return {"image": image_rel, "maps": map_paths, "mask": mask_rel, "arrays": arrays_rel}


def write_volume_slices(
    out_dir: str | Path,
    stem: str,
    shown: np.ndarray,
    maps: dict[str, np.ndarray],
    mask: np.ndarray | None,
    scales: dict[str, OverlayScale],
    *,
    representative: int,
) -> dict[str, Any]:
    """Return a volume case's ``volume`` entry after writing its slices as sprites and its float maps.

    ``shown`` (D, H, W) in [0, 1], ``maps`` method -> (D, H, W) display maps
    and ``mask`` (D, H, W) at the model's input grid. Each layer is one
    vertical sprite under ``explain/volumes/<stem>/`` (slice k = rows
    ``k*H .. (k+1)*H``): ``image.png``, ``<method>.png`` (uint8 codes on the
    method's shared scale, as the 2-D cases) and ``mask.png`` (255 = lesion;
    only when the lesion crosses a slice), plus ``maps.npz`` (float32 volumes,
    keys = methods). ``representative``: the slice the viewer opens on (the
    record's 2-D fields are that slice's).
    """
    out_dir = Path(out_dir)
    depth, height, width = np.asarray(shown).shape[:3]
    folder = f"{VOLUMES_DIR}/{stem}"

    def sprite(name: str, codes: np.ndarray) -> str:
        rel = f"{folder}/{name}.png"
        atomic_write_bytes(out_dir / rel, _png(codes.reshape(depth * height, width)))
        return rel

    lesion = None if mask is None else np.asarray(mask, dtype=bool)
    has_lesion = lesion is not None and bool(lesion.any())
    sprites = {
        "image": sprite("image", (np.clip(np.asarray(shown), 0, 1) * 255).round().astype(np.uint8)),
        "maps": {m: sprite(m, quantise(v, scales[m])) for m, v in maps.items()},
        "mask": sprite("mask", lesion.astype(np.uint8) * 255) if has_lesion else None,
    }
    arrays_rel = f"{folder}/maps.npz"
    atomic_write_bytes(out_dir / arrays_rel, npz_bytes({m: np.asarray(v, dtype=np.float32) for m, v in maps.items()}))
    lesion_slices = [int(k) for k in np.flatnonzero(lesion.any(axis=(1, 2)))] if has_lesion else []
    return {"depth": int(depth), "slice": int(representative), "slice_shape": [int(height), int(width)],
            "sprites": sprites, "lesion_slices": lesion_slices, "arrays": arrays_rel,
            "metrics_of": "representative slice"}  # fmt: skip


def _case(
    sample: pd.DataFrame, i: int, stem: str, files: dict[str, Any], metrics: dict[str, Any], category: str,
    class_names: Sequence[str], positive: int | None, attributes: Sequence[str], *, shape: list[int],
) -> dict[str, Any]:  # fmt: skip
    """Return case ``i``'s record of cases.json: identity, outcome, score, attributes, files, metrics, flags."""
    y_true = int(sample["y_true"].iloc[i])
    y_pred = int(sample["y_pred"].iloc[i])
    score = float(sample["_score"].iloc[i])
    target = 1.0 if positive is not None and y_true == positive else 0.0
    source = _text(sample, "image", i)
    return {
        "id": str(sample["id"].iloc[i]),
        "stem": stem,
        "cohort": _text(sample, "_cohort", i),
        "split": _text(sample, "split", i),
        "site": _text(sample, "site", i),
        "outcome": OUTCOME_CODES.get(category, category),
        "label": class_names[y_true] if 0 <= y_true < len(class_names) else str(y_true),
        "predicted": class_names[y_pred] if 0 <= y_pred < len(class_names) else str(y_pred),
        "score": score,
        "error": abs(target - score) if positive is not None else None,
        "attributes": {c: plain_cell(sample[c].iloc[i]) for c in attributes},
        "image": files["image"],
        "shape": shape,
        "mask": files["mask"],
        "maps": files["maps"],
        "arrays": files["arrays"],
        "source": {"path": source, "format": _source_format(source), "frame": _frame(sample, i)},
        "metrics": metrics,
        "flags": {
            flag: any(v["flags"][flag] for v in metrics.values())
            for flag in ("shortcut_suspected", "peak_outside_lesion", "low_localisation")
        },
    }


def cases_artifact(out_dir: str | Path) -> dict[str, Any] | None:
    """Return results.json's ``artifacts.cases`` entry for the case records under ``out_dir`` (None if none).

    ``{"path": "explain/cases.json", "sha256": ..., "n_cases": ...}``: the
    viewer, ``export-dicom`` and ``report --review`` find the records through
    it and refuse a cases.json whose bytes another run wrote.
    """
    from auditkit.fileio import load_json, sha256_bytes

    path = Path(out_dir) / CASES_FILE
    if not path.is_file():
        return None
    raw = path.read_bytes()
    document = load_json(raw)
    return {"path": CASES_FILE, "sha256": sha256_bytes(raw), "n_cases": len(document.get("cases", []))}


def record_cases(out_dir: str | Path, explained: Any, section: dict[str, Any], style: Any) -> Path:
    """Return the path of ``explain/cases.json`` written for one saliency run (the saliency step's hook).

    ``explained``: the sample's :class:`auditkit.explain.gallery.ExplainedSet`
    (its display maps' shared scales are the gallery's); ``style``: the
    run's :class:`auditkit.explain.gallery.GalleryStyle` (class names,
    positive class, attributes, normalisation, ``cfg``); ``section``:
    results["saliency"] as built (each method's params and post-processing
    are recorded).
    """
    from auditkit.explain.images import display_images
    from auditkit.explain.runner import METHOD_LABELS, safe_names

    sample, images, displays, scales = explained.rows, explained.images, explained.displays, explained.scales
    cfg, positive, attributes = style.cfg, style.positive, style.attributes
    names = [str(c) for c in style.class_names]
    y_true = sample["y_true"].to_numpy(dtype=int)
    y_pred = sample["y_pred"].to_numpy(dtype=int)
    if positive is None:
        categories = ["correct" if a == b else "incorrect" for a, b in zip(y_true, y_pred, strict=True)]
    else:
        categories = [
            ("true_positive" if b == positive else "false_negative")
            if a == positive
            else ("false_positive" if b == positive else "true_negative")
            for a, b in zip(y_true, y_pred, strict=True)
        ]
    methods = {
        m: {
            "label": METHOD_LABELS.get(m, m),
            "params": (section.get(m) or {}).get("params", {}),
            "postprocessing": (section.get(m) or {}).get("postprocessing", []),
        }
        for m in displays
    }
    return write_cases(
        out_dir,
        sample,
        shown=display_images(images.inputs, mean=style.mean, std=style.std),
        masks=images.masks,
        rois=images.rois,
        displays=displays,
        scales=scales,
        categories=categories,
        class_names=names,
        positive=positive,
        threshold=cfg.threshold,
        attributes=attributes,
        methods=methods,
        corner_fraction=cfg.corner_fraction,
        stems=safe_names([str(i) for i in sample["id"]]),
    )


def _grey_or_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    return to_rgb_uint8(image)
