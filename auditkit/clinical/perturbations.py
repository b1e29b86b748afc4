"""Declared image perturbations at graded severities, applied to batches of images in [0, 1].

Each perturbation is a named, pure function of a batch ``(B, C, h, w)``
float tensor in [0, 1] (the model's resized input before normalisation), a
severity value and a seeded generator, returning a batch of the same shape
in [0, 1]. They run on the batch's device (GPU when the model is there),
except JPEG re-compression, which Pillow encodes on the CPU. The severities
are chosen to span "within acquisition variation" (1) to "clearly degraded"
(3) for a radiograph; ISO/IEC DIS 24029-3 and FDA's AI-enabled device draft
guidance (Jan 2025, App. C) ask for such graded robustness evidence.

``window`` imitates a change of the display window of a DICOM image (centre
moved, width narrowed) on the already-windowed intensities; for a DICOM
source the exact analysis re-windows the stored values, which needs the raw
pixel data and is not done here.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from auditkit.errors import ConfigError

Perturb = Callable[[torch.Tensor, float, torch.Generator], torch.Tensor]


def _noise(x: torch.Tensor, sigma: float, gen: torch.Generator) -> torch.Tensor:
    # drawn on the CPU from the seeded generator, so the noise is the same on every device
    z = torch.randn(x.shape, generator=gen, dtype=torch.float32).to(x.device, x.dtype)
    return (x + sigma * z).clamp(0, 1)


def _gaussian_kernel(sigma: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def _blur(x: torch.Tensor, sigma_px64: float, _gen: torch.Generator) -> torch.Tensor:
    sigma = sigma_px64 * x.shape[-1] / 64.0  # severities are pixels of a 64-pixel image
    k = _gaussian_kernel(sigma, x.device, x.dtype)
    c = x.shape[1]
    pad = len(k) // 2
    y = F.pad(x, (pad, pad, 0, 0), mode="reflect")
    y = F.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    y = F.pad(y, (0, 0, pad, pad), mode="reflect")
    return F.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c).clamp(0, 1)


def _gamma(x: torch.Tensor, gamma: float, _gen: torch.Generator) -> torch.Tensor:
    return x.clamp(0, 1) ** gamma


def _contrast(x: torch.Tensor, factor: float, _gen: torch.Generator) -> torch.Tensor:
    mean = x.mean(dim=(-3, -2, -1), keepdim=True)
    return (mean + factor * (x - mean)).clamp(0, 1)


def _window(x: torch.Tensor, level: float, _gen: torch.Generator) -> torch.Tensor:
    # level s: centre moved up by s/2 of the range, width narrowed to 1 - s
    centre, width = 0.5 + level / 2, 1.0 - level
    return ((x - centre) / width + 0.5).clamp(0, 1)


def _affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta.expand(x.shape[0], 2, 3), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _rotate(x: torch.Tensor, degrees: float, _gen: torch.Generator) -> torch.Tensor:
    a = math.radians(degrees)
    theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]],
                         device=x.device, dtype=x.dtype)  # fmt: skip
    return _affine(x, theta[None])


def _shift(x: torch.Tensor, fraction: float, _gen: torch.Generator) -> torch.Tensor:
    # a shift of ``fraction`` of the image width to the right and down (grid units span 2)
    theta = torch.tensor([[1.0, 0.0, -2 * fraction], [0.0, 1.0, -2 * fraction]], device=x.device, dtype=x.dtype)
    return _affine(x, theta[None])


def _resolution(x: torch.Tensor, factor: float, _gen: torch.Generator) -> torch.Tensor:
    h, w = x.shape[-2:]
    small = F.interpolate(x, size=(max(2, round(h * factor)), max(2, round(w * factor))),
                          mode="bilinear", align_corners=False, antialias=True)  # fmt: skip
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)


def _jpeg(x: torch.Tensor, quality: float, _gen: torch.Generator) -> torch.Tensor:
    from PIL import Image

    cpu = (x.detach().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    out = np.empty(cpu.shape, dtype=np.float32)
    for i in range(cpu.shape[0]):
        for c in range(cpu.shape[1]):
            buf = io.BytesIO()
            Image.fromarray(cpu[i, c]).save(buf, format="JPEG", quality=int(quality))
            buf.seek(0)
            out[i, c] = np.asarray(Image.open(buf), dtype=np.float32) / 255.0
    return torch.from_numpy(out).to(x.device, x.dtype)


@dataclass(frozen=True)
class Perturbation:
    """A named perturbation, its parameter's meaning and its severities (mildest first)."""

    name: str
    label: str
    parameter: str
    severities: tuple[float, ...]
    fn: Perturb

    def apply(self, x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
        """Return ``x`` (B, C, h, w) in [0, 1] perturbed at ``severity`` (1-based)."""
        return self.fn(x, self.severities[severity - 1], gen)


PERTURBATIONS: dict[str, Perturbation] = {
    p.name: p
    for p in (
        Perturbation("noise", "Gaussian noise", "sigma (intensity)", (0.02, 0.05, 0.10), _noise),
        Perturbation("blur", "Gaussian blur", "sigma (pixels at 64 px)", (0.5, 1.0, 2.0), _blur),
        Perturbation("gamma", "gamma change", "gamma", (1.15, 1.35, 1.7), _gamma),
        Perturbation("contrast", "contrast reduction", "factor", (0.9, 0.75, 0.55), _contrast),
        Perturbation("jpeg", "JPEG re-compression", "quality", (75, 40, 15), _jpeg),
        Perturbation("rotation", "rotation", "degrees", (2.0, 5.0, 10.0), _rotate),
        Perturbation("shift", "translation", "fraction of width", (0.02, 0.05, 0.10), _shift),
        Perturbation("resolution", "resolution loss", "down-sampling factor", (0.75, 0.5, 0.33), _resolution),
        Perturbation("window", "display-window change", "centre shift x2 = width loss", (0.05, 0.12, 0.25), _window),
    )
}


def resolve(names: Sequence[str] | None) -> list[Perturbation]:
    """Return the perturbations named (all when ``None``); raises ConfigError naming an unknown one."""
    if names is None:
        return list(PERTURBATIONS.values())
    unknown = [n for n in names if n not in PERTURBATIONS]
    if unknown:
        raise ConfigError(
            f"robustness perturbation {unknown[0]!r} is unknown; choose among {', '.join(PERTURBATIONS)}"
        )
    return [PERTURBATIONS[n] for n in names]
