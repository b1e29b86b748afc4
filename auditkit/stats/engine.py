"""The evaluation loop: a statistic of a view, at the point, every resample and every jackknife block.

A *statistic* is a function ``Batch -> dict[str, ndarray (R,) or (R, m)]``.
The engine calls it on the all-ones weights (the point estimate), on the run's
bootstrap counts in chunks of resamples (bounded memory), and — for BCa — on
the jackknife weights of the blocks the view touches. Subgroups and cohorts
are views over the same table rows, so every interval of a run comes from
the same resamples.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from auditkit.results import Estimate
from auditkit.stats.bootstrap import (
    Distribution,
    IntervalSettings,
    Resamples,
    bootstrap_z_test,
    to_estimate,
)
from auditkit.stats.views import Batch, BinaryView, LinearView

Statistic = Callable[[Batch], dict[str, np.ndarray]]


_CONTROLLER: list = []


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Run the block with one BLAS thread, restoring the caller's setting afterwards.

    The engine's matrix products are small and many; on a shared or busy
    machine a multi-threaded BLAS spends more time waiting for its threads
    than computing (measured: 50x slower on 2 loaded cores). The
    threadpoolctl controller is built once, so entering costs ~10 µs.
    """
    from threadpoolctl import ThreadpoolController

    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    with _CONTROLLER[0].limit(limits=1, user_api="blas"):
        yield


#: weight-matrix elements per chunk (rows x resamples): about 16 MB as float64.
_CHUNK_ELEMENTS = 2_000_000
#: resamples gathered per pass over the counts' rows (a cache line of uint8 counts).
_GATHER_COLUMNS = 64


@dataclass(frozen=True)
class Curves:
    """Vector-valued statistics (curves on a grid): point values and per-resample values."""

    point: dict[str, np.ndarray]
    """name -> (m,) at the point estimate."""
    boot: dict[str, np.ndarray]
    """name -> (n_boot, m)."""


class Engine:
    """The run's bootstrap: its resamples and how intervals are formed."""

    def __init__(self, resamples: Resamples, settings: IntervalSettings) -> None:
        self.resamples = resamples
        self.settings = settings

    @property
    def needs_jackknife(self) -> bool:
        """Return whether intervals are BCa (and so need jackknife values)."""
        return self.settings.method == "bca"

    def _chunk(self, n_rows: int) -> int:
        return max(1, min(self.resamples.n_boot, _CHUNK_ELEMENTS // max(n_rows, 1)))

    def _boot_weights(self, units: Sequence[np.ndarray]) -> Iterator[list[np.ndarray]]:
        counts = self.resamples.counts
        n_boot = self.resamples.n_boot
        step = self._chunk(sum(len(u) for u in units))
        # Rows are gathered for a span of resamples at once and then sliced into chunks:
        # gathering a few resamples per row reads a whole cache line of the unit-major
        # counts for a few bytes (at 1M rows, 40% of a statistics run). Chunks are unchanged.
        span = max(step, (_GATHER_COLUMNS // step) * step)
        for g0 in range(0, n_boot, span):
            gathered = [counts[u, g0 : g0 + span] for u in units]
            for r0 in range(g0, min(g0 + span, n_boot), step):
                yield [g[:, r0 - g0 : r0 - g0 + step] for g in gathered]

    def _jack_weights(
        self, units: Sequence[np.ndarray]
    ) -> tuple[np.ndarray, Iterator[list[np.ndarray]]]:
        blocks = [self.resamples.block_of_unit[u] for u in units]
        touched = np.unique(np.concatenate(blocks)) if blocks else np.zeros(0, np.int64)
        step = self._chunk(sum(len(u) for u in units))

        def gen() -> Iterator[list[np.ndarray]]:
            for j0 in range(0, len(touched), step):
                js = touched[j0 : j0 + step]
                yield [(b[:, None] != js[None, :]).astype(np.uint8) for b in blocks]

        return touched, gen()

    def units(self, rows: np.ndarray) -> np.ndarray:
        """Return the resampling unit of each table row in ``rows`` (int64, same shape)."""
        return self.resamples.unit_of_row[rows]

    @staticmethod
    def _view_units_rows(view: BinaryView | LinearView) -> list[np.ndarray]:
        if isinstance(view, BinaryView):
            return [view.rows_neg, view.rows_pos]
        return [view.rows]

    @staticmethod
    def _call(
        view: BinaryView | LinearView, statistic: Callable, weights: list[np.ndarray]
    ) -> dict:
        if isinstance(view, BinaryView):
            return statistic(view.batch(weights[0], weights[1]))
        return statistic(view.sums(weights[0]))

    def _collect(self, view, statistic, chunks) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
        parts: dict[str, list[np.ndarray]] = {}
        for weights in chunks:
            for k, v in self._call(view, statistic, weights).items():
                parts.setdefault(k, []).append(np.asarray(v, dtype=np.float64))
        return {k: np.concatenate(v, axis=0) for k, v in parts.items()}

    def _point(self, view, statistic) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
        ones = [np.ones((len(r), 1), np.uint8) for r in self._view_units_rows(view)]
        return {
            k: np.asarray(v, dtype=np.float64)[0]
            for k, v in self._call(view, statistic, ones).items()
        }

    def evaluate(
        self, view: BinaryView | LinearView, statistic: Statistic | Callable
    ) -> dict[str, Distribution]:
        """Return each named scalar statistic of ``view`` as a Distribution (point, replicates, jackknife).

        For a BinaryView the statistic receives a Batch; for a LinearView
        it receives the feature sums (R, k).
        """
        with single_threaded_blas():
            return self._evaluate(view, statistic)

    def _evaluate(
        self, view: BinaryView | LinearView, statistic: Callable
    ) -> dict[str, Distribution]:
        units = [self.units(r) for r in self._view_units_rows(view)]
        point = self._point(view, statistic)
        boot = self._collect(view, statistic, self._boot_weights(units))
        jack: dict[str, np.ndarray] = {}
        if self.needs_jackknife:
            touched, chunks = self._jack_weights(units)
            collected = self._collect(view, statistic, chunks)
            for k in point:
                values = np.full(self.resamples.n_blocks, np.nan)
                if k in collected:
                    values[touched] = collected[k]
                jack[k] = values
        return {
            k: Distribution(float(point[k]), boot[k], jack.get(k) if self.needs_jackknife else None)
            for k in point
        }

    def evaluate_curves(self, view: BinaryView, statistic: Statistic) -> Curves:
        """Return vector statistics (R, m) of ``view`` at the point and every resample (no jackknife)."""
        units = [self.units(r) for r in self._view_units_rows(view)]
        with single_threaded_blas():
            return Curves(
                point=self._point(view, statistic),
                boot=self._collect(view, statistic, self._boot_weights(units)),
            )

    def estimate(
        self,
        dist: Distribution,
        *,
        reason: str | None = None,
        p_value: float | None = None,
        method: str | None = None,
        groups: Sequence[str] | None = None,
    ) -> Estimate:
        """Return the Estimate of ``dist`` under the run's interval settings."""
        return to_estimate(
            dist,
            settings=self.settings,
            group_of_block=self.resamples.group_of_block,
            reason=reason,
            p_value=p_value,
            method=method,
            groups=groups,
        )

    def difference(
        self, a: Distribution, b: Distribution, *, groups: Sequence[str] | None = None
    ) -> Estimate:
        """Return the Estimate of a − b with its interval and bootstrap z-test p-value."""
        diff = a - b
        return self.estimate(diff, p_value=bootstrap_z_test(diff), groups=groups)

    def percentile_band(self, boot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the pointwise percentile band (lower, upper), each (m,), of replicates (n_boot, m)."""
        alpha = (1.0 - self.settings.level) / 2.0
        with np.errstate(all="ignore"):
            defined = np.isfinite(boot).mean(axis=0) >= self.settings.min_defined
            lo = np.full(boot.shape[1], np.nan)
            hi = np.full(boot.shape[1], np.nan)
            if defined.any():
                q = np.nanquantile(boot[:, defined], [alpha, 1.0 - alpha], axis=0)
                lo[defined], hi[defined] = q[0], q[1]
        return lo, hi
