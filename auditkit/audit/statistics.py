"""The statistics step of an audit: the predictions table -> results.json's statistical sections.

:func:`compute_statistics` is callable on its own (any model's CSV/Parquet):
it assigns cohorts (``val``, ``test`` = internal test, one cohort per
external site), freezes the operating point on ``val``, draws the run's one
matrix of bootstrap weights (stratified by cohort — or by cohort and class
— and clustered by patient), and builds the sections ``data``, ``cohorts``, ``operating_point``,
``discrimination``, ``curves``, ``calibration``, ``recalibration``,
``fairness``, ``external`` and ``warnings`` exactly as docs/results-json.md
names them. Values are :class:`~auditkit.results.Estimate` objects and plain
JSON types; :func:`auditkit.fileio.to_jsonable` serialises them.

Why cohorts, not classes, are the default strata: holding each cohort's class
counts fixed (a case-control bootstrap) removes the binomial variability of
the event count, so intervals of every prevalence-dependent metric are too
narrow for a consecutive cohort. Measured here (100 simulated cohorts of 500,
200 resamples, percentile): coverage of O/E and of the calibration intercept
0.61 with class strata vs 0.88 with cohort strata; PPV/NPV 0.85 vs 0.93;
AUROC, sensitivity and slope 0.92–0.95 either way. ``stratify: class``
restores the case-control design for enriched test sets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import chi2_contingency

from auditkit.audit.config import AuditSettings
from auditkit.audit.predictions import RESERVED_SITE_NAMES, PredictionsTable
from auditkit.errors import ConfigError, PredictionsError
from auditkit.progress import track
from auditkit.results import Estimate
from auditkit.run_context import RunContext
from auditkit.stats import metrics as metric_registry
from auditkit.stats.bootstrap import (
    Distribution,
    bootstrap_z_test,
    make_resamples,
)
from auditkit.stats.cohort import CohortAnalyzer, TaskArrays, undefined_reason
from auditkit.stats.delong import delong_interval, delong_unpaired_test
from auditkit.stats.engine import Engine, single_threaded_blas
from auditkit.stats.fairness import (
    ComparisonFamily,
    FairnessSettings,
    analyse_attribute,
    group_labels,
)
from auditkit.stats.intervals import (
    NORMAL_INTERVAL_METRICS,
    bootstrap_se,
    normal_estimate,
    power_record,
)
from auditkit.stats.proportions import compare_proportions, proportion
from auditkit.stats.recalibration import (
    fit_platt,
    fit_temperature_binary,
    fit_temperature_multiclass,
)
from auditkit.stats.shift import domain_classifier_auroc, ks_shift, mmd_test
from auditkit.stats.threshold import OperatingPoint, choose_operating_point

#: external validation needs at least this many events (Collins, Ogundimu & Altman 2016).
MIN_EVENTS_EXTERNAL = 100
#: flexible calibration curves need this many events and non-events (Van Calster et al. 2016).
MIN_EVENTS_CALIBRATION = 200
#: external deltas that get a sample-size statement (those the default policy gates).
EXTERNAL_POWER = ("auroc", "sensitivity", "specificity", "ece_l1_debiased")
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


@dataclass
class _Context:
    """Everything the steps share: the audited rows, the analyzer and collected warnings."""

    table: PredictionsTable
    settings: AuditSettings
    frame: pd.DataFrame
    """the audited rows (val, test, external), re-indexed 0..n-1."""
    cohorts: dict[str, np.ndarray]
    roles: dict[str, str]
    analyzer: CohortAnalyzer
    engine: Engine
    operating_point: OperatingPoint | None
    embeddings: np.ndarray | None
    warnings: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, dict[str, Distribution]] = field(default_factory=dict)

    def warn(self, code: str, message: str, where: str | None = None) -> None:
        """Record a caveat for results.json's top-level ``warnings``."""
        self.warnings.append({"code": code, "message": message, "where": where})

    @property
    def run(self) -> RunContext:
        """Return the run context (seed, n_boot, ci_level, ci_method) of every interval."""
        return self.settings.run_context

    @property
    def binary(self) -> bool:
        return self.table.classes.task == "binary"

    @property
    def clustered(self) -> bool:
        return self.engine.resamples.clustered

    @property
    def sites(self) -> list[str]:
        return [c for c, r in self.roles.items() if r == "external"]


# --------------------------------------------------------------------------- cohorts & data


def assign_cohorts(table: PredictionsTable) -> pd.Series:
    """Return each row's cohort (``val``, ``test``, an external site's name, or None for training rows).

    Without a ``split`` column every row is internal test (there is then no
    validation split).
    """
    frame = table.frame
    split = frame["split"] if "split" in frame.columns else pd.Series("test", index=frame.index)
    cohort = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    cohort[split == "val"] = "val"
    cohort[split == "test"] = "test"
    external = split == "external"
    if external.any():
        if "site" not in frame.columns:
            row = int(np.flatnonzero(external.to_numpy())[0])
            raise PredictionsError(
                f"{table.path}: row {row + 1} is in split 'external' but the table has no 'site' column; "
                "name each external site in a 'site' column"
            )
        names = frame.loc[external, "site"].astype(str)
        reserved = names.isin(RESERVED_SITE_NAMES)
        if reserved.any():
            raise PredictionsError(
                f"{table.path}: an external site may not be named {names[reserved].iloc[0]!r}; rename it in column 'site'"
            )
        cohort[external] = names
    return cohort


def _split_counts(frame: pd.DataFrame, y_pos: np.ndarray, mask: np.ndarray) -> dict[str, int]:
    patients = (
        frame.loc[mask, "patient_id"] if "patient_id" in frame.columns else frame.loc[mask, "id"]
    )
    return {
        "n_images": int(mask.sum()),
        "n_patients": int(patients.nunique()),
        "n_positive": int(y_pos[mask].sum()),
    }


def describe_data(
    table: PredictionsTable, cohort: pd.Series, attributes: list[list[str]]
) -> dict[str, Any]:
    """Return results.json's ``data`` section: split counts, patient disjointness, attributes, sites, flow."""
    frame = table.frame
    y_pos = (
        (frame["y_true"].to_numpy() == 1)
        if table.classes.task == "binary"
        else np.zeros(len(frame), bool)
    )
    split = frame["split"] if "split" in frame.columns else pd.Series("test", index=frame.index)
    splits = {
        s: _split_counts(frame, y_pos, (split == s).to_numpy())
        for s in ("train", "val", "test", "external")
        if (split == s).any()
    }
    if "patient_id" in frame.columns:
        level = "patient"
        members = {s: set(frame.loc[split == s, "patient_id"]) for s in splits}
        overlaps = []
        names = list(splits)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                n = len(members[a] & members[b])
                if n:
                    overlaps.append({"a": a, "b": b, "n_patients": n})
    else:
        level, overlaps = "image", []
    audited = cohort.notna()
    attr_counts: dict[str, Any] = {}
    for columns in attributes:
        labels = group_labels(frame.loc[audited], columns)
        per_cohort: dict[str, dict[str, int]] = {}
        for name in _cohort_order(cohort):
            counts = labels[cohort[audited] == name].value_counts()
            per_cohort[name] = {str(k): int(counts[k]) for k in sorted(counts.index)}
        attr_counts["+".join(columns)] = per_cohort
    sites: dict[str, dict[str, int]] = {}
    if "site" in frame.columns:
        for site in sorted(frame["site"].unique()):
            counts = split[frame["site"] == site].value_counts()
            sites[str(site)] = {str(k): int(counts[k]) for k in sorted(counts.index)}
    flow = [{"stage": "rows in the predictions table", "n": len(frame)}]
    if "train" in splits:
        flow.append({"stage": "training rows (not audited)", "n": splits["train"]["n_images"]})
    for name in _cohort_order(cohort):
        label = {"val": "validation (operating point, recalibration)", "test": "internal test"}.get(
            name, f"external site {name}"
        )
        flow.append({"stage": label, "n": int((cohort == name).sum())})
    return {
        "splits": splits,
        "disjointness": {"level": level, "overlaps": overlaps, "passed": not overlaps},
        "attributes": attr_counts,
        "sites": sites,
        "flow": flow,
    }


def _cohort_order(cohort: pd.Series) -> list[str]:
    present = set(cohort.dropna())
    fixed = [c for c in ("val", "test") if c in present]
    return fixed + sorted(present - {"val", "test"})


# --------------------------------------------------------------------------- blocks


def _estimates(
    ctx: _Context, dists: dict[str, Distribution], rows: np.ndarray, names: tuple[str, ...]
) -> dict[str, Estimate]:
    n_pos, n_neg = ctx.analyzer.counts(rows)
    return {
        m: ctx.analyzer.estimate(
            rows, m, dists[m], reason=undefined_reason(m, n_positive=n_pos, n_negative=n_neg)
        )
        for m in names
        if m in dists
    }


def _auroc_estimate(ctx: _Context, dists: dict[str, Distribution], rows: np.ndarray) -> Estimate:
    est = _estimates(ctx, dists, rows, ("auroc",))["auroc"]
    if ctx.settings.auroc_ci == "delong" and ctx.binary and not ctx.clustered and est.defined:
        y = (ctx.analyzer.arrays.y[rows] == 1).astype(np.int64)
        res = delong_interval(y, ctx.analyzer.arrays.probs[rows, 1], level=ctx.run.ci_level)
        return Estimate(
            res.estimate, res.ci_low, res.ci_high, p_value=res.p_value, method=res.method
        )
    return est


def _discrimination_block(ctx: _Context, name: str, rows: np.ndarray) -> dict[str, Any]:
    dists = ctx.metrics[name]
    block: dict[str, Any] = dict(_estimates(ctx, dists, rows, metric_registry.discrimination_keys()))
    block["auroc"] = _auroc_estimate(ctx, dists, rows)
    arrays = ctx.analyzer.arrays
    y = arrays.y[rows]
    if ctx.binary:
        threshold = ctx.analyzer.threshold
        call = arrays.probs[rows, 1] >= threshold
        block["confusion_matrix"] = {
            "tp": int((call & (y == 1)).sum()),
            "fp": int((call & (y == 0)).sum()),
            "tn": int((~call & (y == 0)).sum()),
            "fn": int((~call & (y == 1)).sum()),
            "threshold": threshold,
        }
        return block
    classes = ctx.table.classes.classes
    k = len(classes)
    matrix = np.zeros((k, k), dtype=np.int64)
    np.add.at(matrix, (y, arrays.predicted[rows]), 1)
    block["per_class"] = {
        cls: _estimates(
            ctx,
            {m.split("/")[0]: d for m, d in dists.items() if m.endswith(f"/{i}")},
            rows,
            metric_registry.discrimination_keys(),
        )
        for i, cls in enumerate(classes)
    }
    block["macro"] = _estimates(
        ctx,
        {m.split("/")[0]: d for m, d in dists.items() if m.endswith("/macro")},
        rows,
        metric_registry.discrimination_keys(),
    )
    block["confusion_matrix"] = {
        "labels": list(classes),
        "matrix": matrix.tolist(),
        "decision": "argmax",
    }
    return block


def _calibration_block(ctx: _Context, name: str, rows: np.ndarray) -> dict[str, Any]:
    dists = ctx.metrics[name]
    block: dict[str, Any] = dict(_estimates(ctx, dists, rows, metric_registry.calibration_keys()))
    block.update(ctx.analyzer.calibration_details(rows))
    block["binning"] = metric_registry.binning_text(ctx.settings.n_bins)
    block["gated_calibration_error"] = GATED_CALIBRATION_ERROR
    if not ctx.binary:
        block["scope"] = (
            "top-label confidence vs correctness (Guo et al. 2017); brier is the multi-class Brier score"
        )
        block["per_class"] = {
            cls: _estimates(
                ctx,
                {m.split("/")[0]: d for m, d in dists.items() if m.endswith(f"/{i}")},
                rows,
                metric_registry.calibration_keys(),
            )
            for i, cls in enumerate(ctx.table.classes.classes)
        }
    return block


def _cohort_section(ctx: _Context, name: str, rows: np.ndarray) -> dict[str, Any]:
    frame = ctx.frame.iloc[rows]
    n_pos, n_neg = ctx.analyzer.counts(rows)
    patients = frame["patient_id"] if "patient_id" in frame.columns else frame["id"]
    clusters = patients.to_numpy() if "patient_id" in frame.columns else None
    warnings: list[str] = []
    section: dict[str, Any] = {
        "role": ctx.roles[name],
        "n_images": len(rows),
        "n_patients": int(patients.nunique()),
        "n_positive": n_pos,
        "n_negative": n_neg,
    }
    if ctx.binary:
        prev = proportion(
            (ctx.analyzer.arrays.y[rows] == 1).astype(float),
            clusters=clusters,
            level=ctx.run.ci_level,
        )
        section["prevalence"] = Estimate(
            prev.estimate, prev.ci_low, prev.ci_high, method=prev.method
        )
    else:
        counts = np.bincount(ctx.analyzer.arrays.y[rows], minlength=len(ctx.table.classes.classes))
        section["class_counts"] = {
            c: int(v) for c, v in zip(ctx.table.classes.classes, counts, strict=True)
        }
        section["events_note"] = (
            "multi-class: n_positive counts the rarest class (the binding one-vs-rest event count)"
        )
    if ctx.roles[name] != "validation":
        if n_pos < MIN_EVENTS_EXTERNAL:
            warnings.append(
                f"{n_pos} events (positive cases) in {name}: fewer than {MIN_EVENTS_EXTERNAL}, the minimum for a "
                "validation cohort (Collins et al. 2016); estimates are imprecise"
            )
        if n_pos < MIN_EVENTS_CALIBRATION or n_neg < MIN_EVENTS_CALIBRATION:
            warnings.append(
                f"{n_pos} events and {n_neg} non-events in {name}: flexible calibration curves need at least "
                f"{MIN_EVENTS_CALIBRATION} of each (Van Calster et al. 2016); read the smooth curve with care"
            )
    elif ctx.binary and n_pos < MIN_EVENTS_EXTERNAL:
        warnings.append(
            f"{n_pos} events in the validation split: the operating point and recalibration are fitted on few events"
        )
    for w in warnings:
        ctx.warn("cohort_events", w, f"cohorts.{name}")
    section["warnings"] = warnings
    return section


# --------------------------------------------------------------------------- external


def _external_section(
    ctx: _Context, sections: dict[str, Any], site: str, family: ComparisonFamily
) -> dict[str, Any]:
    rows = ctx.cohorts[site]
    test_rows = ctx.cohorts.get("test")
    section: dict[str, Any] = {
        "role": "external",
        "discrimination": _discrimination_block(ctx, site, rows),
        "calibration": _calibration_block(ctx, site, rows),
    }
    warnings = list(sections["cohorts"][site]["warnings"])
    if test_rows is None or len(test_rows) == 0:
        section["delta"] = {}
        section["shift"] = None
        message = "no internal test cohort: external deltas and shift tests are not computed"
        warnings.append(message)
        ctx.warn("external", message, f"external.{site}")
        section["warnings"] = warnings
        return section
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
        if metric == "auroc" and ctx.binary and not ctx.clustered:
            arr = ctx.analyzer.arrays
            res = delong_unpaired_test(
                (arr.y[rows] == 1).astype(int),
                arr.probs[rows, 1],
                (arr.y[test_rows] == 1).astype(int),
                arr.probs[test_rows, 1],
                level=ctx.run.ci_level,
            )
            delta[metric] = Estimate(
                res.estimate,
                res.ci_low,
                res.ci_high,
                p_value=res.p_value,
                method=res.method,
                groups=(site, "test"),
            )
        elif metric in NORMAL_INTERVAL_METRICS:
            diff = a - b
            delta[metric] = normal_estimate(
                diff,
                level=ctx.run.ci_level,
                min_defined=ctx.engine.settings.min_defined,
                p_value=bootstrap_z_test(diff),
                method="difference of debiased estimates; CI: ± z·bootstrap SE",
                groups=(site, "test"),
            )
        else:
            diff = a - b
            method = (
                "patient-clustered bootstrap (DeLong assumes independent images)"
                if metric == "auroc"
                else None
            )
            delta[metric] = ctx.engine.estimate(
                diff, p_value=bootstrap_z_test(diff), method=method, groups=(site, "test")
            )
        if metric in EXTERNAL_POWER:
            power[metric] = power_record(
                bootstrap_se(a - b),
                level=ctx.run.ci_level,
                sizes={
                    site: {"n": len(rows), "n_positive": ctx.analyzer.counts(rows)[0]},
                    "test": {"n": len(test_rows), "n_positive": ctx.analyzer.counts(test_rows)[0]},
                },
                what=f"{metric} difference between {site} and the internal test cohort",
            )
        if metric_registry.get(metric).external_primary:
            family.add(delta, metric, f"{site}: {metric} delta")
    section["delta"] = delta
    section["power"] = power
    section["shift"] = _shift(ctx, site, rows, test_rows)
    section["warnings"] = warnings
    return section


def _shift(ctx: _Context, site: str, rows: np.ndarray, test_rows: np.ndarray) -> dict[str, Any]:
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


# --------------------------------------------------------------------------- recalibration


def _recalibration(ctx: _Context) -> dict[str, Any] | None:
    val = ctx.cohorts.get("val")
    arr = ctx.analyzer.arrays
    if val is None or len(np.unique(arr.y[val])) < 2:
        ctx.warn(
            "no_recalibration",
            "no validation split with both classes: temperature and Platt scaling were not fitted",
            "recalibration",
        )
        return None
    targets = [c for c in ("test", *ctx.sites) if c in ctx.cohorts]
    note = (
        "fitted on the validation split only; intervals reflect the sampling of each evaluated cohort with the "
        "fitted map held fixed"
    )
    names = (*metric_registry.calibration_keys(), "auroc")

    def evaluate(transform: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        kwargs = transform()
        out: dict[str, Any] = {}
        for cohort in targets:
            rows = ctx.cohorts[cohort]
            dists = ctx.analyzer.metrics(rows, names=names, **kwargs)
            block: dict[str, Any] = dict(_estimates(ctx, dists, rows, names))
            block["reliability"] = ctx.analyzer.calibration_details(rows, **kwargs)["reliability"]
            if cohort == "test":
                out["test"] = block
            else:
                out.setdefault("external", {})[cohort] = block
        return out

    section: dict[str, Any] = {"fitted_on": "val", "n_val": len(val), "note": note}
    if ctx.binary:
        y_val = arr.y[val]
        temp = fit_temperature_binary(y_val, arr.probs[val, 1])
        if temp.warning:
            ctx.warn("temperature", temp.warning, "recalibration.temperature")
        platt = fit_platt(y_val, arr.probs[val, 1])
        section["temperature"] = {
            "parameters": temp.to_dict(),
            **evaluate(lambda: {"scores": temp.transform_binary(arr.probs[:, 1])}),
        }
        section["platt"] = {
            "parameters": platt.to_dict(),
            **evaluate(lambda: {"scores": platt.transform_binary(arr.probs[:, 1])}),
        }
    else:
        temp = fit_temperature_multiclass(arr.y[val], arr.probs[val])
        if temp.warning:
            ctx.warn("temperature", temp.warning, "recalibration.temperature")
        section["temperature"] = {
            "parameters": temp.to_dict(),
            **evaluate(lambda: {"probs": temp.transform_multiclass(arr.probs)}),
        }
        section["platt"] = None
        section["platt_reason"] = "Platt scaling is defined for binary tasks"
    return section


def raw_probabilities(probs: np.ndarray, calibration: dict[str, Any] | None) -> np.ndarray | None:
    """Return the network's probabilities before the checkpoint's calibration, (n, K), or None without one.

    The delivered scores are softmax((z + o) / T), so log p = (z + o)/T + c per
    case and softmax(T·log p − o) = softmax(z): the raw softmax is recovered
    exactly from the table (up to the 1e-12 clipping of log 0).
    """
    if not calibration or calibration.get("method") != "temperature":
        return None
    t = float(calibration.get("temperature", 1.0))
    offset = np.asarray(calibration.get("logit_offset") or np.zeros(probs.shape[1]), dtype=np.float64)
    if offset.shape != (probs.shape[1],) or not np.isfinite(t) or t <= 0:
        return None
    z = t * np.log(np.clip(probs, 1e-12, 1.0)) - offset
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


CHAIN_METRICS = ("ece_l1_debiased", "intercept", "slope", "oe", "brier", "ece")


def _calibration_chain(ctx: _Context, delivered: dict[str, Any] | None, recal: dict[str, Any] | None) -> dict[str, Any]:
    """Return results.json ``calibration_chain``: raw -> as delivered -> audit-time recalibration."""
    arr = ctx.analyzer.arrays
    targets = [c for c in ("test", *ctx.sites) if c in ctx.cohorts]
    raw = raw_probabilities(arr.probs, delivered)
    raw_block: dict[str, Any] = {
        "description": "the network's softmax before the checkpoint's calibration, reconstructed exactly "
        "from the delivered scores as softmax(T * log p - logit_offset)",
    }
    if raw is None:
        raw_block["reason"] = (
            "the checkpoint records no calibration (or no checkpoint was given): the delivered scores are "
            "the raw scores"
            if not delivered
            else "the checkpoint's calibration record cannot be inverted"
        )
    else:
        kwargs: dict[str, Any] = {"scores": raw[:, 1]} if ctx.binary else {"probs": raw}
        for cohort in targets:
            rows = ctx.cohorts[cohort]
            dists = ctx.analyzer.metrics(rows, names=CHAIN_METRICS, **kwargs)
            raw_block[cohort] = dict(_estimates(ctx, dists, rows, CHAIN_METRICS))
    as_delivered: dict[str, Any] = {
        "calibration": delivered,
        "description": "the scores of the predictions table (what the released model outputs); "
        "their metrics are calibration.<cohort> and external.<site>.calibration",
    }
    warnings = [w for w in ((delivered or {}).get("warning"),) if w]
    recal_block: dict[str, Any] = {
        "description": "maps fitted by the audit on the validation split (not part of the released model); "
        "their metrics are recalibration.<map>.<cohort>",
        "temperature": None if recal is None else recal["temperature"]["parameters"],
        "platt": None if recal is None or recal.get("platt") is None else recal["platt"]["parameters"],
    }
    if recal is not None and recal["temperature"]["parameters"].get("warning"):
        warnings.append(recal["temperature"]["parameters"]["warning"])
    return {
        "steps": ["raw", "as_delivered", "audit_recalibration"],
        "raw": raw_block,
        "as_delivered": as_delivered,
        "audit_recalibration": recal_block,
        "warnings": warnings,
    }


# --------------------------------------------------------------------------- fairness


def _fairness(
    ctx: _Context, cohort: str, gap_family: ComparisonFamily, rest_family: ComparisonFamily
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


# --------------------------------------------------------------------------- entry point


def compute_statistics(
    table: PredictionsTable,
    settings: AuditSettings,
    *,
    embeddings: np.ndarray | None = None,
    delivered_calibration: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return results.json's statistical sections for a validated predictions table.

    ``embeddings`` (n_table, D), aligned with the table's rows, enables the
    domain-classifier and MMD shift tests. Keys: ``run_info`` (for the
    ``run`` section), ``data``, ``cohorts``, ``operating_point``,
    ``discrimination``, ``curves``, ``calibration``, ``recalibration``,
    ``fairness``, ``external``, ``calibration_chain``, ``warnings``.
    ``delivered_calibration`` is the checkpoint's model.json ``calibration``
    record (the scores' offset and temperature): with it the chain's ``raw``
    step reconstructs and audits the network's uncalibrated scores.
    """
    with single_threaded_blas():
        return _compute_statistics(
            table, settings, embeddings=embeddings, delivered_calibration=delivered_calibration
        )


def _compute_statistics(
    table: PredictionsTable,
    settings: AuditSettings,
    *,
    embeddings: np.ndarray | None,
    delivered_calibration: dict[str, Any] | None = None,
) -> dict[str, Any]:
    _check_attributes(table, settings)
    cohort = assign_cohorts(table)
    order = _cohort_order(cohort)
    if "test" not in order and not any(c not in ("val", "test") for c in order):
        raise PredictionsError(
            f"{table.path}: no internal test or external rows to audit (splits: "
            f"{sorted(set(table.frame.get('split', pd.Series(['test'])).astype(str)))}); mark rows test or external"
        )
    sites = [c for c in order if c not in ("val", "test")]
    for site in settings.fairness_cohorts:
        if site not in ("test", "external") and site not in sites:
            raise ConfigError(
                f"fairness_cohorts names {site!r}, which is not a cohort of this audit (cohorts: {order}); "
                "use 'test', an external site's name, or 'external'"
            )
    audited = np.flatnonzero(cohort.notna().to_numpy())
    frame = table.frame.iloc[audited].reset_index(drop=True)
    cohort_col = cohort.iloc[audited].reset_index(drop=True).astype(str)
    cohorts = {name: np.flatnonzero((cohort_col == name).to_numpy()) for name in order}
    roles = {name: ROLE.get(name, "external") for name in order}
    probs = table.probs[audited]
    y = frame["y_true"].to_numpy(dtype=np.int64)
    has_patients = "patient_id" in frame.columns
    unit = (
        (cohort_col + "\x1f" + frame["patient_id"].astype(str)).to_numpy() if has_patients else None
    )

    binary = table.classes.task == "binary"
    op = _operating_point(table, settings, y, probs, cohorts) if binary else None

    strata = (
        cohort_col
        if settings.stratify == "cohort"
        else cohort_col + "\x1f" + pd.Series(y).astype(str)
    )
    run = settings.run_context
    resamples = make_resamples(
        strata.to_numpy(),
        n_boot=run.n_boot,
        random_state=run.seed,
        clusters=unit,
        jackknife_groups=cohort_col.to_numpy(),
        max_jackknife_blocks=settings.max_jackknife_blocks,
    )
    engine = Engine(resamples, run.intervals)
    codes = pd.factorize(pd.Series(unit))[0] if (unit is not None and resamples.clustered) else None
    arrays = TaskArrays(y=y, probs=probs, classes=table.classes.classes, clusters=codes)
    analyzer = CohortAnalyzer(
        arrays, engine, threshold=None if op is None else op.threshold, n_bins=settings.n_bins
    )
    emb = embeddings[audited] if embeddings is not None else None
    ctx = _Context(table, settings, frame, cohorts, roles, analyzer, engine, op, emb)
    if settings.auroc_ci == "delong" and ctx.clustered:
        ctx.warn(
            "auroc_ci",
            "DeLong intervals assume independent images; patients have several images, so AUROC "
            "intervals come from the patient-clustered bootstrap",
            "discrimination",
        )

    sections: dict[str, Any] = {
        "data": describe_data(table, cohort, _attribute_sets(settings)),
        "cohorts": {},
        "operating_point": None if op is None else op.to_dict(),
        "discrimination": {},
        "curves": {},
        "calibration": {},
        "recalibration": None,
        "fairness": {},
        "external": {},
    }
    if not binary:
        sections["operating_point"] = {
            "rule": "argmax",
            "target": None,
            "threshold": None,
            "chosen_on": "none",
            "val": None,
        }
    if not sections["data"]["disjointness"]["passed"]:
        first = sections["data"]["disjointness"]["overlaps"][0]
        ctx.warn(
            "patient_overlap",
            f"{first['n_patients']} patients appear in both {first['a']} and {first['b']}: "
            "the splits are not patient-disjoint, so test performance may be optimistic",
            "data.disjointness",
        )

    gap_family, rest_family, external_family = (
        ComparisonFamily("fairness gaps"),
        ComparisonFamily("vs rest"),
        ComparisonFamily("external"),
    )
    steps: list[tuple[str, Callable[[], None]]] = []
    for name in order:
        steps.append(
            (
                f"metrics {name}",
                lambda name=name: ctx.metrics.__setitem__(name, analyzer.metrics(cohorts[name])),
            )
        )
    for name in order:
        steps.append((f"cohort {name}", lambda name=name: _cohort_step(ctx, sections, name)))
    for site in sites:
        steps.append(
            (
                f"external {site}",
                lambda site=site: sections["external"].__setitem__(
                    site, _external_section(ctx, sections, site, external_family)
                ),
            )
        )
    fairness_targets = []
    for target in settings.fairness_cohorts:
        fairness_targets += sites if target == "external" else [target]
    if _attribute_sets(settings):
        for target in dict.fromkeys(fairness_targets):
            if target not in cohorts:
                ctx.warn(
                    "fairness",
                    f"no {target!r} cohort in this table: its fairness analysis was skipped",
                    "fairness",
                )
                continue
            if target in cohorts:
                steps.append(
                    (
                        f"fairness {target}",
                        lambda target=target: _fairness_step(
                            ctx, sections, target, gap_family, rest_family
                        ),
                    )
                )
    steps.append(
        ("recalibration", lambda: sections.__setitem__("recalibration", _recalibration(ctx)))
    )
    steps.append(
        (
            "calibration chain",
            lambda: sections.__setitem__(
                "calibration_chain",
                _calibration_chain(ctx, delivered_calibration, sections["recalibration"]),
            ),
        )
    )
    for _label, step in track(steps, description="statistics"):
        step()

    gap_family.adjust(settings.multiplicity)
    rest_family.adjust(settings.multiplicity)
    external_family.adjust(settings.multiplicity)
    multiplicity = {
        "method": settings.multiplicity,
        "family_size": len(gap_family),
        "family": gap_family.labels,
        "vs_rest_family_size": len(rest_family),
        "note": "primary gap tests of every attribute form one family; sensitivity/specificity gaps share the "
        "adjusted p-value of the FNR/FPR gaps (the same test); other gaps are descriptive (unadjusted p_value)",
    }
    for section in sections["fairness"].values():
        section["multiplicity"] = multiplicity
    for site_section in sections["external"].values():
        for section in site_section.get("fairness", {}).values():
            section["multiplicity"] = multiplicity
        site_section["multiplicity"] = {
            "method": settings.multiplicity,
            "family_size": len(external_family),
            "family": external_family.labels,
        }
    sections["warnings"] = ctx.warnings
    sections["run_info"] = {
        "cluster_column": "patient_id" if has_patients else None,
        "clustered": ctx.clustered,
        "n_units": resamples.n_units,
        "task": table.classes.task,
        "classes": list(table.classes.classes),
        "positive_class": table.classes.positive_class,
        "resampling": (
            "stratified by cohort"
            if settings.stratify == "cohort"
            else "stratified by cohort and class"
        )
        + (", clustered by patient_id" if ctx.clustered else ""),
    }
    return sections


def _cohort_step(ctx: _Context, sections: dict[str, Any], name: str) -> None:
    rows = ctx.cohorts[name]
    sections["cohorts"][name] = _cohort_section(ctx, name, rows)
    sections["curves"][name] = ctx.analyzer.curves(rows)
    if ctx.roles[name] != "external":
        sections["discrimination"][name] = _discrimination_block(ctx, name, rows)
        sections["calibration"][name] = _calibration_block(ctx, name, rows)


def _fairness_step(
    ctx: _Context,
    sections: dict[str, Any],
    target: str,
    gap: ComparisonFamily,
    rest: ComparisonFamily,
) -> None:
    result = _fairness(ctx, target, gap, rest)
    if target == "test":
        sections["fairness"] = result
    else:
        sections["external"].setdefault(target, {})["fairness"] = result


def _operating_point(
    table: PredictionsTable,
    settings: AuditSettings,
    y: np.ndarray,
    probs: np.ndarray,
    cohorts: dict[str, np.ndarray],
) -> OperatingPoint:
    rule = settings.rule
    val = cohorts.get("val")
    if val is None or len(val) == 0:
        if rule.rule != "fixed":
            raise ConfigError(
                f"{table.path}: there is no validation split (split == 'val'), so the {rule.to_text()} operating point "
                "cannot be chosen without tuning on test data; give --operating-point threshold:T or add val rows"
            )
        return OperatingPoint("fixed", rule.target, float(rule.target), "given", None, None)
    return choose_operating_point((y[val] == 1).astype(int), probs[val, 1], rule, chosen_on="val")
