"""Saliency maps as DICOM for PACS: a Parametric Map per case and method, and an optional Secondary Capture.

For every case of ``explain/cases.json`` whose source image is DICOM, each
method's display map (the float32 array the explanation step saved,
:mod:`auditkit.explain.cases`) is resampled from the model's input grid to the
source's rows and columns (bilinear, pixel centres aligned: the inverse of the
preprocessing resize) and written with highdicom as a Parametric Map
(float pixel data, unitless real-world value mapping) that references the
source image: the same Study Instance UID, Frame of Reference and geometry,
a new Series per source series and method, the source in the Referenced
Image / Source Image sequences, and the method with its parameters in the
Series Description (64 characters) and in full in the Derivation Description.
``secondary_capture`` adds a Secondary Capture of the blended overlay (RGB,
the report's colormap and shared scale) for viewers that cannot show
Parametric Maps. A multi-frame source (enhanced CT/MR, a multi-frame
Secondary Capture) gets a one-frame map on the case's frame (cases.json
``source.frame``, the manifest's ``frame`` column), placed at that frame's
plane position and referenced by its Referenced Frame Number; a multi-frame
source without a recorded frame is counted and skipped.

Privacy: patient and study attributes come only from the source (highdicom
copies the patient and study modules); file names are counters and method
names, never identifiers. ``deidentify`` applies the attribute actions of the
PS3.15 Basic Application Level Confidentiality Profile (Table E.1-1) to the
written files (type 2 attributes emptied, the others and private tags
removed) with the Retain UIDs option, since the export's purpose is to sit
beside the source study (PatientIdentityRemoved YES and the profile codes
are recorded). Sources that are not DICOM (PNG, JPEG, TIFF, NumPy) are
counted and skipped.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from auditkit import __version__
from auditkit.errors import InvalidInputError, OutputExistsError
from auditkit.fileio import write_json

MANUFACTURER = "auditkit"

# PS3.15 Table E.1-1 (Basic Profile) actions for attributes a derived image can carry.
# Z: keep, empty (type 2 in the IODs written here); X: remove. UIDs are retained (Retain UIDs Option).
BASIC_PROFILE_EMPTY = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
    "ReferringPhysicianName", "StudyID", "AccessionNumber", "ContentCreatorName",
)  # fmt: skip
BASIC_PROFILE_REMOVE = (
    "OtherPatientIDs", "OtherPatientIDsSequence", "OtherPatientNames", "PatientBirthName",
    "PatientMotherBirthName", "PatientAddress", "PatientTelephoneNumbers", "PatientAge",
    "PatientSize", "PatientWeight", "PatientComments", "PatientBirthTime", "EthnicGroup",
    "Occupation", "AdditionalPatientHistory", "MedicalRecordLocator", "MilitaryRank",
    "BranchOfService", "CountryOfResidence", "RegionOfResidence", "PatientReligiousPreference",
    "ResponsiblePerson", "ResponsibleOrganization", "InstitutionName", "InstitutionAddress",
    "InstitutionalDepartmentName", "StationName", "OperatorsName", "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy", "PhysiciansOfRecord", "RequestingPhysician",
    "ReferringPhysicianAddress", "ReferringPhysicianTelephoneNumbers", "StudyDescription",
    "SeriesDescription", "DerivationDescription", "ImageComments", "AcquisitionDate", "AcquisitionTime",
    "AcquisitionDateTime", "SeriesDate", "SeriesTime", "ContentDate", "ContentTime",
    "InstanceCreationDate", "InstanceCreationTime", "DeviceSerialNumber", "ProtocolName",
    "RequestAttributesSequence", "PerformedProcedureStepID", "PerformedProcedureStepDescription",
    "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime", "IssuerOfPatientID",
    "PatientInsurancePlanCodeSequence", "ReferencedPatientSequence", "ReferencedStudySequence",
    "AdmittingDiagnosesDescription", "CurrentPatientLocation", "DerivationCodeSequence",
    "ContentCreatorIdentificationCodeSequence",
)  # fmt: skip
"""Series Description, Derivation Description and dates are X/D in the profile: with
--deidentify they go too (the method is then in the Content Label and Content Description)."""


@dataclass
class ExportSummary:
    """What one export wrote and skipped."""

    out: Path
    files: list[Path] = field(default_factory=list)
    n_cases: int = 0
    n_dicom_cases: int = 0
    skipped_not_dicom: int = 0
    skipped_missing: int = 0
    skipped_multiframe: int = 0
    skipped_volume: int = 0

    def lines(self) -> list[str]:
        """Return the report printed by the command: one line per fact, 80 columns."""
        out = [f"wrote {len(self.files)} DICOM files for {self.n_dicom_cases} DICOM-sourced cases to {self.out}"]
        if self.skipped_not_dicom:
            out.append(f"skipped {self.skipped_not_dicom} cases whose source is not DICOM (PNG/JPEG/TIFF/NumPy)")
        if self.skipped_volume:
            out.append(f"skipped {self.skipped_volume} volume cases (3-D sources; maps are exported for 2-D DICOM images)")
        if self.skipped_missing:
            out.append(f"skipped {self.skipped_missing} cases whose source file is no longer readable")
        if self.skipped_multiframe:
            out.append(f"skipped {self.skipped_multiframe} multi-frame sources whose frame was not recorded "
                       "(give the manifest a 'frame' column)")
        return out


def resample_to(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Return ``values`` (h, w) resized to ``shape`` (rows, columns), bilinear with pixel centres aligned."""
    values = np.asarray(values, dtype=np.float32)
    if values.shape == tuple(shape):
        return values.copy()
    image = Image.fromarray(values, mode="F").resize((shape[1], shape[0]), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.float32)


def series_description(label: str, params: dict[str, Any], steps: Iterable[str]) -> str:
    """Return the method, its parameters and its display steps as text of at most 64 characters (LO)."""
    shown = {k: v for k, v in params.items() if k not in ("mean", "std") and not isinstance(v, (list, dict))}
    text = " ".join([f"auditkit {label}", *(f"{k}={v}" for k, v in shown.items()), *steps])
    return text[:64]


def deidentify_dataset(ds: Any) -> None:
    """Apply the PS3.15 basic-profile actions (Retain UIDs) to ``ds`` in place, and record that it was done."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    for keyword in BASIC_PROFILE_EMPTY:
        if keyword in ds:
            ds.data_element(keyword).value = ""
    for keyword in BASIC_PROFILE_REMOVE:
        if keyword in ds:
            del ds[keyword]
    ds.remove_private_tags()
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = ["PS3.15 Basic Application Confidentiality Profile", "Retain UIDs Option"]
    codes = []
    for value, meaning in (("113100", "Basic Application Confidentiality Profile"), ("113110", "Retain UIDs Option")):
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
        codes.append(item)
    ds.DeidentificationMethodCodeSequence = Sequence(codes)


def _read_source(path: str | None) -> Any:
    import pydicom

    if path is None:
        return None
    try:
        return pydicom.dcmread(path)
    except (OSError, pydicom.errors.InvalidDicomError):
        return None


def _with_pixel_grid_geometry(source: Any) -> Any:
    import copy

    import highdicom as hd

    grid = copy.deepcopy(source)
    spacing = source.get("PixelSpacing") or source.get("ImagerPixelSpacing") or [1.0, 1.0]
    grid.FrameOfReferenceUID = hd.UID()
    grid.ImagePositionPatient = [0.0, 0.0, 0.0]
    grid.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    grid.PixelSpacing = [float(spacing[0]), float(spacing[1])]
    grid.SliceThickness = 1.0
    return grid


def _with_frame_grid_geometry(source: Any) -> Any:
    """Return a copy of the multi-frame ``source`` given a pixel-grid geometry: frame k at z = k."""
    import copy

    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    grid = _with_pixel_grid_geometry(source)
    shared = copy.deepcopy(source.SharedFunctionalGroupsSequence[0]) if "SharedFunctionalGroupsSequence" in source else Dataset()
    measures, orientation = Dataset(), Dataset()
    measures.PixelSpacing, measures.SliceThickness = list(grid.PixelSpacing), 1.0
    orientation.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    shared.PixelMeasuresSequence, shared.PlaneOrientationSequence = Sequence([measures]), Sequence([orientation])
    grid.SharedFunctionalGroupsSequence = Sequence([shared])
    frames = []
    for z in range(_n_frames(source)):
        item, position = Dataset(), Dataset()
        position.ImagePositionPatient = [0.0, 0.0, float(z)]
        item.PlanePositionSequence = Sequence([position])
        frames.append(item)
    grid.PerFrameFunctionalGroupsSequence = Sequence(frames)
    return grid


def _frame_group(source: Any, frame: int, keyword: str) -> Any:
    """Return the functional group ``keyword`` of ``frame`` (per-frame first, then shared), or None."""
    per_frame = source.get("PerFrameFunctionalGroupsSequence") or []
    shared = source.get("SharedFunctionalGroupsSequence") or []
    items = ([per_frame[frame]] if frame < len(per_frame) else []) + list(shared[:1])
    for item in items:
        if keyword in item and item[keyword].value:
            return item[keyword][0]
    return None


def _frame_geometry(source: Any, frame: int) -> tuple[Any, dict[str, Any]]:
    """Return (source, the plane position/orientation/pixel measures of its ``frame``) for highdicom.

    highdicom finds the source frame the map lies on from the position and
    references it (Referenced Frame Number); a multi-frame object without
    patient geometry gets the pixel grid's, frame k at z = k.
    """
    import highdicom as hd

    patient = hd.CoordinateSystemNames.PATIENT
    if "FrameOfReferenceUID" not in source or _frame_group(source, frame, "PlanePositionSequence") is None:
        source = _with_frame_grid_geometry(source)
    position = _frame_group(source, frame, "PlanePositionSequence").ImagePositionPatient
    orientation = _frame_group(source, frame, "PlaneOrientationSequence").ImageOrientationPatient
    measures = _frame_group(source, frame, "PixelMeasuresSequence")
    thickness = measures.get("SliceThickness")
    return source, {
        "plane_positions": [hd.PlanePositionSequence(patient, [float(v) for v in position])],
        "plane_orientation": hd.PlaneOrientationSequence(patient, [float(v) for v in orientation]),
        "pixel_measures": hd.PixelMeasuresSequence(
            [float(v) for v in measures.PixelSpacing], float(thickness) if thickness else None
        ),
    }


def _n_frames(source: Any) -> int:
    return int(source.get("NumberOfFrames", 1) or 1)


def _parametric_map(source: Any, values: np.ndarray, *, series_uid: str, series_number: int, instance: int,
                    description: str, derivation: str, label: str, frame: int | None = None) -> Any:  # fmt: skip
    import highdicom as hd
    from pydicom.sr.codedict import codes

    low, high = float(values.min()), float(values.max())
    mapping = hd.pm.RealWorldValueMapping(
        lut_label="saliency",
        lut_explanation=description[:64],
        unit=codes.UCUM.NoUnits,
        value_range=(low, high if high > low else low + 1.0),
        slope=1.0,
        intercept=0.0,
    )
    # geometry: highdicom takes the plane position, orientation and pixel measures from the source
    # (CT/MR). A projection radiograph (CR/DX) has no patient coordinate system; the map then gets
    # a Frame of Reference of its own for the source's pixel grid (origin 0, rows along y, the
    # imager spacing), which says only that map pixel (r, c) lies on source pixel (r, c).
    geometry: dict[str, Any] = {}
    pixels = values.astype(np.float32)
    if frame is not None:  # one frame of a multi-frame source
        source, geometry = _frame_geometry(source, frame)
        pixels = pixels[None]
    elif "FrameOfReferenceUID" not in source or "ImagePositionPatient" not in source:
        source = _with_pixel_grid_geometry(source)
    pm = hd.pm.ParametricMap(
        source_images=[source],
        pixel_array=pixels,
        series_instance_uid=series_uid,
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=instance,
        manufacturer=MANUFACTURER,
        manufacturer_model_name="auditkit saliency",
        software_versions=__version__,
        device_serial_number="0",
        contains_recognizable_visual_features=False,
        real_world_value_mappings=[mapping],
        window_center=(low + high) / 2,
        window_width=max(high - low, 1e-6),
        content_label=label,
        content_description=description[:64],
        **geometry,
    )
    pm.SeriesDescription = description
    pm.DerivationDescription = derivation[:1024]
    return pm


def _secondary_capture(source: Any, rgb: np.ndarray, *, series_uid: str, series_number: int, instance: int,
                       description: str, derivation: str) -> Any:  # fmt: skip
    import highdicom as hd

    orientation = source.get("PatientOrientation") or None
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=source,
        pixel_array=rgb,
        photometric_interpretation="RGB",
        bits_allocated=8,
        coordinate_system="PATIENT",
        series_instance_uid=series_uid,
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=instance,
        manufacturer=MANUFACTURER,
        patient_orientation=tuple(orientation) if orientation and len(orientation) == 2 else ("L", "P"),
        transfer_syntax_uid="1.2.840.10008.1.2.1",
    )
    sc.SeriesDescription = description
    sc.DerivationDescription = derivation[:1024]
    sc.BurnedInAnnotation = "NO"
    return sc


def _overlay_rgb(path: str, values: np.ndarray, scale: dict[str, Any], frame: int | None = None) -> np.ndarray:
    from auditkit.data.readers import read_image
    from auditkit.explain.overlay import OverlayScale, render_overlay

    image = read_image(path, frame_index=frame)  # modality and VOI LUTs applied, MONOCHROME1 inverted
    overlay_scale = OverlayScale(float(scale.get("vmin", 0.0)), float(scale.get("vmax", 1.0)),
                                 str(scale.get("label", "")), str(scale.get("cmap", "inferno")))  # fmt: skip
    shown = render_overlay(image, values, overlay_scale, panel_px=max(values.shape), colorbar=False)
    rgb = np.asarray(shown.convert("RGB"), dtype=np.uint8)
    return rgb[: values.shape[0], : values.shape[1]]


def export_dicom(
    report: str | Path,
    out: str | Path,
    *,
    secondary_capture: bool = False,
    deidentify: bool = False,
    force: bool = False,
) -> ExportSummary:
    """Return what was written after exporting every DICOM-sourced case's maps of ``report`` to ``out``.

    Writes ``out/pm_<case>_<method>.dcm`` (and ``sc_<case>_<method>.dcm``),
    numbered by case order, and ``out/export.json`` listing each file with its
    method and SOP Instance UID (and the case id unless ``deidentify``).
    """
    try:
        import highdicom  # noqa: F401
    except ImportError:
        raise InvalidInputError(
            "DICOM export needs highdicom; install it with `pip install 'auditkit[dicom]'`"
        ) from None
    import highdicom as hd

    from auditkit.viewer.data import load_cases, report_folder

    folder = report_folder(report)
    document = load_cases(folder)
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not force:
        raise OutputExistsError(f"{out} is not empty; choose an empty folder or pass --force")
    out.mkdir(parents=True, exist_ok=True)
    summary = ExportSummary(out=out)
    numbering = _Numbering(hd.UID)
    listing = []
    for number, case in enumerate(document["cases"], start=1):
        summary.n_cases += 1
        source = _dicom_source(case, summary)
        if source is None:
            continue
        summary.n_dicom_cases += 1
        with np.load(folder / case["arrays"], allow_pickle=False) as arrays:
            maps = {m: arrays[m] for m in arrays.files}
        datasets = _case_datasets(
            case, source, maps, document.get("methods", {}), numbering,
            secondary_capture=secondary_capture,
        )  # fmt: skip
        for kind, method, dataset in datasets:
            if deidentify:
                deidentify_dataset(dataset)
            path = out / f"{kind}_{number:05d}_{method}.dcm"
            dataset.save_as(path, enforce_file_format=True)
            summary.files.append(path)
            entry = {"file": path.name, "kind": kind, "method": method,
                     "sop_instance_uid": str(dataset.SOPInstanceUID),
                     "series_instance_uid": str(dataset.SeriesInstanceUID)}  # fmt: skip
            if not deidentify:
                entry["case"] = case.get("id")
            listing.append(entry)
    write_json(out / "export.json", {"format": "auditkit-dicom-export", "version": 1,
                                     "deidentified": deidentify, "files": listing})  # fmt: skip
    return summary


class _Numbering:
    """Series (UID, number) per (source series, method) and instance numbers within each series."""

    def __init__(self, new_uid: Callable[[], str]) -> None:
        self._new_uid = new_uid
        self._series: dict[tuple[str, str], tuple[str, int]] = {}
        self._instances: dict[tuple[str, str], int] = defaultdict(int)

    def next(self, key: tuple[str, str], base: int) -> tuple[str, int, int]:
        """Return (series UID, series number, instance number) of the next instance of ``key``.

        A new series is numbered ``base`` + the number of series so far + 1.
        """
        if key not in self._series:
            self._series[key] = (self._new_uid(), base + len(self._series) + 1)
        self._instances[key] += 1
        uid, series_number = self._series[key]
        return uid, series_number, self._instances[key]


def _dicom_source(case: dict[str, Any], summary: ExportSummary) -> Any:
    """Return the case's DICOM source dataset, or None (counted in ``summary``).

    A multi-frame source needs the case's frame (cases.json ``source.frame``).
    """
    source_info = case.get("source") or {}
    if source_info.get("format") == "volume":
        summary.skipped_volume += 1
        return None
    if source_info.get("format") != "dicom":
        summary.skipped_not_dicom += 1
        return None
    source = _read_source(source_info.get("path"))
    if source is None or "PixelData" not in source:
        summary.skipped_missing += 1
        return None
    frame = source_info.get("frame")
    if _n_frames(source) > 1 and not (isinstance(frame, int) and 0 <= frame < _n_frames(source)):
        summary.skipped_multiframe += 1
        return None
    return source


def _case_datasets(
    case: dict[str, Any],
    source: Any,
    maps: dict[str, np.ndarray],
    methods: dict[str, Any],
    numbering: _Numbering,
    *,
    secondary_capture: bool,
) -> Iterator[tuple[str, str, Any]]:
    """Yield (kind ``pm``|``sc``, method, dataset) for each method's map of one case."""
    shape = (int(source.Rows), int(source.Columns))
    for method, values in maps.items():
        info = methods.get(method, {})
        label = str(info.get("label", method))
        description = series_description(label, dict(info.get("params", {})), info.get("postprocessing", []))
        derivation = (
            f"auditkit {__version__} saliency map: {label}; parameters "
            f"{json.dumps(info.get('params', {}), sort_keys=True)}; post-processing "
            f"{', '.join(info.get('postprocessing', []))}; computed on the model input "
            f"{case.get('shape')} and resampled bilinearly to {shape[0]}x{shape[1]}"
        )
        key = (str(source.SeriesInstanceUID), method)
        uid, series_number, instance = numbering.next(key, 9000)
        resampled = resample_to(values, shape)
        frame = case["source"].get("frame") if _n_frames(source) > 1 else None
        written = [("pm", method, _parametric_map(
            source, resampled, series_uid=uid, series_number=series_number, instance=instance,
            description=description, derivation=derivation, label=method.upper()[:16], frame=frame,
        ))]  # fmt: skip
        if secondary_capture:
            sc_uid, sc_number, sc_instance = numbering.next((key[0], method + ":sc"), 9500)
            rgb = _overlay_rgb(case["source"]["path"], resampled, info.get("scale", {}), frame)
            written.append(("sc", method, _secondary_capture(
                source, rgb, series_uid=sc_uid, series_number=sc_number, instance=sc_instance,
                description=f"{description} overlay"[:64], derivation=derivation,
            )))  # fmt: skip
        # both are built before either is written (de-identified): they read the same source
        yield from written
