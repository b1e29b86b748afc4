"""Finding the Grad-CAM target layer of a network from its data flow, not its class name.

Grad-CAM (Selvaraju et al., ICCV 2017) weights the feature maps of a spatial
layer by the pooled gradients of the class score; the right layer is the one
whose output the global pooling head sees. A lookup by class name breaks on
every network it was not written for: MONAI's ``DenseNet121`` fell through to
"the last ``Conv2d``", a 32-channel convolution inside ``denselayer16`` whose
map has little to do with the 1,024 channels that are pooled; TorchXRayVision's
``ResNet`` keeps torchvision's ResNet under ``.model``, so ``layer4`` is
``model.layer4``. So the layer is found structurally, by one traced forward
pass on a zero input (:func:`find_target_layer`):

1. every module's output is recorded in the order the modules return;
2. the candidate is the last module output that is still a map
   (``(N, C, h, w)`` or ``(N, C, d, h, w)``, even ``1 x 1``): what the global
   pooling consumes or produces (for VGG, what its flatten consumes);
3. a tensor that a pooling module produced is replaced by that pool's input
   (Grad-CAM on the pre-pool map has the higher resolution; VGG's last ReLU
   before its final max pool, as in the Grad-CAM paper);
4. a tensor changed in place after the module returned it is replaced by the
   input of its innermost producer (torchvision DenseNet's
   ``F.relu(features, inplace=True)`` after ``features``: a hook that keeps a
   reference would see post-ReLU values with pre-ReLU gradients, so the
   target is ``features.denseblock4``, whose output only feeds ``norm5``);
5. of the modules that returned that tensor, the outermost one that ran once
   is named (``layer4``, not ``layer4.1.relu``).

On torchvision's families this gives exactly the layers :mod:`auditkit.nets.zoo`
registers; on MONAI's DenseNet121 it gives ``class_layers.relu``, the layer
MONAI's own ``GradCAM`` documentation uses. A model may still declare its own
with a string attribute ``auditkit_target_layer``. TorchScript runs no Python
hooks, so a scripted module cannot be traced: it is matched by its original
class name, then by its last convolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from auditkit.errors import InvalidInputError

_BY_CLASS: dict[str, str] = {
    # only for TorchScript modules, which cannot be traced with hooks
    "ResNet": "layer4",
    "DenseNet": "features.denseblock4",
    "Inception3": "Mixed_7c",
    "EfficientNet": "features",
    "SmallCNN": "features.3",
}

_CONV_TYPES = (nn.Conv2d, nn.Conv3d)
_POOL_TYPES = (
    nn.modules.pooling._MaxPoolNd,
    nn.modules.pooling._AvgPoolNd,
    nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd,
)
# small enough to trace fast, large enough for every torchvision/MONAI stem (Inception v3 needs 75)
DEFAULT_TRACE_SIZE_2D = 96
DEFAULT_TRACE_SIZE_3D = 32


def _class_name(module: nn.Module) -> str:
    # a scripted module's Python class is RecursiveScriptModule; original_name keeps the source class
    return str(getattr(module, "original_name", None) or type(module).__name__)


def _is_conv(module: nn.Module) -> bool:
    return isinstance(module, _CONV_TYPES) or _class_name(module) in ("Conv2d", "Conv3d")


def _is_scripted(model: nn.Module) -> bool:
    return isinstance(model, torch.jit.ScriptModule)


def _conv_layer_names(model: nn.Module) -> list[str]:
    return [name for name, module in model.named_modules() if name and _is_conv(module)]


def first_conv(model: nn.Module) -> nn.Module | None:
    """Return the first 2D/3D convolution of ``model`` in definition order, or None."""
    for _, module in model.named_modules():
        if _is_conv(module):
            return module
    return None


def trace_input_shape(
    model: nn.Module, input_size: Sequence[int] | None = None
) -> tuple[int, ...] | None:
    """Return the ``(C, *spatial)`` shape of one input for tracing ``model``, or None if unknown.

    Channels and the number of spatial dimensions come from the first
    convolution; ``input_size`` gives the spatial size (96 a side in 2D and
    32 in 3D by default: the rule does not need the pooled map to be larger
    than one position, only the forward pass to run).
    """
    conv = first_conv(model)
    if conv is None:
        return None
    dims = 3 if (isinstance(conv, nn.Conv3d) or _class_name(conv) == "Conv3d") else 2
    channels = int(conv.in_channels)
    if input_size is None:
        size = DEFAULT_TRACE_SIZE_3D if dims == 3 else DEFAULT_TRACE_SIZE_2D
        spatial: tuple[int, ...] = (size,) * dims
    else:
        spatial = tuple(int(s) for s in input_size)
        if len(spatial) != dims:
            raise InvalidInputError(
                f"input size {tuple(spatial)} has {len(spatial)} dimensions but the model's first "
                f"convolution is {dims}D; give {dims} sizes"
            )
    return (channels, *spatial)


@dataclass
class _Call:
    name: str
    module: nn.Module
    inputs: tuple[torch.Tensor, ...]
    output: torch.Tensor | None
    version: int


def _spatial(tensor: torch.Tensor) -> bool:
    # a 1x1 map still counts: at a small trace size the pooled map may have one position
    return tensor.ndim in (4, 5)


@dataclass(frozen=True)
class TraceResult:
    """What one traced forward pass says about the Grad-CAM target."""

    name: str
    """Dotted module name of the target layer."""
    output_shape: tuple[int, ...]
    """Shape of its output for the traced input, ``(1, C, h, w)`` or ``(1, C, d, h, w)``."""


def find_target_layer(model: nn.Module, input_shape: Sequence[int]) -> TraceResult | None:
    """Return the layer whose output feeds the global pooling, traced on a zero input of ``input_shape``.

    ``input_shape`` is ``(C, H, W)`` or ``(C, D, H, W)`` (no batch). Returns
    None when no module outputs a spatial tensor. The model's modes, gradient
    flags and hooks are restored afterwards; the forward pass runs once,
    without gradients, in eval mode.
    """
    names = {id(m): n for n, m in model.named_modules()}
    calls: list[_Call] = []
    runs: dict[int, int] = {}
    pending: dict[int, list[tuple[torch.Tensor, ...]]] = {}

    def pre_hook(module: nn.Module, args: tuple) -> None:
        tensors = tuple(a for a in args if isinstance(a, torch.Tensor))
        pending.setdefault(id(module), []).append(tensors)

    def post_hook(module: nn.Module, args: tuple, output: object) -> None:
        runs[id(module)] = runs.get(id(module), 0) + 1
        inputs = pending[id(module)].pop() if pending.get(id(module)) else ()
        tensor = output if isinstance(output, torch.Tensor) else None
        version = tensor._version if tensor is not None else 0
        calls.append(_Call(names.get(id(module), ""), module, inputs, tensor, version))

    handles = []
    training = [m for m in model.modules() if m.training]
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    try:
        for module in model.modules():
            handles.append(module.register_forward_pre_hook(pre_hook))
            handles.append(module.register_forward_hook(post_hook))
        for module in training:
            module.training = False
        with torch.no_grad():
            model(torch.zeros((1, *input_shape), device=device, dtype=dtype))
    finally:
        for handle in handles:
            handle.remove()
        for module in training:
            module.training = True
    return _pick(calls, runs)


def _producers(calls: list[_Call], tensor: torch.Tensor) -> list[_Call]:
    return [c for c in calls if c.output is tensor and c.name]


def _pick(calls: list[_Call], runs: dict[int, int]) -> TraceResult | None:
    spatial = [c for c in calls if c.output is not None and c.name and _spatial(c.output)]
    if not spatial:
        return None
    tensor = spatial[-1].output
    for _ in range(len(calls)):  # each step moves to an earlier tensor, so this ends
        producers = _producers(calls, tensor)
        innermost = producers[0]
        changed_later = any(c.output._version != c.version for c in producers[-1:])
        if isinstance(innermost.module, _POOL_TYPES) or changed_later:
            previous = [t for t in innermost.inputs if _spatial(t)]
            if not previous or not _producers(calls, previous[0]):
                break
            tensor = previous[0]
            continue
        once = [c for c in producers if runs.get(id(c.module), 0) == 1]
        if once:
            chosen = once[-1]
            return TraceResult(chosen.name, tuple(chosen.output.shape))
        break
    return None


def _default_target(model: nn.Module, input_size: Sequence[int] | None) -> str | None:
    declared = getattr(model, "auditkit_target_layer", None)
    if isinstance(declared, str):
        return declared
    if _is_scripted(model):
        kind = _class_name(model)
        if kind in _BY_CLASS:
            return _BY_CLASS[kind]
        convs = _conv_layer_names(model)
        return convs[-1] if convs else None
    shape = trace_input_shape(model, input_size)
    if shape is None:
        return None
    try:
        found = find_target_layer(model, shape)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise InvalidInputError(
            f"could not trace {_class_name(model)} on a {tuple(shape)} input to find its Grad-CAM "
            f"target layer ({str(exc).strip().splitlines()[0][:160]}); give the input size, or name "
            "the layer with --target-layer NAME"
        ) from None
    return found.name if found is not None else None


def resolve_target_layer(
    model: nn.Module, name: str | None = None, *, input_size: Sequence[int] | None = None
) -> tuple[str, nn.Module]:
    """Return ``(dotted name, module)`` of the Grad-CAM target layer of ``model``.

    ``name`` (e.g. ``"layer4"``, ``"features.denseblock4"``) selects a layer
    explicitly; without it a declared ``auditkit_target_layer`` is used, else
    the layer found by tracing the data flow (:func:`find_target_layer`, on an
    input of ``input_size``, default 96 a side in 2D, 32 in 3D). Raises
    InvalidInputError naming candidates when the layer does not exist or none
    can be found.
    """
    chosen = name if name else _default_target(model, input_size)
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
