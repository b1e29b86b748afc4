"""DICOM volumes: a series folder (one file per slice) or one multi-frame object (enhanced CT/MR) read to a Volume.

Slices are sorted by ImagePositionPatient along the slice normal (never by file
name); RescaleSlope/Intercept per slice or per frame; spacing from
PixelSpacing/PixelMeasuresSequence and the median position step (uneven steps
beyond 1% are refused). See :mod:`auditkit.data.volumes` for the axes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from auditkit.data.volumes import _POSITION_TOLERANCE, Volume
from auditkit.errors import ImageReadError

# -- DICOM --------------------------------------------------------------------------------------


def _dcmread(path: Path, *, pixels: bool):
    import pydicom

    try:
        return pydicom.dcmread(path, stop_before_pixels=not pixels)
    except Exception as exc:
        raise ImageReadError(
            f"'{path}' is not a readable DICOM file ({type(exc).__name__}: {exc}); remove it from "
            "the series folder or replace it"
        ) from None


def _normal(orientation: Sequence[float]) -> np.ndarray:
    row, column = np.asarray(orientation[:3], float), np.asarray(orientation[3:6], float)
    return np.cross(row, column)


def _even_step(positions: np.ndarray, where: str) -> float:
    """Return the one slice step of sorted positions; refuse duplicates and uneven steps."""
    if len(positions) < 2:
        return 1.0
    steps = np.diff(positions)
    step = float(np.median(steps))
    if step <= 0 or np.any(steps <= 1e-6):
        raise ImageReadError(
            f"{where}: two slices share one ImagePositionPatient; a series folder must hold one "
            "volume (one file per slice position)"
        )
    if np.max(np.abs(steps - step)) > _POSITION_TOLERANCE * step:
        worst = int(np.argmax(np.abs(steps - step)))
        raise ImageReadError(
            f"{where}: slice positions are unevenly spaced (step {steps[worst]:.3g} mm after slice "
            f"{worst}, median {step:.3g} mm), so a slice is probably missing; give a complete series"
        )
    return step


def _rescale(pixels: np.ndarray, slope: Any, intercept: Any) -> np.ndarray:
    slope = 1.0 if slope is None else float(slope)
    intercept = 0.0 if intercept is None else float(intercept)
    return pixels.astype(np.float32) * np.float32(slope) + np.float32(intercept)


def read_series(folder: Path) -> Volume:
    """Return the volume of the one DICOM series in ``folder``, slices sorted along their normal."""
    from auditkit.data.dicom import is_dicom

    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and (p.suffix.lower() in (".dcm", ".dicom") or is_dicom(p))
    )
    if not files:
        raise ImageReadError(
            f"volume folder '{folder}' holds no DICOM files; give one folder per series"
        )
    headers = [_dcmread(p, pixels=False) for p in files]
    series = {str(h.get("SeriesInstanceUID", "")) for h in headers}
    if len(series) > 1:
        raise ImageReadError(
            f"volume folder '{folder}' mixes {len(series)} series (SeriesInstanceUID); keep one "
            "series per folder"
        )
    missing = [
        p.name for p, h in zip(files, headers, strict=True) if "ImagePositionPatient" not in h
    ]
    if missing:
        raise ImageReadError(
            f"volume folder '{folder}': {missing[0]} has no ImagePositionPatient, so its place in "
            "the volume is unknown; export the series with patient positions"
        )
    orientation = headers[0].get("ImageOrientationPatient", [1, 0, 0, 0, 1, 0])
    normal = _normal(orientation)
    positions = np.array(
        [float(np.dot(np.asarray(h.ImagePositionPatient, float), normal)) for h in headers]
    )
    order = np.argsort(positions, kind="stable")
    step = _even_step(positions[order], f"volume folder '{folder}'")
    shapes = {(int(h.Rows), int(h.Columns)) for h in headers}
    if len(shapes) > 1:
        raise ImageReadError(
            f"volume folder '{folder}': slices differ in size {sorted(shapes)}; one series only"
        )
    slices = []
    for index in order:
        ds = _dcmread(files[index], pixels=True)
        slices.append(_rescale(ds.pixel_array, ds.get("RescaleSlope"), ds.get("RescaleIntercept")))
    first = headers[0]
    dy, dx = (float(v) for v in first.get("PixelSpacing", [1.0, 1.0]))
    units = "HU" if str(first.get("Modality", "")) == "CT" else None
    return Volume(np.stack(slices).astype(np.float32), (abs(step), dy, dx), "dicom-series", units)


def _first_item(ds, sequence: str, attribute: str):
    groups = ds.get("SharedFunctionalGroupsSequence")
    if groups:
        inner = groups[0].get(sequence)
        if inner and attribute in inner[0]:
            return inner[0].get(attribute)
    return None


def read_multiframe(path: Path) -> Volume:
    """Return the volume of one multi-frame DICOM, frames ordered by their per-frame positions."""
    ds = _dcmread(path, pixels=True)
    from auditkit.data.dicom import _check_decodable

    _check_decodable(ds, path)
    try:
        pixels = ds.pixel_array
    except Exception as exc:
        raise ImageReadError(
            f"volume '{path}': its pixel data cannot be decoded ({type(exc).__name__}: {exc})"
        ) from None
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    if pixels.ndim == 2:
        pixels = pixels[None]
    if pixels.ndim != 3 or pixels.shape[0] != n_frames:
        raise ImageReadError(
            f"volume '{path}' has pixel array {pixels.shape}; a volume is one grayscale frame per slice"
        )
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    slopes = np.ones(n_frames, np.float32)
    intercepts = np.zeros(n_frames, np.float32)
    shared_slope = _first_item(ds, "PixelValueTransformationSequence", "RescaleSlope")
    shared_intercept = _first_item(ds, "PixelValueTransformationSequence", "RescaleIntercept")
    slopes[:] = float(
        shared_slope if shared_slope is not None else ds.get("RescaleSlope", 1.0) or 1.0
    )
    intercepts[:] = float(
        shared_intercept if shared_intercept is not None else ds.get("RescaleIntercept", 0.0) or 0.0
    )
    positions = None
    orientation = _first_item(ds, "PlaneOrientationSequence", "ImageOrientationPatient") or ds.get(
        "ImageOrientationPatient", [1, 0, 0, 0, 1, 0]
    )
    if len(per_frame) == n_frames:
        found = []
        for k, item in enumerate(per_frame):
            transform = item.get("PixelValueTransformationSequence")
            if transform:
                slopes[k] = float(transform[0].get("RescaleSlope", slopes[k]))
                intercepts[k] = float(transform[0].get("RescaleIntercept", intercepts[k]))
            plane = item.get("PlanePositionSequence")
            if plane and "ImagePositionPatient" in plane[0]:
                found.append(
                    float(
                        np.dot(
                            np.asarray(plane[0].ImagePositionPatient, float), _normal(orientation)
                        )
                    )
                )
        positions = np.array(found) if len(found) == n_frames else None
    values = pixels.astype(np.float32) * slopes[:, None, None] + intercepts[:, None, None]
    if positions is not None:
        order = np.argsort(positions, kind="stable")
        step = _even_step(positions[order], f"volume '{path}'")
        values = values[order]
    else:
        # no per-frame positions (e.g. RT dose, nuclear medicine): frames in stored order
        offsets = ds.get("GridFrameOffsetVector")
        if offsets is not None and len(offsets) == n_frames and n_frames > 1:
            step = _even_step(np.sort(np.asarray(offsets, float)), f"volume '{path}'")
        else:
            step = float(ds.get("SpacingBetweenSlices", ds.get("SliceThickness", 1.0)) or 1.0)
    spacing = _first_item(ds, "PixelMeasuresSequence", "PixelSpacing") or ds.get(
        "PixelSpacing", [1.0, 1.0]
    )
    dy, dx = (float(v) for v in spacing)
    units = "HU" if str(ds.get("Modality", "")) == "CT" else None
    return Volume(np.ascontiguousarray(values), (abs(step), dy, dx), "dicom-multiframe", units)


# -- preprocessing ------------------------------------------------------------------------------
