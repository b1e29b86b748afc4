"""Factories for networks from the field, for ``--arch auditkit.nets.field:NAME`` (random init, nothing downloaded).

- ``monai_densenet121``: MONAI's ``DenseNet121`` (2-D), ``pretrained=False``;
  its Grad-CAM target, found from the data flow, is ``class_layers.relu``.
- ``xrv_densenet``: TorchXRayVision's ``DenseNet`` (one-channel chest X-ray
  DenseNet-121) with ``weights=None`` and ``num_classes`` outputs; target
  ``features.denseblock4``. It resizes every input to 224 x 224 itself.

MONAI and TorchXRayVision are optional: a missing package is an input error
that names it. Checkpoints of these models record ``arch`` as this factory,
so loading them needs ``--trust-model-code`` like any ``module:factory``.
"""

from __future__ import annotations

from torch import nn

from auditkit.errors import InvalidInputError


def _need(package: str, pip_name: str):
    import importlib

    try:
        return importlib.import_module(package)
    except ImportError:
        raise InvalidInputError(
            f"this architecture needs the '{pip_name}' package; install it with pip install {pip_name}"
        ) from None


def monai_densenet121(in_channels: int = 1, num_classes: int = 2) -> nn.Module:
    """Return MONAI's 2-D DenseNet121 with random weights, ``in_channels`` in, ``num_classes`` logits out."""
    nets = _need("monai.networks.nets", "monai")
    return nets.DenseNet121(
        spatial_dims=2, in_channels=in_channels, out_channels=num_classes, pretrained=False
    )


def xrv_densenet(in_channels: int = 1, num_classes: int = 2) -> nn.Module:
    """Return TorchXRayVision's chest X-ray DenseNet with random weights and ``num_classes`` logits."""
    xrv = _need("torchxrayvision", "torchxrayvision")
    return xrv.models.DenseNet(weights=None, num_classes=num_classes, in_channels=in_channels)
