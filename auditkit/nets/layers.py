"""Finding the Grad-CAM target layer of a network: the last convolutional block.

Grad-CAM (Selvaraju et al., ICCV 2017) weights the feature maps of a spatial
layer by the pooled gradients of the class score; the usual choice is the last
convolutional block, whose maps are the ones the pooling head sees. The known
families have registered names (see :mod:`auditkit.nets.zoo` for why each);
a model may declare its own with a string attribute ``auditkit_target_layer``;
otherwise the last ``nn.Conv2d`` is used. TorchScript modules are matched by
their original class names (their layers can be named, but TorchScript
does not run Python hooks, so hook-based Grad-CAM needs an eager model).
"""

from __future__ import annotations

from torch import nn

from auditkit.errors import InvalidInputError

_BY_CLASS: dict[str, str] = {
    "ResNet": "layer4",
    "DenseNet": "features.denseblock4",
    "Inception3": "Mixed_7c",
    "EfficientNet": "features",
    "SmallCNN": "features.3",
}


def _class_name(module: nn.Module) -> str:
    # a scripted module's Python class is RecursiveScriptModule; original_name keeps the source class
    return str(getattr(module, "original_name", None) or type(module).__name__)


def _is_conv2d(module: nn.Module) -> bool:
    return isinstance(module, nn.Conv2d) or _class_name(module) == "Conv2d"


def _vgg_target(model: nn.Module) -> str | None:
    """Return ``features.<i>`` of VGG's last ReLU before its last max pool."""
    features = getattr(model, "features", None)
    if features is None:
        return None
    names = [(name, _class_name(child)) for name, child in features.named_children()]
    last_relu = None
    for name, kind in names:
        if kind == "ReLU":
            last_relu = name
    return f"features.{last_relu}" if last_relu is not None else None


def _conv_layer_names(model: nn.Module) -> list[str]:
    return [name for name, module in model.named_modules() if name and _is_conv2d(module)]


def _default_target(model: nn.Module) -> str | None:
    declared = getattr(model, "auditkit_target_layer", None)
    if isinstance(declared, str):
        return declared
    kind = _class_name(model)
    if kind == "VGG":
        return _vgg_target(model)
    if kind in _BY_CLASS:
        return _BY_CLASS[kind]
    convs = _conv_layer_names(model)
    return convs[-1] if convs else None


def resolve_target_layer(model: nn.Module, name: str | None = None) -> tuple[str, nn.Module]:
    """Return ``(dotted name, module)`` of the Grad-CAM target layer of ``model``.

    ``name`` (e.g. ``"layer4"``, ``"features.denseblock4"``) selects a layer
    explicitly; without it the layer registered for the model's family is used,
    then a declared ``auditkit_target_layer``, then the last ``nn.Conv2d``.
    Raises InvalidInputError naming candidates when the layer does not exist
    or none can be found.
    """
    chosen = name if name else _default_target(model)
    if chosen is None:
        raise InvalidInputError(
            f"no convolutional layer found in {_class_name(model)} to use as the Grad-CAM target; "
            "name a spatial layer with --target-layer NAME (a dotted module name as in "
            "model.named_modules())"
        )
    module = dict(model.named_modules()).get(chosen)  # get_submodule fails on ScriptModules
    if module is None:
        candidates = _conv_layer_names(model)[-3:] or [n for n, _ in model.named_children()][-3:]
        raise InvalidInputError(
            f"target layer {chosen!r} is not a module of {_class_name(model)}; give --target-layer "
            f"a dotted name from model.named_modules(), e.g. {candidates}"
        ) from None
    return chosen, module
