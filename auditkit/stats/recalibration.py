"""Post-hoc recalibration fitted on the validation split: temperature scaling and Platt scaling.

Temperature scaling (Guo et al. 2017): divide the logits by one T > 0 fitted
by minimising the negative log-likelihood on validation data; binary
probabilities become σ(logit(p)/T), multi-class ones softmax(log p / T)
(log-probabilities are logits up to a per-case constant, which softmax
ignores). It is monotone, so rankings and AUROC do not change. When the model
classifies every validation case correctly (each true class has the highest
score), the likelihood keeps improving as T → 0 and no temperature is
identifiable: the fit then refuses (T = 1, the scores unchanged) and says so
in ``warning``, instead of returning the search bound T = 0.01, which would
turn every score into 0 or 1.
Platt scaling (Platt 1999): σ(a·logit(p) + b) with a, b fitted by logistic
regression (maximum likelihood, no penalty) on validation data — the same
fit as the calibration slope and intercept. Binary only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import expit, log_softmax

from auditkit.stats.logistic import fit_logistic
from auditkit.stats.validation import binary_inputs
from auditkit.stats.views import LOGIT_EPS, logit

#: log T is searched in [log 0.01, log 100].
_LOG_T_BOUNDS = (np.log(0.01), np.log(100.0))


@dataclass(frozen=True)
class TemperatureScaling:
    """A fitted temperature T (> 0); T > 1 softens over-confident predictions."""

    temperature: float
    warning: str | None = None
    """Why the fit was refused or is unreliable (perfect separation, a search bound); None when fine."""

    def transform_binary(self, p: np.ndarray) -> np.ndarray:
        """Return σ(logit(p) / T), same shape as ``p``."""
        return expit(logit(np.asarray(p, dtype=np.float64)) / self.temperature)

    def transform_multiclass(self, probs: np.ndarray) -> np.ndarray:
        """Return softmax(log p / T) row-wise for probabilities ``probs`` (n, K)."""
        log_p = np.log(np.clip(np.asarray(probs, dtype=np.float64), LOGIT_EPS, 1.0))
        return np.exp(log_softmax(log_p / self.temperature, axis=1))

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form ``{temperature}`` (plus ``warning`` when set)."""
        out: dict[str, Any] = {"temperature": self.temperature}
        if self.warning:
            out["warning"] = self.warning
        return out


SEPARATED = (
    "the validation split is perfectly classified by the model (every case's true class has the "
    "highest score), so the likelihood keeps improving as T -> 0 and no temperature is identifiable; "
    "temperature scaling was refused (T = 1, scores unchanged) rather than clamped to T = 0.01, which "
    "would push every score to 0 or 1"
)


def _checked(t: float, separated: bool) -> TemperatureScaling:
    """Return the fitted temperature, refused on separation and flagged at a search bound."""
    if separated:
        return TemperatureScaling(1.0, SEPARATED)
    lo, hi = np.exp(_LOG_T_BOUNDS[0]), np.exp(_LOG_T_BOUNDS[1])
    if t <= lo * 1.01 or t >= hi / 1.01:
        return TemperatureScaling(
            t, f"the fitted temperature {t:.3g} is at the search bound [{lo:g}, {hi:g}]: the fit is unreliable"
        )
    return TemperatureScaling(t)


def _binary_nll(y: np.ndarray, z: np.ndarray, t: float) -> float:
    scaled = z / t
    # -[y log σ(x) + (1 - y) log σ(-x)] = log(1 + e^{-x}) for y=1, log(1 + e^{x}) for y=0
    return float(np.mean(np.logaddexp(0.0, np.where(y == 1, -scaled, scaled))))


def fit_temperature_binary(y_true: Any, y_prob: Any) -> TemperatureScaling:
    """Return the temperature minimising the binary NLL of σ(logit(p)/T) (Guo et al. 2017)."""
    y, p, _ = binary_inputs(y_true, y_prob)
    z = logit(p)
    res = minimize_scalar(
        lambda lt: _binary_nll(y, z, np.exp(lt)),
        bounds=_LOG_T_BOUNDS,
        method="bounded",
        options={"xatol": 1e-10},
    )
    separated = bool(len(y)) and bool(np.all(np.where(y == 1, z > 0, z < 0)))
    return _checked(float(np.exp(res.x)), separated)


def fit_temperature_multiclass(y_true: np.ndarray, probs: np.ndarray) -> TemperatureScaling:
    """Return the temperature minimising the multi-class NLL of softmax(log p / T); ``probs`` (n, K)."""
    y = np.asarray(y_true, dtype=np.int64)
    log_p = np.log(np.clip(np.asarray(probs, dtype=np.float64), LOGIT_EPS, 1.0))

    def nll(lt: float) -> float:
        return float(-np.mean(log_softmax(log_p / np.exp(lt), axis=1)[np.arange(len(y)), y]))

    res = minimize_scalar(nll, bounds=_LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-10})
    separated = False
    if len(y):
        true = log_p[np.arange(len(y)), y]
        others = np.where(np.arange(log_p.shape[1])[None, :] == y[:, None], -np.inf, log_p)
        separated = bool(np.all(true > others.max(axis=1)))
    return _checked(float(np.exp(res.x)), separated)


@dataclass(frozen=True)
class PlattScaling:
    """A fitted Platt map p' = σ(a·logit(p) + b)."""

    a: float
    b: float

    def transform_binary(self, p: np.ndarray) -> np.ndarray:
        """Return σ(a·logit(p) + b), same shape as ``p``."""
        return expit(self.a * logit(np.asarray(p, dtype=np.float64)) + self.b)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form ``{a, b}``."""
        return {"a": self.a, "b": self.b}


def fit_platt(y_true: Any, y_prob: Any) -> PlattScaling:
    """Return the Platt map fitted by unpenalised logistic regression of y on logit(p) (Platt 1999)."""
    y, p, _ = binary_inputs(y_true, y_prob)
    z = logit(p)
    intercept, slope = fit_logistic(
        z[y == 0],
        z[y == 1],
        np.ones((int((y == 0).sum()), 1)),
        np.ones((int((y == 1).sum()), 1)),
        fit_slope=True,
    )
    return PlattScaling(float(slope[0]), float(intercept[0]))
