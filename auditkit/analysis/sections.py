"""The frozen, typed sections the analysis builders return (each ``to_dict()`` is its results.json form).

One class per results.json section (or per entry of a section keyed by
cohort): :class:`DataSection` (``data``), :class:`CohortSummary`
(``cohorts.<c>``), :class:`DiscriminationBlock` (``discrimination.<c>``,
``external.<site>.discrimination``), :class:`CalibrationBlock`
(``calibration.<c>``, ``external.<site>.calibration``), :class:`ExternalSite`
(``external.<site>``), :class:`FairnessSection` (``fairness``, one
:class:`~auditkit.stats.fairness.FairnessAttribute` per attribute),
:class:`RecalibrationSection` (``recalibration``) with its
:class:`RecalibratedMap` entries, :class:`CalibrationChain`
(``calibration_chain``) and :class:`StatisticsSections`, all of them (what
:func:`auditkit.audit.statistics.build_statistics` returns).
The base class and its conventions: :mod:`auditkit.results.section`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from auditkit.results import Estimate
from auditkit.results.section import Caveat, Section, caveat_field
from auditkit.stats.fairness import FairnessAttribute


@dataclass(frozen=True)
class DataSection(Section):
    """results.json ``data``: split counts, patient disjointness, attribute counts, sites and the flow."""

    splits: Mapping[str, Mapping[str, int]]
    disjointness: Mapping[str, Any]
    attributes: Mapping[str, Any]
    sites: Mapping[str, Mapping[str, int]]
    flow: tuple[Mapping[str, Any], ...]

    @property
    def patient_disjoint(self) -> bool:
        """Return whether no patient is in two splits."""
        return bool(self.disjointness["passed"])


@dataclass(frozen=True)
class CohortSummary(Section):
    """results.json ``cohorts.<c>``: its role, sizes, prevalence (binary) or class counts, and caveats."""

    _OPTIONAL: ClassVar[frozenset[str]] = frozenset({"prevalence", "class_counts", "events_note"})

    role: str
    n_images: int
    n_patients: int
    n_positive: int
    n_negative: int
    prevalence: Estimate | None = None
    class_counts: Mapping[str, int] | None = None
    events_note: str | None = None
    warnings: tuple[str, ...] = ()
    caveats: tuple[Caveat, ...] = caveat_field()


@dataclass(frozen=True)
class DiscriminationBlock(Section):
    """One cohort's discrimination: the registry's metrics, per class and macro (multi-class), confusion matrix."""

    _OPTIONAL: ClassVar[frozenset[str]] = frozenset({"per_class", "macro"})
    _SPREAD: ClassVar[frozenset[str]] = frozenset({"estimates"})

    estimates: Mapping[str, Estimate]
    confusion_matrix: Mapping[str, Any]
    per_class: Mapping[str, Mapping[str, Estimate]] | None = None
    macro: Mapping[str, Estimate] | None = None

    def _items(self) -> Any:
        # results.json order: the metrics, (per_class, macro,) then the confusion matrix
        items = dict(super()._items())
        matrix = items.pop("confusion_matrix")
        yield from items.items()
        yield "confusion_matrix", matrix


@dataclass(frozen=True)
class CalibrationBlock(Section):
    """One cohort's calibration: the registry's metrics, reliability/decomposition/smooth curve, binning texts."""

    _OPTIONAL: ClassVar[frozenset[str]] = frozenset({"scope", "per_class"})
    _SPREAD: ClassVar[frozenset[str]] = frozenset({"estimates", "details"})

    estimates: Mapping[str, Estimate]
    details: Mapping[str, Any]
    """reliability diagrams, Brier decomposition and smooth curve (``CohortAnalyzer.calibration_details``)."""
    binning: Mapping[str, str]
    gated_calibration_error: Mapping[str, str]
    scope: str | None = None
    per_class: Mapping[str, Mapping[str, Estimate]] | None = None


@dataclass(frozen=True)
class ExternalSite(Section):
    """results.json ``external.<site>``: its blocks, differences from internal test, power, shift, fairness."""

    _OPTIONAL: ClassVar[frozenset[str]] = frozenset({"power", "fairness", "multiplicity", "subgroups"})

    discrimination: DiscriminationBlock
    calibration: CalibrationBlock
    delta: Mapping[str, Estimate]
    power: Mapping[str, Any] | None
    shift: Mapping[str, Any] | None
    warnings: tuple[str, ...] = ()
    fairness: FairnessSection | None = None
    subgroups: Mapping[str, Any] | None = None
    """per attribute and group: sizes and rates with CIs (analysis/external_subgroups.py; descriptive)."""
    multiplicity: Mapping[str, Any] | None = None
    role: str = "external"
    caveats: tuple[Caveat, ...] = caveat_field()

    def _items(self) -> Any:
        yield "role", self.role
        yield from ((k, v) for k, v in super()._items() if k != "role")


@dataclass(frozen=True)
class FairnessSection(Section):
    """results.json ``fairness`` (or ``external.<site>.fairness``): one section per attribute set."""

    _SPREAD: ClassVar[frozenset[str]] = frozenset({"attributes"})

    attributes: Mapping[str, FairnessAttribute]
    caveats: tuple[Caveat, ...] = caveat_field()

    def with_adjusted(
        self, adjusted: list[tuple[Mapping[str, Any], str, Estimate]], multiplicity: Mapping[str, Any]
    ) -> FairnessSection:
        """Return a copy whose attributes carry the adjusted p-values and the family's description."""
        return dataclasses.replace(
            self,
            attributes={
                name: section.with_adjusted(adjusted, multiplicity) for name, section in self.attributes.items()
            },
        )


@dataclass(frozen=True)
class RecalibratedMap(Section):
    """One recalibration map of results.json ``recalibration``: its parameters and its metrics per cohort."""

    _OPTIONAL: ClassVar[frozenset[str]] = frozenset({"test", "external"})

    parameters: Mapping[str, Any]
    test: Mapping[str, Any] | None = None
    external: Mapping[str, Mapping[str, Any]] | None = None


@dataclass(frozen=True)
class RecalibrationSection(Section):
    """results.json ``recalibration``: temperature (and Platt, binary) fitted on val, evaluated on test and sites."""

    _OPTIONAL: ClassVar[frozenset[str]] = frozenset({"platt_reason"})

    fitted_on: str
    n_val: int
    note: str
    temperature: RecalibratedMap
    platt: RecalibratedMap | None
    platt_reason: str | None = None
    caveats: tuple[Caveat, ...] = caveat_field()


@dataclass(frozen=True)
class CalibrationChain(Section):
    """results.json ``calibration_chain``: raw -> as delivered -> audit-time recalibration."""

    steps: tuple[str, ...]
    raw: Mapping[str, Any]
    as_delivered: Mapping[str, Any]
    audit_recalibration: Mapping[str, Any]
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class StatisticsSections(Section):
    """Every statistical section of one audit (the keys :func:`~auditkit.audit.statistics.compute_statistics` returns)."""

    data: DataSection
    cohorts: Mapping[str, CohortSummary]
    operating_point: Mapping[str, Any] | None
    discrimination: Mapping[str, DiscriminationBlock]
    curves: Mapping[str, Any]
    calibration: Mapping[str, CalibrationBlock]
    recalibration: RecalibrationSection | None
    fairness: FairnessSection | Mapping[str, Any]
    external: Mapping[str, ExternalSite]
    calibration_chain: CalibrationChain
    warnings: tuple[Caveat, ...]
    run_info: Mapping[str, Any]
    engine: Any = dataclasses.field(default=None, metadata={"json": False}, compare=False, repr=False)
    """the run's :class:`~auditkit.stats.engine.Engine` (its resamples), for later steps that must share them."""
