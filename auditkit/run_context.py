"""The run context: seed, resamples, interval level and method, declared once with their bounds.

Every interval of an audit (the statistics, the saliency evidence) comes
from one :class:`RunContext`, built once from the validated settings. The
field types below carry the bounds and defaults; the audit settings, the
saliency settings and the command-line options use them (the CLI's options
are checked against them in ``tests/audit/test_run_context.py``), so
``n_boot`` has one range everywhere and ``ci_method: bca`` reaches every
interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

from pydantic import Field

if TYPE_CHECKING:
    from auditkit.stats.bootstrap import IntervalSettings

DEFAULT_SEED = 0
DEFAULT_N_BOOT = 1000
DEFAULT_CI_LEVEL = 0.95
DEFAULT_CI_METHOD = "auto"
MIN_SEED = 0
MIN_N_BOOT = 50
MAX_N_BOOT = 100_000

Seed = Annotated[int, Field(ge=MIN_SEED, description="Seed of every random choice (resamples, samples).")]
NBoot = Annotated[
    int, Field(ge=MIN_N_BOOT, le=MAX_N_BOOT, description="Bootstrap resamples of every interval.")
]
CiLevel = Annotated[float, Field(gt=0.5, lt=1.0, description="Confidence level of every interval.")]
CiMethod = Literal["auto", "percentile", "bca"]
#: the interval methods (from :data:`CiMethod`: the settings' field type, the CLI's choices and the check below).
CI_METHODS: tuple[str, ...] = get_args(CiMethod)


@dataclass(frozen=True)
class RunContext:
    """How every interval of one run is made: seed, resamples, level and method."""

    seed: int = DEFAULT_SEED
    n_boot: int = DEFAULT_N_BOOT
    ci_level: float = DEFAULT_CI_LEVEL
    ci_method: str = DEFAULT_CI_METHOD

    def __post_init__(self) -> None:
        if not MIN_N_BOOT <= self.n_boot <= MAX_N_BOOT:
            raise ValueError(f"n_boot must be between {MIN_N_BOOT} and {MAX_N_BOOT}, got {self.n_boot}")
        if not 0.5 < self.ci_level < 1.0:
            raise ValueError(f"ci_level must be between 0.5 and 1 (exclusive), got {self.ci_level}")
        if self.ci_method not in CI_METHODS:
            raise ValueError(f"ci_method must be one of {CI_METHODS}, got {self.ci_method!r}")

    @classmethod
    def from_settings(cls, settings: Any) -> RunContext:
        """Return the context of validated settings (anything with seed, n_boot, ci_level, ci_method)."""
        return cls(
            seed=int(settings.seed),
            n_boot=int(settings.n_boot),
            ci_level=float(settings.ci_level),
            ci_method=str(getattr(settings, "ci_method", DEFAULT_CI_METHOD)),
        )

    def method_for(self, clustered: bool) -> str:
        """Return the interval method used: ``auto`` is BCa when images are clustered, else percentile.

        Chosen from the coverage harness (benchmarks/coverage.py, 2,000
        simulated audits per design, n = 400; benchmarks/RESULTS.md): with
        80 patients x 5 images BCa covers slightly better where the
        percentile interval is lowest (slope 0.940 vs 0.935, sensitivity
        0.946 vs 0.942, specificity 0.950 vs 0.945); with independent images
        the two agree within the Monte Carlo SE (0.005), so the cheaper
        percentile interval is kept.
        """
        if self.ci_method != "auto":
            return self.ci_method
        return "bca" if clustered else "percentile"

    def intervals_for(self, clustered: bool) -> IntervalSettings:
        """Return the interval settings of a run whose resamples are (or are not) patient-clustered."""
        from auditkit.stats.bootstrap import IntervalSettings  # numpy/scipy: not at CLI start-up

        return IntervalSettings(level=self.ci_level, method=self.method_for(clustered))

    @property
    def intervals(self) -> IntervalSettings:
        """Return the interval settings for unclustered resamples (``auto`` resolves to percentile)."""
        return self.intervals_for(False)

    def to_dict(self) -> dict[str, Any]:
        """Return the four fields as results.json's ``run`` section writes them."""
        return {"seed": self.seed, "n_boot": self.n_boot, "ci_level": self.ci_level, "ci_method": self.ci_method}
