"""Integrated Gradients (Sundararajan, Taly & Yan 2017, ICML) through captum, with its completeness check.

``IG_i(x) = (x_i - x'_i) * integral_0^1 dF(x' + a (x - x'))/dx_i da``, the
integral by Gauss-Legendre quadrature with ``n_steps`` nodes. Completeness
says the attributions sum to ``F(x) - F(x')``; the gap (captum's convergence
delta) is recorded per image, relative to ``max(|F(x) - F(x')|, 0.1)``
(logit units: below a tenth of a logit the difference being explained is
negligible and a relative error meaningless), and checked against a stated tolerance (5% by default, the
paper's guidance). The model is evaluated in chunks whose size comes from the
free memory (:mod:`auditkit.explain.batching`). Under autocast (CUDA only, off
by default) a batch that fails completeness is recomputed in float32 and the
fallback is recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from captum.attr import IntegratedGradients as CaptumIntegratedGradients
from torch import nn

from auditkit.errors import InvalidInputError
from auditkit.explain._validate import check_inputs
from auditkit.explain.baselines import make_baselines
from auditkit.explain.batching import auto_chunk_size
from auditkit.explain.guard import borrowed_model, model_device
from auditkit.explain.precision import autocast_context
from auditkit.explain.targets import ClassScores, TargetSpec, class_scores, resolve_targets

COMPLETENESS_TOLERANCE = 0.05
"""Default bound on |sum(IG) - (F(x) - F(x'))| / max(|F(x) - F(x')|, 0.1)."""
_DELTA_FLOOR = 0.1
_METHODS = ("gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle")


@dataclass(frozen=True)
class IGOutput:
    """Integrated Gradients of a batch with the completeness diagnostic per image."""

    attributions: torch.Tensor
    """Raw signed attributions, (N, C, H, W) float32."""
    scores: torch.Tensor
    """Class scores (logits) at the inputs, (N, K) float32."""
    targets: torch.Tensor
    """The class explained for each image, (N,) int64."""
    delta: torch.Tensor
    """sum(attributions) - (F(x) - F(x')) per image, (N,) float32 (captum's convergence delta)."""
    relative_delta: torch.Tensor
    """|delta| / max(|F(x) - F(x')|, 0.1) per image, (N,) float32."""
    completeness_passed: torch.Tensor
    """relative_delta <= tolerance per image, (N,) bool."""
    internal_batch_size: int
    """Samples (image x step) per forward+backward chunk that was used."""
    precision: str
    """``"fp32"``, ``"autocast"`` or ``"fp32_fallback"`` (autocast failed completeness)."""


class IntegratedGradients:
    """Integrated Gradients with Gauss-Legendre quadrature and memory-sized chunks (Sundararajan et al. 2017).

    ``baseline``: ``"black"`` (raw 0 through ``mean``/``std``), ``"blurred"``,
    ``"mean"`` or ``"zeros"`` (:mod:`auditkit.explain.baselines`).
    ``internal_batch_size``: samples per chunk, or ``None`` to size it from the
    free memory.
    """

    name = "ig"

    def __init__(
        self,
        model: nn.Module,
        *,
        n_steps: int = 50,
        method: str = "gausslegendre",
        baseline: str = "black",
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        internal_batch_size: int | None = None,
        tolerance: float = COMPLETENESS_TOLERANCE,
        autocast: bool = False,
    ) -> None:
        if int(n_steps) < 1:
            raise InvalidInputError(f"n_steps must be a positive integer, got {n_steps!r}")
        if method not in _METHODS:
            raise InvalidInputError(f"method must be one of {', '.join(_METHODS)}, got {method!r}")
        if internal_batch_size is not None and int(internal_batch_size) < 1:
            raise InvalidInputError(
                f"internal_batch_size must be a positive integer or None, got {internal_batch_size!r}"
            )
        self.model = model
        self.n_steps = int(n_steps)
        self.method = method
        self.baseline = baseline
        self.mean = mean
        self.std = std
        self.internal_batch_size = internal_batch_size
        self.tolerance = float(tolerance)
        self.autocast = autocast

    def attribute(
        self, inputs: torch.Tensor, target: TargetSpec = "predicted", *, y_true: Any = None
    ) -> torch.Tensor:
        """Return raw signed attributions, (N, C, H, W) float32."""
        return self.explain(inputs, target, y_true=y_true).attributions

    def explain(
        self, inputs: torch.Tensor, target: TargetSpec = "predicted", *, y_true: Any = None
    ) -> IGOutput:
        """Return the attributions (N, C, H, W) with scores, targets and the completeness check."""
        check_inputs(inputs)
        inputs = inputs.detach()
        device = model_device(self.model)
        baselines = make_baselines(inputs, self.baseline, mean=self.mean, std=self.std)
        n = inputs.shape[0]
        with borrowed_model(self.model):
            with torch.no_grad():
                both = self.model(torch.cat([inputs, baselines]))
            end_scores = class_scores(both.float())
            forward = ClassScores(self.model) if both.shape[1] == 1 else self.model
            scores, base_scores = end_scores[:n], end_scores[n:]
            targets = resolve_targets(scores, target, y_true=y_true)
            gain = (scores - base_scores).gather(1, targets[:, None])[:, 0]
            chunk = self.internal_batch_size or auto_chunk_size(
                self.model, inputs[:1], limit=self.n_steps * n
            )
            use_autocast = self.autocast and device.type == "cuda"
            attributions = self._integrate(forward, inputs, baselines, targets, chunk, use_autocast)
            precision = "autocast" if use_autocast else "fp32"
            delta, relative, passed = self._completeness(attributions, gain)
            if use_autocast and not bool(passed.all()):
                attributions = self._integrate(forward, inputs, baselines, targets, chunk, False)
                delta, relative, passed = self._completeness(attributions, gain)
                precision = "fp32_fallback"
        return IGOutput(
            attributions=attributions,
            scores=scores,
            targets=targets,
            delta=delta,
            relative_delta=relative,
            completeness_passed=passed,
            internal_batch_size=int(chunk),
            precision=precision,
        )

    def _integrate(
        self,
        forward: nn.Module,
        inputs: torch.Tensor,
        baselines: torch.Tensor,
        targets: torch.Tensor,
        chunk: int,
        use_autocast: bool,
    ) -> torch.Tensor:
        explainer = CaptumIntegratedGradients(forward)
        group = max(1, min(inputs.shape[0], chunk))
        parts = []
        # Images go in groups no larger than the chunk, because captum never
        # splits one step across images: a chunk holds (chunk // group) steps
        # of every image in the group.
        for start in range(0, inputs.shape[0], group):
            sl = slice(start, start + group)
            with autocast_context(inputs.device, enabled=use_autocast):
                part = explainer.attribute(
                    inputs[sl],
                    baselines=baselines[sl],
                    target=targets[sl],
                    n_steps=self.n_steps,
                    method=self.method,
                    internal_batch_size=max(chunk, inputs[sl].shape[0]),
                )
            parts.append(part.detach().float())
        return torch.cat(parts)

    def _completeness(
        self, attributions: torch.Tensor, gain: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        total = attributions.flatten(1).sum(dim=1)
        delta = total - gain
        relative = delta.abs() / gain.abs().clamp_min(_DELTA_FLOOR)
        return delta, relative, relative <= self.tolerance
