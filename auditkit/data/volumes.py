"""Volumes (CT, MRI): NIfTI, DICOM series, multi-frame DICOM and ``.npy`` read to (D, H, W) arrays with spacing.

A manifest's ``image`` cell names one volume: a NIfTI file (``.nii``,
``.nii.gz``), a folder holding one DICOM series (one file per slice), one
multi-frame DICOM (enhanced CT/MR, or any object whose frames are slices), or
a ``.npy`` array ``(D, H, W)``. :func:`read_volume` returns a :class:`Volume`:
float32 values in the file's physical units (Hounsfield units for CT after
the rescale slope/intercept; MR as stored) and the voxel spacing in mm, with
axes ``(D, H, W)``:

- DICOM: D runs along the slice normal (row x column direction cosines) in
  increasing ImagePositionPatient, H along the columns (top to bottom of a
  slice), W along the rows. Slices are sorted by their position, never by
  file name or InstanceNumber; spacing between slices is the median step of
  the positions (uneven steps beyond 1% are refused, a missing slice would
  otherwise stretch the anatomy), in-plane spacing from PixelSpacing.
- NIfTI: the image is reoriented to the closest canonical (RAS+) orientation
  (nibabel ``as_closest_canonical``), then stored ``(x, y, z)`` becomes
  ``(z, y, x)``: D = inferior to superior, H = posterior to anterior, W = left
  to right. Masks are read the same way, so they stay aligned.
- ``.npy``: ``(D, H, W)`` as stored, spacing 1 mm (say otherwise with
  :class:`VolumePreprocess` ``spacing=None``, which resizes instead).

:class:`VolumePreprocess` is the declared preprocessing stored in the
checkpoint: intensity windowing (``window=(centre, width)``, e.g. ``(40,
400)`` for CT soft tissue; values outside clip to 0 or 1), then resampling to
a fixed voxel grid (trilinear to a target spacing, then a centred crop or pad
to ``size``; or a plain resize to ``size``), then normalisation. Masks go through the same
geometry with nearest-neighbour sampling (:meth:`VolumePreprocess.mask_to_input`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from auditkit.errors import ImageReadError, InvalidInputError

NIFTI_SUFFIXES: tuple[str, ...] = (".nii", ".nii.gz")
_POSITION_TOLERANCE = 0.01  # relative spread of slice steps accepted as one even spacing


@dataclass(frozen=True)
class Volume:
    """One volume as read from its file(s)."""

    array: np.ndarray
    """Voxel values (D, H, W) float32 in the file's physical units."""
    spacing: tuple[float, float, float]
    """Voxel size (dz, dy, dx) in mm."""
    kind: str
    """``"nifti"``, ``"dicom-series"``, ``"dicom-multiframe"`` or ``"npy"``."""
    units: str | None = None
    """``"HU"`` when a CT rescale gave Hounsfield units, else None."""

    @property
    def shape(self) -> tuple[int, int, int]:
        """Return ``(D, H, W)``."""
        return tuple(int(s) for s in self.array.shape)  # type: ignore[return-value]


def volume_format(path: str | Path) -> str:
    """Return how ``path`` is read: ``"nifti"``, ``"dicom-series"`` (a folder), ``"dicom"`` or ``"npy"``."""
    path = Path(path)
    name = path.name.lower()
    if path.is_dir():
        return "dicom-series"
    if any(name.endswith(s) for s in NIFTI_SUFFIXES):
        return "nifti"
    if name.endswith(".npy"):
        return "npy"
    from auditkit.data.dicom import is_dicom

    if name.endswith((".dcm", ".dicom")) or (path.is_file() and is_dicom(path)):
        return "dicom"
    raise ImageReadError(
        f"volume '{path}' is neither a NIfTI file (.nii, .nii.gz), a folder of DICOM slices, a "
        "multi-frame DICOM nor a .npy array; give one of those"
    )


def read_volume(path: str | Path) -> Volume:
    """Return the :class:`Volume` stored at ``path`` (see the module docstring for axes and units)."""
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"volume '{path}' does not exist; check the path")
    kind = volume_format(path)
    if kind == "nifti":
        return _read_nifti(path)
    if kind == "npy":
        return _read_npy(path)
    from auditkit.data.volume_dicom import read_multiframe, read_series

    if kind == "dicom-series":
        return read_series(path)
    return read_multiframe(path)


def read_volume_mask(path: str | Path) -> np.ndarray:
    """Return a volume mask as bool (D, H, W): True where the stored value is non-zero."""
    return read_volume(path).array != 0


# -- NIfTI -------------------------------------------------------------------------------------


def _read_nifti(path: Path) -> Volume:
    import nibabel as nib

    try:
        image = nib.as_closest_canonical(nib.load(str(path)))
        data = np.asarray(image.dataobj, dtype=np.float32)  # scl_slope/inter applied by nibabel
    except Exception as exc:
        raise ImageReadError(
            f"volume '{path}' cannot be read as NIfTI ({type(exc).__name__}: {exc}); export it again"
        ) from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ImageReadError(
            f"volume '{path}' has shape {data.shape}; auditkit reads one 3-D volume (x, y, z) per "
            "row, so split time series or channels into separate files"
        )
    zooms = tuple(float(z) for z in image.header.get_zooms()[:3])
    array = np.ascontiguousarray(np.transpose(data, (2, 1, 0)))
    return Volume(_finite(array, path), (zooms[2], zooms[1], zooms[0]), "nifti")


# -- NumPy --------------------------------------------------------------------------------------


def _read_npy(path: Path) -> Volume:
    try:
        data = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise ImageReadError(
            f"volume '{path}' cannot be read as a numeric .npy array ({exc}); auditkit never "
            "unpickles data, so save a numeric array"
        ) from None
    if data.ndim != 3:
        raise ImageReadError(f"volume '{path}' has shape {data.shape}; save a (D, H, W) array")
    if data.dtype == np.bool_ or np.issubdtype(data.dtype, np.number):
        return Volume(_finite(data.astype(np.float32), path), (1.0, 1.0, 1.0), "npy")
    raise ImageReadError(f"volume '{path}' holds {data.dtype} values; save a numeric array")


def _finite(array: np.ndarray, path: Path) -> np.ndarray:
    if not np.isfinite(array).all():
        raise ImageReadError(f"volume '{path}' holds NaN or infinite values; clean them first")
    return array


@dataclass(frozen=True)
class VolumePreprocess:
    """Declared preprocessing of a volume: resample, window, normalise; stored in model.json.

    ``size``: the model's input (D, H, W). ``spacing``: target voxel size
    (dz, dy, dx) in mm; the volume is resampled to it (trilinear) and then
    centre-cropped or padded (with the window's low end, or the volume's
    minimum) to ``size``; ``None`` resizes the whole volume to ``size``.
    ``window``: ``(centre, width)`` in the volume's units; values map
    linearly from ``centre - width/2 .. centre + width/2`` to 0..1 and clip;
    ``None`` keeps the values (a ``.npy`` already in [0, 1]).
    ``mean``/``std``: normalisation after windowing, one value per channel.
    """

    size: tuple[int, int, int]
    spacing: tuple[float, float, float] | None = None
    window: tuple[float, float] | None = None
    in_channels: int = 1
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    kind: str = field(default="volume", init=False)

    def __post_init__(self) -> None:
        if len(self.size) != 3 or min(self.size) < 1:
            raise InvalidInputError(
                f"volume size must be three positive sizes (D, H, W), got {self.size}"
            )
        if self.spacing is not None and (len(self.spacing) != 3 or min(self.spacing) <= 0):
            raise InvalidInputError(
                f"volume spacing must be three positive mm values, got {self.spacing}"
            )
        if self.window is not None and (len(self.window) != 2 or self.window[1] <= 0):
            raise InvalidInputError(
                f"window must be (centre, width) with width > 0, got {self.window}"
            )
        if min(self.std) <= 0:
            raise InvalidInputError(f"std must be positive, got {self.std}")

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form stored in model.json (``kind: "volume"``)."""
        return {
            "kind": "volume",
            "size": list(self.size),
            "spacing": None if self.spacing is None else list(self.spacing),
            "window": None if self.window is None else list(self.window),
            "in_channels": self.in_channels,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VolumePreprocess:
        """Return the preprocessing described by :meth:`to_dict`'s output."""
        return cls(
            size=tuple(int(s) for s in data["size"]),  # type: ignore[arg-type]
            spacing=None
            if data.get("spacing") is None
            else tuple(float(s) for s in data["spacing"]),  # type: ignore[arg-type]
            window=None if data.get("window") is None else tuple(float(s) for s in data["window"]),  # type: ignore[arg-type]
            in_channels=int(data.get("in_channels", 1)),
            mean=tuple(float(v) for v in data.get("mean", (0.0,))),
            std=tuple(float(v) for v in data.get("std", (1.0,))),
        )

    def _grid(self, shape: Sequence[int], spacing: Sequence[float]) -> tuple[int, ...]:
        if self.spacing is None:
            return tuple(self.size)
        return tuple(
            max(1, round(n * s / t)) for n, s, t in zip(shape, spacing, self.spacing, strict=True)
        )

    def _place(self, tensor: torch.Tensor, fill: float) -> torch.Tensor:
        """Centre-crop or pad (N, C, d, h, w) to ``size``; pads get ``fill``."""
        out = tensor
        for axis, want in zip(range(2, 5), self.size, strict=True):
            have = out.shape[axis]
            if have > want:
                start = (have - want) // 2
                out = out.narrow(axis, start, want)
            elif have < want:
                before = (want - have) // 2
                pad_shape = list(out.shape)
                pad_shape[axis] = before
                after_shape = list(out.shape)
                after_shape[axis] = want - have - before
                out = torch.cat(
                    [
                        torch.full(pad_shape, fill, dtype=out.dtype),
                        out,
                        torch.full(after_shape, fill, dtype=out.dtype),
                    ],
                    dim=axis,
                )
        return out

    def prepare(self, volume: Volume) -> torch.Tensor:
        """Return the resampled, windowed volume (1, D, H, W) float32 in [0, 1] (before normalisation)."""
        x = torch.from_numpy(np.ascontiguousarray(volume.array, dtype=np.float32))[None, None]
        # window first: interpolating across a -1000 HU / soft-tissue edge would otherwise give
        # values the window clips to 0, eroding small lesions
        if self.window is not None:
            centre, width = self.window
            low = centre - width / 2
            x = ((x - low) / width).clamp(0.0, 1.0)
            fill = 0.0
        else:
            fill = float(x.min()) if x.numel() else 0.0
        grid = self._grid(volume.shape, volume.spacing)
        if tuple(x.shape[2:]) != grid:
            x = F.interpolate(x, size=grid, mode="trilinear", align_corners=False)
        x = self._place(x, fill)
        return x[0]

    def finish(self, x: torch.Tensor) -> torch.Tensor:
        """Return (C, D, H, W) normalised: grayscale replicated to ``in_channels``, minus mean, over std."""
        if x.shape[0] == 1 and self.in_channels > 1:
            x = x.expand(self.in_channels, *x.shape[1:])
        mean = torch.tensor(_per_channel(self.mean, self.in_channels)).view(-1, 1, 1, 1)
        std = torch.tensor(_per_channel(self.std, self.in_channels)).view(-1, 1, 1, 1)
        return ((x - mean) / std).float()

    def __call__(self, volume: Volume) -> torch.Tensor:
        """Return the model input (C, D, H, W) float32 of ``volume``."""
        return self.finish(self.prepare(volume))

    def mask_to_input(self, mask: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
        """Return a (D, H, W) mask on the input grid, bool ``size``: nearest-neighbour, same geometry as the image."""
        x = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None, None]
        grid = self._grid(mask.shape, spacing)
        if tuple(x.shape[2:]) != grid:
            x = F.interpolate(x, size=grid, mode="nearest-exact")
        return self._place(x, 0.0)[0, 0].numpy() > 0.5

    def to_display(self, x: torch.Tensor) -> np.ndarray:
        """Return (D, H, W) in [0, 1] from a model input (C, D, H, W): the normalisation undone, channel 0."""
        return (x[0].float() * self.std[0] + self.mean[0]).clamp(0, 1).numpy()


def _per_channel(values: Sequence[float], channels: int) -> list[float]:
    values = [float(v) for v in values]
    if len(values) == 1:
        return values * channels
    if len(values) != channels:
        raise InvalidInputError(f"{len(values)} normalisation values for {channels} channels")
    return values


def volume_bytes(size: Sequence[int], channels: int = 1) -> int:
    """Return the float32 bytes of one model input of ``size`` (D, H, W) with ``channels``."""
    return int(math.prod(size)) * channels * 4


class VolumeDataset(torch.utils.data.Dataset):
    """Volumes of a manifest frame as model inputs: ``dataset[i] -> (x (C, D, H, W), y_true, i)``.

    ``frame`` needs ``image`` (volume paths: files or series folders) and
    ``y_true``; ``cache`` keeps every prepared volume in memory (volumes are
    expensive to decode and resample).
    """

    def __init__(self, frame: Any, preprocess: VolumePreprocess, *, cache: bool = False) -> None:
        for column in ("image", "y_true"):
            if column not in frame.columns:
                raise InvalidInputError(
                    f"VolumeDataset needs an '{column}' column, got {list(frame.columns)}"
                )
        self.paths = [str(p) for p in frame["image"].tolist()]
        self.targets = np.asarray(frame["y_true"].to_numpy(), dtype=np.int64)
        self.preprocess = preprocess
        self._cache: dict[int, torch.Tensor] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.paths)

    def prepared(self, index: int) -> torch.Tensor:
        """Return volume ``index`` resampled and windowed, (1, D, H, W) in [0, 1]."""
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        x = self.preprocess.prepare(read_volume(self.paths[index]))
        if self._cache is not None:
            self._cache[index] = x
        return x

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        """Return ``(x (C, D, H, W) normalised, y_true, index)``."""
        return self.preprocess.finish(self.prepared(index)), int(self.targets[index]), int(index)
