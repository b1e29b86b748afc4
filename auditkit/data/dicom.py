"""DICOM images through pydicom, with the display pipeline a radiologist's viewer applies.

Stored values become display intensities in the order PS3.3 C.11 and PS3.4
N.2.1 prescribe: decode the pixel data, apply the Modality LUT (Rescale
Slope/Intercept, or a Modality LUT Sequence: ``pydicom.pixels.apply_modality_lut``),
then the VOI LUT (a VOI LUT Sequence, or Window Center/Width with its VOI LUT
Function: ``pydicom.pixels.apply_voi_lut``), and finally invert MONOCHROME1 so
that larger always means brighter. The result is scaled to [0, 1] by the
transform's own output range (the window maps onto the stored value range
``[y_min, y_max]``; a VOI LUT onto ``[0, 2**bits - 1]``). With neither a VOI LUT
nor a window, the modality values are min–max scaled per image, which is what
a viewer does by default for an image that carries no window.

Colour images (RGB, YBR converted by pydicom, PALETTE COLOR through its
lookup table) are scaled by their bit depth. Multi-frame images are refused
unless a frame is named, because a classifier takes one 2-D image per row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from auditkit.errors import ImageReadError

_PREAMBLE_MAGIC = b"DICM"
_MONOCHROME = ("MONOCHROME1", "MONOCHROME2")


def is_dicom(path: str | Path) -> bool:
    """Return whether the file starts with the DICOM preamble (128 bytes, then ``DICM``)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(128)
            return handle.read(4) == _PREAMBLE_MAGIC
    except OSError:
        return False


def _read_dataset(path: Path, *, stop_before_pixels: bool):
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
    except InvalidDicomError:
        # Some modality exports omit the 128-byte preamble; force reading still
        # parses them, and the pixel checks below refuse what is not an image.
        try:
            return pydicom.dcmread(path, stop_before_pixels=stop_before_pixels, force=True)
        except Exception as exc:
            raise ImageReadError(
                f"image file '{path}' is not a readable DICOM file ({exc}); "
                "replace it with a valid DICOM file"
            ) from None
    except Exception as exc:
        raise ImageReadError(
            f"image file '{path}' is not a readable DICOM file ({type(exc).__name__}: {exc}); "
            "replace it with a valid DICOM file"
        ) from None


def _number_of_frames(ds) -> int:
    try:
        return int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        return 1


def _describe(ds) -> str:
    modality = ds.get("Modality", "?")
    sop = getattr(ds.get("SOPClassUID", None), "name", ds.get("SOPClassUID", "?"))
    return f"modality {modality}, SOP class {sop}"


def dicom_shape(path: str | Path) -> tuple[int, int]:
    """Return ``(rows, columns)`` of a DICOM image, reading the header only."""
    path = Path(path)
    ds = _read_dataset(path, stop_before_pixels=True)
    rows, columns = ds.get("Rows"), ds.get("Columns")
    if not rows or not columns:
        raise ImageReadError(
            f"image file '{path}' is a DICOM object without an image ({_describe(ds)}: "
            "no Rows/Columns); list only image objects in the manifest"
        )
    return int(rows), int(columns)


def dicom_frame_count(path: str | Path) -> int:
    """Return NumberOfFrames of a DICOM object (1 when absent), reading the header only."""
    return _number_of_frames(_read_dataset(Path(path), stop_before_pixels=True))


def _check_decodable(ds, path: Path) -> None:
    """Raise ImageReadError naming the transfer syntax when no installed codec decodes it."""
    from pydicom.pixels import get_decoder

    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax is None or not syntax.is_compressed:
        return
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise ImageReadError(
            f"image file '{path}' uses transfer syntax '{syntax.name}' ({syntax}), which pydicom "
            "cannot decode; convert it to an uncompressed DICOM (e.g. dcmdjpeg/gdcmconv --raw)"
        ) from None
    if not decoder.is_available:
        options = "; ".join(decoder.missing_dependencies) or "a pydicom pixel-data plugin"
        raise ImageReadError(
            f"image file '{path}' is compressed as '{syntax.name}' and no installed codec "
            f"decodes it; install one of: {options} (or convert the file to an uncompressed "
            "transfer syntax)"
        )


def _stored_range(ds) -> tuple[float, float]:
    """Return the ``[y_min, y_max]`` that Window Center/Width maps onto (PS3.3 C.11.2.1.2).

    This is the range pydicom's ``apply_windowing`` uses: the stored value
    range (unsigned or two's complement by Pixel Representation, or the
    Modality LUT's output depth), passed through Rescale Slope/Intercept.
    """
    bits = int(ds.BitsStored)
    if ds.get("ModalityLUTSequence"):
        y_min, y_max = 0.0, float(2 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1)
    elif int(ds.PixelRepresentation) == 0:
        y_min, y_max = 0.0, float(2**bits - 1)
    else:
        y_min, y_max = float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if slope is not None and intercept is not None:
        y_min = y_min * float(slope) + float(intercept)
        y_max = y_max * float(slope) + float(intercept)
    return y_min, y_max


def _voi_lut_depth(ds, index: int) -> int:
    return int(ds.VOILUTSequence[index].LUTDescriptor[2])


def _has_voi_lut(ds) -> bool:
    seq = ds.get("VOILUTSequence")
    return bool(seq) and None not in (seq[0].get("LUTDescriptor"), seq[0].get("LUTData"))


def _has_window(ds) -> bool:
    return ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None


def _minmax(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.float32)
    return ((values - low) / (high - low)).astype(np.float32)


def _grayscale(arr: np.ndarray, ds, path: Path) -> np.ndarray:
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        values = apply_modality_lut(arr, ds)
    except (ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        # a Rescale Slope/Intercept or Modality LUT that is not numbers: the file is damaged
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:120]
        raise ImageReadError(
            f"image file '{path}': its Modality LUT or Rescale Slope/Intercept is malformed ({reason}); "
            "export it again"
        ) from None
    if _has_voi_lut(ds):
        if np.issubdtype(values.dtype, np.floating):
            # a VOI LUT indexes by integer input; rescaled CT values are integers held as floats
            values = np.rint(values).astype(np.int64)
        out = apply_voi_lut(values, ds, index=0, prefer_lut=True).astype(np.float64)
        scaled = out / float(2 ** _voi_lut_depth(ds, 0) - 1)
    elif _has_window(ds):
        try:
            out = apply_voi_lut(values, ds, index=0, prefer_lut=True)
        except ValueError as exc:
            raise ImageReadError(
                f"image file '{path}': its window cannot be applied ({exc}); fix Window "
                "Center/Width or remove them to use the image's own range"
            ) from None
        y_min, y_max = _stored_range(ds)
        scaled = (np.asarray(out, dtype=np.float64) - y_min) / (y_max - y_min)
    else:
        scaled = _minmax(np.asarray(values, dtype=np.float64))
    scaled = np.clip(scaled, 0.0, 1.0).astype(np.float32)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        # MONOCHROME1 stores the minimum as white (PS3.3 C.7.6.3.1.2): invert after the VOI
        scaled = 1.0 - scaled
    return scaled


def _colour(arr: np.ndarray, ds) -> np.ndarray:
    from pydicom.pixels import apply_color_lut

    photometric = ds.PhotometricInterpretation
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(arr, ds)
        depth = int(ds.RedPaletteColorLookupTableDescriptor[2])
        return (rgb.astype(np.float64) / float(2**depth - 1)).astype(np.float32)
    bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 8)))
    return (arr.astype(np.float64) / float(2**bits - 1)).astype(np.float32)


def read_dicom(path: str | Path, *, frame_index: int | None = None) -> np.ndarray:
    """Return a DICOM image as float32 in [0, 1]: ``(H, W)`` grayscale or ``(H, W, 3)`` colour.

    Grayscale: Modality LUT, then VOI LUT or window (first view), MONOCHROME1
    inverted (PS3.3 C.11, PS3.4 N.2.1). ``frame_index`` picks one frame of a
    multi-frame object, which is refused without it.
    """
    path = Path(path)
    ds = _read_dataset(path, stop_before_pixels=False)
    if not any(tag in ds for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise ImageReadError(
            f"image file '{path}' has no pixel data ({_describe(ds)}); it is not an image, "
            "so remove it from the manifest"
        )
    n_frames = _number_of_frames(ds)
    if n_frames > 1 and frame_index is None:
        raise ImageReadError(
            f"image file '{path}' is a multi-frame DICOM with {n_frames} frames; a 2-D audit reads "
            "one frame per row, so give the row a 'frame' column (0-based frame number) in the "
            "manifest, or audit it as a volume (auditkit.data.volumes)"
        )
    if frame_index is not None and not 0 <= frame_index < n_frames:
        raise ImageReadError(
            f"image file '{path}' has {n_frames} frame(s), so frame index {frame_index} does "
            f"not exist; choose a frame between 0 and {n_frames - 1}"
        )
    _check_decodable(ds, path)
    try:
        arr = ds.pixel_array
    except Exception as exc:
        raise ImageReadError(
            f"image file '{path}': its pixel data cannot be decoded ({type(exc).__name__}: {exc}); "
            "the file may be truncated or corrupt, so export it again"
        ) from None
    if n_frames > 1:
        arr = arr[frame_index]
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    if photometric in _MONOCHROME:
        if arr.ndim != 2:
            raise ImageReadError(
                f"image file '{path}': expected one 2-D grayscale frame, got pixel array of "
                f"shape {arr.shape}; name one with the manifest's 'frame' column"
            )
        return _grayscale(arr, ds, path)
    try:
        return _colour(arr, ds)
    except (AttributeError, KeyError, ValueError, TypeError, IndexError) as exc:
        # PALETTE COLOR needs its three lookup tables; a file without them cannot be shown
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:120]
        raise ImageReadError(
            f"image file '{path}' is {photometric} but its colour lookup tables are missing or "
            f"malformed ({reason}); export it again as RGB or grayscale"
        ) from None
