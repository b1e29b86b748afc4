"""The shared bootstrap: one matrix of resample weights per run, and intervals from it.

Every interval of an audit comes from the same resamples: a matrix of
multinomial counts, one column per resample, one row per resampling unit
(an image, or a patient when images are clustered). Resampling is stratified
(each stratum — cohort x class — keeps its size, Davison & Hinkley 1997
§3.2) and clustered (a patient's images move together, Davison & Hinkley
1997 §3.8; Field & Welsh 2007), so a metric computed on a subgroup or on a
difference of cohorts reuses exactly the same draws.

Intervals: percentile and bias-corrected accelerated (BCa, Efron 1987;
Efron & Tibshirani 1993 §14.3), the acceleration estimated by the jackknife
over resampling units (leave one patient out when clustered), grouped into at
most ``max_jackknife_blocks`` blocks per cohort for large cohorts (a grouped
jackknife: the acceleration is a ratio of moments of the influence values and
is consistent under grouping, Efron & Tibshirani 1993 §11.5).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.special import ndtr, ndtri

from auditkit.errors import InvalidInputError
from auditkit.results import Estimate

#: draws generated per ``np.bincount`` call: small enough that the counts of one
#: call stay in cache (bincount over a large range is cache-miss bound).
_DRAWS_PER_CALL = 400_000
#: resamples transposed into the unit-major matrix at a time.
_TRANSPOSE_BLOCK = 64

CI_METHODS = ("percentile", "bca")


@dataclass(frozen=True, eq=False)
class Resamples:
    """The run's resample weights: how often each unit is drawn in each resample.

    ``counts`` has shape ``(n_units, n_boot)`` (unit-major, so a view gathers
    whole rows); ``unit_of_row`` maps each table row to its unit; jackknife
    blocks partition the units within each jackknife group (cohort).
    """

    counts: np.ndarray
    """(n_units, n_boot) unsigned ints (uint8 unless a count needs more): multinomial draw counts."""
    unit_of_row: np.ndarray
    """(n_rows,) int64: the unit (row or cluster) of each table row."""
    block_of_unit: np.ndarray
    """(n_units,) int64: the jackknife block each unit belongs to."""
    group_of_block: np.ndarray
    """(n_blocks,) int64: the jackknife group (cohort) of each block."""
    seed: int
    clustered: bool

    @property
    def n_boot(self) -> int:
        """Return the number of bootstrap resamples."""
        return int(self.counts.shape[1])

    @property
    def n_units(self) -> int:
        """Return the number of resampling units (rows, or clusters when clustered)."""
        return int(self.counts.shape[0])

    @property
    def n_blocks(self) -> int:
        """Return the number of jackknife blocks."""
        return len(self.group_of_block)

    @property
    def n_rows(self) -> int:
        """Return the number of table rows the resamples cover."""
        return len(self.unit_of_row)


def _codes(values: Sequence[Hashable] | np.ndarray) -> np.ndarray:
    """Return integer codes (int64, shape ``(n,)``) of ``values`` in sorted order of the values."""
    codes, _ = pd.factorize(
        pd.Series(list(values) if not isinstance(values, np.ndarray) else values), sort=True
    )
    return codes.astype(np.int64)


def make_resamples(
    strata: Sequence[Hashable] | np.ndarray,
    *,
    n_boot: int,
    random_state: int,
    clusters: Sequence[Hashable] | np.ndarray | None = None,
    jackknife_groups: Sequence[Hashable] | np.ndarray | None = None,
    max_jackknife_blocks: int = 500,
) -> Resamples:
    """Return the run's resample weights for a table with these row strata and clusters.

    ``strata`` (n_rows,) labels each row's stratum (e.g. ``"test|1"``); with
    ``clusters``, a cluster is one resampling unit and its stratum is the set
    of its rows' strata, so stratification holds at the patient level.
    Clusters must not span jackknife groups. Counts are drawn as uniform
    indices per stratum, all resamples at once, and counted with one
    ``np.bincount`` over ``resample * n_units + unit`` per batch — never one
    multinomial call per resample. Deterministic for a given ``random_state``.
    """
    if n_boot < 1:
        raise InvalidInputError(f"n_boot must be at least 1, got {n_boot}")
    row_strata = _codes(strata)
    n_rows = len(row_strata)
    if n_rows == 0:
        raise InvalidInputError("cannot resample an empty table")
    row_cluster = np.arange(n_rows, dtype=np.int64) if clusters is None else _codes(clusters)
    if len(row_cluster) != n_rows:
        raise InvalidInputError(f"clusters has {len(row_cluster)} entries, strata has {n_rows}")
    groups = np.zeros(n_rows, np.int64) if jackknife_groups is None else _codes(jackknife_groups)
    cluster_ids, unit_stratum = _unit_strata(row_cluster, row_strata)
    unit_group = _unit_groups(row_cluster, groups, len(cluster_ids))
    # Units ordered stratum-contiguously so a stratum's draws are offset indices.
    unit_order = np.lexsort((cluster_ids, unit_stratum))
    n_units = len(unit_order)
    position_of_cluster = np.empty(int(cluster_ids.max()) + 1, np.int64)
    position_of_cluster[cluster_ids[unit_order]] = np.arange(n_units)
    stratum_sorted = unit_stratum[unit_order]
    bounds = np.flatnonzero(np.r_[True, stratum_sorted[1:] != stratum_sorted[:-1], True])

    rng = np.random.default_rng(random_state)
    counts = _draw_counts(rng, bounds[:-1], np.diff(bounds), n_units=n_units, n_boot=n_boot)
    block_of_unit, group_of_block = _jackknife_blocks(
        unit_group[unit_order], max_blocks=max_jackknife_blocks, rng=rng
    )
    return Resamples(
        counts=counts,
        unit_of_row=position_of_cluster[row_cluster],
        block_of_unit=block_of_unit,
        group_of_block=group_of_block,
        seed=int(random_state),
        clustered=clusters is not None and n_units < n_rows,
    )


def _unit_strata(row_cluster: np.ndarray, row_strata: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (cluster ids (n_units,) sorted, each unit's stratum code).

    A unit's stratum is the set of its rows' strata (patients with images of
    both classes form their own stratum). Pure units keep their row stratum;
    only mixed units (usually few) are looked at one by one.
    """
    pairs = np.unique(np.column_stack([row_cluster, row_strata]), axis=0)
    cluster_ids, first, n_strata_of = np.unique(pairs[:, 0], return_index=True, return_counts=True)
    unit_stratum = pairs[first, 1].copy()
    mixed_codes: dict[tuple[int, ...], int] = {}
    next_code = int(row_strata.max()) + 1
    for i in np.flatnonzero(n_strata_of > 1):
        key = tuple(pairs[first[i] : first[i] + n_strata_of[i], 1].tolist())
        if key not in mixed_codes:
            mixed_codes[key] = next_code + len(mixed_codes)
        unit_stratum[i] = mixed_codes[key]
    return cluster_ids, unit_stratum


def _unit_groups(row_cluster: np.ndarray, groups: np.ndarray, n_units: int) -> np.ndarray:
    """Return each unit's jackknife group (n_units,); a unit spanning two groups is refused."""
    group_min = np.full(n_units, np.iinfo(np.int64).max)
    group_max = np.full(n_units, np.iinfo(np.int64).min)
    np.minimum.at(group_min, row_cluster, groups)
    np.maximum.at(group_max, row_cluster, groups)
    if (group_min != group_max).any():
        raise InvalidInputError(
            "a cluster (patient) spans two cohorts; give patients distinct ids per cohort"
        )
    return group_min


def _draw_counts(
    rng: np.random.Generator, starts: np.ndarray, sizes: np.ndarray, *, n_units: int, n_boot: int
) -> np.ndarray:
    """Return the (n_units, n_boot) draw counts: each stratum's units drawn with replacement.

    ``starts``/``sizes`` delimit the strata in unit order; the draws are uniform
    indices per stratum, ``per_call`` resamples at a time, counted with one
    ``np.bincount`` over ``resample * n_units + unit``.
    """
    # A unit is drawn a handful of times per resample (Poisson(1) in the limit: 13 is
    # about the largest of 10^9 draws), so uint8 holds every count in practice
    # (1 GB at 1M units x 1000 resamples); a larger count widens the matrix.
    counts = np.empty((n_units, n_boot), dtype=np.uint8)
    per_call = max(1, _DRAWS_PER_CALL // n_units)
    block = np.empty((_TRANSPOSE_BLOCK, n_units), dtype=np.uint8)
    for b0 in range(0, n_boot, _TRANSPOSE_BLOCK):
        b1 = min(n_boot, b0 + _TRANSPOSE_BLOCK)
        for r0 in range(b0, b1, per_call):
            r = min(per_call, b1 - r0)
            draws = np.concatenate(
                [
                    rng.integers(0, m, size=(r, m), dtype=np.int64) + s0
                    for s0, m in zip(starts, sizes, strict=True)
                ],
                axis=1,
            )
            draws += (np.arange(r, dtype=np.int64) * n_units)[:, None]
            drawn = np.bincount(draws.ravel(), minlength=r * n_units)
            if drawn.max() > np.iinfo(block.dtype).max:
                wide = np.uint16 if drawn.max() <= np.iinfo(np.uint16).max else np.uint32
                counts, block = counts.astype(wide), block.astype(wide)
            block[r0 - b0 : r0 - b0 + r] = drawn.reshape(r, n_units)
        counts[:, b0:b1] = block[: b1 - b0].T
    return counts


def _jackknife_blocks(
    unit_group: np.ndarray, *, max_blocks: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Return (block of each unit (n_units,), group of each block (n_blocks,)).

    Within each group, every unit is its own block when there are at most
    ``max_blocks`` units; otherwise the units are dealt at random into
    ``max_blocks`` blocks of near-equal size.
    """
    block_of_unit = np.empty(len(unit_group), np.int64)
    group_of_block: list[np.ndarray] = []
    next_block = 0
    for group in np.unique(unit_group):
        units = np.flatnonzero(unit_group == group)
        k = min(len(units), max_blocks)
        if k == len(units):
            block_of_unit[units] = next_block + np.arange(k)
        else:
            block_of_unit[rng.permutation(units)] = next_block + np.arange(len(units)) % k
        group_of_block.append(np.full(k, group, np.int64))
        next_block += k
    return block_of_unit, np.concatenate(group_of_block)


@dataclass(frozen=True, eq=False)
class Distribution:
    """A statistic's point value, its bootstrap replicates and its jackknife values.

    ``jack`` holds one value per jackknife block of the run, NaN where leaving
    the block out does not touch the statistic (the block lies in another
    cohort); it is None when the run does not need BCa.
    """

    point: float
    boot: np.ndarray
    """(n_boot,) float64; NaN where the statistic is undefined in a resample."""
    jack: np.ndarray | None = None
    """(n_blocks,) float64 or None."""

    def map(self, fn: Callable[..., ArrayLike], *others: Distribution) -> Distribution:
        """Return ``fn`` applied elementwise to this and ``others`` (point, each resample, each block).

        ``fn`` takes one argument per distribution, all scalars (the points) or
        all arrays of one shape (the resamples, the blocks), and returns a value
        of that shape, as a NumPy ufunc such as ``np.subtract`` does.
        """
        dists = (self, *others)
        point = float(fn(*(np.float64(d.point) for d in dists)))
        with np.errstate(all="ignore"):
            boot = np.asarray(fn(*(d.boot for d in dists)), dtype=np.float64)
            jack = None
            if all(d.jack is not None for d in dists):
                touched = np.zeros_like(dists[0].jack, dtype=bool)
                filled = []
                for d in dists:
                    touched |= ~np.isnan(d.jack)
                    filled.append(np.where(np.isnan(d.jack), d.point, d.jack))
                jack = np.where(touched, np.asarray(fn(*filled), dtype=np.float64), np.nan)
        return Distribution(point, boot, jack)

    def __sub__(self, other: Distribution) -> Distribution:
        return self.map(np.subtract, other)


def percentile_interval(boot: np.ndarray, *, level: float = 0.95) -> tuple[float, float]:
    """Return the percentile interval (Efron & Tibshirani 1993 §13.3) of the finite replicates."""
    finite = boot[np.isfinite(boot)]
    if finite.size == 0:
        return float("nan"), float("nan")
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(finite, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def bca_acceleration(jack: np.ndarray, group_of_block: np.ndarray) -> float:
    """Return the BCa acceleration from jackknife values (Efron & Tibshirani 1993 eq. 14.15).

    Blocks with NaN (not touching the statistic) are skipped; deviations are
    taken from the mean of each jackknife group (cohort), as for a
    multi-sample statistic (scipy.stats.bootstrap does the same per sample).
    """
    ok = np.isfinite(jack)
    if ok.sum() < 2:
        return 0.0
    values, groups = jack[ok], group_of_block[ok]
    dev = np.empty_like(values)
    for g in np.unique(groups):
        sel = groups == g
        dev[sel] = values[sel].mean() - values[sel]
    denom = np.sum(dev**2)
    if denom <= 0:
        return 0.0
    return float(np.sum(dev**3) / (6.0 * denom**1.5))


def bca_interval(
    point: float,
    boot: np.ndarray,
    jack: np.ndarray,
    group_of_block: np.ndarray,
    *,
    level: float = 0.95,
) -> tuple[float, float]:
    """Return the BCa interval (Efron 1987) from replicates and jackknife values.

    The bias correction z0 counts ties as half (as scipy.stats.bootstrap);
    when z0 is infinite (every replicate on one side) the interval is NaN.
    """
    finite = boot[np.isfinite(boot)]
    if finite.size == 0 or not np.isfinite(point):
        return float("nan"), float("nan")
    share = (np.count_nonzero(finite < point) + np.count_nonzero(finite <= point)) / (
        2.0 * finite.size
    )
    z0 = ndtri(share)
    if not np.isfinite(z0):
        return float("nan"), float("nan")
    a = bca_acceleration(jack, group_of_block)
    alpha = (1.0 - level) / 2.0
    quantiles = []
    for z_alpha in (ndtri(alpha), ndtri(1.0 - alpha)):
        num = z0 + z_alpha
        quantiles.append(float(ndtr(z0 + num / (1.0 - a * num))))
    lo, hi = np.quantile(finite, quantiles)
    return float(lo), float(hi)


def bootstrap_z_test(dist: Distribution, *, null: float = 0.0) -> float:
    """Return the two-sided p-value of H0: statistic == ``null`` from z = (θ̂ − null) / SE*.

    SE* is the standard deviation of the finite bootstrap replicates (the
    bootstrap standard error, Efron & Tibshirani 1993 §6 and §16.4). Unlike a
    count of replicates beyond the observed value, its p-values are not
    floored at 1/(B + 1), so a multiplicity adjustment over a family of tests
    keeps its power.
    """
    finite = dist.boot[np.isfinite(dist.boot)]
    if finite.size < 2 or not np.isfinite(dist.point):
        return float("nan")
    se = float(np.std(finite, ddof=1))
    diff = dist.point - null
    if se <= 0.0:
        return float("nan") if diff == 0.0 else 0.0
    return float(2.0 * ndtr(-abs(diff) / se))


def bootstrap_homogeneity_test(dists: Sequence[Distribution]) -> float:
    """Return the p-value of H0: the K statistics are equal (Wald χ², bootstrap covariance, K − 1 df).

    The K − 1 contrasts θ_k − θ_K are tested jointly with their covariance
    estimated from the shared bootstrap replicates (resamples where every
    statistic is defined), so picking the most extreme pair afterwards does
    not inflate the error rate. For K = 2 it equals :func:`bootstrap_z_test`
    of the difference up to the covariance estimate.
    """
    from scipy.stats import chi2

    points = np.array([d.point for d in dists])
    if len(dists) < 2 or not np.all(np.isfinite(points)):
        return float("nan")
    reps = np.stack([d.boot for d in dists])  # (K, B)
    complete = np.all(np.isfinite(reps), axis=0)
    if complete.sum() < len(dists) + 1:
        return float("nan")
    contrasts = points[:-1] - points[-1]
    deltas = reps[:-1, complete] - reps[-1, complete]
    cov = np.atleast_2d(np.cov(deltas))
    rank = int(np.linalg.matrix_rank(cov))
    if rank == 0:
        return float("nan") if np.allclose(contrasts, 0.0) else 0.0
    stat = float(contrasts @ np.linalg.pinv(cov) @ contrasts)
    return float(chi2.sf(stat, rank))


@dataclass(frozen=True)
class IntervalSettings:
    """How a distribution becomes an Estimate: CI level, method, minimum share of defined resamples."""

    level: float = 0.95
    method: str = "percentile"
    min_defined: float = 0.95
    """An interval needs the statistic defined in at least this share of resamples."""


def to_estimate(
    dist: Distribution,
    *,
    settings: IntervalSettings,
    group_of_block: np.ndarray | None = None,
    reason: str | None = None,
    p_value: float | None = None,
    method: str | None = None,
    groups: Sequence[str] | None = None,
) -> Estimate:
    """Return the Estimate (point, CI, optional test) of a bootstrap distribution.

    An undefined point gives ``Estimate.undefined(reason)``; a point whose
    replicates are undefined too often gives no interval, with the reason.
    """
    if not np.isfinite(dist.point):
        return Estimate.undefined(reason or "not computable from the data given")
    defined = np.isfinite(dist.boot)
    share = float(defined.mean()) if dist.boot.size else 0.0
    if share < settings.min_defined:
        return Estimate(
            dist.point,
            p_value=p_value,
            method=method,
            groups=tuple(groups) if groups is not None else None,
            reason=(
                f"no interval: the statistic is undefined in {100 * (1 - share):.0f}% of "
                "bootstrap resamples (too few cases of one class)"
            ),
        )
    if settings.method == "bca" and dist.jack is not None and group_of_block is not None:
        lo, hi = bca_interval(
            dist.point, dist.boot, dist.jack, group_of_block, level=settings.level
        )
    else:
        lo, hi = percentile_interval(dist.boot, level=settings.level)
    return Estimate(
        dist.point,
        lo,
        hi,
        p_value=p_value,
        method=method,
        groups=tuple(groups) if groups is not None else None,
    )
