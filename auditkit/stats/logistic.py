"""Weighted logistic recalibration fits, vectorised over resamples (Newton–Raphson).

Calibration slope and intercept (Cox 1958; Van Calster et al. 2016): regress
the outcome on the logit of the predicted probability,
``logit P(y=1) = a + b · logit(p)``: ``b`` is the calibration slope; the
calibration intercept (calibration-in-the-large) is ``a`` with the slope
fixed at 1, i.e. ``logit(p)`` as an offset. Each column of the weight
matrices is one resample; all columns are solved together with a damped
Newton iteration (step halving while the log-likelihood does not improve).
A column whose fit does not converge (separation) gets NaN.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, log_expit

_MAX_ITER = 60
_TOL = 1e-9


def fit_logistic(
    x_neg: np.ndarray,
    x_pos: np.ndarray,
    w_neg: np.ndarray,
    w_pos: np.ndarray,
    *,
    fit_slope: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (intercept (R,), slope (R,)) of the weighted logistic fit of y on x, per column.

    ``x_neg`` (n_neg,), ``x_pos`` (n_pos,) are the predictor (the logit of the
    predicted probability) of negatives and positives; ``w_neg`` (n_neg, R),
    ``w_pos`` (n_pos, R) their weights. With ``fit_slope=False`` the slope is
    fixed at 1 (x is an offset) and only the intercept is fitted.
    """
    wn = np.asarray(w_neg, dtype=np.float64)
    wp = np.asarray(w_pos, dtype=np.float64)
    r = wn.shape[1]
    if x_neg.size == 0 or x_pos.size == 0:
        return np.full(r, np.nan), np.full(r, np.nan)
    a, b = np.zeros(r), np.ones(r)
    step_a, step_b = np.zeros(r), np.zeros(r)
    scale = np.ones(r)
    best_ll = np.full(r, -np.inf)
    failed = (wn.sum(0) <= 0) | (wp.sum(0) <= 0)
    done = failed.copy()
    for _ in range(_MAX_ITER):
        eta_n = a[None, :] + x_neg[:, None] * b[None, :]
        eta_p = a[None, :] + x_pos[:, None] * b[None, :]
        # log-likelihood at the trial point; a worse trial halves its step (damped Newton)
        ll = np.einsum("ij,ij->j", wp, log_expit(eta_p)) + np.einsum(
            "ij,ij->j", wn, log_expit(-eta_n)
        )
        worse = ~done & ~(ll >= best_ll - 1e-12 * np.abs(best_ll))
        if worse.any():
            scale = np.where(worse, scale / 2.0, scale)
            a = np.where(worse, a - scale * step_a, a)
            b = np.where(worse, b - scale * step_b, b)
            failed |= worse & (scale < 1e-9)
            done |= failed
            continue
        best_ll = np.where(done, best_ll, ll)
        mu_n, mu_p = expit(eta_n), expit(eta_p)
        # score: Σ w (y − μ) [1, x]; information: Σ w μ(1 − μ) [1 x; x x²]
        res_p = wp * (1.0 - mu_p)
        res_n = -wn * mu_n
        v_n = wn * mu_n * (1.0 - mu_n)
        v_p = wp * mu_p * (1.0 - mu_p)
        g_a = res_p.sum(0) + res_n.sum(0)
        h_aa = v_n.sum(0) + v_p.sum(0)
        with np.errstate(divide="ignore", invalid="ignore"):
            if fit_slope:
                g_b = x_pos @ res_p + x_neg @ res_n
                h_ab = x_neg @ v_n + x_pos @ v_p
                h_bb = (x_neg**2) @ v_n + (x_pos**2) @ v_p
                det = h_aa * h_bb - h_ab**2
                new_a = (h_bb * g_a - h_ab * g_b) / det
                new_b = (h_aa * g_b - h_ab * g_a) / det
            else:
                new_a = g_a / h_aa
                new_b = np.zeros(r)
        bad = ~done & ~(np.isfinite(new_a) & np.isfinite(new_b))
        failed |= bad
        small = (np.abs(new_a) < _TOL) & (np.abs(new_b) < _TOL)
        done |= failed | small
        step_a = np.where(done, 0.0, new_a)
        step_b = np.where(done, 0.0, new_b)
        scale = np.ones(r)
        if done.all():
            break
        a, b = a + step_a, b + step_b
    ok = done & ~failed
    return np.where(ok, a, np.nan), (np.where(ok, b, np.nan) if fit_slope else np.ones(r))
