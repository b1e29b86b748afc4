"""results.json's ``recalibration`` (maps fitted on val, evaluated on test and sites) and ``calibration_chain``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from auditkit.analysis.blocks import _estimates
from auditkit.analysis.context import AnalysisContext
from auditkit.analysis.sections import CalibrationChain, RecalibratedMap, RecalibrationSection
from auditkit.results.section import Caveat
from auditkit.stats import metrics as metric_registry
from auditkit.stats.recalibration import (
    fit_platt,
    fit_temperature_binary,
    fit_temperature_multiclass,
)

#: the metrics of the chain's ``raw`` step (the network's scores before the checkpoint's calibration).
CHAIN_METRICS = ("ece_l1_debiased", "intercept", "slope", "oe", "brier", "ece")

_NOTE = (
    "fitted on the validation split only; intervals reflect the sampling of each evaluated cohort with the "
    "fitted map held fixed"
)


def _targets(ctx: AnalysisContext) -> list[str]:
    return [c for c in ("test", *ctx.sites) if c in ctx.cohorts]


def _evaluate(ctx: AnalysisContext, parameters: Mapping[str, Any], kwargs: Mapping[str, Any]) -> RecalibratedMap:
    """Return one fitted map's parameters and its calibration metrics (and AUROC) on test and every site."""
    names = (*metric_registry.calibration_keys(), "auroc")
    test: dict[str, Any] | None = None
    external: dict[str, Any] = {}
    for cohort in _targets(ctx):
        rows = ctx.cohorts[cohort]
        dists = ctx.analyzer.metrics(rows, names=names, **kwargs)
        block: dict[str, Any] = dict(_estimates(ctx, dists, rows, names))
        block["reliability"] = ctx.analyzer.calibration_details(rows, **kwargs)["reliability"]
        if cohort == "test":
            test = block
        else:
            external[cohort] = block
    return RecalibratedMap(parameters=parameters, test=test, external=external or None)


def recalibration_section(ctx: AnalysisContext) -> tuple[RecalibrationSection | None, tuple[Caveat, ...]]:
    """Return (``recalibration``, its caveats): temperature (and Platt for a binary task) fitted on val.

    None, with a caveat, without a validation split holding both classes.
    """
    val = ctx.cohorts.get("val")
    arr = ctx.analyzer.arrays
    if val is None or len(np.unique(arr.y[val])) < 2:
        message = "no validation split with both classes: temperature and Platt scaling were not fitted"
        return None, (Caveat("no_recalibration", message, "recalibration"),)
    caveats: list[Caveat] = []

    def fitted(fit: Any, transform: Callable[[], dict[str, Any]]) -> RecalibratedMap:
        return _evaluate(ctx, fit.to_dict(), transform())

    if ctx.binary:
        y_val = arr.y[val]
        temp = fit_temperature_binary(y_val, arr.probs[val, 1])
        if temp.warning:
            caveats.append(Caveat("temperature", temp.warning, "recalibration.temperature"))
        platt = fit_platt(y_val, arr.probs[val, 1])
        section = RecalibrationSection(
            fitted_on="val", n_val=len(val), note=_NOTE,
            temperature=fitted(temp, lambda: {"scores": temp.transform_binary(arr.probs[:, 1])}),
            platt=fitted(platt, lambda: {"scores": platt.transform_binary(arr.probs[:, 1])}),
        )  # fmt: skip
        return section, tuple(caveats)
    temp = fit_temperature_multiclass(arr.y[val], arr.probs[val])
    if temp.warning:
        caveats.append(Caveat("temperature", temp.warning, "recalibration.temperature"))
    section = RecalibrationSection(
        fitted_on="val", n_val=len(val), note=_NOTE,
        temperature=fitted(temp, lambda: {"probs": temp.transform_multiclass(arr.probs)}),
        platt=None, platt_reason="Platt scaling is defined for binary tasks",
    )  # fmt: skip
    return section, tuple(caveats)


def raw_probabilities(probs: np.ndarray, calibration: Mapping[str, Any] | None) -> np.ndarray | None:
    """Return the network's probabilities before the checkpoint's calibration, (n, K), or None without one.

    The delivered scores are softmax((z + o) / T), so log p = (z + o)/T + c per
    case and softmax(T·log p − o) = softmax(z): the raw softmax is recovered
    exactly from the table (up to the 1e-12 clipping of log 0).
    """
    if not calibration or calibration.get("method") != "temperature":
        return None
    t = float(calibration.get("temperature", 1.0))
    offset = np.asarray(calibration.get("logit_offset") or np.zeros(probs.shape[1]), dtype=np.float64)
    if offset.shape != (probs.shape[1],) or not np.isfinite(t) or t <= 0:
        return None
    z = t * np.log(np.clip(probs, 1e-12, 1.0)) - offset
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _raw_step(ctx: AnalysisContext, delivered: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return the chain's ``raw`` step: the uncalibrated scores' metrics per cohort, or why there are none."""
    raw = raw_probabilities(ctx.analyzer.arrays.probs, delivered)
    block: dict[str, Any] = {
        "description": "the network's softmax before the checkpoint's calibration, reconstructed exactly "
        "from the delivered scores as softmax(T * log p - logit_offset)",
    }
    if raw is None:
        block["reason"] = (
            "the checkpoint records no calibration (or no checkpoint was given): the delivered scores are "
            "the raw scores"
            if not delivered
            else "the checkpoint's calibration record cannot be inverted"
        )
        return block
    kwargs: dict[str, Any] = {"scores": raw[:, 1]} if ctx.binary else {"probs": raw}
    for cohort in _targets(ctx):
        rows = ctx.cohorts[cohort]
        dists = ctx.analyzer.metrics(rows, names=CHAIN_METRICS, **kwargs)
        block[cohort] = dict(_estimates(ctx, dists, rows, CHAIN_METRICS))
    return block


def calibration_chain(
    ctx: AnalysisContext, delivered: Mapping[str, Any] | None, recal: RecalibrationSection | None
) -> CalibrationChain:
    """Return results.json ``calibration_chain``: raw -> as delivered -> audit-time recalibration."""
    delivered_dict = None if delivered is None else dict(delivered)
    warnings = [w for w in ((delivered or {}).get("warning"),) if w]
    temperature = None if recal is None else recal.temperature.parameters
    platt = None if recal is None or recal.platt is None else recal.platt.parameters
    if temperature is not None and temperature.get("warning"):
        warnings.append(temperature["warning"])
    return CalibrationChain(
        steps=("raw", "as_delivered", "audit_recalibration"),
        raw=_raw_step(ctx, delivered),
        as_delivered={
            "calibration": delivered_dict,
            "description": "the scores of the predictions table (what the released model outputs); "
            "their metrics are calibration.<cohort> and external.<site>.calibration",
        },
        audit_recalibration={
            "description": "maps fitted by the audit on the validation split (not part of the released model); "
            "their metrics are recalibration.<map>.<cohort>",
            "temperature": temperature,
            "platt": platt,
        },
        warnings=tuple(warnings),
    )
