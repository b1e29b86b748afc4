"""results.json's ``fairness``: the subgroup analysis of every attribute (and intersection) on one cohort."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from auditkit.analysis.context import (
    AnalysisContext,
)
from auditkit.errors import PredictionsError
from auditkit.predictions_table import PredictionsTable
from auditkit.stats.fairness import (
    ComparisonFamily,
    FairnessSettings,
    analyse_attribute,
    group_labels,
)

if TYPE_CHECKING:
    from auditkit.audit.config import AuditSettings

# --------------------------------------------------------------------------- fairness


def _fairness(
    ctx: AnalysisContext, cohort: str, gap_family: ComparisonFamily, rest_family: ComparisonFamily
) -> dict[str, Any]:
    s = ctx.settings
    fs = FairnessSettings(
        min_group_size=s.min_group_size,
        min_events=s.min_group_events,
        primary_metrics=tuple(s.fairness_primary_metrics),
    )
    rows = ctx.cohorts[cohort]
    out: dict[str, Any] = {}
    patients = ctx.frame["patient_id"].to_numpy() if "patient_id" in ctx.frame.columns else None
    for columns in _attribute_sets(s):
        labels = group_labels(ctx.frame.iloc[rows], columns)
        section = analyse_attribute(
            labels,
            rows,
            ctx.analyzer,
            columns=columns,
            cohort=cohort,
            settings=fs,
            gap_family=gap_family,
            vs_rest_family=rest_family,
            patients=patients,
        )
        for w in section["warnings"]:
            ctx.warn(
                "fairness",
                w,
                f"fairness.{'+'.join(columns)}"
                if cohort == "test"
                else f"external.{cohort}.fairness",
            )
        out["+".join(columns)] = section
    return out


def _attribute_sets(settings: AuditSettings) -> list[list[str]]:
    sets = [[a] for a in settings.attributes]
    sets += [item.split("+") for item in settings.intersections]
    return sets


def _check_attributes(table: PredictionsTable, settings: AuditSettings) -> None:
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
