"""What the analysis builders read: the audited rows, the analyzer, the run context and the settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from auditkit.predictions_table import PredictionsTable
from auditkit.run_context import RunContext
from auditkit.stats.bootstrap import (
    Distribution,
)
from auditkit.stats.cohort import CohortAnalyzer
from auditkit.stats.engine import Engine
from auditkit.stats.threshold import OperatingPoint

if TYPE_CHECKING:
    from auditkit.audit.config import AuditSettings

#: external validation needs at least this many events (Collins, Ogundimu & Altman 2016).
MIN_EVENTS_EXTERNAL = 100
#: flexible calibration curves need this many events and non-events (Van Calster et al. 2016).
MIN_EVENTS_CALIBRATION = 200
ROLE = {"val": "validation", "test": "internal_test"}
#: what the gated calibration number is (results.json calibration.<cohort>.gated_calibration_error).
GATED_CALIBRATION_ERROR = {
    "metric": "ece_l1_debiased",
    "estimand": "the L1 calibration error E|P(Y=1 | p) - p| of the model's scores in the cohort's population",
    "estimator": "15 equal-mass bins; each bin's |observed - predicted| minus its bias under the Gaussian "
    "approximation N(observed - predicted, observed(1 - observed)/n_bin) (Kumar, Liang & Ma 2019, section 5); "
    "floored at 0",
    "interval": "estimate +/- z x bootstrap standard error (patient-clustered when patients have several "
    "images), floored at 0; its 95% coverage in simulation is recorded in benchmarks/RESULTS.md",
    "descriptive_only": "ece, ece_equal_mass and mce are the binned plug-in estimators: biased upward at small n "
    "(Roelofs et al. 2022), their percentile intervals cover the true calibration error in 8-25% of simulations "
    "at n = 400; they are reported for comparison with the literature, not gated",
}


@dataclass(frozen=True, eq=False)
class AnalysisInputs:
    """What every section builder reads: the audited rows as arrays, the analyzer on the run's resamples,
    the settings and each cohort's metric distributions. Frozen: builders return sections and caveats,
    they never write here."""

    table: PredictionsTable
    settings: AuditSettings
    frame: pd.DataFrame
    """the audited rows (val, test, external), re-indexed 0..n-1."""
    cohorts: Mapping[str, np.ndarray]
    roles: Mapping[str, str]
    analyzer: CohortAnalyzer
    engine: Engine
    operating_point: OperatingPoint | None
    embeddings: np.ndarray | None
    metrics: Mapping[str, Mapping[str, Distribution]] = field(default_factory=dict)
    """each cohort's distributions of every registered metric (``CohortAnalyzer.metrics``)."""

    @property
    def run(self) -> RunContext:
        """Return the run context (seed, n_boot, ci_level, ci_method) of every interval."""
        return self.settings.run_context

    @property
    def binary(self) -> bool:
        """Return whether the task is binary."""
        return self.table.classes.task == "binary"

    @property
    def clustered(self) -> bool:
        """Return whether the resamples are patient-clustered."""
        return self.engine.resamples.clustered

    @property
    def sites(self) -> list[str]:
        """Return the external sites, in cohort order (derived once, from the cohorts' roles)."""
        return [c for c, r in self.roles.items() if r == "external"]

    @property
    def patients(self) -> np.ndarray | None:
        """Return each audited row's patient id, or None without a patient_id column."""
        return self.frame["patient_id"].to_numpy() if "patient_id" in self.frame.columns else None


#: the name of the earlier, mutable context (kept for imports).
AnalysisContext = AnalysisInputs
