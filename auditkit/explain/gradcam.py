"""Grad-CAM (Selvaraju et al. 2017) and Grad-CAM++ (Chattopadhay et al. 2018).

Both weight the target layer's activation maps A (N, K, h, w) by per-channel
weights computed from the gradient G = dy_c/dA of the class score y_c and sum
over channels: ``cam = sum_k w_k A_k``, raw and signed, at the layer's
resolution (N, h, w). ReLU and upsampling are named post-processing steps
(:mod:`auditkit.explain.postprocess`), not part of the map.

Volumes work the same way: a (N, C, D, H, W) input and a 3-D target layer
(N, K, d, h, w) give maps (N, d, h, w), whose ``upsample`` step is trilinear
to the input's full (D, H, W), depth included. (pytorch-grad-cam resizes
each slice in 2-D and keeps the layer's depth: a 30-slice input gives an
8-slice CAM there, its issue #497.)

Two implementations give the same Grad-CAM map:

- ``implementation="captum"``: captum's ``LayerGradCam`` (the reference path);
- ``implementation="fast"`` (default): ONE forward pass and a backward only
  from the logits down to the target layer. The parameters are frozen for the
  call (restored afterwards), so nothing below the target layer records a
  graph; the hooked activation is detached and made a leaf, and what flows on
  is a clone, so an in-place operation after the layer (DenseNet's
  ``F.relu(features, inplace=True)``) cannot change the stored activation.
  The forward pass runs under autocast on CUDA; weights and sums in float32.

The caller's model is never changed: modes, ``requires_grad`` flags and hooks
are restored in ``finally`` (:mod:`auditkit.explain.guard`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from auditkit.errors import InvalidInputError
from auditkit.explain._validate import check_inputs
from auditkit.explain.guard import HookSet, borrowed_model, model_device
from auditkit.explain.precision import autocast_context
from auditkit.explain.targets import ClassScores, TargetSpec, class_scores, resolve_targets


@dataclass(frozen=True)
class CamOutput:
    """A batch of class activation maps with the scores and targets they explain."""

    maps: torch.Tensor
    """Raw signed maps at the target layer's resolution, (N, h, w) float32."""
    scores: torch.Tensor
    """Class scores (logits) of the model for the batch, (N, K) float32, detached."""
    targets: torch.Tensor
    """The class explained for each image, (N,) int64."""


def resolve_layer(model: nn.Module, layer: nn.Module | str) -> nn.Module:
    """Return the submodule of ``model`` named ``layer`` (or ``layer`` itself if it is a module)."""
    if isinstance(layer, nn.Module):
        if not any(layer is m for m in model.modules()):
            raise InvalidInputError("the target layer given is not a submodule of the model")
        return layer
    try:
        return model.get_submodule(layer)
    except AttributeError:
        names = [n for n, m in model.named_modules() if n and any(True for _ in m.parameters())]
        hint = ", ".join(names[-5:])
        raise InvalidInputError(
            f"target layer {layer!r} is not a submodule of the model; give a dotted module name "
            f"such as one of: {hint}"
        ) from None


class GradCAM:
    """Grad-CAM: channel weights are the spatial mean of the gradient (Selvaraju et al. 2017, ICCV).

    Configuration in the constructor, data in :meth:`attribute` (captum's
    shape). ``layer`` is a submodule or its dotted name (e.g. ``"layer4"``).
    """

    name = "gradcam"

    def __init__(
        self,
        model: nn.Module,
        layer: nn.Module | str,
        *,
        implementation: Literal["fast", "captum"] = "fast",
        autocast: bool = True,
    ) -> None:
        if implementation not in ("fast", "captum"):
            raise InvalidInputError(
                f"implementation must be 'fast' or 'captum', got {implementation!r}"
            )
        self.model = model
        self.layer = resolve_layer(model, layer)
        self.implementation = implementation
        self.autocast = autocast

    def attribute(
        self, inputs: torch.Tensor, target: TargetSpec = "predicted", *, y_true: Any = None
    ) -> torch.Tensor:
        """Return raw signed maps at the layer's resolution, (N, h, w) float32."""
        return self.explain(inputs, target, y_true=y_true).maps

    def explain(
        self, inputs: torch.Tensor, target: TargetSpec = "predicted", *, y_true: Any = None
    ) -> CamOutput:
        """Return the maps (N, h, w) with the class scores (N, K) and targets (N,) they explain."""
        check_inputs(inputs)
        if self.implementation == "captum":
            return self._explain_captum(inputs, target, y_true)
        return self._explain_fast(inputs, target, y_true)

    def _channel_weights(self, activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
        """Return channel weights (N, K): the mean gradient over the spatial positions."""
        return gradients.mean(dim=tuple(range(2, gradients.ndim)))

    def _explain_fast(self, inputs: torch.Tensor, target: TargetSpec, y_true: Any) -> CamOutput:
        captured: list[torch.Tensor] = []

        def keep_activation(module: nn.Module, args: Any, output: Any) -> torch.Tensor:
            if not isinstance(output, torch.Tensor) or output.ndim not in (4, 5):
                raise InvalidInputError(
                    "the Grad-CAM target layer must output a (N, K, h, w) or (N, K, d, h, w) tensor, got "
                    f"{type(output).__name__} {tuple(getattr(output, 'shape', ()))}; "
                    "choose a convolutional layer"
                )
            leaf = output.detach().requires_grad_(True)
            captured.append(leaf)
            return leaf.clone()

        device = model_device(self.model)
        with borrowed_model(self.model), HookSet() as hooks:
            hooks.forward(self.layer, keep_activation)
            with torch.enable_grad(), autocast_context(device, enabled=self.autocast):
                outputs = self.model(inputs.detach())
            if len(captured) != 1:
                raise InvalidInputError(
                    f"the Grad-CAM target layer ran {len(captured)} times in one forward pass; "
                    "choose a module that runs exactly once (e.g. a whole block)"
                )
            scores = class_scores(outputs.float())
            targets = resolve_targets(scores.detach(), target, y_true=y_true)
            selected = scores.gather(1, targets[:, None]).sum()
            (activations,) = captured
            if not selected.requires_grad:
                raise InvalidInputError(
                    "the model's output does not depend on the Grad-CAM target layer; "
                    "choose a layer on the path to the logits"
                )
            (gradients,) = torch.autograd.grad(selected, activations)
            activations = activations.detach().float()
            weights = self._channel_weights(activations, gradients.float())
            spread = weights.view(*weights.shape, *([1] * (activations.ndim - 2)))
            maps = (spread * activations).sum(dim=1)
        return CamOutput(maps=maps, scores=scores.detach(), targets=targets)

    def _explain_captum(self, inputs: torch.Tensor, target: TargetSpec, y_true: Any) -> CamOutput:
        from captum.attr import LayerGradCam

        with borrowed_model(self.model, freeze_parameters=False):
            with torch.no_grad():
                raw = self.model(inputs)
            scores = class_scores(raw.float())
            targets = resolve_targets(scores, target, y_true=y_true)
            forward = ClassScores(self.model) if raw.shape[1] == 1 else self.model
            explainer = LayerGradCam(forward, self.layer)
            maps = explainer.attribute(inputs, target=targets, relu_attributions=False)
        return CamOutput(maps=maps[:, 0].detach().float(), scores=scores, targets=targets)


class GradCAMPlusPlus(GradCAM):
    """Grad-CAM++: channel weights from second- and third-order gradient terms.

    Chattopadhay et al. 2018, WACV, eq. 19 with the exponential-score closed
    form: ``a_ij = g^2 / (2 g^2 + sum(A) g^3 + eps)`` where g != 0, else 0, and
    ``w_k = sum_ij relu(g_ij) a_ij``, with eps = 1e-6 as in pytorch-grad-cam's
    ``GradCAMPlusPlus`` (the positive factor exp(S) of the paper's dY/dA is
    dropped, as there: it scales each image's map by one constant).
    Only the fast implementation exists (captum has no Grad-CAM++).
    """

    name = "gradcampp"

    def __init__(self, model: nn.Module, layer: nn.Module | str, *, autocast: bool = True) -> None:
        super().__init__(model, layer, implementation="fast", autocast=autocast)

    def _channel_weights(self, activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
        """Return channel weights (N, K) by Chattopadhay et al. 2018, eq. 19."""
        grads_2 = gradients.pow(2)
        grads_3 = grads_2 * gradients
        spatial = tuple(range(2, activations.ndim))
        sum_activations = activations.sum(dim=spatial, keepdim=True)
        alpha = grads_2 / (2 * grads_2 + sum_activations * grads_3 + 1e-6)
        alpha = torch.where(gradients != 0, alpha, torch.zeros_like(alpha))
        return (gradients.clamp_min(0) * alpha).sum(dim=spatial)
