"""The data layer: manifests, safe paths, image readers, splits, preprocessing, datasets, phantom.

Importing this package does not import torch: the statistics engine reads
manifests on machines without it. The torch-facing pieces (``Preprocess``,
``ImageDataset``, ``make_loader``) load on first use.

- :mod:`auditkit.data.manifest` -- ``read_manifest``, ``Manifest``
  (:mod:`~auditkit.data.manifest_file` reads the file as text cells,
  :mod:`~auditkit.data.manifest_columns` holds the column contract and parsers)
- :mod:`auditkit.data.paths` -- ``resolve_path`` (refuses paths escaping the data root)
- :mod:`auditkit.data.readers` -- ``read_image``, ``read_mask``, ``image_shape``
- :mod:`auditkit.data.dicom` -- the DICOM display pipeline
- :mod:`auditkit.data.splits` -- ``assign_splits`` (patient-level)
- :mod:`auditkit.data.transforms` -- ``Preprocess`` (torch)
- :mod:`auditkit.data.dataset` -- ``ImageDataset``, ``make_loader`` (torch)
- :mod:`auditkit.data.phantom` -- ``PhantomConfig``, ``generate_phantom``
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Manifest": "auditkit.data.manifest",
    "read_manifest": "auditkit.data.manifest",
    "resolve_path": "auditkit.data.paths",
    "read_image": "auditkit.data.readers",
    "read_mask": "auditkit.data.readers",
    "image_shape": "auditkit.data.readers",
    "assign_splits": "auditkit.data.splits",
    "Preprocess": "auditkit.data.transforms",
    "ImageDataset": "auditkit.data.dataset",
    "make_loader": "auditkit.data.dataset",
    "PhantomConfig": "auditkit.data.phantom",
    "FlawConfig": "auditkit.data.phantom",
    "PhantomResult": "auditkit.data.phantom",
    "generate_phantom": "auditkit.data.phantom",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'auditkit.data' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
