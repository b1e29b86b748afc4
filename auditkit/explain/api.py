"""One entry point for every attribution method: :func:`attribute` and its :class:`AttributionResult`.

Methods: ``gradcam`` (Selvaraju et al. 2017), ``gradcampp`` (Chattopadhay et
al. 2018), ``ig`` (Sundararajan et al. 2017), ``smoothgrad`` (Smilkov et al.
2017). The result holds raw signed maps (N, H, W) float32 plus the list of
post-processing steps applied to them; by default only what is needed to get
one map per image at the input's size: ``upsample`` for the CAMs (a layer map
is coarser than the input), ``sum_channels`` for the input-gradient methods.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from auditkit.errors import InvalidInputError
from auditkit.explain import methods as attribution_methods
from auditkit.explain.gradcam import GradCAM, GradCAMPlusPlus
from auditkit.explain.integrated_gradients import IntegratedGradients
from auditkit.explain.postprocess import apply_steps
from auditkit.explain.smoothgrad import SmoothGrad
from auditkit.explain.targets import TargetSpec

# The tables below are the registry's (auditkit.explain.methods), kept under their old names.
METHODS: tuple[str, ...] = attribution_methods.names()
"""Method names, as used in results.json (``saliency.<method>``) and on the command line."""

CAM_METHODS: frozenset[str] = frozenset(n for n in METHODS if attribution_methods.get(n).family == "cam")

DEFAULT_POSTPROCESS: dict[str, tuple[str, ...]] = {n: attribution_methods.get(n).postprocess for n in METHODS}

_PARAMS: dict[str, frozenset[str]] = {n: attribution_methods.get(n).parameters for n in METHODS}


@dataclass(frozen=True)
class AttributionResult:
    """Attribution maps of a batch, with what they explain and how they were processed."""

    method: str
    maps: np.ndarray
    """Maps after exactly the ``postprocessing`` steps (signed unless a step says otherwise), (N, H, W) float32."""
    targets: np.ndarray
    """The class explained for each image, (N,) int64."""
    scores: np.ndarray
    """The model's class scores (logits) for the batch, (N, K) float32."""
    postprocessing: tuple[str, ...]
    """Names of the post-processing steps applied, in order."""
    params: dict[str, Any]
    """The method's parameters (for the record and the cache key)."""
    extras: dict[str, Any] = field(default_factory=dict)
    """Method diagnostics: IG ``delta``, ``relative_delta``, ``completeness_passed``
    (arrays (N,)), ``tolerance``, ``precision``; ``internal_batch_size``."""


def make_explainer(
    model: nn.Module, method: str, *, target_layer: nn.Module | str | None = None, **params: Any
) -> GradCAM | IntegratedGradients | SmoothGrad:
    """Return the configured explainer object for ``method`` (captum-style: data go to ``explain``)."""
    if method not in METHODS:
        raise InvalidInputError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    unknown = sorted(set(params) - _PARAMS[method])
    if unknown:
        raise InvalidInputError(
            f"unknown parameter(s) {', '.join(unknown)} for method {method!r}; "
            f"it accepts {', '.join(sorted(_PARAMS[method]))}"
        )
    if method in CAM_METHODS:
        if target_layer is None:
            raise InvalidInputError(
                f"method {method!r} needs a target layer (e.g. 'layer4' for a ResNet); "
                "pass target_layer or use the checkpoint's"
            )
        cls = GradCAM if method == "gradcam" else GradCAMPlusPlus
        return cls(model, target_layer, **params)
    if method == "ig":
        return IntegratedGradients(model, **params)
    return SmoothGrad(model, **params)


def attribute(
    model: nn.Module,
    inputs: torch.Tensor,
    *,
    method: str,
    target: TargetSpec = "predicted",
    target_layer: nn.Module | str | None = None,
    y_true: Sequence[int] | np.ndarray | None = None,
    postprocess: Sequence[str] | None = None,
    **params: Any,
) -> AttributionResult:
    """Return the attribution of ``inputs`` (N, C, H, W) by ``method`` as raw maps (N, H, W).

    ``target``: ``"predicted"``, ``"true"`` (with ``y_true``), a class index,
    or one index per image. ``postprocess``: step names of
    :mod:`auditkit.explain.postprocess` (default :data:`DEFAULT_POSTPROCESS`).
    The model is left exactly as it was (mode, gradient flags, hooks).
    """
    explainer = make_explainer(model, method, target_layer=target_layer, **params)
    return run_explainer(explainer, inputs, target=target, y_true=y_true, postprocess=postprocess)


def run_explainer(
    explainer: GradCAM | IntegratedGradients | SmoothGrad,
    inputs: torch.Tensor,
    *,
    target: TargetSpec = "predicted",
    y_true: Sequence[int] | np.ndarray | None = None,
    postprocess: Sequence[str] | None = None,
) -> AttributionResult:
    """Return the attribution of ``inputs`` (N, C, H, W) by a configured explainer, maps (N, H, W)."""
    method = explainer.name
    steps = DEFAULT_POSTPROCESS[method] if postprocess is None else tuple(postprocess)
    size = tuple(int(s) for s in inputs.shape[2:])  # (H, W), or (D, H, W) for volumes
    extras: dict[str, Any] = {}
    out = explainer.explain(inputs, target, y_true=y_true)
    if method in CAM_METHODS:
        raw = out.maps
    else:
        raw = out.attributions
        extras["internal_batch_size"] = out.internal_batch_size
    if method == "ig":
        extras.update(
            delta=out.delta.cpu().numpy(),
            relative_delta=out.relative_delta.cpu().numpy(),
            completeness_passed=out.completeness_passed.cpu().numpy(),
            tolerance=explainer.tolerance,
            precision=out.precision,
        )
    maps, names = apply_steps(raw, steps, size=size)
    return AttributionResult(
        method=method,
        maps=maps.detach().float().cpu().numpy(),
        targets=out.targets.cpu().numpy().astype(np.int64),
        scores=out.scores.float().cpu().numpy(),
        postprocessing=tuple(names),
        params=method_params(explainer),
        extras=extras,
    )


def method_params(explainer: GradCAM | IntegratedGradients | SmoothGrad) -> dict[str, Any]:
    """Return the parameters that determine an explainer's maps (JSON-serialisable)."""
    if isinstance(explainer, GradCAM):
        layer = next(
            (n for n, m in explainer.model.named_modules() if m is explainer.layer), ""
        )
        params: dict[str, Any] = {"target_layer": layer}
        if type(explainer) is GradCAM:
            params["implementation"] = explainer.implementation
        return params
    if isinstance(explainer, IntegratedGradients):
        return {
            "n_steps": explainer.n_steps,
            "method": explainer.method,
            "baseline": explainer.baseline,
            "mean": None if explainer.mean is None else [float(v) for v in explainer.mean],
            "std": None if explainer.std is None else [float(v) for v in explainer.std],
            "tolerance": explainer.tolerance,
        }
    return {
        "n_samples": explainer.n_samples,
        "noise_level": explainer.noise_level,
        "random_state": explainer.random_state,
    }
