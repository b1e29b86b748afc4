"""Weighted logistic recalibration fits, vectorised over resamples (Newton–Raphson).

Calibration slope and intercept (Cox 1958; Van Calster et al. 2016): regress
the outcome on the logit of the predicted probability,
``logit P(y=1) = a + b · logit(p)``: ``b`` is the calibration slope; the
calibration intercept (calibration-in-the-large) is ``a`` with the slope
fixed at 1, i.e. ``logit(p)`` as an offset. Each column of the weight
matrices is one resample; all columns are solved together with a damped
Newton iteration (step halving while the log-likelihood does not improve).
A column whose fit does not converge (separation) gets NaN.

Large samples (at least ``GROUPED_MIN_ROWS`` rows, many columns): the rows
are grouped into runs of nearby predictor values (width ``_GROUP_WIDTH`` on
the logit scale) and each group's contribution is a Taylor expansion around
its centre from the weighted moments Σ w δ^k, k = 0..4 (δ = x − centre,
|δ| <= 0.02): one pass over the rows per fit instead of one per Newton
step. The neglected terms are O((b·δ)^4) relative, about 1e-8 — far below
the 1e-6 tolerance of the float32 replicate fits it replaces.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

_MAX_ITER = 60
_TOL = 1e-8
#: replicate fits over at least this many rows run on grouped rows (module docstring).
GROUPED_MIN_ROWS = 10_000
#: width of a group of the predictor (logit scale).
_GROUP_WIDTH = 0.04
#: score and information of a Newton step: (g_a, g_b, h_aa, h_ab, h_bb), the slope's None if fixed.
_Derivatives = tuple[
    np.ndarray, np.ndarray | None, np.ndarray, np.ndarray | None, np.ndarray | None
]


def _log_sigmoid_and_mean(
    a: np.ndarray, b: np.ndarray, x: np.ndarray, *, negative: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Return (log-likelihood terms, σ(η)) at η = a + b·x, each (n, R), from one exp and one log.

    For positives the term is log σ(η); for negatives log σ(−η) = log(1 − σ(η)).
    With e = exp(−|η|): log σ(±η) = min(±η, 0) − log(1 + e) and σ(η) = ½ + ½·sign(η)·(1 − e)/(1 + e)
    — vectorisable operations only (NumPy's log1p and where are several times slower).
    """
    eta = np.multiply.outer(x, b)
    eta += a[None, :]
    e = np.abs(eta)
    np.negative(e, out=e)
    np.exp(e, out=e)
    one_plus = e + 1.0
    mu = np.subtract(1.0, e, out=e)
    mu /= one_plus
    np.copysign(mu, eta, out=mu)
    mu *= 0.5
    mu += 0.5
    np.log(one_plus, out=one_plus)
    if negative:
        np.negative(eta, out=eta)
    np.minimum(eta, 0.0, out=eta)
    eta -= one_plus
    return eta, mu


def fit_logistic(
    x_neg: np.ndarray,
    x_pos: np.ndarray,
    w_neg: np.ndarray,
    w_pos: np.ndarray,
    *,
    fit_slope: bool,
    start: tuple[float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (intercept (R,), slope (R,)) of the weighted logistic fit of y on x, per column.

    ``x_neg`` (n_neg,), ``x_pos`` (n_pos,) are the predictor (the logit of the
    predicted probability) of negatives and positives; ``w_neg`` (n_neg, R),
    ``w_pos`` (n_pos, R) their weights. With ``fit_slope=False`` the slope is
    fixed at 1 (x is an offset) and only the intercept is fitted.

    Many columns start from the fit of their mean weights (bootstrap columns
    scatter around the full-sample fit), so each needs only a few Newton steps;
    ``start`` overrides the starting (intercept, slope), by default (0, 1).
    """
    r = np.shape(w_neg)[1]
    if r > 1 and np.size(x_neg) and np.size(x_pos) and np.size(x_neg) + np.size(x_pos) >= GROUPED_MIN_ROWS:
        return _fit_grouped(x_neg, x_pos, w_neg, w_pos, fit_slope=fit_slope)
    # One column (a point estimate) is solved in float64 to 1e-10. Many columns
    # (bootstrap replicates, whose spread is ~1e-2) in float32 to 1e-6: half the
    # memory traffic and faster exp/log1p, far below the interval's resolution.
    dtype, tol, ll_tol = (np.float64, _TOL, 1e-12) if r == 1 else (np.float32, 1e-6, 1e-5)
    wn = np.asarray(w_neg, dtype=dtype)
    wp = np.asarray(w_pos, dtype=dtype)
    x_neg = np.asarray(x_neg, dtype=dtype)
    x_pos = np.asarray(x_pos, dtype=dtype)
    if x_neg.size == 0 or x_pos.size == 0:
        return np.full(r, np.nan), np.full(r, np.nan)
    if start is None and r > 1:
        a0, b0 = fit_logistic(
            x_neg.astype(np.float64),
            x_pos.astype(np.float64),
            wn.mean(1, keepdims=True, dtype=np.float64),
            wp.mean(1, keepdims=True, dtype=np.float64),
            fit_slope=fit_slope,
        )
        if np.isfinite(a0[0]) and np.isfinite(b0[0]):
            start = (float(a0[0]), float(b0[0]))

    def evaluate(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, Callable[[], _Derivatives]]:
        return _row_terms(a, b, x_neg, x_pos, wn, wp, fit_slope=fit_slope)

    failed = (wn.sum(0) <= 0) | (wp.sum(0) <= 0)
    return _damped_newton(
        evaluate, start if start is not None else (0.0, 1.0), failed,
        fit_slope=fit_slope, dtype=dtype, tol=tol, ll_tol=ll_tol,
    )  # fmt: skip


def _row_terms(
    a: np.ndarray,
    b: np.ndarray,
    x_neg: np.ndarray,
    x_pos: np.ndarray,
    wn: np.ndarray,
    wp: np.ndarray,
    *,
    fit_slope: bool,
) -> tuple[np.ndarray, Callable[[], _Derivatives]]:
    """Return (log-likelihood (R,), derivatives) of the per-row fit at (a, b).

    ``derivatives()`` gives the score and information (g_a, g_b, h_aa, h_ab,
    h_bb); it is called only for a step that is kept, so a rejected trial costs
    just the log-likelihood. Without the slope g_b, h_ab and h_bb are None.
    """
    ll_n, mu_n = _log_sigmoid_and_mean(a, b, x_neg, negative=True)
    ll_p, mu_p = _log_sigmoid_and_mean(a, b, x_pos, negative=False)
    ll = np.einsum("ij,ij->j", wp, ll_p) + np.einsum("ij,ij->j", wn, ll_n)

    def derivatives() -> _Derivatives:
        # score: Σ w (y − μ) [1, x]; information: Σ w μ(1 − μ) [1 x; x x²]
        v_n = mu_n * (1.0 - mu_n)
        v_n *= wn
        v_p = mu_p * (1.0 - mu_p)
        v_p *= wp
        res_n = mu_n
        res_n *= wn  # Σ w_neg (0 − μ) enters with a minus sign below
        res_p = np.subtract(1.0, mu_p, out=mu_p)
        res_p *= wp
        g_a = res_p.sum(0) - res_n.sum(0)
        h_aa = v_n.sum(0) + v_p.sum(0)
        if not fit_slope:
            return g_a, None, h_aa, None, None
        g_b = x_pos @ res_p - x_neg @ res_n
        h_ab = x_neg @ v_n + x_pos @ v_p
        h_bb = (x_neg**2) @ v_n + (x_pos**2) @ v_p
        return g_a, g_b, h_aa, h_ab, h_bb

    return ll, derivatives


def _damped_newton(
    evaluate: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, Callable[[], _Derivatives]]],
    start: tuple[float, float],
    failed: np.ndarray,
    *,
    fit_slope: bool,
    dtype: type = np.float64,
    tol: float = _TOL,
    ll_tol: float = 1e-12,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (intercept (R,), slope (R,)) by damped Newton from ``start``, NaN where one fails.

    ``evaluate(a, b)`` returns the log-likelihood (R,) and a function giving
    (g_a, g_b, h_aa, h_ab, h_bb) there. A trial whose log-likelihood is worse
    than the best so far (by more than ``ll_tol`` relative) halves its step;
    a column stops when its Newton step is below ``tol`` in both parameters,
    and fails (NaN) on a non-finite step, a step halved below 1e-9, or
    ``failed`` (no weight in a class) at the start.
    """
    r = failed.shape[0]
    a, b = np.full(r, start[0], dtype=dtype), np.full(r, start[1], dtype=dtype)
    step_a, step_b = np.zeros(r, dtype=dtype), np.zeros(r, dtype=dtype)
    scale = np.ones(r, dtype=dtype)
    best_ll = np.full(r, -np.inf, dtype=dtype)
    failed = failed.copy()
    done = failed.copy()
    for _ in range(_MAX_ITER):
        ll, derivatives = evaluate(a, b)
        worse = ~done & ~(ll >= best_ll - ll_tol * np.abs(best_ll))
        if worse.any():
            scale = np.where(worse, scale / 2.0, scale)
            a = np.where(worse, a - scale * step_a, a)
            b = np.where(worse, b - scale * step_b, b)
            failed |= worse & (scale < 1e-9)
            done |= failed
            continue
        best_ll = np.where(done, best_ll, ll)
        with np.errstate(divide="ignore", invalid="ignore"):
            g_a, g_b, h_aa, h_ab, h_bb = derivatives()
            if fit_slope:
                det = h_aa * h_bb - h_ab**2
                new_a = (h_bb * g_a - h_ab * g_b) / det
                new_b = (h_aa * g_b - h_ab * g_a) / det
            else:
                new_a = g_a / h_aa
                new_b = np.zeros(r, dtype=dtype)
        bad = ~done & ~(np.isfinite(new_a) & np.isfinite(new_b))
        failed |= bad
        small = (np.abs(new_a) < tol) & (np.abs(new_b) < tol)
        done |= failed | small
        step_a = np.where(done, 0.0, new_a)
        step_b = np.where(done, 0.0, new_b)
        scale = np.ones(r, dtype=dtype)
        if done.all():
            break
        a, b = a + step_a, b + step_b
    ok = done & ~failed
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return np.where(ok, a64, np.nan), (np.where(ok, b64, np.nan) if fit_slope else np.ones(r))


def _group_moments(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (centres (G,), moments (5, G, R)): Σ w·δ^k over each run of nearby ``x``, δ = x − centre."""
    x = np.asarray(x, dtype=np.float64)
    if np.any(x[1:] < x[:-1]):
        order = np.argsort(x, kind="stable")
        x, w = x[order], np.asarray(w)[order]
    g = np.floor((x - x[0]) / _GROUP_WIDTH).astype(np.int64)
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    sizes = np.diff(np.r_[starts, len(x)])
    centre = 0.5 * (x[starts] + x[starts + sizes - 1])
    delta = x - np.repeat(centre, sizes)
    # resample-major (R, n): NumPy's reduceat is several times faster along a contiguous axis
    term = np.array(np.asarray(w).T, dtype=np.float64, order="C")  # a copy: scaled in place below
    moments = np.empty((5, np.shape(w)[1], len(starts)))
    moments[0] = np.add.reduceat(term, starts, axis=1)
    term *= delta
    for k in range(1, 5):
        moments[k] = np.add.reduceat(term, starts, axis=1)
        if k < 4:
            term *= delta
    moments = moments.transpose(0, 2, 1)
    return centre, moments


def _grouped_terms(
    a: np.ndarray, b: np.ndarray, centre: np.ndarray, m: np.ndarray, *, positive: bool
) -> tuple[np.ndarray, ...]:
    """Return (ll, Σw r, Σw x r, Σw v, Σw x v, Σw x² v), each (R,), expanded around the group centres.

    r = y − μ is the score residual and v = μ(1 − μ) the information weight at
    η = a + b·x; each is expanded to third order in b·δ (module docstring).
    """
    from scipy.special import expit, log_expit

    eta = centre[:, None] * b[None, :] + a[None, :]
    mu = expit(eta)
    v = mu * (1.0 - mu)
    v1 = v * (1.0 - 2.0 * mu)  # dv/dη = d²μ/dη²
    v2 = v * (1.0 - 6.0 * v)  # d²v/dη²
    f = log_expit(eta) if positive else log_expit(-eta)
    r0 = (1.0 - mu) if positive else -mu  # y − μ = df/dη
    s0, s1, s2, s3, s4 = m
    bb = b[None, :]
    b2, b3 = bb * bb, bb * bb * bb
    ll = (f * s0 + r0 * bb * s1 - v * b2 * s2 / 2.0 - v1 * b3 * s3 / 6.0).sum(0)
    res0 = r0 * s0 - v * bb * s1 - v1 * b2 * s2 / 2.0 - v2 * b3 * s3 / 6.0
    res1 = r0 * s1 - v * bb * s2 - v1 * b2 * s3 / 2.0 - v2 * b3 * s4 / 6.0
    inf0 = v * s0 + v1 * bb * s1 + v2 * b2 * s2 / 2.0
    inf1 = v * s1 + v1 * bb * s2 + v2 * b2 * s3 / 2.0
    inf2 = v * s2 + v1 * bb * s3 + v2 * b2 * s4 / 2.0
    c = centre[:, None]
    return (
        ll,
        res0.sum(0),
        (c * res0 + res1).sum(0),
        inf0.sum(0),
        (c * inf0 + inf1).sum(0),
        (c * c * inf0 + 2.0 * c * inf1 + inf2).sum(0),
    )


def _fit_grouped(
    x_neg: np.ndarray, x_pos: np.ndarray, w_neg: np.ndarray, w_pos: np.ndarray, *, fit_slope: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Return (intercept (R,), slope (R,)) as :func:`fit_logistic` does, from grouped rows (float64)."""
    c_neg, m_neg = _group_moments(x_neg, w_neg)
    c_pos, m_pos = _group_moments(x_pos, w_pos)
    # replicates scatter around the fit of their mean weights: start there (a grouped fit too)
    a0, b0 = _newton_grouped(
        c_neg, m_neg.mean(2, keepdims=True), c_pos, m_pos.mean(2, keepdims=True), (0.0, 1.0),
        fit_slope=fit_slope,
    )
    start = (float(a0[0]), float(b0[0])) if np.isfinite(a0[0]) and np.isfinite(b0[0]) else (0.0, 1.0)
    return _newton_grouped(c_neg, m_neg, c_pos, m_pos, start, fit_slope=fit_slope)


def _newton_grouped(
    c_neg: np.ndarray,
    m_neg: np.ndarray,
    c_pos: np.ndarray,
    m_pos: np.ndarray,
    start: tuple[float, float],
    *,
    fit_slope: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (intercept (R,), slope (R,)) by damped Newton on grouped moments (5, G, R) of each class."""

    def evaluate(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, Callable[[], _Derivatives]]:
        tn = _grouped_terms(a, b, c_neg, m_neg, positive=False)
        tp = _grouped_terms(a, b, c_pos, m_pos, positive=True)
        ll, g_a, g_b, h_aa, h_ab, h_bb = (p + q for p, q in zip(tn, tp, strict=True))
        return ll, lambda: (g_a, g_b, h_aa, h_ab, h_bb)

    failed = (m_neg[0].sum(0) <= 0) | (m_pos[0].sum(0) <= 0)
    return _damped_newton(evaluate, start, failed, fit_slope=fit_slope)
