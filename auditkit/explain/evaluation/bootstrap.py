"""Bootstrap confidence intervals over images (or patients) for per-image saliency scores.

Saliency metrics are averages of per-image scores; their uncertainty comes
from which images were sampled, so the bootstrap resamples images (Saporta et
al. 2022 use 1000 bootstrap samples for CheXlocalize). When the images carry
patient ids (``clusters``), a patient's images are resampled together, as in
the statistics engine (Davison & Hinkley 1997 §3.8; Field & Welsh 2007): the
images of one patient are not independent, and treating them so makes the
interval too narrow. The resample weights come from the one bootstrap of the
codebase, :func:`auditkit.stats.bootstrap.make_resamples` (a single stratum),
so each resample's statistic is a weighted mean (or ratio of weighted sums)
over the images. An image whose score is undefined (NaN: e.g. a map with no
positive mass) is left out and counted. Intervals come from the run's
interval function (:func:`auditkit.stats.bootstrap.to_estimate`), so the
run's ``ci_method`` applies here too: percentile, or BCa with the
jackknife over the resampling units (leave one image, or one patient, out).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import pandas as pd

from auditkit.errors import InvalidInputError
from auditkit.results import Estimate
from auditkit.run_context import DEFAULT_CI_LEVEL, DEFAULT_N_BOOT
from auditkit.stats.bootstrap import Distribution, IntervalSettings, make_resamples, to_estimate

N_BOOT = DEFAULT_N_BOOT
CI_LEVEL = DEFAULT_CI_LEVEL


def _clusters(clusters: Sequence[Hashable] | np.ndarray | None, n: int) -> np.ndarray | None:
    """Return the patient of each of ``n`` images as an object array (a missing id: the image alone), or None."""
    if clusters is None:
        return None
    ids = pd.Series(np.asarray(clusters, dtype=object).reshape(-1))
    if len(ids) != n:
        raise InvalidInputError(
            f"clusters has {len(ids)} entries for {n} images; give one patient id per image"
        )
    missing = ids.isna().to_numpy()
    keys = ids.astype(str).radd("p:").to_numpy(dtype=object)
    keys[missing] = [f"image:{i}" for i in np.flatnonzero(missing)]
    return keys


def _weights(
    clusters: np.ndarray | None, n: int, *, n_boot: int, random_state: int
) -> tuple[np.ndarray, int, np.ndarray]:
    """Return (resample weights (n, n_boot) float64, number of resampling units, unit of each image)."""
    resamples = make_resamples(
        np.zeros(n, dtype=np.int64),
        n_boot=int(n_boot),
        random_state=random_state,
        clusters=clusters,
    )
    unit = resamples.unit_of_row
    return resamples.counts[unit].astype(np.float64), resamples.n_units, unit


def _jackknife_weights(unit: np.ndarray, n_units: int) -> np.ndarray:
    """Return leave-one-unit-out weights (n, n_units): 0 for the images of the unit left out."""
    return (unit[:, None] != np.arange(n_units)[None, :]).astype(np.float64)


def _estimate(
    point: float,
    replicates: np.ndarray,
    jack: np.ndarray | None,
    *,
    settings: IntervalSettings,
    method: str,
) -> Estimate:
    """Return the Estimate of a saliency statistic under the run's interval settings."""
    dist = Distribution(point, replicates, jack)
    group = None if jack is None else np.zeros(len(jack), dtype=np.int64)
    est = to_estimate(dist, settings=settings, group_of_block=group)
    name = "BCa bootstrap" if settings.method == "bca" else "percentile bootstrap"
    return Estimate(est.estimate, est.ci_low, est.ci_high, reason=est.reason, method=f"{name} over {method}")


def _unit_name(clustered: bool) -> str:
    return "patients (their images together)" if clustered else "images"


def _too_few_units(point: float, kept: np.ndarray | None, n: int, min_n: int) -> Estimate | None:
    # Fewer than min_n resampling units (images, or patients when clustered) give no interval.
    n_units = n if kept is None else len(set(kept))
    if n_units >= min_n:
        return None
    unit = "image(s)" if kept is None else "patient(s)"
    return Estimate(point, reason=f"only {n_units} {unit}: no confidence interval")


def _resolve(ci_method: str, clustered: bool) -> str:
    """Return the method used: ``auto`` is BCa on patient-clustered resamples, else percentile (as the audit)."""
    if ci_method != "auto":
        return ci_method
    return "bca" if clustered else "percentile"


def bootstrap_mean(
    values: np.ndarray,
    *,
    clusters: Sequence[Hashable] | np.ndarray | None = None,
    n_boot: int = N_BOOT,
    ci_level: float = CI_LEVEL,
    ci_method: str = "percentile",
    random_state: int = 0,
    min_n: int = 2,
) -> Estimate:
    """Return the mean of the finite ``values`` (n,) with a bootstrap CI (percentile, or BCa).

    ``clusters`` (n,): each image's patient id; a patient's images are
    resampled together (a resample's mean is over the images it draws).
    Fewer than ``min_n`` finite values, or patients: the mean without an
    interval (one) or an undefined Estimate with its reason (none).
    """
    values = np.asarray(values, dtype=float).reshape(-1)
    groups = _clusters(clusters, values.size)
    keep = np.isfinite(values)
    finite = values[keep]
    n = finite.size
    if n == 0:
        reason = "no images" if values.size == 0 else f"undefined for all {values.size} images"
        return Estimate.undefined(reason)
    point = float(finite.mean())
    kept = None if groups is None else groups[keep]
    too_few = _too_few_units(point, kept, n, min_n)
    if too_few is not None:
        return too_few
    weights, n_units, unit = _weights(kept, n, n_boot=n_boot, random_state=random_state)
    means = (finite @ weights) / weights.sum(axis=0)
    jack = None
    ci_method = _resolve(ci_method, kept is not None and n_units < n)
    if ci_method == "bca":
        jw = _jackknife_weights(unit, n_units)
        jack = (finite @ jw) / jw.sum(axis=0)
    clustered = kept is not None and n_units < n
    settings = IntervalSettings(level=ci_level, method=ci_method)
    return _estimate(point, means, jack, settings=settings, method=_unit_name(clustered))


def bootstrap_ratio(
    numerator: np.ndarray,
    denominator: np.ndarray,
    *,
    clusters: Sequence[Hashable] | np.ndarray | None = None,
    n_boot: int = N_BOOT,
    ci_level: float = CI_LEVEL,
    ci_method: str = "percentile",
    random_state: int = 0,
    min_n: int = 2,
) -> Estimate:
    """Return sum(numerator) / sum(denominator) over images (n,) with a bootstrap CI (percentile, or BCa).

    Pairs with a non-finite value or a zero denominator are left out; the
    resamples draw whole images, numerator and denominator together, or
    whole patients when ``clusters`` (n,) gives each image's patient id.
    """
    num = np.asarray(numerator, dtype=float).reshape(-1)
    den = np.asarray(denominator, dtype=float).reshape(-1)
    if num.size != den.size:
        raise InvalidInputError(
            f"numerator has {num.size} values, denominator {den.size}; give one of each per image"
        )
    groups = _clusters(clusters, num.size)
    keep = np.isfinite(num) & np.isfinite(den) & (den > 0)
    num, den = num[keep], den[keep]
    n = num.size
    if n == 0:
        return Estimate.undefined("no images with positive saliency mass")
    point = float(num.sum() / den.sum())
    kept = None if groups is None else groups[keep]
    too_few = _too_few_units(point, kept, n, min_n)
    if too_few is not None:
        return too_few
    weights, n_units, unit = _weights(kept, n, n_boot=n_boot, random_state=random_state)
    ratios = (num @ weights) / (den @ weights)
    jack = None
    ci_method = _resolve(ci_method, kept is not None and n_units < n)
    if ci_method == "bca":
        jw = _jackknife_weights(unit, n_units)
        with np.errstate(divide="ignore", invalid="ignore"):
            jack = (num @ jw) / (den @ jw)
    clustered = kept is not None and n_units < n
    settings = IntervalSettings(level=ci_level, method=ci_method)
    return _estimate(point, ratios, jack, settings=settings, method=f"{_unit_name(clustered)} (ratio of sums)")
