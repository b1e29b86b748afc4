"""Training: ``train(manifest, *, arch, out, ...) -> TrainResult`` writes a checkpoint folder.

- :mod:`~auditkit.train.api`: the ``train`` entry point and its settings/result types.
- :mod:`~auditkit.train.loop`: one epoch of training, one evaluation pass.
- :mod:`~auditkit.train.schedule`: warm-up + cosine learning-rate schedule.
- :mod:`~auditkit.train.metrics`: selection AUROC, balanced class weights.
- :mod:`~auditkit.train.state`: the per-epoch resume state (safetensors + JSON).
"""

from __future__ import annotations

from auditkit.train.api import TrainResult, TrainSettings, train

__all__ = ["TrainResult", "TrainSettings", "train"]
