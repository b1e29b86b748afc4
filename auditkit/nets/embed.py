"""Penultimate-layer embeddings: the input of the linear head, captured by a forward hook.

The penultimate features are what later shift analyses compare between sites
(domain classifier, MMD; Rabanser et al., NeurIPS 2019, "Failing Loudly").
They are taken as the input of the classification head, so they are exactly
the vector the logits are computed from. The hook is removed in ``finally``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from auditkit.errors import InvalidInputError
from auditkit.nets.adapt import last_linear_path


def embedding_layer_name(model: nn.Module, declared: str | None = None) -> str:
    """Return the dotted name of the head whose input is the embedding: ``declared`` or the last Linear."""
    name = declared or last_linear_path(model)
    if name is None:
        raise InvalidInputError(
            f"{type(model).__name__} has no nn.Linear head, so auditkit cannot take penultimate "
            "embeddings; drop --embeddings"
        )
    return name


@contextmanager
def capture_head_input(model: nn.Module, head: str) -> Iterator[list[torch.Tensor]]:
    """Yield a list that receives, per forward pass, the head's input flattened to ``(N, D)`` (detached)."""
    if isinstance(model, torch.jit.ScriptModule):
        raise InvalidInputError(
            "TorchScript models do not run Python hooks, so auditkit cannot take their penultimate "
            "embeddings; drop --embeddings or give the model as 'package.module:factory' + weights"
        )
    captured: list[torch.Tensor] = []

    def hook(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        captured.append(torch.flatten(inputs[0].detach(), 1))

    try:
        module = model.get_submodule(head)
    except AttributeError:
        raise InvalidInputError(
            f"the embedding layer {head!r} (model.json 'embedding_layer') is not a module of "
            f"{type(model).__name__}; fix model.json or drop --embeddings"
        ) from None
    handle = module.register_forward_pre_hook(hook)
    try:
        yield captured
    finally:
        handle.remove()
