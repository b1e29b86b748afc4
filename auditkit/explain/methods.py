"""The attribution-method registry: every method declared once, with what the rest of auditkit reads.

An :class:`AttributionMethod` holds a method's name (``saliency.<name>`` in
results.json and ``--methods`` on the command line), its label and citation,
its family (a class-activation map of a layer, or a gradient of the input),
the parameters its explainer accepts, the post-processing steps that turn
its output into one map per image (``postprocess``) and into the positive
evidence that is displayed and evaluated (``display_steps``), the unit of
its map in words, accepted aliases, and its diagnostics. The explain API's
tables, the runner's labels and display steps, the saliency settings' list
of methods, the report's name and unit tables and the CLI help read it.

Adding a method: its explainer class (``explain/<name>.py``, with
``name`` and ``explain(inputs, target, y_true=None)``), one
``AttributionMethod(...)`` below, and its construction in
:func:`auditkit.explain.api.make_explainer`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class AttributionMethod:
    """One attribution method: identity, citation, parameters, post-processing and diagnostics."""

    name: str
    label: str
    citation: str
    family: Literal["cam", "gradient"]
    """``cam``: a layer's class-activation map, upsampled; ``gradient``: per input pixel."""
    parameters: frozenset[str]
    """keyword arguments its explainer accepts (the rest are refused)."""
    postprocess: tuple[str, ...]
    """steps from the explainer's output to one signed map per image at the input's size."""
    display_steps: tuple[str, ...]
    """steps from that map to the positive evidence shown and evaluated."""
    units: str
    """what a map value means, for the report."""
    aliases: tuple[str, ...] = ()
    diagnostics: tuple[str, ...] = ()
    """per-image checks the method reports (IG's completeness)."""
    audit_settings: tuple[tuple[str, str], ...] = ()
    """``(parameter, SaliencyConfig field)`` pairs: the audit's settings that set its explainer's parameters."""
    normalized_baseline: bool = False
    """its explainer takes the input normalization (``mean``, ``std``) to place a baseline given in
    pixel terms (IG's black image) in the model's input space; :func:`auditkit.explain.sample.method_kwargs`
    supplies the checkpoint's unless the caller gave one."""

    @property
    def full_label(self) -> str:
        """Return ``Label (Citation)``, the report's name of the method."""
        return f"{self.label} ({self.citation})"


_REGISTRY: dict[str, AttributionMethod] = {}


def register(method: AttributionMethod) -> AttributionMethod:
    """Return ``method`` after adding it to the registry (a second name is an error)."""
    if method.name in _REGISTRY:
        raise ValueError(f"attribution method {method.name!r} is already registered")
    _REGISTRY[method.name] = method
    return method


def get(name: str) -> AttributionMethod:
    """Return the method registered as ``name`` or one of its aliases (KeyError when unknown)."""
    key = name.strip().lower()
    if key in _REGISTRY:
        return _REGISTRY[key]
    for method in _REGISTRY.values():
        if key in method.aliases:
            return method
    raise KeyError(name)


def names() -> tuple[str, ...]:
    """Return every registered method name in declaration order."""
    return tuple(_REGISTRY)


def aliases() -> dict[str, str]:
    """Return ``{alias: name}`` for every registered alias."""
    return {alias: m.name for m in _REGISTRY.values() for alias in m.aliases}


def labels() -> dict[str, str]:
    """Return ``{name: label}``."""
    return {m.name: m.label for m in _REGISTRY.values()}


def full_labels() -> dict[str, str]:
    """Return ``{name: "Label (Citation)"}``."""
    return {m.name: m.full_label for m in _REGISTRY.values()}


def units() -> dict[str, str]:
    """Return ``{name: units of its map}``."""
    return {m.name: m.units for m in _REGISTRY.values()}


_CAM_PARAMETERS = frozenset({"autocast"})

for _method in (
    AttributionMethod(
        "gradcam", "Grad-CAM", "Selvaraju et al. 2017", "cam", _CAM_PARAMETERS | {"implementation"},
        ("upsample",), ("relu",), "ReLU of the gradient-weighted activations of the target layer (arbitrary units)",
        aliases=("grad-cam",),
    ),
    AttributionMethod(
        "gradcampp", "Grad-CAM++", "Chattopadhay et al. 2018", "cam", _CAM_PARAMETERS, ("upsample",), ("relu",),
        "ReLU of the Grad-CAM++ weighted activations (arbitrary units)", aliases=("gradcam++", "grad-cam++"),
    ),
    AttributionMethod(
        "ig", "Integrated Gradients", "Sundararajan et al. 2017", "gradient",
        frozenset({"n_steps", "method", "baseline", "mean", "std", "internal_batch_size", "tolerance", "autocast"}),
        ("sum_channels",), ("relu",),
        "positive Integrated-Gradients attribution per pixel (logit units; the map sums to the logit difference)",
        aliases=("integrated_gradients",), diagnostics=("completeness",), normalized_baseline=True,
        audit_settings=(("n_steps", "ig_steps"), ("baseline", "ig_baseline")),
    ),
    AttributionMethod(
        "smoothgrad", "SmoothGrad", "Smilkov et al. 2017", "gradient",
        frozenset({"n_samples", "noise_level", "internal_batch_size", "random_state"}), ("sum_channels",), ("abs",),
        "absolute gradient of the logit per pixel, averaged over noisy copies (logit per unit intensity)",
        audit_settings=(("n_samples", "smoothgrad_samples"), ("noise_level", "smoothgrad_noise"),
                        ("random_state", "seed")),
    ),
):  # fmt: skip
    register(_method)
del _method
