"""Borrow a caller's model for an attribution and give it back exactly as it was.

Attribution needs the model in eval mode and, for speed, its parameters
frozen; it also registers hooks. All of that belongs to the caller, so
:func:`borrowed_model` records every module's ``training`` flag and every
parameter's ``requires_grad`` flag and restores them in ``finally`` (also when
the attribution raises), and :class:`HookSet` removes every hook it added.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle


@contextmanager
def borrowed_model(
    model: nn.Module, *, eval_mode: bool = True, freeze_parameters: bool = True
) -> Iterator[nn.Module]:
    """Yield ``model`` in eval mode with frozen parameters; restore both flags afterwards.

    Restores each submodule's own ``training`` flag (a caller may hold a model
    whose modules are in mixed modes) and each parameter's own
    ``requires_grad``, in ``finally``.
    """
    # Only what is actually switched is recorded and switched back: a model that is already in
    # eval mode with frozen parameters (a loaded checkpoint) costs nothing per call.
    training = [m for m in model.modules() if m.training] if eval_mode else []
    trainable = [p for p in model.parameters() if p.requires_grad] if freeze_parameters else []
    try:
        for module in training:
            module.training = False
        for param in trainable:
            param.requires_grad_(False)
        yield model
    finally:
        for module in training:
            module.training = True
        for param in trainable:
            param.requires_grad_(True)


class HookSet:
    """The forward hooks one attribution registers; :meth:`remove` takes all of them away."""

    def __init__(self) -> None:
        self._handles: list[RemovableHandle] = []

    def forward(self, module: nn.Module, hook: Callable[..., Any]) -> None:
        """Register ``hook`` as a forward hook on ``module`` and remember it."""
        self._handles.append(module.register_forward_hook(hook))

    def remove(self) -> None:
        """Remove every hook registered through this set."""
        while self._handles:
            self._handles.pop().remove()

    def __enter__(self) -> HookSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def model_state_fingerprint(model: nn.Module) -> dict[str, Any]:
    """Return the caller-owned state of ``model``: modes, grad flags and hook counts per module.

    Tests compare this before and after an attribution to prove nothing changed.
    """
    return {
        "training": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "hooks": [
            (
                len(m._forward_hooks),
                len(m._forward_pre_hooks),
                len(m._backward_hooks),
                len(getattr(m, "_backward_pre_hooks", {})),
            )
            for m in model.modules()
        ],
        "grads": [p.grad is None for p in model.parameters()],
    }


def model_device(model: nn.Module) -> torch.device:
    """Return the device of the model's first parameter or buffer (CPU for a parameterless model)."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")
