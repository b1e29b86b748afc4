"""The clinical-validation step of an audit: decision curves, conformal sets, hidden slices, robustness.

:func:`compute_clinical` builds results.json's ``clinical`` section from the
predictions table (and embeddings) alone; :func:`robustness_section` adds
``clinical.robustness`` when the audit has the model and the images. Both use
the same bootstrap resamples as the statistics step (the same table, strata,
clusters and seed give the same matrix), so every interval is patient
clustered. The estimands, intervals and references are in
docs/clinical-validation.md; the settings are the ``clinical:`` block of the
audit config (:class:`ClinicalSettings`).

Gateable paths (one Estimate each):

* ``clinical.decision_curve.<cohort>.at.t<percent>.advantage`` — net benefit minus the
  better of treat-all and treat-none at threshold probability t (``t10`` is 0.10);
* ``clinical.conformal.<method>.<cohort>.min_group_coverage`` — the lowest
  per-subgroup coverage (its group named), and ``...overall.coverage``;
* ``clinical.slices.test.worst_auroc_gap`` — the worst slice's AUROC minus the rest's, and
  ``...worst_error_gap`` — the highest slice-minus-rest error rate at the operating point (a slice
  of one class, whose AUROC is undefined, still has one);
* ``clinical.robustness.worst.auroc_drop`` / ``sensitivity_drop`` / ``flip_rate``, and
  ``clinical.robustness.worst_by_severity.s<k>.<same>`` (the worst among severity k's conditions:
  ``s1``, the mildest, is what a model must withstand in routine use).

Every interval comes from the statistics step's :class:`~auditkit.stats.engine.Engine`
when the caller passes it (``engine=``, what :func:`auditkit.audit.run.run_audit` does),
so the clinical numbers are paired with the rest of results.json; without it
the step builds the same resamples itself. Multi-class audits get the
conformal sets (they are multi-class by nature) and say in results.json why
the other analyses do not apply (:data:`NOT_APPLICABLE_MULTICLASS`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from auditkit.audit.predictions import PredictionsTable
from auditkit.clinical.examples import SLICE_EXAMPLE_PX, SLICE_EXAMPLES_DIR, write_slice_examples
from auditkit.clinical.settings import (
    ClinicalSettings,
    ConformalSettings,
    DecisionCurveSettings,
    RobustnessSettings,
    SliceDiscoverySettings,
    check_clinical_settings,
)
from auditkit.progress import status
from auditkit.results import Estimate
from auditkit.stats import conformal as cp
from auditkit.stats import metrics as metric_registry
from auditkit.stats.bootstrap import make_resamples
from auditkit.stats.decision_curve import decision_curve, net_benefit_at_many, threshold_grid
from auditkit.stats.engine import Engine
from auditkit.stats.slices import SliceSettings, candidate_slices, representatives, slice_report
from auditkit.stats.views import BinaryView

__all__ = [
    "NOT_APPLICABLE_MULTICLASS",
    "SLICE_EXAMPLES_DIR",
    "SLICE_EXAMPLE_PX",
    "ClinicalSettings",
    "ConformalSettings",
    "DecisionCurveSettings",
    "RobustnessSettings",
    "SliceDiscoverySettings",
    "add_clinical",
    "check_clinical_settings",
    "compute_clinical",
    "robustness_section",
    "threshold_key",
    "write_slice_examples",
]

#: why the binary analyses are not run on a multi-class audit (results.json says so in each sub-section).
NOT_APPLICABLE_MULTICLASS = {
    "decision_curve": "a decision curve weighs acting on one risk against one threshold probability; a "
    "multi-class model has one risk per class: audit the one-vs-rest binary table of the class you would act on",
    "slices": "slice discovery ranks slices by their AUROC gap, a binary statistic; audit the one-vs-rest "
    "binary table of the class of interest with its embeddings",
    "robustness": "the robustness drops are of AUROC and sensitivity at the binary operating point; audit "
    "the one-vs-rest binary checkpoint of the class of interest",
}


# --------------------------------------------------------------------------- the run's engine


def _engine(table: PredictionsTable, settings: Any, cohort: pd.Series | None = None) -> Engine:
    """Return the statistics step's engine: the same strata, clusters and seed over the audited rows."""
    from auditkit.analysis.cohorts import assign_cohorts

    cohort = assign_cohorts(table) if cohort is None else cohort
    audited = np.flatnonzero(cohort.notna().to_numpy())
    frame = table.frame.iloc[audited].reset_index(drop=True)
    cohort_col = cohort.iloc[audited].reset_index(drop=True).astype(str)
    y = frame["y_true"].to_numpy(dtype=np.int64)
    unit = (
        (cohort_col + "\x1f" + frame["patient_id"].astype(str)).to_numpy() if "patient_id" in frame.columns else None
    )
    strata = cohort_col if settings.stratify == "cohort" else cohort_col + "\x1f" + pd.Series(y).astype(str)
    resamples = make_resamples(
        strata.to_numpy(), n_boot=settings.n_boot, random_state=settings.seed, clusters=unit,
        jackknife_groups=cohort_col.to_numpy(), max_jackknife_blocks=settings.max_jackknife_blocks,
    )  # fmt: skip
    return Engine(resamples, settings.run_context.intervals_for(resamples.clustered))


def _cohort_rows(
    table: PredictionsTable, cohort: pd.Series | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Return the audited rows (cohort not None) and each cohort's positions among them (val, test, sites)."""
    from auditkit.analysis.cohorts import assign_cohorts

    cohort = assign_cohorts(table) if cohort is None else cohort
    audited = np.flatnonzero(cohort.notna().to_numpy())
    names = cohort.iloc[audited].astype(str).to_numpy()
    order = [c for c in ("val", "test") if c in set(names)] + sorted(set(names) - {"val", "test"})
    return audited, {c: np.flatnonzero(names == c) for c in order}


def _attributes(table: PredictionsTable, settings: Any) -> list[str]:
    return [a for a in settings.attributes if a in table.frame.columns]


# --------------------------------------------------------------------------- decision curves


def threshold_key(t: float) -> str:
    """Return the results key of threshold probability ``t``: ``t10`` for 0.10, ``t12_5`` for 0.125 (no dots: gate paths)."""
    return "t" + f"{round(t * 100, 6):g}".replace(".", "_")


def _at(engine: Engine, view: BinaryView, thresholds: tuple[float, ...]) -> dict[str, Any]:
    """Return ``{t<percent>: {threshold, net_benefit, net_benefit_all, advantage}}`` from one engine pass."""
    ests = net_benefit_at_many(engine, view, np.asarray(thresholds, dtype=np.float64))
    return {threshold_key(t): {"threshold": t, **e} for t, e in zip(thresholds, ests, strict=True)}


def _decision_curves(
    engine: Engine, y: np.ndarray, s: np.ndarray, frame: pd.DataFrame, cohorts: dict[str, np.ndarray],
    cfg: DecisionCurveSettings, attributes: list[str],
) -> dict[str, Any]:  # fmt: skip
    grid = threshold_grid(cfg.range[0], cfg.range[1], cfg.step)
    out: dict[str, Any] = {}
    for name, rows in cohorts.items():
        if name == "val" or len(rows) == 0:
            continue
        view = BinaryView.from_arrays(rows, y[rows], s[rows])
        block: dict[str, Any] = {
            "curve": decision_curve(engine, view, grid).to_dict(),
            "at": _at(engine, view, cfg.key_thresholds),
        }
        groups: dict[str, Any] = {}
        for attr in attributes:
            values = frame[attr].iloc[rows].astype(str).to_numpy()
            per: dict[str, Any] = {}
            for value in sorted(set(values)):
                sub = rows[values == value]
                sub_view = BinaryView.from_arrays(sub, y[sub], s[sub])
                per[value] = {"n": len(sub), "at": _at(engine, sub_view, cfg.key_thresholds)}
            groups[attr] = per
        if groups:
            block["groups"] = groups
        out[name] = block
    out["settings"] = {"range": list(cfg.range), "step": cfg.step, "key_thresholds": list(cfg.key_thresholds)}
    out["method"] = (
        f"{metric_registry.get('net_benefit').estimand}, calls score >= t as dcurves; advantage: "
        f"{metric_registry.get('advantage').estimand}; pointwise bands of the patient-clustered bootstrap"
    )
    return out


# --------------------------------------------------------------------------- conformal sets


def _min_group(groups: dict[str, dict[str, Any]]) -> Estimate:
    best: tuple[float, str, Estimate] | None = None
    for attr, values in groups.items():
        for value, rec in values.items():
            est = rec.get("coverage")
            if isinstance(est, Estimate) and est.defined and (best is None or est.estimate < best[0]):
                best = (est.estimate, f"{attr}={value}", est)
    if best is None:
        return Estimate.undefined("no subgroup is large enough for a coverage estimate")
    e = best[2]
    return Estimate(e.estimate, e.ci_low, e.ci_high, method=e.method, groups=(best[1],))


def _conformal(
    engine: Engine, y: np.ndarray, probs: np.ndarray, frame: pd.DataFrame, cohorts: dict[str, np.ndarray],
    cfg: ConformalSettings, attributes: list[str],
) -> dict[str, Any] | None:  # fmt: skip
    val = cohorts.get("val")
    if val is None or len(val) < 20:
        return None
    out: dict[str, Any] = {
        "alpha": cfg.alpha,
        "target": 1 - cfg.alpha,
        "tolerance": cfg.tolerance,
        "calibrated_on": "val",
        "score": "1 - p(class) (LAC); non-smoothed conformal p-values as crepes",
    }
    for method in cfg.methods:
        cal = cp.calibrate(probs[val], y[val], alpha=cfg.alpha, method=method)
        block: dict[str, Any] = {"n_calibration": cal.n_cal}
        for name, rows in cohorts.items():
            if name == "val" or len(rows) == 0:
                continue
            sets = cp.prediction_sets(cal, probs[rows])
            rec: dict[str, Any] = {"overall": cp.coverage_summary(engine, rows, sets, y[rows])}
            groups: dict[str, Any] = {}
            for attr in attributes:
                values = frame[attr].iloc[rows].astype(str).to_numpy()
                groups[attr] = {
                    v: cp.coverage_summary(engine, rows[values == v], sets[values == v], y[rows][values == v],
                                           min_n=cfg.min_group_size)
                    for v in sorted(set(values))
                }
            # class-conditional coverage is what the Mondrian variant guarantees: report it for both
            groups["class"] = {
                str(c): cp.coverage_summary(engine, rows[y[rows] == c], sets[y[rows] == c], y[rows][y[rows] == c],
                                            min_n=cfg.min_group_size)
                for c in range(probs.shape[1])
            }
            rec["groups"] = groups
            rec["min_group_coverage"] = _min_group(groups)
            block[name] = rec
        out[method] = block
    return out


# --------------------------------------------------------------------------- slices


def _slices(
    engine: Engine, y: np.ndarray, s: np.ndarray, frame: pd.DataFrame, cohorts: dict[str, np.ndarray],
    embeddings: np.ndarray | None, cfg: SliceDiscoverySettings, attributes: list[str], *,
    threshold: float | None, multiplicity: str, seed: int,
) -> dict[str, Any] | None:  # fmt: skip
    rows = cohorts.get("test")
    if embeddings is None or rows is None:
        return None
    n_slices = cfg.n_slices or max(2, min(8, len(rows) // 60))
    if len(rows) < 2 * n_slices:
        return None
    meta = None
    if cfg.use_attributes and attributes:
        meta = pd.get_dummies(frame.iloc[rows][attributes].astype(str)).to_numpy(dtype=np.float64)
    labels = candidate_slices(embeddings[rows], n_slices=n_slices, metadata=meta,
                              metadata_weight=cfg.attribute_weight, n_components=cfg.n_components, random_state=seed)  # fmt: skip
    records = slice_report(engine, rows, y[rows], s[rows], labels,
                           settings=SliceSettings(threshold=threshold, min_size=cfg.min_size, multiplicity=multiplicity))  # fmt: skip
    ids = frame["id"].astype(str).to_numpy()
    out_records = []
    for rec in records:
        members = rec.pop("members")
        reps = representatives(embeddings[rows], members, k=cfg.representatives)
        described = {}
        for attr in attributes:
            counts = frame.iloc[rows[members]][attr].astype(str).value_counts(normalize=True)
            if len(counts):
                described[attr] = {"value": str(counts.index[0]), "share": float(counts.iloc[0])}
        out_records.append({**rec, "representative_ids": [str(ids[rows[i]]) for i in reps],
                            "dominant_attributes": described})  # fmt: skip
    one_class = sum(not r["auroc_gap"].defined for r in out_records)
    return {
        "test": {
            "n_slices": n_slices,
            "features": "embeddings (standardised, PCA)" + (" + one-hot attributes" if meta is not None else ""),
            "records": out_records,
            "n_flagged": int(sum(r["flagged"] for r in out_records)),
            "n_error_flagged": int(sum(r.get("error_flagged", False) for r in out_records)),
            "n_without_auroc": one_class,
            "worst_auroc_gap": _worst(out_records, "auroc_gap", lowest=True, one_class=one_class),
            "worst_error_gap": _worst(out_records, "error_gap", lowest=False, one_class=one_class),
            "multiplicity": multiplicity,
        }
    }


def _worst(records: list[dict[str, Any]], key: str, *, lowest: bool, one_class: int) -> Estimate:
    """Return the worst slice's ``key`` gap (lowest AUROC gap, highest error gap) named by its slice."""
    defined = [(r["slice"], r[key]) for r in records if r.get(key) is not None and r[key].defined]
    if not defined:
        if key == "auroc_gap":
            return Estimate.undefined(
                f"no slice has enough images of both classes ({one_class} of {len(records)} do not; "
                "see worst_error_gap, defined for one-class slices too)"
            )
        return Estimate.undefined("no slice error rates: the run has no operating point or every slice is small")
    slice_id, w = (min if lowest else max)(defined, key=lambda item: item[1].estimate)
    note = ""
    if key == "auroc_gap" and one_class:
        note = f"; {one_class} of {len(records)} slices hold too few of one class for an AUROC (see worst_error_gap)"
    return Estimate(w.estimate, w.ci_low, w.ci_high, w.p_value, w.p_adjusted, method=(w.method or "") + note or None,
                    groups=(f"slice {slice_id}",))  # fmt: skip


def compute_clinical(
    table: PredictionsTable, settings: Any, sections: dict[str, Any], *, embeddings: np.ndarray | None = None,
    engine: Engine | None = None, cohorts: pd.Series | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Return results.json's ``clinical`` section (``{}`` when disabled or the task is neither binary nor multi-class).

    ``engine`` is the statistics step's engine over the audited rows (same
    order as :func:`_cohort_rows`); ``None`` builds the same resamples here.
    ``cohorts``: each row's cohort as the audit derived it (derived here when None).
    """
    cfg = ClinicalSettings.from_any(getattr(settings, "clinical", None))
    task = table.classes.task
    if not cfg.enabled or task not in ("binary", "multiclass"):
        return {}
    status("clinical validation: " + ("decision curves, conformal sets, slices" if task == "binary" else "conformal sets"))
    engine = engine if engine is not None else _engine(table, settings, cohorts)
    audited, cohorts = _cohort_rows(table, cohorts)
    frame = table.frame.iloc[audited].reset_index(drop=True)
    y = frame["y_true"].to_numpy(np.int64)
    probs = table.probs[audited]
    attributes = _attributes(table, settings)
    conformal = _conformal(engine, y, probs, frame, cohorts, cfg.conformal, attributes)
    out: dict[str, Any] = {"task": task, "conformal": conformal}
    if task == "binary":
        s = probs[:, 1]
        threshold = (sections.get("operating_point") or {}).get("threshold")
        emb = embeddings[audited] if embeddings is not None else None
        out.update({
            "decision_curve": _decision_curves(engine, y, s, frame, cohorts, cfg.decision_curve, attributes),
            "slices": _slices(engine, y, s, frame, cohorts, emb, cfg.slices, attributes, threshold=threshold,
                              multiplicity=settings.multiplicity, seed=settings.seed),
            "robustness": None,
            "repeatability": _repeatability(frame, cohorts, s, threshold),
        })  # fmt: skip
    else:
        # one-vs-rest would need a threshold and an action per class: say which analyses do not apply, and why
        out.update({key: {"not_applicable": reason} for key, reason in NOT_APPLICABLE_MULTICLASS.items()})
        out["repeatability"] = None
    out["settings"] = cfg.model_dump(mode="json")
    return {"clinical": out}


def _repeatability(frame: pd.DataFrame, cohorts: dict[str, np.ndarray], s: np.ndarray, threshold: float | None):  # type: ignore[no-untyped-def]
    from auditkit.stats.robustness import repeatability

    if "repeat_group" not in frame.columns:
        return None
    rows = np.concatenate([r for name, r in cohorts.items() if name != "val"])
    return repeatability(frame["repeat_group"].iloc[rows].to_numpy(dtype=object), s[rows], threshold=threshold)


# --------------------------------------------------------------------------- robustness (needs the model)


def robustness_section(
    loaded: Any, table: PredictionsTable, settings: Any, sections: dict[str, Any], *, data_root: Path | None,
    allow_outside_root: bool = False, engine: Engine | None = None, cohorts: pd.Series | None = None,
) -> dict[str, Any] | None:  # fmt: skip
    """Return ``clinical.robustness`` from running the model on perturbed images (None when not asked).

    ``engine``: the statistics step's engine (as for :func:`compute_clinical`).
    """
    cfg = ClinicalSettings.from_any(getattr(settings, "clinical", None))
    r = cfg.robustness
    threshold = (sections.get("operating_point") or {}).get("threshold")
    if not cfg.enabled or not r.enabled:
        return None
    if table.classes.task != "binary":
        return {"not_applicable": NOT_APPLICABLE_MULTICLASS["robustness"]}
    if threshold is None:
        return None
    from auditkit.clinical.perturbations import resolve
    from auditkit.clinical.robustness import image_batches, model_forward, run_perturbations
    from auditkit.data.paths import data_root_or, resolve_paths
    engine = engine if engine is not None else _engine(table, settings, cohorts)
    audited, by_cohort = _cohort_rows(table, cohorts)
    rows = by_cohort.get(r.cohort)
    if rows is None or len(rows) == 0 or "image" not in table.frame.columns:
        return {"not_assessed": f"no {r.cohort!r} rows with images to perturb"}
    if len(rows) > r.max_images:  # a seeded sample keeps the run bounded
        rows = np.sort(np.random.default_rng(settings.seed).choice(rows, r.max_images, replace=False))
    frame = table.frame.iloc[audited].reset_index(drop=True)
    root = data_root_or(data_root, table.path.parent)
    paths = resolve_paths(frame["image"].iloc[rows], root=root, allow_outside_root=allow_outside_root,
                          where=lambda i: f"{table.path} row {int(audited[rows[i]]) + 1}, column 'image'")  # fmt: skip
    perturbations = resolve(list(r.perturbations) if r.perturbations is not None else None)
    n_batches = -(-len(paths) // r.batch_size)
    scores = run_perturbations(
        model_forward(loaded.model, loaded.meta), image_batches(paths, loaded.preprocess, batch_size=r.batch_size),
        loaded.preprocess, perturbations, severities=r.severities, seed=settings.seed, device=loaded.device,
        n_batches=n_batches, model=loaded.model,
    )  # fmt: skip
    rate = len(rows) * (1 + len(scores.conditions)) / max(scores.seconds, 1e-9)
    # timings stay out of results.json (same inputs and seed, same bytes): shown on the console only
    status(f"robustness: {len(scores.conditions)} conditions x {len(rows)} images in {scores.seconds:.1f} s "
           f"({rate:.0f} images/s on {scores.device})")  # fmt: skip
    y = frame["y_true"].to_numpy(np.int64)[rows]
    recorded = table.probs[audited][rows, 1]
    return {"cohort": r.cohort, **_robustness_block(engine, rows, y, scores, perturbations, float(threshold), recorded)}


def _robustness_block(
    engine: Engine, rows: np.ndarray, y: np.ndarray, scores: Any, perturbations: list[Any], threshold: float,
    recorded: np.ndarray,
) -> dict[str, Any]:  # fmt: skip
    """Return the robustness record of the perturbed scores: conditions, paired effects, worst drops, precision."""
    from auditkit.stats.robustness import condition_effects, precision_summary, worst_condition

    base = scores.base[:, 1]
    pert = {k: v[:, 1] for k, v in scores.perturbed.items()}
    effects = condition_effects(engine, rows, y, base, pert, threshold=threshold)
    mild = {k: v for k, v in pert.items() if k.endswith("@1")}
    precision = precision_summary(base, mild)
    precision.pop("per_image_sd")
    metrics = ("auroc_drop", "sensitivity_drop", "flip_rate")
    by_severity = {
        f"s{sev}": {m: worst_condition({k: v for k, v in effects.items() if k.endswith(f"@{sev}")}, m) for m in metrics}
        for sev in sorted({c.severity for c in scores.conditions})
    }
    return {
        "n_images": len(rows),
        "threshold": threshold,
        "conditions": [{"key": c.key, "perturbation": c.perturbation, "severity": c.severity, "value": c.value,
                        "label": next(p.label for p in perturbations if p.name == c.perturbation),
                        "parameter": next(p.parameter for p in perturbations if p.name == c.perturbation)}
                       for c in scores.conditions],
        "effects": effects,
        "worst": {m: worst_condition(effects, m) for m in metrics},
        "worst_by_severity": by_severity,
        "precision": precision,
        "max_abs_diff_vs_recorded": float(np.max(np.abs(base - recorded))) if len(rows) else None,
        "method": "paired: the same images and bootstrap resamples unperturbed and perturbed; "
        f"{metric_registry.get('auroc_drop').estimand}; flip rate: {metric_registry.get('flip_rate').estimand} "
        "(patient-clustered bootstrap, z-test p)",
    }


def add_clinical(
    config: Any, inputs: Any, loaded: Any, sections: dict[str, Any], *, engine: Engine | None = None
) -> None:
    """Add the ``clinical`` section to ``sections`` (robustness too when the audit has the model and images).

    ``engine``: the statistics step's engine, reused for every clinical interval (None: built here once,
    shared by the sections and the robustness run). ``inputs.cohorts`` and ``inputs.images_root``, when
    the audit derived them, are used as they are.
    """
    cohorts = getattr(inputs, "cohorts", None)
    if engine is None and inputs.table.classes.task in ("binary", "multiclass"):
        engine = _engine(inputs.table, config.settings, cohorts)
    sections.update(compute_clinical(inputs.table, config.settings, sections, embeddings=inputs.embeddings,
                                     engine=engine, cohorts=cohorts))  # fmt: skip
    if "clinical" not in sections:
        return
    from auditkit.errors import AuditkitError

    data_root = _images_root(config, inputs)
    try:
        write_slice_examples(sections["clinical"], inputs.table, Path(config.out), data_root=data_root,
                             allow_outside_root=config.allow_outside_root)  # fmt: skip
    except (OSError, AuditkitError) as exc:  # examples illustrate; an unreadable one must not stop the audit
        sections.setdefault("warnings", []).append(
            {"code": "slice_examples", "message": f"slice example images not written: {exc}", "where": "clinical.slices"}
        )
    if loaded is None:
        return
    robustness = robustness_section(
        loaded, inputs.table, config.settings, sections, data_root=data_root,
        allow_outside_root=config.allow_outside_root, engine=engine, cohorts=cohorts,
    )  # fmt: skip
    if robustness is not None:  # None: not asked (a multi-class audit keeps its not_applicable reason)
        sections["clinical"]["robustness"] = robustness


def _images_root(config: Any, inputs: Any) -> Path | None:
    """Return the images' fence: the audit's ``inputs.images_root``, else as the explanations derive it."""
    if getattr(inputs, "images_root", None) is not None:
        return inputs.images_root
    from auditkit.data.paths import resolve_root

    # the manifest's root, --data-root, or the root the model run recorded
    data_root = resolve_root(config.manifest, config.data_root) if config.manifest is not None else config.data_root
    recorded = (inputs.table.model or {}).get("data_root")
    return Path(recorded) if data_root is None and recorded else data_root
