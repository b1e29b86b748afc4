"""``auditkit monitor``: label-free performance estimates and drift tests of a new batch against an audit.

The baseline is an audit folder (``reports/NAME``): its results.json (the
operating point frozen on validation, the model's fingerprint) and the
predictions table (and embeddings) it audited. Its internal test split is
the labelled reference. The new batch is a predictions table with ``id`` and
``score`` (binary; ``y_true`` optional: when present the observed numbers are
written beside the estimates, to validate them).

Written to ``--out``: ``monitor.json``, a results document (the baseline's
header sections plus a ``monitor`` section) so ``auditkit gate
OUT/monitor.json --policy monitor`` checks it, and ``monitor.md``, a short
summary. Nothing is recomputed from the baseline's images.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from auditkit.errors import InvalidInputError, OutputExistsError, PredictionsError
from auditkit.fileio import atomic_write_text, sha256_file, to_jsonable
from auditkit.results import Estimate
from auditkit.stats.bootstrap import IntervalSettings, make_resamples
from auditkit.stats.engine import Engine
from auditkit.stats.label_free import Reference, fit_reference, label_free_estimates
from auditkit.stats.shift import domain_classifier_auroc, ks_shift, mmd_test

MONITOR_NAME = "monitor.json"
SUMMARY_NAME = "monitor.md"
HEADER_KEYS = ("schema_version", "tool", "created", "run", "model", "cohorts", "intended_use")


@dataclass(frozen=True)
class MonitorSettings:
    """Thresholds of the monitor's flags and its resampling."""

    alpha: float = 0.05
    """significance level of the drift tests."""
    prevalence_tolerance: float = 0.05
    """a prevalence change is flagged when its CI lies wholly beyond ± this."""
    accuracy_tolerance: float = 0.05
    """an estimated accuracy drop is flagged when its CI lies wholly below reference − this."""
    n_boot: int = 500
    seed: int = 0
    mmd_permutations: int = 200


def _read_table(path: Path, what: str) -> pd.DataFrame:
    if not path.is_file():
        raise PredictionsError(f"{path}: no such {what}; check the path")
    try:
        frame = pd.read_parquet(path) if path.suffix.lower() in (".parquet", ".pq") else pd.read_csv(path)
    except Exception as exc:  # pyarrow and pandas raise several types for a corrupt file
        raise PredictionsError(f"{path}: not a readable {what} ({exc})") from None
    return frame


def _scores(frame: pd.DataFrame, path: Path, positive: str | None) -> np.ndarray:
    if "score" in frame.columns:
        column = "score"
    elif positive is not None and f"score_{positive}" in frame.columns:
        column = f"score_{positive}"
    else:
        raise PredictionsError(
            f"{path}: no 'score' column (probability of the positive class); the monitor handles binary tasks"
        )
    s = pd.to_numeric(frame[column], errors="coerce").to_numpy(np.float64)
    bad = np.flatnonzero(~np.isfinite(s) | (s < 0) | (s > 1))
    if bad.size:
        raise PredictionsError(f"{path}: row {bad[0] + 1} of column {column!r} is not a probability in [0, 1]")
    return s


def _baseline_paths(baseline: Path, results: dict[str, Any]) -> tuple[Path, Path | None]:
    inputs = results.get("inputs") or {}
    recorded = (inputs.get("predictions") or {}).get("path")
    local = baseline / "predictions.parquet"
    predictions = local if local.is_file() else Path(recorded) if recorded else local
    emb_rec = (inputs.get("embeddings") or {}).get("path") if inputs.get("embeddings") else None
    emb_local = baseline / "embeddings.parquet"
    embeddings = emb_local if emb_local.is_file() else (Path(emb_rec) if emb_rec and Path(emb_rec).is_file() else None)
    return predictions, embeddings


def _embeddings(path: Path, ids: list[str]) -> np.ndarray:
    from auditkit.audit.predictions import read_embeddings

    return read_embeddings(path, ids)


def _flag(est: Estimate, *, below: float | None = None, outside: float | None = None) -> bool:
    if not est.defined or est.ci_low is None or est.ci_high is None:
        return False
    if below is not None:
        return est.ci_high < below
    assert outside is not None
    return est.ci_low > outside or est.ci_high < -outside


def monitor_section(
    ref_y: np.ndarray,
    ref_scores: np.ndarray,
    new_scores: np.ndarray,
    *,
    threshold: float,
    settings: MonitorSettings,
    new_patients: np.ndarray | None = None,
    ref_embeddings: np.ndarray | None = None,
    new_embeddings: np.ndarray | None = None,
    new_y: np.ndarray | None = None,
) -> dict[str, Any]:
    """Return the ``monitor`` section: reference, estimates with CIs, drift tests, observed numbers, flags."""
    ref: Reference = fit_reference(ref_y, ref_scores, threshold=threshold)
    n = len(new_scores)
    resamples = make_resamples(
        np.zeros(n, np.int64), n_boot=settings.n_boot, random_state=settings.seed, clusters=new_patients
    )
    engine = Engine(resamples, IntervalSettings(level=0.95, method="percentile"))
    estimates = label_free_estimates(engine, np.arange(n), new_scores, ref)
    ks = ks_shift(ref_scores[:, None], new_scores[:, None])
    drift: dict[str, Any] = {
        "scores": {
            "test": "two-sample Kolmogorov-Smirnov, reference internal test vs batch",
            "statistic": ks.statistic,
            "p_value": ks.p_value,
        },
        "embeddings": None,
    }
    if ref_embeddings is not None and new_embeddings is not None:
        mmd = mmd_test(
            ref_embeddings, new_embeddings, n_permutations=settings.mmd_permutations, random_state=settings.seed
        )
        dom = domain_classifier_auroc(ref_embeddings, new_embeddings, random_state=settings.seed)
        drift["embeddings"] = {
            "mmd": {"statistic": mmd.statistic, "p_value": mmd.p_value, "n_permutations": mmd.n_permutations},
            "domain_auroc": Estimate(dom.estimate, dom.ci_low, dom.ci_high, dom.p_value, method=dom.method),
        }
    observed = None
    if new_y is not None:
        y = np.asarray(new_y, np.int64)
        call = new_scores >= threshold
        observed = {
            "accuracy": float(np.mean(call == (y == 1))),
            "sensitivity": float(call[y == 1].mean()) if (y == 1).any() else None,
            "specificity": float((~call[y == 0]).mean()) if (y == 0).any() else None,
            "prevalence": float(y.mean()),
        }
    emb = drift["embeddings"]
    flags = {
        "score_drift": bool(ks.p_value < settings.alpha),
        "embedding_drift": bool(emb is not None and emb["mmd"]["p_value"] < settings.alpha),
        "prevalence_shift": _flag(estimates["prevalence_change"], outside=settings.prevalence_tolerance),
        "performance_drop": _flag(estimates["cbpe_accuracy"], below=ref.accuracy - settings.accuracy_tolerance)
        or _flag(estimates["atc_accuracy"], below=ref.accuracy - settings.accuracy_tolerance),
    }
    flags["any"] = any(flags.values())
    warnings = []
    if flags["prevalence_shift"]:
        warnings.append(
            "the batch's prevalence (adjusted classify-and-count) differs from the reference's: ATC and CBPE "
            "assume the reference's prevalence and calibration, so their accuracy estimates may be wrong; "
            "label a sample of the batch before relying on them"
        )
    if flags["score_drift"] or flags["embedding_drift"]:
        warnings.append(
            "the batch's scores or embeddings differ from the reference's: the label-free estimates assume "
            "the model stays calibrated on the new images, which a covariate shift can break"
        )
    return {
        "reference": {**ref.to_dict(), "source": "baseline internal test split"},
        "batch": {"n_images": int(n), "has_labels": new_y is not None},
        "estimates": estimates,
        "drift": drift,
        "observed": observed,
        "flags": flags,
        "settings": settings.__dict__,
        "warnings": warnings,
    }


def run_monitor(
    baseline: str | Path,
    predictions: str | Path,
    out: str | Path,
    *,
    embeddings: str | Path | None = None,
    settings: MonitorSettings | None = None,
    force: bool = False,
) -> Path:
    """Write ``monitor.json`` and ``monitor.md`` for a new batch against an audit folder; return monitor.json's path."""
    from auditkit.audit.predictions import read_predictions
    from auditkit.results import load_results

    settings = settings or MonitorSettings()
    baseline, predictions, out = Path(baseline), Path(predictions), Path(out)
    target = out / MONITOR_NAME
    if target.exists() and not force:
        raise OutputExistsError(f"{target} already exists; pass --force to overwrite it or choose another --out")
    results = load_results(baseline)
    if (results.get("run") or {}).get("task") != "binary":
        raise InvalidInputError(f"{baseline}: the monitor handles binary audits; this one is {results['run'].get('task')!r}")
    threshold = (results.get("operating_point") or {}).get("threshold")
    if threshold is None:
        raise InvalidInputError(f"{baseline}/results.json has no operating_point.threshold; re-run the audit")
    base_path, base_emb = _baseline_paths(baseline, results)
    run = results["run"]
    table = read_predictions(
        base_path, positive_class=run.get("positive_class"),
        external_sites=(run.get("config") or {}).get("external_sites") or (),
    )  # fmt: skip
    split = table.frame.get("split", pd.Series(["test"] * len(table))).astype(str).to_numpy()
    test = np.flatnonzero(split == "test")
    if test.size == 0:
        raise InvalidInputError(f"{base_path}: no internal test rows (split == 'test') to serve as the reference")
    ref_y = table.frame["y_true"].to_numpy(np.int64)[test]
    ref_scores = table.probs[test, 1]
    frame = _read_table(predictions, "predictions table")
    if "id" not in frame.columns:
        raise PredictionsError(f"{predictions}: required column 'id' is missing")
    new_scores = _scores(frame, predictions, run.get("positive_class"))
    new_y = None
    if "y_true" in frame.columns:
        from auditkit.labels import encode_labels

        new_y = encode_labels(frame["y_true"], table.classes, where=f"{predictions} column 'y_true'")
    ref_emb = new_emb = None
    if embeddings is not None and base_emb is not None:
        ids = table.frame["id"].astype(str).tolist()
        ref_emb = _embeddings(base_emb, [ids[i] for i in test])
        new_emb = _embeddings(Path(embeddings), frame["id"].astype(str).tolist())
    patients = frame["patient_id"].astype(str).to_numpy() if "patient_id" in frame.columns else None
    section = monitor_section(
        ref_y, ref_scores, new_scores, threshold=float(threshold), settings=settings,
        new_patients=patients, ref_embeddings=ref_emb, new_embeddings=new_emb, new_y=new_y,
    )  # fmt: skip
    section["baseline"] = {"path": str(baseline), "results_sha256": sha256_file(baseline / "results.json")}
    section["batch"].update({"path": str(predictions), "sha256": sha256_file(predictions)})
    if embeddings is not None and base_emb is None:
        section["warnings"].append("--embeddings given but the baseline audit has no embeddings: no embedding drift test")
    document = {k: results[k] for k in HEADER_KEYS if k in results}
    document["monitor"] = section
    out.mkdir(parents=True, exist_ok=True)
    payload = json.dumps(to_jsonable(document), indent=2, sort_keys=True, allow_nan=False) + "\n"
    atomic_write_text(target, payload)
    atomic_write_text(out / SUMMARY_NAME, render_monitor_summary(to_jsonable(section)))
    return target


def _fmt(e: dict[str, Any] | None) -> str:
    if not e or e.get("estimate") is None:
        return "n/a"
    if e.get("ci_low") is None:
        return f"{e['estimate']:.3f}"
    return f"{e['estimate']:.3f} ({e['ci_low']:.3f} to {e['ci_high']:.3f})"


def render_monitor_summary(section: dict[str, Any]) -> str:
    """Return monitor.md: the flags, the estimates with CIs and the warnings, in Markdown."""
    est, ref, flags = section["estimates"], section["reference"], section["flags"]
    lines = [
        "# auditkit monitor",
        "",
        f"Batch: {section['batch']['n_images']} images; reference: {ref['n']} internal-test images "
        f"(accuracy {ref['accuracy']:.3f}, prevalence {ref['prevalence']:.3f}, threshold {ref['threshold']:.3f}).",
        "",
        "| flag | raised |",
        "| --- | --- |",
        *[f"| {k} | {'YES' if v else 'no'} |" for k, v in flags.items()],
        "",
        "| estimate (95% CI) | value |",
        "| --- | --- |",
        *[f"| {k} | {_fmt(v)} |" for k, v in est.items()],
    ]
    if section.get("observed"):
        lines += ["", "Observed (labels given): " + ", ".join(
            f"{k} {v:.3f}" for k, v in section["observed"].items() if v is not None)]  # fmt: skip
    if section["warnings"]:
        lines += ["", "Warnings:", *[f"- {w}" for w in section["warnings"]]]
    return "\n".join(lines) + "\n"
