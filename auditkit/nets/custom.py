"""The user's own models: an importable ``module:factory``, or a TorchScript file.

``--arch package.module:factory`` imports the module (it is the user's own
code, named by the user) and calls the factory, passing ``in_channels`` and
``num_classes`` when its signature accepts them; it must return an
``nn.Module`` that maps ``(N, C, H, W)`` to ``(N, K)`` logits. Weights come
only from safetensors files.

``--arch model.pt`` names a TorchScript archive, read with ``torch.jit.load``.
That does not unpickle arbitrary Python objects: the archive's ``data.pkl``
and ``constants.pkl`` go through TorchScript's own C++ unpickler, which
rebuilds only tensors and TorchScript types and refuses other globals, and
the model's code is TorchScript (compiled from the archive's ``code/``), not
Python. A legacy pickle given instead is refused before it is opened, and a
``torch.save`` zip archive is refused by ``torch.jit.load`` without its
pickled objects being rebuilt (both tested with a payload whose unpickling
would create a file: ``tests/nets/test_custom.py``). The TorchScript program
still runs whatever TorchScript operators it contains (``aten::from_file``
writes files), so it is code: ``--arch model.pt`` is the user's own file, but a
checkpoint holding one is refused by ``load_checkpoint`` unless
``trust_code`` (``--trust-model-code``), like a ``module:factory``
(``tests/hardening/test_model_code.py`` runs such a payload).
"""

from __future__ import annotations

import importlib
import inspect
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from auditkit.errors import CheckpointError, InvalidInputError
from auditkit.nets.weights import sniff_format

TORCHSCRIPT = "torchscript"


def is_factory_spec(arch: str) -> bool:
    """Return whether ``arch`` has the form ``package.module:factory``."""
    module, sep, attr = arch.partition(":")
    return bool(sep) and bool(module) and bool(attr) and all(
        part.isidentifier() for part in [*module.split("."), *attr.split(".")]
    )


def is_torchscript_path(arch: str) -> bool:
    """Return whether ``arch`` names an existing file (then it must be a TorchScript archive)."""
    return Path(arch).is_file()


def load_factory(spec: str) -> object:
    """Return the callable named by ``package.module:factory`` (InvalidInputError if it cannot be imported)."""
    if not is_factory_spec(spec):
        raise InvalidInputError(
            f"--arch {spec!r} is not of the form 'package.module:factory'"
        )
    module_name, _, attr_path = spec.partition(":")
    try:
        target: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidInputError(
            f"--arch {spec!r}: cannot import module {module_name!r} ({exc}); "
            "install it or add its folder to PYTHONPATH"
        ) from None
    for part in attr_path.split("."):
        if not hasattr(target, part):
            raise InvalidInputError(
                f"--arch {spec!r}: module {module_name!r} has no attribute {attr_path!r}; "
                "name a function or class that returns an nn.Module"
            )
        target = getattr(target, part)
    if not callable(target):
        raise InvalidInputError(f"--arch {spec!r}: {attr_path!r} is not callable")
    return target


def build_factory_model(spec: str, *, in_channels: int, num_classes: int) -> nn.Module:
    """Return the ``nn.Module`` built by the factory ``spec``.

    ``in_channels`` and ``num_classes`` are passed as keyword arguments when
    the factory's signature names them (or takes ``**kwargs``).
    """
    factory = load_factory(spec)
    kwargs: dict[str, int] = {}
    try:
        parameters = inspect.signature(factory).parameters  # type: ignore[arg-type]
    except (TypeError, ValueError):
        parameters = {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    for key, value in (("in_channels", in_channels), ("num_classes", num_classes)):
        if takes_any or key in parameters:
            kwargs[key] = value
    try:
        model = factory(**kwargs)  # type: ignore[operator]
    except Exception as exc:  # the user's code: whatever it raises is their input's fault
        raise InvalidInputError(
            f"--arch {spec!r}: calling it with {sorted(kwargs) or 'no arguments'} raised "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}; fix the factory"
        ) from None
    if not isinstance(model, nn.Module):
        raise InvalidInputError(
            f"--arch {spec!r} returned a {type(model).__name__}, not a torch.nn.Module"
        )
    return model


def load_torchscript(path: str | os.PathLike[str]) -> torch.jit.ScriptModule:
    """Return the TorchScript module stored at ``path`` (on CPU), refusing anything else.

    A file that is not a zip archive (e.g. a legacy pickle) is refused before
    it is opened by torch; a zip that is not a TorchScript archive (e.g. a
    ``torch.save`` of a Python object) is refused by ``torch.jit.load``
    without unpickling its objects.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"TorchScript file {str(path)!r} does not exist; check the path")
    kind = sniff_format(path)
    if kind != "zip":
        raise CheckpointError(
            f"{str(path)!r} is not a TorchScript archive (it looks like {kind}); export the model "
            "with torch.jit.script(model).save(path) or give safetensors weights with a module:factory"
        )
    try:
        with warnings.catch_warnings():
            # TorchScript is deprecated upstream in favour of torch.export; it is still what users ship
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{str(path)!r} is not a loadable TorchScript archive ({reason}); export the model "
            "with torch.jit.script(model).save(path)"
        ) from None


def infer_in_channels(model: nn.Module) -> int | None:
    """Return ``in_channels`` of the model's first convolution, or None if there is none."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return int(module.in_channels)
        weight = getattr(module, "weight", None)
        if getattr(module, "original_name", None) == "Conv2d" and isinstance(weight, torch.Tensor):
            return int(weight.shape[1])
    return None


def check_output_shape(
    model: nn.Module,
    *,
    in_channels: int,
    num_classes: int,
    input_size: tuple[int, int],
    device: torch.device,
    where: str,
) -> None:
    """Raise InvalidInputError unless ``model`` maps a ``(2, C, H, W)`` batch to ``(2, num_classes)`` logits.

    The model's train/eval mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            probe = torch.zeros(2, in_channels, *input_size, device=device)
            output = model(probe)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidInputError(
            f"{where}: the model fails on a batch of shape (2, {in_channels}, {input_size[0]}, "
            f"{input_size[1]}) ({reason}); set --in-channels/--input-size to what the model expects"
        ) from None
    finally:
        model.train(was_training)
    if not isinstance(output, torch.Tensor) or tuple(output.shape) != (2, num_classes):
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise InvalidInputError(
            f"{where}: the model returns {shape} for 2 images but the task has {num_classes} classes; "
            f"it must return logits of shape (N, {num_classes}) (a binary task uses 2 outputs)"
        )
