"""results.json's ``fairness``: the subgroup analysis of every attribute (and intersection) on one cohort."""

from __future__ import annotations

from typing import TYPE_CHECKING

from auditkit.analysis.context import (
    AnalysisContext,
)
from auditkit.analysis.sections import FairnessSection
from auditkit.errors import PredictionsError
from auditkit.predictions_table import PredictionsTable
from auditkit.results.section import Caveat
from auditkit.stats.fairness import (
    ComparisonFamily,
    FairnessAttribute,
    FairnessSettings,
    analyse_attribute,
    group_labels,
)

if TYPE_CHECKING:
    from auditkit.audit.config import AuditSettings

# --------------------------------------------------------------------------- fairness


def _fairness(ctx: AnalysisContext, cohort: str) -> FairnessSection:
    """Return the subgroup analysis of every attribute set on ``cohort`` (p-values unadjusted)."""
    s = ctx.settings
    fs = FairnessSettings(
        min_group_size=s.min_group_size,
        min_events=s.min_group_events,
        primary_metrics=tuple(s.fairness_primary_metrics),
    )
    rows = ctx.cohorts[cohort]
    out: dict[str, FairnessAttribute] = {}
    caveats: list[Caveat] = []
    for columns in _attribute_sets(s):
        labels = group_labels(ctx.frame.iloc[rows], columns)
        section = analyse_attribute(
            labels, rows, ctx.analyzer, columns=columns, cohort=cohort, settings=fs, patients=ctx.patients
        )
        where = f"fairness.{'+'.join(columns)}" if cohort == "test" else f"external.{cohort}.fairness"
        caveats += [Caveat("fairness", w, where) for w in section.warnings]
        out["+".join(columns)] = section
    return FairnessSection(attributes=out, caveats=tuple(caveats))


def register_fairness(
    ctx: AnalysisContext, section: FairnessSection, gap_family: ComparisonFamily, rest_family: ComparisonFamily
) -> None:
    """Add every attribute's primary gap tests and vs-rest tests to their families."""
    for attribute in section.attributes.values():
        attribute.register(tuple(ctx.settings.fairness_primary_metrics), gap_family, rest_family)


def _attribute_sets(settings: AuditSettings) -> list[list[str]]:
    """Return the attribute sets analysed: each attribute alone, then each intersection's columns."""
    sets = [[a] for a in settings.attributes]
    sets += [item.split("+") for item in settings.intersections]
    return sets


def _check_attributes(table: PredictionsTable, settings: AuditSettings) -> None:
    """Raise PredictionsError naming an attribute that is not an attribute column of the table."""
    available = table.attribute_columns
    for columns in _attribute_sets(settings):
        for column in columns:
            if column not in available and column in table.frame.columns:
                raise PredictionsError(
                    f"{table.path}: column {column!r} is part of the predictions contract (labels, "
                    f"scores, split, site, ids), not a subgroup attribute; attribute columns: "
                    f"{list(available)[:20]}"
                )
            if column not in available:
                raise PredictionsError(
                    f"{table.path}: attribute column {column!r} is not in the table (attribute columns: "
                    f"{list(available)[:20]}); check --attributes/--intersections"
                )
