"""Post-hoc temperature scaling of a trained model, fitted on the validation split.

Modern networks are over- or under-confident (Guo et al. 2017, "On
Calibration of Modern Neural Networks", ICML): a single temperature ``T > 0``
dividing the logits, fitted by minimising the (unweighted) negative
log-likelihood on the validation split, fixes most of it without changing any
ranking (AUROC) or argmax. Class-weighted training, which auditkit uses for
imbalanced data, shifts probabilities too; recalibrating on a split the test
never sees keeps the released scores honest. The temperature is part of the
released model: stored in model.json (``calibration``) and applied by
``auditkit predict`` (FDA AI-DSF draft 2025 §IX asks for "any calibration of
the model output").
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from auditkit.stats.recalibration import fit_temperature_multiclass

CALIBRATION_METHODS = ("temperature", "none")


def _nll(y_true: np.ndarray, prob: np.ndarray, temperature: float) -> float:
    log_p = np.log(np.clip(prob, 1e-12, 1.0)) / temperature
    log_p = log_p - np.logaddexp.reduce(log_p, axis=1, keepdims=True)
    return float(-np.mean(log_p[np.arange(len(y_true)), y_true]))


def temperature_record(y_true: np.ndarray, prob: np.ndarray) -> dict[str, Any] | None:
    """Return model.json's ``calibration`` entry fitted on validation ``(y_true (n,), prob (n, K))``.

    ``None`` when the validation split cannot support a fit (fewer than two
    classes present, or no rows): the model is then released uncalibrated.
    """
    y = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(prob, dtype=np.float64)
    if len(y) == 0 or len(np.unique(y)) < 2:
        return None
    temperature = float(fit_temperature_multiclass(y, p).temperature)
    if not math.isfinite(temperature) or temperature <= 0:  # pragma: no cover - bounded fit
        return None
    return {
        "method": "temperature",
        "temperature": temperature,
        "fitted_on": "val",
        "n_images": len(y),
        "val_nll_before": _nll(y, p, 1.0),
        "val_nll_after": _nll(y, p, temperature),
        "reference": "Guo et al. 2017, On Calibration of Modern Neural Networks (ICML)",
    }


def temperature_of(meta: dict[str, Any]) -> float:
    """Return the temperature a checkpoint's scores are divided by (1.0 when uncalibrated)."""
    record = meta.get("calibration") or {}
    if record.get("method") == "temperature":
        return float(record["temperature"])
    return 1.0
