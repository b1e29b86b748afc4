"""Synthetic DICOM files written with pydicom for the multi-frame and volume tests (nothing downloaded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2.1"
MULTIFRAME_GRAY_WORD_SC = "1.2.840.10008.5.1.4.1.1.7.3"


def _base(sop_class: str, rows: int, columns: int) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientID = "P0"
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 0
    return ds


def write_multiframe(
    path: Path, frames: np.ndarray, *, window: tuple[float, float] | None = None
) -> Path:
    """Write a (F, H, W) uint16 stack as one multi-frame secondary-capture DICOM; return its path."""
    frames = np.asarray(frames, dtype=np.uint16)
    ds = _base(MULTIFRAME_GRAY_WORD_SC, frames.shape[1], frames.shape[2])
    ds.Modality = "OT"
    ds.NumberOfFrames = frames.shape[0]
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = frames.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_ct_series(
    folder: Path,
    hu: np.ndarray,
    *,
    spacing: tuple[float, float, float] = (2.5, 0.8, 0.8),
    origin_z: float = -100.0,
    order: list[int] | None = None,
    slope: float = 1.0,
    intercept: float = -1024.0,
) -> Path:
    """Write a (D, H, W) volume in Hounsfield units as one CT file per slice; return the folder.

    Files are named in ``order`` (default: reversed, so sorting by name is wrong
    and only ImagePositionPatient gives the anatomy's order).
    """
    folder.mkdir(parents=True, exist_ok=True)
    depth = hu.shape[0]
    order = list(reversed(range(depth))) if order is None else order
    series = generate_uid()
    stored = np.round((hu - intercept) / slope).astype(np.uint16)
    for file_index, z in enumerate(order):
        ds = _base(CT_IMAGE, hu.shape[1], hu.shape[2])
        ds.Modality = "CT"
        ds.SeriesInstanceUID = series
        ds.InstanceNumber = file_index + 1
        ds.ImagePositionPatient = [0.0, 0.0, origin_z + z * spacing[0]]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [spacing[1], spacing[2]]
        ds.SliceThickness = spacing[0]
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        ds.PixelData = stored[z].tobytes()
        ds.save_as(folder / f"slice_{file_index:03d}.dcm", enforce_file_format=True)
    return folder


def write_enhanced_ct(
    path: Path,
    hu: np.ndarray,
    *,
    spacing: tuple[float, float, float] = (2.0, 0.7, 0.7),
    slope: float = 2.0,
    intercept: float = -1024.0,
    reverse: bool = True,
) -> Path:
    """Write a (D, H, W) HU volume as one enhanced (multi-frame) CT with per-frame positions.

    Frames are stored top-down when ``reverse`` so only PlanePositionSequence gives the order.
    """
    depth = hu.shape[0]
    ds = _base(ENHANCED_CT_IMAGE, hu.shape[1], hu.shape[2])
    ds.Modality = "CT"
    ds.NumberOfFrames = depth
    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = [spacing[1], spacing[2]]
    measures.SliceThickness = spacing[0]
    shared.PixelMeasuresSequence = Sequence([measures])
    transform = Dataset()
    transform.RescaleSlope, transform.RescaleIntercept = slope, intercept
    transform.RescaleType = "HU"
    shared.PixelValueTransformationSequence = Sequence([transform])
    orientation = Dataset()
    orientation.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    shared.PlaneOrientationSequence = Sequence([orientation])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    order = list(reversed(range(depth))) if reverse else list(range(depth))
    per_frame = []
    for z in order:
        item = Dataset()
        position = Dataset()
        position.ImagePositionPatient = [0.0, 0.0, 10.0 + z * spacing[0]]
        item.PlanePositionSequence = Sequence([position])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    stored = np.round((hu - intercept) / slope).astype(np.uint16)
    ds.PixelData = np.ascontiguousarray(stored[order]).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
