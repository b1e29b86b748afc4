"""Preprocessing stored with a model: resize, channel handling, normalisation; light augmentation.

:class:`Preprocess` turns a reader's float image in [0, 1] into the tensor a
model takes. Its ``to_dict()`` is stored in ``model.json`` so prediction and
explanation preprocess exactly as training did.

- Resize: bilinear with antialiasing (the filter support widens when
  shrinking, as Pillow's ``resize`` does, so fine structure does not alias
  into moire) for images, nearest for masks. Both use the
  pixel-centre geometry (``align_corners=False``; ``nearest-exact`` for masks,
  whose sample points are the same pixel centres), so a mask stays aligned
  with its image.
- Channels: a 1-channel model gets RGB converted to luma with the ITU-R
  BT.601 weights (0.299, 0.587, 0.114), as Pillow's ``convert("L")``; a
  3-channel (ImageNet-style) model gets grayscale replicated.
- Normalisation: ``(x - mean) / std`` per channel.

Augmentation (:class:`Augment`) is deliberately light and anatomy-preserving:
small shifts and rotations, brightness and contrast jitter. There are no
horizontal flips: on chest radiographs they swap the anatomical sides (heart,
aortic knob, gastric bubble) and the laterality markers, producing images no
scanner makes; no vertical flips for the same reason.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from auditkit.errors import InvalidInputError

LUMA_BT601: tuple[float, float, float] = (0.299, 0.587, 0.114)
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def to_luma(image: np.ndarray) -> np.ndarray:
    """Return the ITU-R BT.601 luma ``(H, W)`` of an RGB image ``(H, W, 3)``."""
    weights = np.asarray(LUMA_BT601, dtype=np.float32)
    return np.ascontiguousarray(image[..., :3].astype(np.float32) @ weights)


def _pair(size: Sequence[int] | int) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    values = tuple(int(s) for s in size)
    if len(values) != 2:
        raise InvalidInputError(f"input_size must be (height, width), got {size!r}")
    return values  # type: ignore[return-value]


@dataclass(frozen=True)
class Preprocess:
    """The model's preprocessing: ``input_size`` (h, w), ``in_channels`` (1 or 3), ``mean``, ``std``.

    ``mean``/``std`` have one value per channel (one value is repeated).
    """

    input_size: tuple[int, int] = (64, 64)
    in_channels: int = 1
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.25,)

    def __post_init__(self) -> None:
        height, width = _pair(self.input_size)
        if height < 1 or width < 1:
            raise InvalidInputError(f"input_size must be positive, got {self.input_size!r}")
        if self.in_channels not in (1, 3):
            raise InvalidInputError(f"in_channels must be 1 or 3, got {self.in_channels!r}")
        mean = tuple(float(m) for m in self.mean)
        std = tuple(float(s) for s in self.std)
        if len(mean) == 1:
            mean = mean * self.in_channels
        if len(std) == 1:
            std = std * self.in_channels
        if len(mean) != self.in_channels or len(std) != self.in_channels:
            raise InvalidInputError(
                f"mean and std need {self.in_channels} value(s) (one per channel), got "
                f"mean={self.mean!r}, std={self.std!r}"
            )
        if not all(s > 0 and math.isfinite(s) for s in std) or not all(map(math.isfinite, mean)):
            raise InvalidInputError(f"std must be finite and > 0 and mean finite, got {self.std!r}, {self.mean!r}")
        object.__setattr__(self, "input_size", (height, width))
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        # built once: a per-item torch.tensor() costs as much as the arithmetic it feeds
        object.__setattr__(self, "_mean", torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1))
        object.__setattr__(self, "_std", torch.tensor(std, dtype=torch.float32).view(-1, 1, 1))

    def _stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, std = self._mean, self._std  # type: ignore[attr-defined]
        if like.dtype != mean.dtype or like.device != mean.device:
            mean, std = mean.to(like), std.to(like)
        return mean, std

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form stored in model.json (with the fixed resize/channel rules named)."""
        return {
            "input_size": list(self.input_size),
            "in_channels": self.in_channels,
            "mean": list(self.mean),
            "std": list(self.std),
            "resize": "bilinear_antialias",
            "mask_resize": "nearest_exact",
            "rgb_to_gray": "itu_r_bt601_luma",
            "gray_to_rgb": "replicate",
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocess:
        """Return the Preprocess encoded by :meth:`to_dict` (extra descriptive keys are ignored)."""
        try:
            return cls(
                input_size=tuple(data["input_size"]),  # type: ignore[arg-type]
                in_channels=int(data["in_channels"]),
                mean=tuple(data["mean"]),
                std=tuple(data["std"]),
            )
        except KeyError as exc:
            raise InvalidInputError(f"preprocessing record lacks the key {exc.args[0]!r}") from None

    # --- the pipeline, step by step -----------------------------------------------------------

    def prepare(self, image: np.ndarray) -> torch.Tensor:
        """Return the resized image in [0, 1] before channel replication: ``(1 or 3, h, w)`` float32.

        RGB is reduced to luma first for a 1-channel model (resizing one
        channel, not three); grayscale stays one channel (see :meth:`finish`).
        The result never shares memory with ``image``.
        """
        return self._prepare(image, copy=True)

    def _prepare(self, image: np.ndarray, *, copy: bool) -> torch.Tensor:
        array = np.asarray(image, dtype=np.float32)
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[:, :, 0]
        if array.ndim == 3:
            if array.shape[2] not in (3, 4):
                raise InvalidInputError(f"expected an (H, W) or (H, W, 3) image, got shape {array.shape}")
            array = to_luma(array) if self.in_channels == 1 else array[:, :, :3]
        elif array.ndim != 2:
            raise InvalidInputError(f"expected an (H, W) or (H, W, 3) image, got shape {array.shape}")
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        tensor = tensor[None] if tensor.ndim == 2 else tensor.permute(2, 0, 1)  # (C', H, W)
        if tuple(tensor.shape[1:]) != self.input_size:
            return F.interpolate(
                tensor[None], size=self.input_size, mode="bilinear", align_corners=False, antialias=True
            )[0].contiguous()
        # never hand back a view of the caller's array (readers' fresh arrays need no copy)
        return tensor.clone(memory_format=torch.contiguous_format) if copy else tensor.contiguous()

    def finish(self, tensor: torch.Tensor) -> torch.Tensor:
        """Return ``(C, h, w)`` normalised for the model from :meth:`prepare`'s output (grayscale replicated)."""
        if tensor.shape[-3] == 1 and self.in_channels == 3:
            tensor = tensor.expand(*tensor.shape[:-3], 3, *tensor.shape[-2:])
        mean, std = self._stats(tensor)
        return (tensor - mean) / std

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        """Return the model input ``(C, h, w)`` float32 of a reader's image ``(H, W)`` or ``(H, W, 3)``."""
        return self.finish(self.prepare(image))

    def mask_to_input(self, mask: np.ndarray) -> np.ndarray:
        """Return a mask ``(H, W)`` resized to the model's input grid: bool ``(h, w)``, nearest pixel centre."""
        array = np.asarray(mask)
        if array.ndim != 2:
            raise InvalidInputError(f"expected an (H, W) mask, got shape {array.shape}")
        if tuple(array.shape) == self.input_size:
            return array.astype(bool)
        tensor = torch.from_numpy((array != 0).astype(np.uint8))[None, None].float()
        resized = F.interpolate(tensor, size=self.input_size, mode="nearest-exact")
        return resized[0, 0].numpy() > 0.5

    def to_display(self, tensor: torch.Tensor) -> np.ndarray:
        """Return a model input ``(C, h, w)`` mapped back to [0, 1] intensities: ``(h, w)`` luma or gray."""
        mean, std = self._stats(tensor)
        values = (tensor.detach() * std + mean).clamp(0, 1).cpu().numpy()
        if values.shape[0] == 3:
            return to_luma(values.transpose(1, 2, 0))
        return values[0]


@dataclass(frozen=True)
class Augment:
    """Light training augmentation: shift, rotation, brightness, contrast (no flips; see module doc).

    ``max_shift`` is a fraction of the image size, ``max_rotation`` degrees,
    ``brightness`` an additive and ``contrast`` a multiplicative jitter
    (uniform in ``[1 - c, 1 + c]`` about the image mean), all drawn from
    torch's global generator (seeded per DataLoader worker).
    """

    max_shift: float = 0.05
    max_rotation: float = 5.0
    brightness: float = 0.05
    contrast: float = 0.1

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON record of the augmentation (for model.json / results.json)."""
        return {
            "max_shift": self.max_shift,
            "max_rotation_deg": self.max_rotation,
            "brightness": self.brightness,
            "contrast": self.contrast,
            "flips": False,
        }

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        """Return an augmented copy of an image ``(C, h, w)`` in [0, 1], still in [0, 1]."""
        draws = torch.rand(5) * 2 - 1  # uniform in [-1, 1]
        angle = math.radians(self.max_rotation) * float(draws[0])
        shift_x, shift_y = (self.max_shift * 2 * float(d) for d in draws[1:3])  # normalised coords
        theta = torch.tensor(
            [[math.cos(angle), -math.sin(angle), shift_x], [math.sin(angle), math.cos(angle), shift_y]],
            dtype=tensor.dtype,
        )[None]
        grid = F.affine_grid(theta, [1, *tensor.shape], align_corners=False)
        # border padding repeats the edge instead of inventing black bands
        moved = F.grid_sample(tensor[None], grid, mode="bilinear", padding_mode="border", align_corners=False)[0]
        mean = moved.mean()
        contrast = 1.0 + self.contrast * float(draws[3])
        brightness = self.brightness * float(draws[4])
        return ((moved - mean) * contrast + mean + brightness).clamp(0.0, 1.0)
