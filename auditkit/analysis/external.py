"""results.json's ``external.<site>``: the site's blocks, its differences from internal test and the shift tests."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import chi2_contingency

from auditkit.analysis.blocks import _calibration_block, _discrimination_block
from auditkit.analysis.context import AnalysisContext
from auditkit.analysis.external_subgroups import external_subgroups
from auditkit.analysis.sections import CohortSummary, ExternalSite
from auditkit.results import Estimate
from auditkit.results.section import Caveat
from auditkit.stats import metrics as metric_registry
from auditkit.stats.bootstrap import (
    bootstrap_z_test,
)
from auditkit.stats.delong import delong_unpaired_test
from auditkit.stats.fairness import (
    ComparisonFamily,
)
from auditkit.stats.intervals import (
    NORMAL_INTERVAL_METRICS,
    bootstrap_se,
    normal_estimate,
    power_record,
)
from auditkit.stats.proportions import compare_proportions
from auditkit.stats.shift import domain_classifier_auroc, ks_shift, mmd_test

# --------------------------------------------------------------------------- external


def _external_section(ctx: AnalysisContext, site: str, cohort: CohortSummary) -> ExternalSite:
    """Return ``external.<site>``: its blocks, its differences from internal test (with power) and the shift tests.

    ``cohort`` is the site's ``cohorts.<site>`` summary (its warnings are repeated here). The deltas'
    p-values are unadjusted: :func:`register_external` puts the primary ones in their family.
    """
    rows = ctx.cohorts[site]
    test_rows = ctx.cohorts.get("test")
    blocks = {
        "discrimination": _discrimination_block(ctx, site, rows),
        "calibration": _calibration_block(ctx, site, rows),
    }
    warnings = list(cohort.warnings)
    if test_rows is None or len(test_rows) == 0:
        message = "no internal test cohort: external deltas and shift tests are not computed"
        return ExternalSite(
            **blocks, delta={}, power=None, shift=None, warnings=(*warnings, message),
            caveats=(Caveat("external", message, f"external.{site}"),),
        )  # fmt: skip
    delta, power = _deltas(ctx, site, rows, test_rows)
    return ExternalSite(
        **blocks, delta=delta, power=power, shift=_shift(ctx, site, rows, test_rows), warnings=tuple(warnings),
        subgroups=external_subgroups(ctx, site, rows) or None,
    )  # fmt: skip


def register_external(site: str, section: ExternalSite, family: ComparisonFamily) -> None:
    """Add the site's primary deltas (the registry's ``external_primary`` metrics) to the external family."""
    for metric in section.delta:
        if metric_registry.get(metric).external_primary:
            family.add(section.delta, metric, f"{site}: {metric} delta")


def _deltas(
    ctx: AnalysisContext, site: str, rows: np.ndarray, test_rows: np.ndarray
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return (site − test difference of every metric, the power statements of the gated ones)."""
    delta: dict[str, Any] = {}
    power: dict[str, Any] = {}
    site_d, test_d = ctx.metrics[site], ctx.metrics["test"]
    for metric in metric_registry.cohort_keys():
        if metric not in site_d or metric not in test_d:
            continue
        a, b = site_d[metric], test_d[metric]
        if not (np.isfinite(a.point) and np.isfinite(b.point)):
            delta[metric] = Estimate.undefined(
                f"{metric} is undefined at {site} or on the internal test cohort"
            )
            continue
        delta[metric] = _delta(ctx, metric, a, b, site, rows, test_rows)
        if metric_registry.get(metric).external_power:
            power[metric] = power_record(
                bootstrap_se(a - b),
                level=ctx.run.ci_level,
                sizes={
                    site: {"n": len(rows), "n_positive": ctx.analyzer.counts(rows)[0]},
                    "test": {"n": len(test_rows), "n_positive": ctx.analyzer.counts(test_rows)[0]},
                },
                what=f"{metric} difference between {site} and the internal test cohort",
            )
    return delta, power


def _delta(
    ctx: AnalysisContext, metric: str, a: Any, b: Any, site: str, rows: np.ndarray, test_rows: np.ndarray
) -> Estimate:
    """Return the site − test difference of one metric: DeLong (AUROC, unclustered), normal or bootstrap."""
    if metric == "auroc" and ctx.binary and not ctx.clustered:
        arr = ctx.analyzer.arrays
        res = delong_unpaired_test(
            (arr.y[rows] == 1).astype(int),
            arr.probs[rows, 1],
            (arr.y[test_rows] == 1).astype(int),
            arr.probs[test_rows, 1],
            level=ctx.run.ci_level,
        )
        return Estimate(
            res.estimate, res.ci_low, res.ci_high, p_value=res.p_value, method=res.method,
            groups=(site, "test"),
        )  # fmt: skip
    diff = a - b
    if metric in NORMAL_INTERVAL_METRICS:
        return normal_estimate(
            diff,
            level=ctx.run.ci_level,
            min_defined=ctx.engine.settings.min_defined,
            p_value=bootstrap_z_test(diff),
            method="difference of debiased estimates; CI: ± z·bootstrap SE",
            groups=(site, "test"),
        )
    method = "patient-clustered bootstrap (DeLong assumes independent images)" if metric == "auroc" else None
    return ctx.engine.estimate(diff, p_value=bootstrap_z_test(diff), method=method, groups=(site, "test"))


def _shift(
    ctx: AnalysisContext, site: str, rows: np.ndarray, test_rows: np.ndarray
) -> dict[str, Any]:
    """Return ``external.<site>.shift``: prevalence difference, score KS and (with embeddings) domain AUROC, MMD."""
    arr = ctx.analyzer.arrays
    clusters = ctx.frame["patient_id"].to_numpy() if "patient_id" in ctx.frame.columns else None
    out: dict[str, Any] = {}
    if ctx.binary:
        cmp = compare_proportions(
            (arr.y[rows] == 1).astype(float),
            (arr.y[test_rows] == 1).astype(float),
            clusters_a=None if clusters is None else clusters[rows],
            clusters_b=None if clusters is None else clusters[test_rows],
            level=ctx.run.ci_level,
        )
        out["prevalence"] = Estimate(
            cmp.difference,
            cmp.ci_low,
            cmp.ci_high,
            p_value=cmp.p_value,
            method=f"{site} minus test; {cmp.method}",
            groups=(site, "test"),
        )
        scores_a, scores_b = arr.probs[rows, 1:2], arr.probs[test_rows, 1:2]
    else:
        k = arr.n_classes
        table = np.vstack(
            [np.bincount(arr.y[rows], minlength=k), np.bincount(arr.y[test_rows], minlength=k)]
        )
        table = table[:, table.sum(0) > 0]
        stat, p, _, _ = chi2_contingency(table, correction=False)
        out["prevalence"] = Estimate(
            float(stat),
            p_value=float(p),
            method="Pearson chi-square of the class distribution (statistic, not a difference)",
        )
        scores_a, scores_b = arr.probs[rows], arr.probs[test_rows]
    out["score_ks"] = ks_shift(scores_a, scores_b).to_dict()
    out["domain_auroc"] = None
    out["mmd"] = None
    if ctx.embeddings is not None:
        emb = ctx.embeddings
        groups_a = groups_b = None
        if clusters is not None:
            groups_a, groups_b = clusters[rows], clusters[test_rows]
        dom = domain_classifier_auroc(
            emb[test_rows],
            emb[rows],
            groups_a=groups_b,
            groups_b=groups_a,
            random_state=ctx.run.seed,
            level=ctx.run.ci_level,
        )
        out["domain_auroc"] = Estimate(
            dom.estimate,
            dom.ci_low,
            dom.ci_high,
            p_value=dom.p_value,
            method=f"5-fold cross-validated logistic regression on embeddings, out-of-fold "
            f"AUROC (test vs {site}); {dom.method}",
        )
        if ctx.settings.mmd_permutations > 0:
            out["mmd"] = mmd_test(
                emb[test_rows],
                emb[rows],
                n_permutations=ctx.settings.mmd_permutations,
                random_state=ctx.run.seed,
            ).to_dict()
    return out
