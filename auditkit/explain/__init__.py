"""Attributions (Grad-CAM, Grad-CAM++, Integrated Gradients, SmoothGrad) and the evidence they can be trusted.

``auditkit.explain.api.attribute`` computes raw signed maps; ``postprocess``
holds the named steps applied after; ``cache`` stores maps on disk;
``overlay`` draws them; ``runner`` explains a manifest with a checkpoint;
``evaluation`` measures localisation, faithfulness, sanity, shortcuts and
stability. Submodules are imported on first use so that importing the
package (or its NumPy-only evaluation) does not load captum.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["METHODS", "AttributionResult", "attribute"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("auditkit.explain.api"), name)
    raise AttributeError(f"module 'auditkit.explain' has no attribute {name!r}")
