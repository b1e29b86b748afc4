"""Writing a phantom to disk: PNG images, lesion and lung masks, ``manifest.csv``, ``phantom.json``.

Files are rendered in fixed-size chunks (optionally in a process pool) into a
hidden staging folder inside the output folder, moved into place when all
are written, and ``phantom.json`` then ``manifest.csv`` are written last and
atomically: a crash never leaves a manifest that names missing or partial
images. The bytes depend on the configuration and seed only, not on the
number of workers.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from auditkit.data.phantom.cohort import MARKER_BASE_RATE, acquisition, sample_cases
from auditkit.data.phantom.config import (
    ACQUISITION_FIELDS,
    FLAW_NAMES,
    LABEL_NAMES,
    PhantomConfig,
)
from auditkit.data.phantom.render import blur_radius, quantize, render_cases
from auditkit.errors import OutputExistsError
from auditkit.fileio import write_csv, write_json
from auditkit.progress import track

FOLDERS: tuple[str, ...] = ("images", "masks", "roi")
MANIFEST_NAME = "manifest.csv"
TRUTH_NAME = "phantom.json"
GENERATOR = "auditkit.data.phantom"
TRUTH_VERSION = 1
_POOL_FROM_IMAGES = 1500
_STAGING_PREFIX = ".phantom-staging-"


@dataclass(frozen=True)
class PhantomResult:
    """Where a generated phantom lives: ``manifest_path``, ``truth_path`` (phantom.json),
    ``out_dir`` and ``n_images``."""

    manifest_path: Path
    truth_path: Path
    out_dir: Path
    n_images: int


def chunk_size(size: int) -> int:
    """Return the number of images rendered together: about 1 MiB of float32 per array."""
    return int(np.clip((1 << 18) // (size * size), 4, 256))


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def _write_chunk(config_json: dict[str, Any], cases: pd.DataFrame, staging: str) -> dict[str, np.ndarray]:
    """Render one chunk, write its PNGs under ``staging``, return per-image measurements."""
    config = PhantomConfig.model_validate(config_json)
    rendered = render_cases(cases, config)
    pixels = quantize(rendered.images, config.bit_depth)
    masks = rendered.lesion_masks.astype(np.uint8) * 255
    rois = rendered.roi_masks.astype(np.uint8) * 255
    has_lesion = rendered.lesion_masks.any(axis=(1, 2))
    for row, name in enumerate(cases["id"].tolist()):
        for folder, arrays in (("images", pixels), ("masks", masks), ("roi", rois)):
            if folder == "masks" and not has_lesion[row]:
                continue  # an image without a lesion has no mask file (an empty mask says nothing)
            with open(os.path.join(staging, folder, f"{name}.png"), "wb") as handle:
                handle.write(_png(arrays[row]))
    top = 255.0 if config.bit_depth == 8 else 65535.0
    boxes = np.full((len(cases), 4), -1, dtype=np.int64)
    for row in np.flatnonzero(rendered.lesion_masks.any(axis=(1, 2))):
        rows = np.flatnonzero(rendered.lesion_masks[row].any(axis=1))
        cols = np.flatnonzero(rendered.lesion_masks[row].any(axis=0))
        boxes[row] = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
    return {
        "lesion_box": boxes,
        "lesion_area": rendered.lesion_masks.sum(axis=(1, 2)),
        "roi_area": rendered.roi_masks.sum(axis=(1, 2)),
        "marker_box": rendered.marker_boxes,
        "mean_intensity": pixels.reshape(len(cases), -1).mean(axis=1) / top,
    }


def _prepare(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputExistsError(f"output '{out_dir}' is a file, not a folder; choose a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not force:
            raise OutputExistsError(
                f"output folder '{out_dir}' is not empty; choose an empty folder or pass --force "
                "to replace the phantom in it"
            )
        ours = (out_dir / TRUTH_NAME).is_file()
        for folder in FOLDERS:
            target = out_dir / folder
            if target.exists():
                if not ours:
                    raise OutputExistsError(
                        f"output folder '{out_dir}' holds a '{folder}/' folder but no "
                        f"{TRUTH_NAME}, so it is not a phantom that --force may replace; choose "
                        "another folder"
                    )
                shutil.rmtree(target)
        for name in (MANIFEST_NAME, TRUTH_NAME):
            (out_dir / name).unlink(missing_ok=True)
        for stale in out_dir.glob(f"{_STAGING_PREFIX}*"):
            # left by a run that was killed before it could clean up
            shutil.rmtree(stale, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)


def _default_workers(n_images: int) -> int:
    """Return the rendering processes: none for small phantoms or machines under 4 cores.

    Measured (benchmarks/RESULTS.md): on 2 cores the process pool's start-up
    and the contention cost more than the second core gains.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if n_images < _POOL_FROM_IMAGES or cores < 4:
        return 0
    return min(4, cores // 2)


def _render_all(
    config: PhantomConfig, cases: pd.DataFrame, staging: Path, workers: int
) -> dict[str, np.ndarray]:
    step = chunk_size(config.size)
    starts = list(range(0, len(cases), step))
    config_json = config.model_dump(mode="json")
    parts: list[dict[str, np.ndarray]] = []
    if workers <= 1:
        for start in track(starts, description="rendering phantom"):
            parts.append(_write_chunk(config_json, cases.iloc[start : start + step], str(staging)))
    else:
        # spawn, not fork: the caller may hold torch/BLAS threads that fork would copy mid-state
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            futures = [
                pool.submit(_write_chunk, config_json, cases.iloc[start : start + step], str(staging))
                for start in starts
            ]
            parts = [f.result() for f in track(futures, description="rendering phantom")]
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def _manifest(cases: pd.DataFrame, has_mask: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": cases["id"],
            "image": "images/" + cases["id"] + ".png",
            "label": np.asarray(LABEL_NAMES, dtype=object)[cases["label"].to_numpy()],
            "patient_id": cases["patient_id"],
            "site": cases["site"],
            # external rows are fixed; the others are assigned by patient at training time
            "split": np.where(cases["external"].to_numpy(), "external", ""),
            "mask": np.where(has_mask, "masks/" + cases["id"] + ".png", ""),
            "roi": "roi/" + cases["id"] + ".png",
            "sex": cases["sex"],
            "age_group": cases["age_group"],
        }
    )


def _round(values: np.ndarray, digits: int = 6) -> list[float]:
    return [round(float(v), digits) for v in values]


def _truth(config: PhantomConfig, cases: pd.DataFrame, measured: dict[str, np.ndarray]) -> dict[str, Any]:
    """Return the phantom.json document: configuration, sites, flaws, per-image ground truth."""
    acquisitions = {field: acquisition(config, field) for field in ACQUISITION_FIELDS}
    return {
        "generator": GENERATOR,
        "version": TRUTH_VERSION,
        "config": config.model_dump(mode="json"),
        "labels": {"negative": LABEL_NAMES[0], "positive": LABEL_NAMES[1]},
        "external_site": config.external_site,
        "sites": _site_records(config, cases, acquisitions),
        "flaws": _planted(config, cases, acquisitions),
        "blur_radius_px": {
            s.name: blur_radius(config, float(acquisitions["blur_sigma"][i]))
            for i, s in enumerate(config.site_list)
        },
        "images": _image_records(config, cases, measured),
    }


def _site_records(
    config: PhantomConfig, cases: pd.DataFrame, acquisitions: dict[str, np.ndarray]
) -> dict[str, Any]:
    """Return phantom.json's ``sites``: each site's configuration, acquisition as applied and counts."""
    sites: dict[str, Any] = {}
    for index, site in enumerate(config.site_list):
        rows = cases["site"] == site.name
        sites[site.name] = {
            "external": site.external,
            "configured_prevalence": site.prevalence,
            "acquisition": {field: round(float(acquisitions[field][index]), 6) for field in ACQUISITION_FIELDS},
            "n_images": int(rows.sum()),
            "n_patients": int(cases.loc[rows, "patient_id"].nunique()),
            "n_lesion": int(cases.loc[rows, "lesion"].sum()),
            "n_positive_label": int(cases.loc[rows, "label"].sum()),
        }
    return sites


def _planted(config: PhantomConfig, cases: pd.DataFrame, acquisitions: dict[str, np.ndarray]) -> dict[str, Any]:
    """Return phantom.json's ``flaws``: each flaw's switch and strength, and what it did."""
    internal = [s.name for s in config.site_list if not s.external]
    flaws = config.flaws
    planted: dict[str, Any] = {}
    for name in FLAW_NAMES:
        flaw = getattr(flaws, name)
        planted[name] = {"enabled": flaw.enabled, "strength": flaw.strength}
    s = flaws.shortcut.strength if flaws.shortcut.enabled else 0.0
    planted["shortcut"].update(
        {
            "affects_sites": internal if flaws.shortcut.enabled else [],
            "region": "top-right corner",
            "p_marker_given_positive": (1 + s) / 2,
            "p_marker_given_negative": (1 - s) / 2,
            "p_marker_elsewhere": MARKER_BASE_RATE,
            "n_marker": int(cases["marker"].sum()),
        }
    )
    u = flaws.underdiagnosis.strength if flaws.underdiagnosis.enabled else 0.0
    planted["underdiagnosis"].update(
        {
            "attribute": flaws.underdiagnosis.attribute,
            "value": flaws.underdiagnosis.value,
            "contrast_factor": 1 - 0.85 * u,
            "radius_factor": 1 - 0.3 * u,
            "n_affected_lesions": int(cases["underdiagnosed"].sum()),
        }
    )
    noise = flaws.label_noise
    subgroup = cases[noise.attribute] == noise.value if noise.attribute else cases["id"] != cases["id"]
    planted["label_noise"].update(
        {
            "attribute": noise.attribute,
            "value": noise.value,
            "n_subgroup": int(subgroup.sum()),
            "n_flipped": int(cases["label_flipped"].sum()),
            "flipped_ids": cases.loc[cases["label_flipped"], "id"].tolist(),
        }
    )
    planted["hidden_slice"].update(
        {
            "attribute": None,
            "device": "bright tube crossing the lower lung (chest-drain-like)",
            "contrast_factor": 1 - 0.7 * (flaws.hidden_slice.strength if flaws.hidden_slice.enabled else 0.0),
            "n_images": int(cases["hidden_slice"].sum()),
        }
    )
    frag = flaws.fragility.strength if flaws.fragility.enabled else 0.0
    planted["fragility"].update(
        {
            "affects_sites": [x.name for x in config.site_list] if flaws.fragility.enabled else [],
            "smooth_contrast_factor": 1 - 0.9 * frag,
            "detail": "one-pixel checkerboard inside the lesion, amplitude 0.6 s x lesion signal, after blur",
            "fragile_to": ["resolution", "shift", "rotation", "jpeg"] if flaws.fragility.enabled else [],
        }
    )
    is_internal = [not x.external for x in config.site_list]
    planted["site_shift"].update(
        {
            "site": config.external_site,
            "internal_range": {
                field: [round(float(acquisitions[field][is_internal].min()), 6),
                        round(float(acquisitions[field][is_internal].max()), 6)]
                for field in ACQUISITION_FIELDS
            }
            if config.external_site
            else None,
        }
    )
    return planted


def _image_records(config: PhantomConfig, cases: pd.DataFrame, measured: dict[str, np.ndarray]) -> list[dict]:
    """Return phantom.json's ``images``: one ground-truth record per image."""
    pixel = 2.0 / config.size * (cases["fov"] * cases["scale"]).to_numpy()
    lesion = cases["lesion"].to_numpy()
    images = pd.DataFrame(
        {
            "id": cases["id"],
            "patient_id": cases["patient_id"],
            "site": cases["site"],
            "sex": cases["sex"],
            "age_group": cases["age_group"],
            "lesion_present": lesion,
            "label": cases["label"],
            "label_true": cases["label_true"],
            "label_flipped": cases["label_flipped"],
            "marker": cases["marker"],
            "underdiagnosed": cases["underdiagnosed"],
            "hidden_slice": cases["hidden_slice"],
            "lesion_contrast": np.where(lesion, _round(cases["lesion_contrast"].to_numpy()), 0.0),
            "lesion_radius_px": np.where(
                lesion,
                _round(np.sqrt(cases["lesion_rx"] * cases["lesion_ry"]).to_numpy() / pixel, 3),
                0.0,
            ),
            "lesion_area_px": measured["lesion_area"].astype(int),
            "roi_area_px": measured["roi_area"].astype(int),
            "mean_intensity": _round(measured["mean_intensity"]),
        }
    )
    records = images.to_dict(orient="records")
    for record, box, lesion_box in zip(
        records, measured["marker_box"].tolist(), measured["lesion_box"].tolist(), strict=True
    ):
        record["marker_box"] = box if box[0] >= 0 else None
        record["lesion_box"] = lesion_box if lesion_box[0] >= 0 else None
    return records


def generate_phantom(
    out_dir: str | os.PathLike[str],
    config: PhantomConfig | None = None,
    *,
    force: bool = False,
    workers: int | None = None,
) -> PhantomResult:
    """Return where the phantom of ``config`` was written under ``out_dir``.

    Writes ``images/ID.png`` (8- or 16-bit grayscale), ``masks/ID.png`` (255 =
    lesion; only for images with a lesion, whose manifest ``mask`` cell is
    otherwise empty), ``roi/ID.png`` (255 = visible lung
    fields), ``manifest.csv`` (the DESIGN.md contract plus ``roi``; the
    external site's rows have ``split=external``) and ``phantom.json`` (the
    configuration and per-image ground truth). Refuses a non-empty folder
    unless ``force``. ``workers`` processes render in parallel (default: in-process
    below 1,500 images or 4 cores, else up to 4); the bytes do not depend on it.
    """
    config = config or PhantomConfig()
    out = Path(out_dir)
    _prepare(out, force)
    cases = sample_cases(config)
    count = _default_workers(config.n_images) if workers is None else max(0, int(workers))
    staging = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=out))
    try:
        for folder in FOLDERS:
            (staging / folder).mkdir()
        measured = _render_all(config, cases, staging, count)
        for folder in FOLDERS:
            os.replace(staging / folder, out / folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    has_mask = measured["lesion_area"] > 0
    if not np.array_equal(has_mask, cases["lesion"].to_numpy()):
        # the sampler keeps lesions clear of the heart, so this is a bug, not an input error
        raise RuntimeError("phantom: a lesion was rendered outside the visible lung fields")
    truth_path = write_json(out / TRUTH_NAME, _truth(config, cases, measured))
    manifest_path = write_csv(out / MANIFEST_NAME, _manifest(cases, has_mask))
    return PhantomResult(
        manifest_path=manifest_path,
        truth_path=truth_path,
        out_dir=out,
        n_images=config.n_images,
    )
