"""Networks: the architecture zoo, input/head adaptation, Grad-CAM target layers, devices, checkpoints.

- :mod:`~auditkit.nets.zoo`: ``build_model(arch, *, in_channels, num_classes, weights_path=None)``
  and ``ARCHITECTURES`` (torchvision families + ``smallcnn``).
- :mod:`~auditkit.nets.layers`: ``resolve_target_layer(model, name=None)``.
- :mod:`~auditkit.nets.device`: ``select_device``, ``autocast``, grad scaler, memory format.
- :mod:`~auditkit.nets.checkpoint`: ``save_checkpoint``, ``load_checkpoint -> LoadedModel``.
- :mod:`~auditkit.nets.custom`: the user's ``module:factory`` or TorchScript model.
- :mod:`~auditkit.nets.embed`: penultimate-layer embeddings.
"""

from __future__ import annotations

from auditkit.nets.checkpoint import LoadedModel, load_checkpoint, save_checkpoint
from auditkit.nets.device import autocast, select_device
from auditkit.nets.layers import resolve_target_layer
from auditkit.nets.zoo import ARCHITECTURES, ArchSpec, build_model

__all__ = [
    "ARCHITECTURES",
    "ArchSpec",
    "LoadedModel",
    "autocast",
    "build_model",
    "load_checkpoint",
    "resolve_target_layer",
    "save_checkpoint",
    "select_device",
]
