"""SmoothGrad (Smilkov et al. 2017, arXiv:1706.03825) through captum's ``NoiseTunnel``.

The gradient of the class score, averaged over ``n_samples`` copies of the
image with Gaussian noise of standard deviation ``noise_level x (max - min)``
of that image (the paper's 10-20%). Maps are raw signed gradients (captum's
``Saliency(abs=False)``); the absolute value is a named post-processing step.
The noise of each image is seeded from ``random_state`` and the image's own
content, so a map does not depend on which other images shared its batch
(the on-disk cache relies on this), and the caller's global RNG is left as it
was (``torch.random.fork_rng``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import torch
from captum.attr import NoiseTunnel, Saliency
from torch import nn

from auditkit.errors import InvalidInputError
from auditkit.explain._validate import check_inputs
from auditkit.explain.batching import auto_chunk_size
from auditkit.explain.guard import borrowed_model
from auditkit.explain.targets import ClassScores, TargetSpec, class_scores, resolve_targets


@dataclass(frozen=True)
class GradientOutput:
    """Input-gradient attributions of a batch with the scores and targets they explain."""

    attributions: torch.Tensor
    """Raw signed attributions, (N, C, H, W) float32."""
    scores: torch.Tensor
    """Class scores (logits) at the inputs, (N, K) float32."""
    targets: torch.Tensor
    """The class explained for each image, (N,) int64."""
    internal_batch_size: int
    """Noisy samples per forward+backward chunk that was used."""


def content_seed(image: torch.Tensor, random_state: int) -> int:
    """Return a 63-bit seed from ``random_state`` and the bytes of ``image`` (any shape)."""
    digest = hashlib.sha256(image.detach().float().cpu().contiguous().numpy().tobytes())
    digest.update(int(random_state).to_bytes(8, "little", signed=True))
    return int.from_bytes(digest.digest()[:8], "little") & ((1 << 63) - 1)


class SmoothGrad:
    """SmoothGrad: the mean input gradient over noisy copies (Smilkov et al. 2017)."""

    name = "smoothgrad"

    def __init__(
        self,
        model: nn.Module,
        *,
        n_samples: int = 25,
        noise_level: float = 0.15,
        internal_batch_size: int | None = None,
        random_state: int = 0,
    ) -> None:
        if int(n_samples) < 1:
            raise InvalidInputError(f"n_samples must be a positive integer, got {n_samples!r}")
        if not 0 <= float(noise_level) <= 1:
            raise InvalidInputError(
                f"noise_level is a share of the image's intensity range in [0, 1], got {noise_level!r}"
            )
        self.model = model
        self.n_samples = int(n_samples)
        self.noise_level = float(noise_level)
        self.internal_batch_size = internal_batch_size
        self.random_state = int(random_state)

    def attribute(
        self, inputs: torch.Tensor, target: TargetSpec = "predicted", *, y_true: Any = None
    ) -> torch.Tensor:
        """Return raw signed SmoothGrad attributions, (N, C, H, W) float32."""
        return self.explain(inputs, target, y_true=y_true).attributions

    def explain(
        self, inputs: torch.Tensor, target: TargetSpec = "predicted", *, y_true: Any = None
    ) -> GradientOutput:
        """Return the attributions (N, C, H, W) with the scores (N, K) and targets (N,)."""
        check_inputs(inputs)
        inputs = inputs.detach()
        device = inputs.device
        with borrowed_model(self.model):
            with torch.no_grad():
                raw = self.model(inputs)
            scores = class_scores(raw.float())
            targets = resolve_targets(scores, target, y_true=y_true)
            forward = ClassScores(self.model) if raw.shape[1] == 1 else self.model
            chunk = self.internal_batch_size or auto_chunk_size(
                self.model, inputs[:1], limit=self.n_samples
            )
            tunnel = NoiseTunnel(Saliency(forward))
            parts = []
            for i in range(inputs.shape[0]):
                image = inputs[i : i + 1]
                spread = float(image.max() - image.min()) or 1.0
                devices = [device] if device.type == "cuda" else []
                with torch.random.fork_rng(devices=devices):
                    torch.manual_seed(content_seed(image, self.random_state))
                    part = tunnel.attribute(
                        image,
                        nt_type="smoothgrad",
                        nt_samples=self.n_samples,
                        nt_samples_batch_size=min(chunk, self.n_samples),
                        stdevs=self.noise_level * spread,
                        target=int(targets[i]),
                        abs=False,
                    )
                parts.append(part.detach().float())
        return GradientOutput(
            attributions=torch.cat(parts),
            scores=scores,
            targets=targets,
            internal_batch_size=int(chunk),
        )
