"""A realistic, schema-valid results.json for report tests, with real tiny PNG gallery images.

The document is computed from planted synthetic predictions with independent
implementations (scikit-learn for AUROC/AP/Brier/ROC, SciPy for the
temperature fit, closed-form Wilson and Hanley-McNeil intervals), so every
number the report prints comes from something other than the report. It has
every section of docs/results-json.md: 2 internal sites (``site_a``,
``site_b``) split into val/test, 1 external site (``site_c``), 2 attributes
(``sex``, ``age_group``) and their intersection, 2 saliency methods with a
gallery of PNG overlays written next to results.json, and a gate with
passing, failing and insufficient rules. Options drop sections or plant
undefined numbers and hostile strings so tests can check graceful rendering.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import optimize, stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from auditkit.results import save_results

Z95 = 1.959963984540054
GRID = np.linspace(0.0, 1.0, 51)

HOSTILE_STRINGS = (
    '<img src="http://127.0.0.1:1/x.png">',
    "<script>alert('x')</script>",
    "file:///etc/passwd",
    "</style><style>body{display:none}</style>",
)
HOSTILE_VALUE = "".join(HOSTILE_STRINGS)


@dataclass
class Options:
    """What the document should contain; the defaults give the complete document."""

    seed: int = 7
    n_gallery: int = 6
    image_size: int = 32
    overlay_format: str = "png"
    external: bool = True
    explanations: bool = True
    gate: bool = True
    model_details: bool = True
    intended_use: bool = True
    recalibration: bool = True
    fairness: bool = True
    hostile: bool = False
    created: str = "2025-03-14"
    extra_intended_use: dict[str, str] = field(default_factory=dict)


# -- closed-form intervals (independent of auditkit.stats) ---------------------------------


def est(value: float | None, low: float | None = None, high: float | None = None, **extra: Any) -> dict:
    """Return an estimate dict; a non-finite value becomes undefined with a reason."""
    if value is None or not math.isfinite(float(value)):
        return {
            "estimate": None,
            "ci_low": None,
            "ci_high": None,
            "reason": extra.pop("reason", "not computable from the data given"),
            **extra,
        }
    out = {"estimate": float(value), "ci_low": _f(low), "ci_high": _f(high)}
    out.update({k: v for k, v in extra.items() if v is not None})
    return out


def _f(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


def wilson(k: int, n: int) -> dict:
    """Return a proportion with its Wilson 95% interval (undefined when n == 0)."""
    if n == 0:
        return est(None, reason="no cases in the denominator (n = 0)")
    p = k / n
    denom = 1 + Z95**2 / n
    centre = (p + Z95**2 / (2 * n)) / denom
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / denom
    return est(p, max(0.0, centre - half), min(1.0, centre + half), method="wilson")


def auroc_est(y: np.ndarray, s: np.ndarray) -> dict:
    """Return AUROC (scikit-learn) with the Hanley-McNeil 95% interval."""
    n1, n0 = int(y.sum()), int((1 - y).sum())
    if n1 == 0 or n0 == 0:
        return est(None, reason=f"only one class present (n_positive = {n1}, n_negative = {n0})")
    a = roc_auc_score(y, s)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n0 - 1) * (q2 - a * a)) / (n1 * n0)
    half = Z95 * math.sqrt(max(var, 0.0))
    return est(a, max(0.0, a - half), min(1.0, a + half), method="DeLong")


def _se_from(e: dict) -> float:
    if e["estimate"] is None or e["ci_low"] is None:
        return math.nan
    return (e["ci_high"] - e["ci_low"]) / (2 * Z95)


def difference(a: dict, b: dict, *, groups: Sequence[str] | None = None) -> dict:
    """Return a - b with a normal-approximation interval and two-sided z-test p-value."""
    if a["estimate"] is None or b["estimate"] is None:
        return est(None, reason="one of the groups has an undefined value")
    d = a["estimate"] - b["estimate"]
    se = math.hypot(_se_from(a), _se_from(b))
    p = 2 * stats.norm.sf(abs(d) / se) if se > 0 else 1.0
    return est(d, d - Z95 * se, d + Z95 * se, p_value=float(p), groups=list(groups) if groups else None)


def holm(p_values: Sequence[float]) -> list[float]:
    """Return Holm-adjusted p-values (hand implementation of Holm 1979)."""
    order = np.argsort(p_values)
    m = len(p_values)
    adjusted = np.empty(m)
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[idx]))
        adjusted[idx] = running
    return adjusted.tolist()


# -- the synthetic cohort -------------------------------------------------------------------


@dataclass
class Cohort:
    name: str
    y: np.ndarray
    s: np.ndarray
    sex: np.ndarray
    age: np.ndarray
    patients: np.ndarray


def _simulate(rng: np.random.Generator, name: str, n: int, *, prevalence: float, shift: float) -> Cohort:
    y = (rng.random(n) < prevalence).astype(int)
    sex = rng.choice(["F", "M"], size=n)
    age = rng.choice(["<40", "40-60", "60+"], size=n, p=[0.3, 0.4, 0.3])
    # planted underdiagnosis: positives of female patients score lower
    signal = 1.6 * y - 0.9 * y * (sex == "F") + shift
    logit = signal - 0.8 + rng.normal(0, 1.0, n)
    s = 1 / (1 + np.exp(-1.4 * logit))
    patients = np.array([f"{name}-{i // 2:04d}" for i in range(n)])
    return Cohort(name, y, s, sex, age, patients)


def confusion(y: np.ndarray, s: np.ndarray, threshold: float) -> dict:
    pred = (s >= threshold).astype(int)
    return {
        "tp": int(((pred == 1) & (y == 1)).sum()),
        "fp": int(((pred == 1) & (y == 0)).sum()),
        "tn": int(((pred == 0) & (y == 0)).sum()),
        "fn": int(((pred == 0) & (y == 1)).sum()),
        "threshold": float(threshold),
    }


def discrimination_block(y: np.ndarray, s: np.ndarray, threshold: float) -> dict:
    cm = confusion(y, s, threshold)
    tp, fp, tn, fn = cm["tp"], cm["fp"], cm["tn"], cm["fn"]
    sens, spec = wilson(tp, tp + fn), wilson(tn, tn + fp)
    block = {
        "auroc": auroc_est(y, s),
        "auprc": est(average_precision_score(y, s), None, None, method="bootstrap")
        if y.sum() > 0
        else est(None, reason="no positive cases"),
        "sensitivity": sens,
        "specificity": spec,
        "ppv": wilson(tp, tp + fp),
        "npv": wilson(tn, tn + fn),
        "fnr": wilson(fn, tp + fn),
        "fpr": wilson(fp, tn + fp),
        "accuracy": wilson(tp + tn, len(y)),
    }
    ap = block["auprc"]
    if ap["estimate"] is not None:
        half = Z95 * math.sqrt(ap["estimate"] * (1 - ap["estimate"]) / max(1, int(y.sum())))
        ap["ci_low"], ap["ci_high"] = max(0.0, ap["estimate"] - half), min(1.0, ap["estimate"] + half)
    se, sp = sens["estimate"], spec["estimate"]
    block["lr_positive"] = (
        est(se / (1 - sp)) if sp is not None and sp < 1 else est(None, reason="specificity is 1")
    )
    block["lr_negative"] = (
        est((1 - se) / sp) if sp not in (None, 0) and se is not None else est(None, reason="specificity is 0")
    )
    block["balanced_accuracy"] = est((se + sp) / 2) if se is not None and sp is not None else est(None)
    f1 = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else math.nan
    block["f1"] = est(f1, reason="no positive predictions or cases")
    block["confusion_matrix"] = cm
    return block


def _bins(y: np.ndarray, s: np.ndarray, edges: np.ndarray) -> dict:
    idx = np.clip(np.digitize(s, edges[1:-1]), 0, len(edges) - 2)
    out: dict[str, list] = {k: [] for k in ("bin_lower", "bin_upper", "mean_predicted", "fraction_positive", "count", "ci_low", "ci_high")}
    for b in range(len(edges) - 1):
        m = idx == b
        n = int(m.sum())
        if n == 0:
            continue
        w = wilson(int(y[m].sum()), n)
        out["bin_lower"].append(float(edges[b]))
        out["bin_upper"].append(float(edges[b + 1]))
        out["mean_predicted"].append(float(s[m].mean()))
        out["fraction_positive"].append(float(y[m].mean()))
        out["count"].append(n)
        out["ci_low"].append(w["ci_low"])
        out["ci_high"].append(w["ci_high"])
    return out


def ece_value(y: np.ndarray, s: np.ndarray, n_bins: int = 15) -> float:
    """Return the equal-width ECE (Guo et al. 2017), computed by hand."""
    edges = np.linspace(0, 1, n_bins + 1)
    idx = np.clip(np.digitize(s, edges[1:-1]), 0, n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        m = idx == b
        if m.any():
            total += m.mean() * abs(y[m].mean() - s[m].mean())
    return float(total)


def calibration_block(y: np.ndarray, s: np.ndarray) -> dict:
    eps = 1e-6
    lp = np.log(np.clip(s, eps, 1 - eps) / np.clip(1 - s, eps, 1))
    brier = brier_score_loss(y, s)
    prev = y.mean()
    e = ece_value(y, s)
    n = len(y)
    se_e = math.sqrt(e * (1 - e) / n)
    slope_fit = LogisticRegression(C=1e6).fit(lp[:, None], y)
    slope = float(slope_fit.coef_[0, 0])
    intercept_fit = LogisticRegression(C=1e6, fit_intercept=True)
    # calibration-in-the-large: intercept with the linear predictor as offset, approximated by
    # the log-odds difference of observed and mean predicted risk
    intercept = math.log(prev / (1 - prev)) - math.log(s.mean() / (1 - s.mean()))
    del intercept_fit
    oe = prev / s.mean()
    edges = np.linspace(0, 1, 16)
    mass_edges = np.unique(np.quantile(s, np.linspace(0, 1, 11)))
    mass_edges[0], mass_edges[-1] = 0.0, 1.0
    return {
        "ece": est(e, max(0, e - Z95 * se_e), e + Z95 * se_e),
        "ece_equal_mass": est(e * 0.9, max(0, e * 0.9 - Z95 * se_e), e * 0.9 + Z95 * se_e),
        "ece_debiased": est(max(e - 0.01, 0), max(0, e - 0.01 - Z95 * se_e), e - 0.01 + Z95 * se_e),
        "mce": est(min(1.0, 3 * e)),
        "brier": est(brier, brier - 0.02, brier + 0.02),
        "brier_scaled": est(1 - brier / (prev * (1 - prev))),
        "oe": est(oe, oe - 0.1, oe + 0.1),
        "intercept": est(intercept, intercept - 0.3, intercept + 0.3),
        "slope": est(slope, slope - 0.25, slope + 0.25),
        "n_bins": 15,
        "brier_decomposition": {"reliability": e * e, "resolution": 0.05, "uncertainty": float(prev * (1 - prev))},
        "reliability": {"equal_width": _bins(y, s, edges), "equal_mass": _bins(y, s, mass_edges)},
    }


def curves_block(y: np.ndarray, s: np.ndarray) -> dict:
    fpr, tpr, _ = roc_curve(y, s)
    tpr_grid = np.interp(GRID, fpr, tpr)
    tpr_grid[0] = 0.0
    half = Z95 * np.sqrt(tpr_grid * (1 - tpr_grid) / max(1, int(y.sum())))
    precision, recall, _ = precision_recall_curve(y, s)
    order = np.argsort(recall)
    prec_grid = np.interp(GRID, recall[order], precision[order])
    phalf = Z95 * np.sqrt(prec_grid * (1 - prec_grid) / max(1, int(y.sum())))
    edges = np.linspace(0, 1, 21)
    return {
        "roc": {
            "fpr": GRID.tolist(),
            "tpr": tpr_grid.tolist(),
            "tpr_low": np.clip(tpr_grid - half, 0, 1).tolist(),
            "tpr_high": np.clip(tpr_grid + half, 0, 1).tolist(),
        },
        "pr": {
            "recall": GRID.tolist(),
            "precision": prec_grid.tolist(),
            "precision_low": np.clip(prec_grid - phalf, 0, 1).tolist(),
            "precision_high": np.clip(prec_grid + phalf, 0, 1).tolist(),
        },
        "scores": {
            "bin_edges": edges.tolist(),
            "positive": np.histogram(s[y == 1], edges)[0].tolist(),
            "negative": np.histogram(s[y == 0], edges)[0].tolist(),
        },
    }


def _temperature(y: np.ndarray, s: np.ndarray) -> float:
    eps = 1e-6
    logit = np.log(np.clip(s, eps, 1 - eps) / np.clip(1 - s, eps, 1))

    def nll(t: float) -> float:
        p = np.clip(1 / (1 + np.exp(-logit / t)), eps, 1 - eps)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))

    return float(optimize.minimize_scalar(nll, bounds=(0.05, 20), method="bounded").x)


def _apply_temperature(s: np.ndarray, t: float) -> np.ndarray:
    eps = 1e-6
    logit = np.log(np.clip(s, eps, 1 - eps) / np.clip(1 - s, eps, 1))
    return 1 / (1 + np.exp(-logit / t))


def external_subgroups(c: Cohort, threshold: float) -> dict:
    """Return ``external.<site>.subgroups``: each attribute's groups with sizes and Wilson/AUROC estimates."""
    out = {}
    for name, labels in (("sex", c.sex), ("age_group", c.age)):
        groups = fairness_attribute(c, labels, threshold, columns=[name], intersection=False)["groups"]
        out[name] = {"cohort": c.name, "groups": {
            v: {"n": g["n"], "n_patients": len(set(c.patients[labels == v].tolist())), "n_positive": g["n_positive"],
                **{m: g[m] for m in ("auroc", "sensitivity", "specificity", "ppv", "npv")}}
            for v, g in groups.items()}}  # fmt: skip
    return out


def fairness_attribute(
    c: Cohort, labels: np.ndarray, threshold: float, *, columns: list[str], intersection: bool
) -> dict:
    groups: dict[str, dict] = {}
    for value in sorted(set(labels.tolist())):
        m = labels == value
        y, s = c.y[m], c.s[m]
        cm = confusion(y, s, threshold)
        n, npos = int(m.sum()), int(y.sum())
        warnings = []
        if npos < 30:
            warnings.append(f"fewer than 30 positive cases ({npos}); estimates are imprecise")
        groups[value] = {
            "n": n,
            "n_positive": npos,
            "prevalence": wilson(npos, n),
            "auroc": auroc_est(y, s),
            "sensitivity": wilson(cm["tp"], cm["tp"] + cm["fn"]),
            "specificity": wilson(cm["tn"], cm["tn"] + cm["fp"]),
            "fnr": wilson(cm["fn"], cm["tp"] + cm["fn"]),
            "fpr": wilson(cm["fp"], cm["tn"] + cm["fp"]),
            "ppv": wilson(cm["tp"], cm["tp"] + cm["fp"]),
            "npv": wilson(cm["tn"], cm["tn"] + cm["fn"]),
            "ece": est(ece_value(y, s)) if n else est(None, reason="empty group"),
            "brier": est(brier_score_loss(y, s)) if n else est(None, reason="empty group"),
            "oe": est(y.mean() / s.mean()) if n else est(None, reason="empty group"),
            "warnings": warnings,
        }
    gap: dict[str, dict] = {}
    for metric in ("auroc", "fnr", "fpr", "sensitivity", "ece"):
        defined = {g: v[metric] for g, v in groups.items() if v[metric]["estimate"] is not None}
        if len(defined) < 2:
            gap[metric] = est(None, reason="fewer than two groups with a defined value")
            continue
        hi = max(defined, key=lambda g: defined[g]["estimate"])
        lo = min(defined, key=lambda g: defined[g]["estimate"])
        gap[metric] = difference(defined[hi], defined[lo], groups=[hi, lo])
    tpr, fpr = gap["sensitivity"], gap["fpr"]
    if tpr["estimate"] is not None and fpr["estimate"] is not None:
        pick = tpr if tpr["estimate"] >= fpr["estimate"] else fpr
        gap["equalized_odds"] = dict(pick)
    tests = [k for k, v in gap.items() if v.get("p_value") is not None]
    for key, adj in zip(tests, holm([gap[k]["p_value"] for k in tests]), strict=True):
        gap[key]["p_adjusted"] = adj
    worst = {g: v["auroc"] for g, v in groups.items() if v["auroc"]["estimate"] is not None}
    worst_name = min(worst, key=lambda g: worst[g]["estimate"]) if worst else None
    attr_warnings = [f"group {g}: {w}" for g, v in groups.items() for w in v["warnings"]]
    out = {
        "columns": columns,
        "cohort": "test",
        "intersection": intersection,
        "groups": groups,
        "gap": gap,
        "ratio": {"fnr": est(None, reason="a group has FNR 0")}
        if any(v["fnr"]["estimate"] == 0 for v in groups.values())
        else {},
        "worst_group": {
            "auroc": {**worst[worst_name], "groups": [worst_name]}
            if worst_name
            else est(None, reason="no group with a defined AUROC")
        },
        "prevalence_adjusted": {
            "method": "test-set resampling to equal prevalence per group (Glocker 2023)",
            "gap": {
                m: est(v["estimate"] * 0.6, v["ci_low"] * 0.6 if v["ci_low"] is not None else None,
                       v["ci_high"] * 0.6 if v["ci_high"] is not None else None, groups=v.get("groups"))
                if v["estimate"] is not None
                else est(None, reason=v["reason"])
                for m, v in gap.items()
                if m in ("fnr", "fpr")
            },
        },
        "multiplicity": {"method": "holm", "family_size": len(tests)},
        "warnings": attr_warnings,
    }
    return out


# -- gallery images ----------------------------------------------------------------------------


def _disk(size: int, cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def _heat_rgb(gray: np.ndarray, heat: np.ndarray) -> np.ndarray:
    h = (heat - heat.min()) / (np.ptp(heat) or 1.0)
    rgb = np.stack([h, 0.3 * (1 - np.abs(h - 0.5) * 2), 1 - h], axis=-1)
    return (255 * (0.5 * gray[..., None] + 0.5 * rgb)).clip(0, 255).astype(np.uint8)


def write_gallery(root: Path, n: int, *, size: int, fmt: str, rng: np.random.Generator, hostile: bool) -> list[dict]:
    """Write n phantom images, masks and Grad-CAM/IG overlays under root/explain; return entries."""
    categories = ["true_positive", "false_negative", "false_positive", "true_negative"]
    ext = "jpg" if fmt == "jpeg" else "png"
    entries = []
    for i in range(n):
        category = categories[i % 4]
        ident = f"case_{i:03d}"
        cy, cx = rng.uniform(size * 0.3, size * 0.7, 2)
        r = size * 0.12
        lesion = _disk(size, cy, cx, r)
        gray = 0.3 + 0.1 * rng.standard_normal((size, size))
        has_lesion = category in ("true_positive", "false_negative")
        if has_lesion:
            gray = gray + 0.4 * lesion
        gray = gray.clip(0, 1)
        # Grad-CAM looks at the lesion; IG is distracted by a corner "marker" (planted shortcut)
        yy, xx = np.mgrid[:size, :size]
        cam = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (size * 0.15) ** 2))
        ig = np.exp(-((yy - 2) ** 2 + (xx - 2) ** 2) / (2 * (size * 0.1) ** 2)) + 0.3 * cam
        paths = {
            "image": f"explain/images/{ident}.png",
            "mask": f"explain/masks/{ident}.png" if has_lesion else None,
            "gradcam": f"explain/overlays/{ident}__gradcam.{ext}",
            "ig": f"explain/overlays/{ident}__ig.{ext}",
        }
        for key in ("image", "mask", "gradcam", "ig"):
            if paths[key]:
                (root / paths[key]).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((gray * 255).astype(np.uint8), mode="L").save(root / paths["image"])
        if has_lesion:
            Image.fromarray(lesion.astype(np.uint8) * 255, mode="L").save(root / paths["mask"])
        for method, heat in (("gradcam", cam), ("ig", ig)):
            img = Image.fromarray(_heat_rgb(gray, heat), mode="RGB")
            if fmt == "jpeg":
                img.save(root / paths[method], format="JPEG", quality=90)
            else:
                img.save(root / paths[method], format="PNG")
        y_true = 1 if has_lesion else 0
        score = {"true_positive": 0.91, "false_negative": 0.12, "false_positive": 0.77, "true_negative": 0.05}[
            category
        ] - 0.001 * (i // 4)
        sex = HOSTILE_VALUE if hostile and i == 0 else ("F" if i % 2 == 0 else "M")
        entries.append(
            {
                "id": ident,
                "cohort": "test" if i % 3 else "site_c",
                "category": category,
                "y_true": y_true,
                "score": round(score, 4),
                "attributes": {"sex": sex, "age_group": ["<40", "40-60", "60+"][i % 3]},
                "image": paths["image"],
                "overlays": {"gradcam": paths["gradcam"], "ig": paths["ig"]},
                "mask": paths["mask"],
            }
        )
    return entries


# -- the document -----------------------------------------------------------------------------


def build_results(root: str | Path, options: Options | None = None, **overrides: Any) -> dict:
    """Return a complete results document (and write its gallery images under ``root``)."""
    opts = copy.deepcopy(options) if options is not None else Options()
    for key, value in overrides.items():
        if not hasattr(opts, key):
            raise TypeError(f"unknown factory option {key!r}")
        setattr(opts, key, value)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(opts.seed)

    val = _simulate(rng, "val", 240, prevalence=0.35, shift=0.0)
    test = _simulate(rng, "test", 400, prevalence=0.35, shift=0.0)
    ext = _simulate(rng, "site_c", 160, prevalence=0.2, shift=-0.5)
    if opts.hostile:
        test.sex = np.where(test.sex == "F", HOSTILE_VALUE, test.sex)

    fpr, tpr, thresholds = roc_curve(val.y, val.s)
    best = int(np.argmax(tpr - fpr))
    threshold = float(min(thresholds[best], 1.0))
    val_cm = confusion(val.y, val.s, threshold)

    positive = HOSTILE_VALUE if opts.hostile else "pneumothorax"
    classes = ["normal", positive]

    def cohort_entry(c: Cohort, role: str) -> dict:
        npos = int(c.y.sum())
        n = len(c.y)
        warnings = []
        if npos < 100:
            warnings.append(f"{npos} events: fewer than 100 (Collins 2016); estimates are imprecise")
        if npos < 200 or n - npos < 200:
            warnings.append("fewer than 200 events and 200 non-events: calibration curves are imprecise")
        return {
            "role": role,
            "n_images": n,
            "n_patients": len(set(c.patients.tolist())),
            "n_positive": npos,
            "n_negative": n - npos,
            "prevalence": wilson(npos, n),
            "warnings": warnings,
        }

    cohorts = {"val": cohort_entry(val, "validation"), "test": cohort_entry(test, "internal_test")}
    if opts.external:
        cohorts["site_c"] = cohort_entry(ext, "external")

    library_versions = {"auditkit": "0.1.0", "torch": "2.14.1", "numpy": np.__version__, "python": "3.11.7"}
    doc: dict[str, Any] = {
        "schema_version": "1.0",
        "tool": {"name": "auditkit", "version": "0.1.0"},
        "created": opts.created,
        "run": {
            "seed": opts.seed,
            "n_boot": 1000,
            "ci_level": 0.95,
            "ci_method": "percentile",
            "cluster_column": "patient_id",
            "task": "binary",
            "classes": classes,
            "positive_class": positive,
            "config": {"attributes": ["sex", "age_group"], "intersections": [["sex", "age_group"]],
                       "external_sites": ["site_c"] if opts.external else [], "n_boot": 1000},
            "config_sha256": "c" * 64,
            "library_versions": library_versions,
        },
    }
    if opts.intended_use:
        iu = {
            "intended_use": "Triage of adult chest radiographs for suspected pneumothorax.",
            "indications": "Adults (18+) with a frontal chest radiograph.",
            "intended_users": "Radiologists and emergency physicians.",
            "limitations": "Not validated on paediatric images or portable bedside films.",
            "manufacturer": "Example Medical Ltd",
            "device_version": "2.3.0",
        }
        if opts.hostile:
            iu["limitations"] = HOSTILE_VALUE
        iu.update(opts.extra_intended_use)
        doc["intended_use"] = iu
    else:
        doc["intended_use"] = None

    if opts.model_details:
        history = [
            {"epoch": e, "train_loss": 0.69 * math.exp(-e / 4) + 0.1, "val_loss": 0.69 * math.exp(-e / 5) + 0.18,
             "val_auroc": 0.6 + 0.3 * (1 - math.exp(-e / 3)), "lr": 1e-3}
            for e in range(1, 11)
        ]
        doc["model"] = {
            "name": "cxr-ptx-smallcnn",
            "arch": "smallcnn",
            "sha256": "a" * 64,
            "version": "2.3.0-rc1",
            "n_parameters": 123456,
            "input_size": [64, 64],
            "in_channels": 1,
            "target_layer": "features.conv3",
            "normalization": {"mean": [0.5], "std": [0.25]},
            "training": {"optimizer": "AdamW", "lr": 0.001, "epochs": 10, "best_epoch": 8, "batch_size": 32,
                         "seed": opts.seed, "loss": "cross_entropy", "class_weights": None,
                         "augmentation": "flip, small affine", "device": "cpu",
                         "early_stopping": "best validation AUROC, patience 3", "data_fingerprint": "d" * 64},
            "history": history,
        }
    else:
        doc["model"] = {"name": "external-model-predictions", "arch": None, "sha256": None}

    doc["inputs"] = {
        "predictions": {"path": "predictions.parquet", "sha256": "b" * 64, "n_rows": 800},
        "manifest": {"path": "data/manifest.csv", "sha256": "e" * 64, "n_rows": 1000} if opts.model_details else None,
        "checkpoint": {"path": "models/cxr", "sha256": "a" * 64} if opts.model_details else None,
        "config": None,
    }
    attr_counts: dict[str, dict] = {"sex": {}, "age_group": {}}
    for c in (val, test, *([ext] if opts.external else [])):
        for attr, arr in (("sex", c.sex), ("age_group", c.age)):
            values, counts = np.unique(arr, return_counts=True)
            attr_counts[attr][c.name] = {str(v): int(k) for v, k in zip(values, counts, strict=True)}
    splits = {
        "train": {"n_images": 1120, "n_patients": 560, "n_positive": 392},
        "val": {k: cohorts["val"][k] for k in ("n_images", "n_patients", "n_positive")},
        "test": {k: cohorts["test"][k] for k in ("n_images", "n_patients", "n_positive")},
    }
    if opts.external:
        splits["external"] = {k: cohorts["site_c"][k] for k in ("n_images", "n_patients", "n_positive")}
    n_total = sum(v["n_images"] for v in splits.values())
    doc["data"] = {
        "splits": splits,
        "disjointness": {"level": "patient", "overlaps": [], "passed": True},
        "attributes": attr_counts,
        "sites": {
            "site_a": {"train": 600, "val": 120, "test": 200},
            "site_b": {"train": 520, "val": 120, "test": 200},
            **({"site_c": {"external": 160}} if opts.external else {}),
        },
        "flow": [
            {"stage": "images in manifest", "n": n_total + 40},
            {"stage": "unreadable or missing label (excluded)", "n": 40},
            {"stage": "images analysed", "n": n_total},
        ],
    }
    doc["cohorts"] = cohorts
    doc["operating_point"] = {
        "rule": "youden",
        "target": None,
        "threshold": threshold,
        "chosen_on": "val",
        "val": {"sensitivity": val_cm["tp"] / (val_cm["tp"] + val_cm["fn"]),
                "specificity": val_cm["tn"] / (val_cm["tn"] + val_cm["fp"])},
    }
    doc["discrimination"] = {
        "val": discrimination_block(val.y, val.s, threshold),
        "test": discrimination_block(test.y, test.s, threshold),
    }
    curve_cohorts = [("val", val), ("test", test), *([("site_c", ext)] if opts.external else [])]
    doc["curves"] = {name: curves_block(c.y, c.s) for name, c in curve_cohorts}
    doc["calibration"] = {"val": calibration_block(val.y, val.s), "test": calibration_block(test.y, test.s)}
    if opts.recalibration:
        t = _temperature(val.y, val.s)
        recal = calibration_block(test.y, _apply_temperature(test.s, t))
        doc["recalibration"] = {
            "fitted_on": "val",
            "temperature": {"parameters": {"temperature": t}, "test": recal},
            "platt": {"parameters": {"a": 1.1, "b": -0.05}, "test": calibration_block(test.y, _apply_temperature(test.s, 1.1))},
        }
    else:
        doc["recalibration"] = None
    if opts.fairness:
        inter = np.array([f"{a}+{b}" for a, b in zip(test.sex, test.age, strict=True)])
        doc["fairness"] = {
            "sex": fairness_attribute(test, test.sex, threshold, columns=["sex"], intersection=False),
            "age_group": fairness_attribute(test, test.age, threshold, columns=["age_group"], intersection=False),
            "sex+age_group": fairness_attribute(test, inter, threshold, columns=["sex", "age_group"], intersection=True),
        }
    if opts.external:
        d_ext = discrimination_block(ext.y, ext.s, threshold)
        internal = doc["discrimination"]["test"]
        delta = {m: difference(d_ext[m], internal[m]) for m in ("auroc", "sensitivity", "specificity")}
        delta["auroc"]["method"] = "unpaired DeLong"
        ks = stats.ks_2samp(ext.s, test.s)
        doc["external"] = {
            "site_c": {
                "role": "external",
                "discrimination": d_ext,
                "calibration": calibration_block(ext.y, ext.s),
                "delta": delta,
                "shift": {
                    "prevalence": {**difference(wilson(int(ext.y.sum()), len(ext.y)),
                                                wilson(int(test.y.sum()), len(test.y)))},
                    "score_ks": {"statistic": float(ks.statistic), "p_value": float(ks.pvalue),
                                 "p_adjusted": min(1.0, float(ks.pvalue) * 1)},
                    "domain_auroc": est(0.83, 0.79, 0.87),
                    "mmd": None,
                },
                "warnings": list(cohorts["site_c"]["warnings"]),
                "subgroups": external_subgroups(ext, threshold),
            }
        }
    if opts.explanations:
        doc["saliency"] = {
            "gradcam": {
                "n_images": 48,
                "target": "predicted class",
                "params": {"target_layer": "features.conv3"},
                "postprocessing": ["relu", "upsample_bilinear", "minmax_per_image"],
                "localization": {
                    "hit_rate": est(0.71, 0.58, 0.82), "energy_pointing": est(0.44, 0.39, 0.5),
                    "iou_otsu": est(0.31, 0.26, 0.36), "dice_otsu": est(0.45, 0.39, 0.51),
                    "iou_tuned": est(0.35, 0.3, 0.4), "dice_tuned": est(0.5, 0.44, 0.56),
                    "threshold_tuned": 0.45, "n_images": 24,
                },
                "faithfulness": {
                    "deletion_auc": est(0.21, 0.18, 0.25), "insertion_auc": est(0.64, 0.59, 0.69),
                    "deletion_auc_random": est(0.33, 0.3, 0.36), "insertion_auc_random": est(0.52, 0.48, 0.56),
                },
                "sanity": {
                    "passed": True, "criterion": "SSIM(trained, randomised) below the baseline SSIM of random pairs",
                    "baseline_ssim": 0.42,
                    "cascading": [
                        {"layer": "classifier", "ssim": est(0.21, 0.17, 0.25), "spearman": est(0.12, 0.05, 0.2),
                         "spearman_abs": est(0.15, 0.08, 0.22), "hog": est(0.1, 0.03, 0.17)},
                        {"layer": "features.conv3", "ssim": est(0.11, 0.08, 0.14), "spearman": est(0.02, -0.05, 0.09),
                         "spearman_abs": est(0.05, -0.02, 0.12), "hog": est(0.04, -0.03, 0.11)},
                    ],
                    "independent": [],
                },
                "shortcut_score": est(0.08, 0.05, 0.11),
                "shortcut": {"region": "top-left 8x8 corner", "by_cohort": {"test": est(0.08, 0.05, 0.11)}},
                "stability": {"noise_ssim": est(0.88, 0.85, 0.9), "shift_ssim": est(0.79, 0.75, 0.83)},
                "by_group": {"sex": {"F": {"shortcut_score": est(0.09, 0.05, 0.13), "hit_rate": est(0.69, 0.5, 0.84)},
                                     "M": {"shortcut_score": est(0.07, 0.04, 0.1), "hit_rate": est(0.73, 0.55, 0.86)}}},
            },
            "ig": {
                "n_images": 48,
                "target": "predicted class",
                "params": {"baseline": "black image", "n_steps": 32},
                "postprocessing": ["abs", "smooth_gaussian_sigma1", "minmax_per_image"],
                "localization": {
                    "hit_rate": est(0.38, 0.26, 0.51), "energy_pointing": est(0.22, 0.18, 0.27),
                    "iou_otsu": est(0.12, 0.09, 0.16), "dice_otsu": est(0.2, 0.15, 0.25),
                    "iou_tuned": est(None, reason="no validation masks to tune the threshold"),
                    "dice_tuned": est(None, reason="no validation masks to tune the threshold"),
                    "threshold_tuned": None, "n_images": 24,
                },
                "faithfulness": {
                    "deletion_auc": est(0.3, 0.26, 0.34), "insertion_auc": est(0.55, 0.5, 0.6),
                    "deletion_auc_random": est(0.33, 0.3, 0.36), "insertion_auc_random": est(0.52, 0.48, 0.56),
                },
                "sanity": {
                    "passed": False, "criterion": "SSIM(trained, randomised) below the baseline SSIM of random pairs",
                    "baseline_ssim": est(0.42, 0.38, 0.46), "cascading_mean_ssim": 0.61,
                    "cascading": [
                        {"layer": "classifier", "ssim": est(0.61, 0.55, 0.66), "spearman": est(0.5, 0.42, 0.58),
                         "spearman_abs": est(0.55, 0.47, 0.62), "hog": est(0.48, 0.4, 0.55)},
                    ],
                    "independent": [],
                },
                "shortcut_score": est(0.41, 0.35, 0.47),
                "shortcut": {"region": "top-left 8x8 corner", "by_cohort": {"test": est(0.41, 0.35, 0.47)}},
                "stability": {"noise_ssim": est(0.62, 0.57, 0.67), "shift_ssim": est(0.55, 0.5, 0.6)},
                "completeness": {"tolerance": 0.05, "max_rel_delta": 0.031, "passed": True},
            },
        }
        doc["gallery"] = write_gallery(
            root, opts.n_gallery, size=opts.image_size, fmt=opts.overlay_format, rng=rng, hostile=opts.hostile
        )
    warnings = [
        {"code": "few_events", "message": f"site_c has {cohorts.get('site_c', cohorts['test'])['n_positive']} events: fewer than 100 (Collins 2016)", "where": "cohorts.site_c"},
        {"code": "small_group", "message": "intersection sex+age_group has cells with fewer than 30 positive cases", "where": "fairness.sex+age_group"},
    ]
    doc["warnings"] = warnings if opts.external else warnings[1:]
    if opts.gate:
        doc["gate"] = gate_section(doc)
    return doc


def gate_section(doc: Mapping[str, Any]) -> dict:
    """Return a gate section with a passing, a failing, an insufficient and a warning rule."""
    auroc = doc["discrimination"]["test"]["auroc"]
    rules = [
        {"id": "min-auroc", "metric": "discrimination.test.auroc", "pattern": "discrimination.test.auroc",
         "op": "min", "threshold": 0.7, "use": "ci_low", "severity": "error", "blocking": False,
         "verdict": "pass" if auroc["ci_low"] >= 0.7 else "fail", "value": auroc["ci_low"],
         "estimate": auroc["estimate"], "ci_low": auroc["ci_low"], "ci_high": auroc["ci_high"],
         "message": "lower 95% bound of the internal-test AUROC must be at least 0.70"},
    ]
    if "fairness" in doc:
        gap = doc["fairness"]["sex"]["gap"]["fnr"]
        rules.append(
            {"id": "fnr-gap-sex", "metric": "fairness.sex.gap.fnr", "pattern": "fairness.*.gap.fnr",
             "op": "max", "threshold": 0.1, "use": "ci_high", "severity": "error", "blocking": False,
             "verdict": "fail" if (gap["ci_high"] or 0) > 0.1 else "pass", "value": gap["ci_high"],
             "estimate": gap["estimate"], "ci_low": gap["ci_low"], "ci_high": gap["ci_high"],
             "message": "upper 95% bound of the FNR gap between sexes must not exceed 0.10"}
        )
        worst = doc["fairness"]["sex+age_group"]["worst_group"]["auroc"]
        rules.append(
            {"id": "worst-group-auroc", "metric": "fairness.sex+age_group.worst_group.auroc",
             "pattern": "fairness.*.worst_group.auroc", "op": "min", "threshold": 0.6, "use": "ci_low",
             "severity": "error", "blocking": False, "verdict": "insufficient", "value": worst["ci_low"],
             "estimate": worst["estimate"], "ci_low": worst["ci_low"], "ci_high": worst["ci_high"],
             "message": "the interval straddles 0.60: too few cases to decide"}
        )
    if "external" in doc:
        delta = doc["external"]["site_c"]["delta"]["auroc"]
        rules.append(
            {"id": "external-auroc-drop", "metric": "external.site_c.delta.auroc", "pattern": "external.*.delta.auroc",
             "op": "min", "threshold": -0.1, "use": "estimate", "severity": "warning", "blocking": False, "verdict": "warn",
             "value": delta["estimate"], "estimate": delta["estimate"], "ci_low": delta["ci_low"],
             "ci_high": delta["ci_high"], "message": "external AUROC drop larger than 0.10"}
        )
    rules.append(
        {"id": "shortcut-external", "metric": "saliency.*.shortcut_by_site", "pattern": "saliency.*.shortcut_by_site",
         "op": "max", "threshold": 0.5, "use": "estimate", "severity": "error", "blocking": False,
         "verdict": "not_applicable", "value": None, "estimate": None, "ci_low": None, "ci_high": None,
         "message": "no match; the rule is not required"}
    )
    for rule in rules:
        rule["blocking"] = rule["severity"] == "error" and rule["verdict"] in ("fail", "insufficient", "undefined")
    passed = not any(r["blocking"] for r in rules)
    return {"passed": passed, "policy_name": "default", "policy_version": "1.0", "policy_sha256": "f" * 64,
            "block_on_insufficient": True, "overrides": {}, "rules": rules}


def write_results(root: str | Path, options: Options | None = None, **overrides: Any) -> Path:
    """Build the document, validate and write it as root/results.json; return the path."""
    doc = build_results(root, options, **overrides)
    return save_results(Path(root) / "results.json", doc)
