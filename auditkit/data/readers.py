"""Image and mask readers: PNG, JPEG, TIFF, NumPy ``.npy`` and DICOM to float arrays in [0, 1].

Every reader returns float32 ``(H, W)`` (grayscale) or ``(H, W, C)`` (colour),
with intensities scaled by the file's nominal range, never by the image's own
minimum and maximum (which would hide the magnitudes a model and an auditor
should see): 8-bit / 255, 16-bit / 65535, floats as stored, DICOM after its
display pipeline (:mod:`auditkit.data.dicom`). Alpha channels are dropped.

Known limit: Pillow decodes 16-bit-per-channel RGB PNG/TIFF at 8 bits per
channel (it keeps the high byte), so such colour images lose their low byte;
16-bit grayscale is read exactly.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from auditkit.data.dicom import dicom_frame_count, dicom_shape, is_dicom, read_dicom
from auditkit.errors import ImageReadError

PIL_SUFFIXES: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff"})
NPY_SUFFIXES: frozenset[str] = frozenset({".npy"})
DICOM_SUFFIXES: frozenset[str] = frozenset({".dcm", ".dicom"})
SUPPORTED = "PNG, JPEG, TIFF, DICOM or .npy"

_EIGHT_BIT_MODES = {"L": 1, "RGB": 3}
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
_NPY_INTEGER_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def image_format(path: str | Path) -> str:
    """Return ``"pil"``, ``"npy"`` or ``"dicom"``: how the file is read (by suffix, else DICOM magic)."""
    suffix = Path(path).suffix.lower()
    if suffix in PIL_SUFFIXES:
        return "pil"
    if suffix in NPY_SUFFIXES:
        return "npy"
    if suffix in DICOM_SUFFIXES or is_dicom(path):
        return "dicom"
    raise ImageReadError(
        f"image file '{path}' has suffix {suffix or '(none)'!r}, which is not a supported "
        f"format; give a {SUPPORTED} file (DICOM files may also be recognised by their preamble)"
    )


def _open_pil(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(path)
    except FileNotFoundError:
        raise ImageReadError(f"image file '{path}' does not exist; check the path") from None
    except Image.DecompressionBombError as exc:
        # PIL refuses images large enough to be a decompression bomb; this is not a radiograph size.
        raise ImageReadError(
            f"image file '{path}' is refused as too large to decode safely ({exc}); "
            "downsample it before auditing"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageReadError(
            f"image file '{path}' cannot be read as an image ({exc}); replace it with a valid "
            f"{SUPPORTED} file"
        ) from None


def npy_header(path: str | Path) -> tuple[tuple[int, ...], np.dtype]:
    """Return the shape and dtype an .npy header declares, once the file is known to hold that many bytes.

    Reads only the header: a 100-byte file declaring a 300 GiB array is refused
    (ImageReadError) before NumPy allocates anything.
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
            offset = handle.tell()
            size = os.fstat(handle.fileno()).st_size
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as exc:  # EOFError: a zero-byte file
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise ImageReadError(
            f"image file '{path}' is not a valid NumPy .npy file ({reason}); save it with numpy.save"
        ) from None
    shape = tuple(int(s) for s in shape)
    dtype = np.dtype(dtype)
    # check before allocating: a 100-byte header may declare hundreds of gigabytes
    needed = math.prod(shape) * dtype.itemsize if not dtype.hasobject else 0
    if needed > size - offset:
        raise ImageReadError(
            f"image file '{path}' declares an array of shape {shape} ({needed} bytes) but holds "
            f"only {size - offset} bytes of data; the file is truncated or forged, so save it again"
        )
    return shape, dtype


def _check_npy_shape(shape: tuple[int, ...], path: Path) -> tuple[int, int]:
    if len(shape) == 2 or (len(shape) == 3 and shape[2] in (1, 3)):
        return shape[0], shape[1]
    hint = ""
    if len(shape) == 3 and shape[0] in (1, 3):
        hint = " (it looks channel-first: save array.transpose(1, 2, 0))"
    raise ImageReadError(
        f"image file '{path}' holds an array of shape {shape}; expected (H, W) or (H, W, C) "
        f"with C = 1 or 3{hint}"
    )


def image_shape(path: str | Path) -> tuple[int, int]:
    """Return ``(H, W)`` of an image, reading only its header; raises ImageReadError if unreadable."""
    path = Path(path)
    kind = image_format(path)
    if kind == "dicom":
        return dicom_shape(path)
    if kind == "npy":
        shape, dtype = npy_header(path)
        if dtype.hasobject:
            raise ImageReadError(
                f"image file '{path}' holds Python objects (dtype {dtype}); auditkit never "
                "unpickles data, so save a numeric array"
            )
        return _check_npy_shape(shape, path)
    with _open_pil(path) as image:
        width, height = image.size
    return int(height), int(width)


def frame_count(path: str | Path) -> int:
    """Return the number of frames of an image (1 for a single-frame file), reading only its header."""
    path = Path(path)
    kind = image_format(path)
    if kind == "dicom":
        return dicom_frame_count(path)
    if kind == "npy":
        return 1
    with _open_pil(path) as image:
        return int(getattr(image, "n_frames", 1))


def _pil_to_array(image, path: Path) -> np.ndarray:
    mode = image.mode
    if mode in ("LA", "La", "P", "PA", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"):
        # drop alpha and decode palettes/colour spaces to plain luminance or RGB
        gray = mode in ("LA", "La") or (mode in ("P", "PA") and _palette_is_gray(image))
        image = image.convert("L" if gray else "RGB")
        mode = image.mode
    if mode == "1":
        return np.asarray(image, dtype=np.float32)
    if mode in _EIGHT_BIT_MODES:
        values = np.asarray(image, dtype=np.float32)  # a fresh, writable array
        values /= np.float32(255.0)
        return values
    if mode in _SIXTEEN_BIT_MODES:
        return np.asarray(image).astype(np.float32) / np.float32(65535.0)
    if mode == "I":
        values = np.asarray(image, dtype=np.int64)
        if values.min() < 0 or values.max() > 65535:
            raise ImageReadError(
                f"image file '{path}' is a 32-bit integer image with values outside 0..65535; "
                "save it as 8- or 16-bit, or as a float .npy scaled to [0, 1]"
            )
        return values.astype(np.float32) / np.float32(65535.0)
    if mode == "F":
        return _finite(np.asarray(image, dtype=np.float32), path)
    raise ImageReadError(
        f"image file '{path}' has Pillow mode {mode!r}, which auditkit cannot interpret; "
        "save it as 8/16-bit grayscale or 8-bit RGB"
    )


def _palette_is_gray(image) -> bool:
    rgb = np.asarray(image.convert("RGB"))
    return bool(np.all(rgb[..., 0] == rgb[..., 1]) and np.all(rgb[..., 1] == rgb[..., 2]))


def _finite(values: np.ndarray, path: Path) -> np.ndarray:
    if not np.all(np.isfinite(values)):
        raise ImageReadError(
            f"image file '{path}' contains NaN or infinite values; replace them before auditing"
        )
    return values


def _read_npy(path: Path) -> np.ndarray:
    shape, dtype = npy_header(path)
    if dtype.hasobject:
        raise ImageReadError(
            f"image file '{path}' holds Python objects (dtype {dtype}); auditkit never "
            "unpickles data, so save a numeric array"
        )
    _check_npy_shape(shape, path)
    try:
        values = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ImageReadError(f"image file '{path}' cannot be loaded ({exc}); save it again") from None
    if values.ndim == 3 and values.shape[2] == 1:
        values = values[:, :, 0]
    if values.dtype == np.bool_:
        return values.astype(np.float32)
    if values.dtype in _NPY_INTEGER_SCALE:
        return values.astype(np.float32) / np.float32(_NPY_INTEGER_SCALE[values.dtype])
    if np.issubdtype(values.dtype, np.floating):
        return _finite(values.astype(np.float32), path)
    raise ImageReadError(
        f"image file '{path}' holds a {values.dtype} array, whose intensity scale is ambiguous "
        "(8-bit? 16-bit? Hounsfield units?); save it as uint8, uint16, or float in [0, 1]"
    )


def read_image(path: str | Path, *, frame_index: int | None = None) -> np.ndarray:
    """Return an image as float32 ``(H, W)`` or ``(H, W, C)`` with intensities in [0, 1].

    8-bit / 255, 16-bit / 65535, floats as stored (finite), DICOM after the
    Modality LUT and VOI LUT/window with MONOCHROME1 inverted. ``frame_index``
    selects one frame of a multi-frame DICOM.
    """
    path = Path(path)
    kind = image_format(path)
    if kind != "pil" and not path.is_file():
        raise ImageReadError(f"image file '{path}' does not exist; check the path")
    if kind == "dicom":
        return read_dicom(path, frame_index=frame_index)
    if kind == "npy":
        return _read_npy(path)
    with _open_pil(path) as image:
        n_frames = int(getattr(image, "n_frames", 1))
        if n_frames > 1 and frame_index is None:
            raise ImageReadError(
                f"image file '{path}' holds {n_frames} frames/pages; auditkit reads one 2-D "
                "image per row, so give the row a 'frame' column (0-based page number) in the "
                "manifest or save the frames as separate files"
            )
        if frame_index is not None:
            if not 0 <= frame_index < n_frames:
                raise ImageReadError(
                    f"image file '{path}' has {n_frames} frame(s), so frame index {frame_index} "
                    f"does not exist; choose a frame between 0 and {n_frames - 1}"
                )
            image.seek(frame_index)
        try:
            with _strict_decoding():
                image.load()
            values = _pil_to_array(image, path)
        except ImageReadError:
            raise
        except (OSError, ValueError, SyntaxError) as exc:
            raise ImageReadError(
                f"image file '{path}' cannot be decoded ({exc}); the file may be truncated or "
                "corrupt, so export it again"
            ) from None
    return np.ascontiguousarray(values)


_STRICT_LOCK = threading.Lock()


@contextlib.contextmanager
def _strict_decoding() -> Iterator[None]:
    """Refuse truncated files while decoding, whatever another library set globally.

    WeasyPrint sets ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES = True`` on import,
    which would make Pillow fill a truncated medical image with black instead
    of failing; a scan must never be silently half-read.
    """
    from PIL import ImageFile

    with _STRICT_LOCK:
        previous = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        try:
            yield
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = previous


def read_mask(path: str | Path) -> np.ndarray:
    """Return a mask as bool ``(H, W)``: True where the stored value is non-zero (any channel)."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"mask file '{path}' does not exist; check the path")
    kind = image_format(path)
    if kind == "npy":
        shape, dtype = npy_header(path)
        if dtype.hasobject:
            raise ImageReadError(f"mask file '{path}' holds Python objects; save a numeric array")
        _check_npy_shape(shape, path)
        try:
            values = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise ImageReadError(f"mask file '{path}' cannot be loaded ({exc}); save it again") from None
    elif kind == "dicom":
        values = read_dicom(path)
    else:
        with _open_pil(path) as image:
            try:
                with _strict_decoding():
                    image.load()
                values = np.asarray(image)
            except (OSError, ValueError, SyntaxError) as exc:
                raise ImageReadError(
                    f"mask file '{path}' cannot be decoded ({exc}); export it again"
                ) from None
    mask = values != 0
    return mask.any(axis=2) if mask.ndim == 3 else mask
