"""DICOM export round trip on pydicom's shipped test files (CT, MR, a MONOCHROME1 CR): UIDs, geometry, values."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
pytest.importorskip("highdicom")
from pydicom.data import get_testdata_file  # noqa: E402

from tests.viewer.conftest import write_planted_report  # noqa: E402

PARAMETRIC_MAP = "1.2.840.10008.5.1.4.1.1.30"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
SOURCES = ("CT_small.dcm", "MR_small.dcm", "6154")  # 6154: a 16x16 CR, MONOCHROME1, no patient geometry


def _sources(tmp_path):
    from PIL import Image

    png = tmp_path / "plain.png"
    Image.fromarray(np.zeros((16, 16), dtype=np.uint8)).save(png)
    return [get_testdata_file(name) for name in SOURCES] + [str(png)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from auditkit.export.dicom import export_dicom

    base = tmp_path_factory.mktemp("dicom")
    sources = _sources(base)
    planted = write_planted_report(base / "report", n=4, source_paths=sources)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = export_dicom(base / "report", base / "out", secondary_capture=True)
    return base, sources, planted, summary


def _read(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path)


def _referenced(ds) -> set[str]:
    found = set()

    def walk(dataset):
        for element in dataset:
            if element.keyword == "ReferencedSOPInstanceUID":
                found.add(str(element.value))
            elif element.VR == "SQ":
                for item in element.value:
                    walk(item)

    walk(ds)
    return found


def test_png_sources_are_skipped_with_one_counted_line(exported):
    _, _, _, summary = exported
    assert summary.skipped_not_dicom == 1 and summary.n_dicom_cases == 3
    assert "skipped 1 cases whose source is not DICOM" in "\n".join(summary.lines())
    assert len(summary.files) == 3 * 2 * 2  # 3 cases x (Grad-CAM, IG) x (Parametric Map, Secondary Capture)


@pytest.mark.parametrize("case", [0, 1, 2])
def test_each_parametric_map_references_its_source_with_its_geometry_and_values(exported, case):
    from auditkit.export.dicom import resample_to

    base, sources, planted, _ = exported
    source = _read(sources[case])
    for k, method in enumerate(("gradcam", "ig")):
        pm = _read(base / "out" / f"pm_{case + 1:05d}_{method}.dcm")
        assert pm.SOPClassUID == PARAMETRIC_MAP
        assert pm.StudyInstanceUID == source.StudyInstanceUID
        assert pm.SeriesInstanceUID != source.SeriesInstanceUID
        assert source.SOPInstanceUID in _referenced(pm)
        assert (pm.Rows, pm.Columns) == (source.Rows, source.Columns)
        assert "FloatPixelData" in pm
        assert pm.SeriesDescription.startswith("auditkit ") and len(pm.SeriesDescription) <= 64
        label = {"gradcam": "Grad-CAM", "ig": "Integrated Gradients"}[method]
        assert label in pm.SeriesDescription and label in pm.DerivationDescription
        truth = planted["displays"][method][case]
        values = pm.pixel_array.astype(np.float32)
        assert np.array_equal(values, resample_to(truth, (source.Rows, source.Columns)))
        if source.Rows == truth.shape[0]:  # the CR: same grid, so the map itself comes back
            assert np.array_equal(values, truth)
        else:  # an independent bilinear resize with pixel centres aligned (scikit-image)
            from skimage.transform import resize

            expected = resize(truth, (source.Rows, source.Columns), order=1, mode="edge", anti_aliasing=False)
            inner = (slice(4, -4), slice(4, -4))  # PIL and skimage differ only in the border pixels' clamping
            assert np.allclose(values[inner], expected[inner], atol=1e-5)
        if "ImagePositionPatient" in source:
            frame = pm.PerFrameFunctionalGroupsSequence[0] if "PerFrameFunctionalGroupsSequence" in pm else None
            shared = pm.SharedFunctionalGroupsSequence[0]
            position = (frame if frame is not None and "PlanePositionSequence" in frame else shared).PlanePositionSequence[0]
            assert [float(v) for v in position.ImagePositionPatient] == pytest.approx([float(v) for v in source.ImagePositionPatient])
            orientation = shared.PlaneOrientationSequence[0].ImageOrientationPatient
            assert [float(v) for v in orientation] == pytest.approx([float(v) for v in source.ImageOrientationPatient])
            spacing = shared.PixelMeasuresSequence[0].PixelSpacing
            assert [float(v) for v in spacing] == pytest.approx([float(v) for v in source.PixelSpacing])
            assert pm.FrameOfReferenceUID == source.FrameOfReferenceUID
        del k


def test_secondary_captures_are_rgb_overlays_in_the_same_study(exported):
    base, sources, _, _ = exported
    for case in range(3):
        source = _read(sources[case])
        sc = _read(base / "out" / f"sc_{case + 1:05d}_gradcam.dcm")
        assert sc.SOPClassUID == SECONDARY_CAPTURE
        assert sc.StudyInstanceUID == source.StudyInstanceUID
        assert sc.pixel_array.shape == (source.Rows, source.Columns, 3)
        assert sc.PhotometricInterpretation == "RGB"


def test_deidentify_removes_the_basic_profile_attributes_and_names_carry_no_patient_data(tmp_path):
    from auditkit.cli import run

    sources = _sources(tmp_path)
    write_planted_report(tmp_path / "report", n=4, source_paths=sources)
    ct = _read(sources[0])
    assert str(ct.PatientName)  # the source carries a name: the export must not
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert run(["export-dicom", str(tmp_path / "report"), "--out", str(tmp_path / "out"), "--deidentify"]) == 0
    files = sorted((tmp_path / "out").glob("*.dcm"))
    assert files and all(re.fullmatch(r"pm_\d{5}_[a-z]+\.dcm", f.name) for f in files)
    for f in files:
        ds = _read(f)
        assert str(ds.PatientName) == "" and str(ds.PatientID) == "" and str(ds.PatientBirthDate) == ""
        assert ds.PatientIdentityRemoved == "YES"
        for keyword in ("InstitutionName", "OtherPatientIDs", "PatientAge", "ReferringPhysicianName"):
            assert not str(ds.get(keyword, ""))
        assert not any(element.tag.is_private for element in ds)
        assert ds.StudyInstanceUID in {_read(s).StudyInstanceUID for s in sources[:3]}  # Retain UIDs
    text = (tmp_path / "out" / "export.json").read_text()
    assert str(ct.PatientName) not in text and '"case"' not in text


def test_a_non_empty_output_folder_is_refused_without_force(tmp_path, capsys):
    from auditkit.cli import run

    write_planted_report(tmp_path / "report", n=4)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("keep")
    assert run(["export-dicom", str(tmp_path / "report"), "--out", str(tmp_path / "out")]) == 2
    assert "not empty" in capsys.readouterr().err


def _with_study(path, frame_of_reference=True):
    from pydicom.uid import generate_uid

    ds = _read(path)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    if frame_of_reference:
        ds.FrameOfReferenceUID = generate_uid()
    for keyword, value in (("PatientName", "PLANTED"), ("StudyDate", "20260101"), ("StudyTime", "000000"),
                           ("AccessionNumber", ""), ("ReferringPhysicianName", ""), ("StudyID", "1"),
                           ("SeriesNumber", 1), ("InstanceNumber", 1), ("PatientBirthDate", ""),
                           ("PatientSex", "")):  # fmt: skip
        setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)
    return path


def test_multi_frame_sources_get_a_map_on_the_recorded_frame(tmp_path):
    """Enhanced CT (frames stored top-down) and a multi-frame SC: the map lies on, and references, its frame."""
    from auditkit.export.dicom import export_dicom, resample_to
    from tests.volumes.dicom_helpers import write_enhanced_ct, write_multiframe

    rng = np.random.default_rng(0)
    enhanced = _with_study(write_enhanced_ct(tmp_path / "ect.dcm", rng.normal(0, 50, (4, 24, 20)), spacing=(2.0, 0.7, 0.7)))
    multi_sc = _with_study(write_multiframe(tmp_path / "sc.dcm", rng.integers(0, 4000, (3, 16, 12))), frame_of_reference=False)
    # frames are 0-based stored indices: the enhanced CT stores z top-down, so frame 2 is z index 1, at 10 + 1 * 2.0 mm
    planted = write_planted_report(tmp_path / "report", n=3, source_paths=[str(enhanced), str(multi_sc), str(enhanced)],
                                   source_frames=[2, 1, None])  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = export_dicom(tmp_path / "report", tmp_path / "out", secondary_capture=True)
    assert summary.skipped_multiframe == 1 and summary.n_dicom_cases == 2
    assert any("frame was not recorded" in line for line in summary.lines())
    source = _read(enhanced)
    pm = _read(tmp_path / "out" / "pm_00001_gradcam.dcm")
    assert pm.SOPClassUID == PARAMETRIC_MAP and int(pm.NumberOfFrames) == 1
    assert pm.FrameOfReferenceUID == source.FrameOfReferenceUID and pm.StudyInstanceUID == source.StudyInstanceUID
    reference = pm.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0].SourceImageSequence[0]
    assert reference.ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert int(reference.ReferencedFrameNumber) == 3  # stored index 2, 1-based
    position = pm.PerFrameFunctionalGroupsSequence[0].PlanePositionSequence[0].ImagePositionPatient
    assert [float(v) for v in position] == pytest.approx(
        [float(v) for v in source.PerFrameFunctionalGroupsSequence[2].PlanePositionSequence[0].ImagePositionPatient])
    spacing = pm.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
    assert [float(v) for v in spacing] == pytest.approx([0.7, 0.7])
    truth = planted["displays"]["gradcam"][0]
    assert np.array_equal(pm.pixel_array.astype(np.float32), resample_to(truth, (24, 20)))
    sc_map = _read(tmp_path / "out" / "pm_00002_ig.dcm")
    sc_reference = sc_map.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0].SourceImageSequence[0]
    assert int(sc_reference.ReferencedFrameNumber) == 2 and sc_reference.ReferencedSOPInstanceUID == _read(multi_sc).SOPInstanceUID
    assert (sc_map.Rows, sc_map.Columns) == (16, 12)
    overlay = _read(tmp_path / "out" / "sc_00002_gradcam.dcm")
    assert overlay.pixel_array.shape == (16, 12, 3)


def test_a_frames_geometry_comes_from_its_own_group_first_then_the_shared_group():
    """A plane position only in the shared functional group (one stack) is found for every frame."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    from auditkit.export.dicom import _frame_group

    def group(keyword, **values):
        item, inner = Dataset(), Dataset()
        for name, value in values.items():
            setattr(inner, name, value)
        setattr(item, keyword, Sequence([inner]))
        return item

    source = Dataset()
    source.SharedFunctionalGroupsSequence = Sequence([group("PlanePositionSequence", ImagePositionPatient=[0, 0, 9])])
    own = group("PlanePositionSequence", ImagePositionPatient=[0, 0, 1])
    source.PerFrameFunctionalGroupsSequence = Sequence([own, Dataset(), group("FrameContentSequence", StackID="1")])
    assert [float(v) for v in _frame_group(source, 0, "PlanePositionSequence").ImagePositionPatient] == [0, 0, 1]
    for frame in (1, 2, 7):  # no per-frame position (or no per-frame item at all): the shared one
        assert [float(v) for v in _frame_group(source, frame, "PlanePositionSequence").ImagePositionPatient] == [0, 0, 9]
    assert _frame_group(source, 1, "PixelMeasuresSequence") is None
