"""Coverage of every gated 95% interval, by simulation with a planted truth.

A simulated audit has an internal test cohort and one external site, n images
each, a patient attribute ``sex`` with two groups, and a fixed threshold.
Two designs: independent images (one per patient), and patient-clustered
images (``--images-per-patient 5``: 80 patients x 5 images at n = 400), where
a patient's images share part of their score and a random effect on the
outcome, so images of one patient are correlated.

The generator (per image, patient i, group g, site s):
  x = m_s + δ_g + a_i + e,   a_i ~ N(0, s_a²), e ~ N(0, s_e²)  (s_a = 0 when independent)
  p = expit(x)                                    (the model's probability)
  P(Y = 1 | x, v_i, g) = expit(α_s·κ_g·x + β_s + γ_g + v_i),  v_i ~ N(0, σ_v²)
The image-level marginal distribution is the same in both designs, so one
set of truths serves both. Truths are population values computed from the
true risk r(x, g) = E_v[expit(α x + β + γ_g + v)] (Gauss–Hermite) on a
2,000,000-image Monte Carlo sample: AUROC as a weighted Mann–Whitney,
rates at the threshold as risk-weighted means, the L1 calibration error
E|r(x) − p|, the calibration slope and intercept as the population logistic
fits, group gaps as the absolute difference of the groups' values (a max −
min over two groups), external deltas as site − test differences.

Each simulated audit runs the audit's own statistics (the run's shared
resamples stratified by cohort and clustered by patient, CohortAnalyzer,
CohortAnalyzer.estimate, the fairness analysis, the external delta rule of
audit/statistics.py) and records whether each interval holds the truth.

Run: ``.venv/bin/python benchmarks/coverage.py [--n-sim 300] [--n-boot 1000]
[--images-per-patient 1|5] [--methods percentile,bca] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.polynomial.hermite_e import hermegauss
from scipy.optimize import minimize
from scipy.special import expit

from auditkit.progress import track
from auditkit.results import Estimate
from auditkit.stats import metrics
from auditkit.stats.bootstrap import IntervalSettings, make_resamples
from auditkit.stats.cohort import CohortAnalyzer, TaskArrays
from auditkit.stats.delong import delong_interval, delong_unpaired_test
from auditkit.stats.engine import Engine, single_threaded_blas
from auditkit.stats.fairness import FairnessSettings, analyse_attribute
from auditkit.stats.fairness_gaps import POWER_METRICS, _Group, worst_groups
from auditkit.stats.intervals import NORMAL_INTERVAL_METRICS, normal_estimate

THRESHOLD = 0.3
N_BINS = 15
#: the interval rule of auditkit/analysis/external.py's _delta (normal for these, bootstrap otherwise).
EXTRA_DELTA = ("ece_l1_debiased",)
#: policy paths gated on an external site's own value (external.*.calibration.<m>).
EXTERNAL_VALUE = ("ece_l1_debiased",)


def _gateable(key: str) -> bool:
    m = metrics.get(key)
    return m is None or m.gateable


def _fitted(key: str) -> bool:
    m = metrics.get(key)
    return bool(m and m.needs_fit)


@dataclass(frozen=True)
class Site:
    """One cohort's generator: score location m, outcome slope α and intercept β."""

    m: float
    alpha: float
    beta: float


@dataclass(frozen=True)
class Scenario:
    """The planted model (see the module docstring)."""

    test: Site = Site(-0.8, 0.8, 0.2)
    external: Site = Site(-0.4, 0.65, -0.3)
    group_shift: dict[str, float] = field(default_factory=lambda: {"F": 0.0, "M": -0.5})
    """δ_g: the model scores group M lower, so M has the higher false-negative rate."""
    group_effect: dict[str, float] = field(default_factory=lambda: {"F": 0.0, "M": 0.3})
    """γ_g: the outcome's group effect not captured by the score."""
    group_slope: dict[str, float] = field(default_factory=lambda: {"F": 1.0, "M": 0.6})
    """multiplies α_s: the score separates group M's outcomes less well (an AUROC gap)."""
    score_sd: float = 1.6
    patient_share: float = 0.5
    """share of the score variance shared by a patient's images (clustered design)."""
    sigma_v: float = 0.6


_GH_X, _GH_W = hermegauss(40)
_GH_W = _GH_W / _GH_W.sum()


def true_risk(x: np.ndarray, g: np.ndarray, site: Site, sc: Scenario) -> np.ndarray:
    """Return E_v[P(Y=1 | x, v, g)] per image (Gauss–Hermite over the patient effect v)."""
    gamma = np.where(g == "M", sc.group_effect["M"], sc.group_effect["F"])
    slope = np.where(g == "M", sc.group_slope["M"], sc.group_slope["F"])
    lin = site.alpha * slope * x + site.beta + gamma
    return (expit(lin[:, None] + sc.sigma_v * _GH_X[None, :]) * _GH_W).sum(1)


def simulate(
    n: int, k: int, site: Site, sc: Scenario, rng: np.random.Generator, prefix: str
) -> pd.DataFrame:
    """Return one cohort of n images, k per patient: columns y, p, sex, patient."""
    n_pat = n // k
    sex = rng.choice(["F", "M"], n_pat)
    total = sc.score_sd**2
    s_a = np.sqrt(total * sc.patient_share) if k > 1 else 0.0
    s_e = np.sqrt(total - s_a**2)
    a = rng.normal(0, 1, n_pat) * s_a
    v = rng.normal(0, sc.sigma_v, n_pat)
    g = np.repeat(sex, k)
    shift = np.where(g == "M", sc.group_shift["M"], sc.group_shift["F"])
    x = site.m + shift + np.repeat(a, k) + rng.normal(0, s_e, n_pat * k)
    gamma = np.where(g == "M", sc.group_effect["M"], sc.group_effect["F"])
    slope = np.where(g == "M", sc.group_slope["M"], sc.group_slope["F"])
    lin = site.alpha * slope * x + site.beta + gamma
    y = (rng.random(n_pat * k) < expit(lin + np.repeat(v, k))).astype(
        np.int64
    )
    return pd.DataFrame(
        {
            "y": y,
            "p": expit(x),
            "sex": g,
            "patient": [f"{prefix}{i}" for i in np.repeat(np.arange(n_pat), k)],
        }
    )


def _weighted_auroc(x: np.ndarray, r: np.ndarray) -> float:
    order = np.argsort(x)
    rp, rn = r[order], 1.0 - r[order]
    below = np.concatenate([[0.0], np.cumsum(rn)[:-1]])
    return float(np.sum(rp * below) / (rp.sum() * rn.sum()))


def _weighted_average_precision(x: np.ndarray, r: np.ndarray) -> float:
    """Return the population average precision: E over positives of the precision at their score."""
    order = np.argsort(-x)
    rp = r[order]
    precision = np.cumsum(rp) / np.arange(1, len(rp) + 1)
    return float(np.sum(rp * precision) / rp.sum())


def _logistic_truth(z: np.ndarray, r: np.ndarray, *, slope: bool) -> float:
    def nll(theta: np.ndarray) -> float:
        lin = theta[0] + (theta[1] * z if slope else z)
        return float(np.mean(np.logaddexp(0, lin) - r * lin))

    res = minimize(nll, np.array([0.0, 1.0]), method="Nelder-Mead", options={"xatol": 1e-7, "fatol": 1e-12})
    return float(res.x[1] if slope else res.x[0])


def _binned(p: np.ndarray, r: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    b = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, len(edges) - 2)
    w = np.bincount(b, minlength=len(edges) - 1) / len(p)
    with np.errstate(divide="ignore", invalid="ignore"):
        rb = np.bincount(b, r, minlength=len(edges) - 1) / np.bincount(b, minlength=len(edges) - 1)
        pb = np.bincount(b, p, minlength=len(edges) - 1) / np.bincount(b, minlength=len(edges) - 1)
    return w, rb, pb


def population(x: np.ndarray, r: np.ndarray, *, fits: bool = False) -> dict[str, float]:
    """Return the population value of every metric this harness knows the estimand of.

    ``x`` the model's logits, ``r`` the true risk E[Y | x, group]. Rates come
    from the registry's ``from_counts`` applied to the expected cells (the
    estimand's definition, so a newly registered rate is simulated at once);
    scores and calibration estimands are written out here.
    """
    p = expit(x)
    call = p >= THRESHOLD
    tp, fp = (r * call).sum(), ((1 - r) * call).sum()
    fn, tn = r.sum() - tp, (1 - r).sum() - fp
    out = {k: float(v) for k, v in metrics.rates_from_counts(tp, fp, tn, fn).items()}
    out["auroc"] = _weighted_auroc(x, r)
    out["auprc"] = _weighted_average_precision(x, r)
    l1 = float(np.mean(np.abs(r - p)))
    # the L1 estimands: E|r(p) − p| (the binned plug-ins are descriptive; their rows show their bias)
    out["ece_l1_debiased"] = out["ece"] = out["ece_equal_mass"] = l1
    mass = np.quantile(p, np.linspace(0, 1, N_BINS + 1))
    w, rb, pb = _binned(p, r, mass)
    ok = w > 0
    # the registry's estimand: the L2 error of the n_bins equal-mass bins (Kumar et al. 2019)
    out["ece_debiased"] = float(np.sqrt(np.sum(w[ok] * (rb[ok] - pb[ok]) ** 2)))
    w, rb, pb = _binned(p, r, np.linspace(0, 1, N_BINS + 1))
    out["mce"] = float(np.nanmax(np.where(w > 0, np.abs(rb - pb), np.nan)))
    prev = float(r.mean())
    out["brier"] = float(np.mean(r * (1 - p) ** 2 + (1 - r) * p**2))
    out["brier_scaled"] = 1.0 - out["brier"] / (prev * (1 - prev))
    out["oe"] = prev / float(p.mean())
    if fits:
        sub = slice(0, 300_000)
        out["slope"] = _logistic_truth(x[sub], r[sub], slope=True)
        out["intercept"] = _logistic_truth(x[sub], r[sub], slope=False)
    return out


def cohort_truth(site: Site, sc: Scenario, rng: np.random.Generator, n: int = 2_000_000) -> dict[str, float]:
    """Return the population value of every covered metric for one site, per group (``m|g``) and gaps."""
    g = rng.choice(np.array(["F", "M"]), n)
    shift = np.where(g == "M", sc.group_shift["M"], sc.group_shift["F"])
    x = site.m + shift + rng.normal(0, sc.score_sd, n)
    r = true_risk(x, g, site, sc)
    out = population(x, r, fits=True)
    groups = {grp: population(x[g == grp], r[g == grp]) for grp in ("F", "M")}
    for grp, vals in groups.items():
        out.update({f"{k}|{grp}": v for k, v in vals.items()})
    for m in groups["F"]:
        a, b = groups["F"][m], groups["M"][m]
        out[f"gap.{m}"] = abs(a - b)
        if a > 0 and b > 0:
            out[f"ratio.{m}"] = min(a, b) / max(a, b)
        out[f"worst_group.{m}"] = min(a, b)
    out["gap.equalized_odds"] = max(out["gap.sensitivity"], out["gap.fpr"])
    return out


def cells() -> dict[str, list[str]]:
    """Return the metrics of each kind of cell, read from the registry (every computed metric)."""
    computed = list(metrics.cohort_keys())
    per_group = [m for m in computed if not _fitted(m)]
    gap = [m for m in per_group if metrics.get(m).fairness_primary or m in POWER_METRICS]
    return {
        "test": computed,
        "external": list(EXTERNAL_VALUE),
        "gap": [*gap, "equalized_odds"],
        "ratio": [m for m in per_group if metrics.get(m).ratio],
        "worst_group": list(metrics.keys(worst_group=True)),
        "delta": [m for m in computed if metrics.get(m).external_primary or m in EXTRA_DELTA],
    }


def truths(sc: Scenario, seed: int = 12345) -> dict[str, float]:
    """Return every target: test metrics, gaps, ratios, worst groups and external − test deltas.

    A metric of the registry without a population value here is left out
    (the table lists it as not simulated, i.e. unproven).
    """
    rng = np.random.default_rng(seed)
    t = cohort_truth(sc.test, sc, rng)
    e = cohort_truth(sc.external, sc, rng)
    c = cells()
    out = {f"test.{m}": t[m] for m in c["test"] if m in t}
    out.update({f"external.{m}": e[m] for m in c["external"] if m in e})
    out.update({f"fairness.sex.gap.{m}": t[f"gap.{m}"] for m in c["gap"] if f"gap.{m}" in t})
    out.update({f"fairness.sex.ratio.{m}": t[f"ratio.{m}"] for m in c["ratio"] if f"ratio.{m}" in t})
    out.update(
        {f"fairness.sex.worst_group.{m}": t[f"worst_group.{m}"] for m in c["worst_group"] if f"worst_group.{m}" in t}
    )
    out.update({f"external.delta.{m}": e[m] - t[m] for m in c["delta"] if m in t and m in e})
    out["test.auroc (DeLong)"] = out["test.auroc"]
    out["external.delta.auroc (DeLong)"] = out["external.delta.auroc"]
    return out


def one_audit(
    rep: int, *, n: int, k: int, n_boot: int, methods: Sequence[str], sc: Scenario
) -> dict[str, dict[str, Estimate]]:
    """Return {method: estimates} of one simulated audit (test, fairness on test, external).

    The distributions are computed once (with jackknife values) and every
    interval method reads the same resamples, as in an audit.
    """
    rng = np.random.default_rng(10_000 + rep)
    test = simulate(n, k, sc.test, sc, rng, "t")
    ext = simulate(n, k, sc.external, sc, rng, "e")
    frame = pd.concat([test.assign(cohort="test"), ext.assign(cohort="ext")], ignore_index=True)
    clustered = k > 1
    unit = (frame["cohort"] + "|" + frame["patient"]).to_numpy() if clustered else None
    res = make_resamples(
        frame["cohort"].to_numpy(),
        n_boot=n_boot,
        random_state=rep,
        clusters=unit,
        jackknife_groups=frame["cohort"].to_numpy(),
    )
    engine = Engine(res, IntervalSettings(method="bca"))
    p = frame["p"].to_numpy()
    y = frame["y"].to_numpy()
    codes = pd.factorize(pd.Series(unit))[0] if clustered else None
    analyzer = CohortAnalyzer(
        TaskArrays(y, np.c_[1 - p, p], ("0", "1"), clusters=codes), engine, threshold=THRESHOLD, n_bins=N_BINS
    )
    rows_t = np.flatnonzero(frame["cohort"].to_numpy() == "test")
    rows_e = np.flatnonzero(frame["cohort"].to_numpy() == "ext")
    dt, de = analyzer.metrics(rows_t), analyzer.metrics(rows_e)
    c = cells()
    # the gaps' and ratios' projection intervals do not depend on the interval method
    sex = frame["sex"].iloc[rows_t].reset_index(drop=True)
    fair = analyse_attribute(sex, rows_t, analyzer, columns=["sex"], cohort="test", settings=FairnessSettings())
    shared: dict[str, Estimate] = {f"fairness.sex.gap.{m}": fair.gap[m] for m in c["gap"] if m in fair.gap}
    shared.update({f"fairness.sex.ratio.{m}": fair.ratio[m] for m in c["ratio"] if m in fair.ratio})
    groups = []
    for name in ("F", "M"):
        g_rows = rows_t[sex.to_numpy() == name]
        n_pos, n_neg = analyzer.counts(g_rows)
        groups.append(_Group(name, g_rows, n_pos, n_neg, True, dists=analyzer.metrics(g_rows, fits=False)))
    if not clustered:
        d = delong_interval(y[rows_t], p[rows_t])
        shared["test.auroc (DeLong)"] = Estimate(d.estimate, d.ci_low, d.ci_high)
        r = delong_unpaired_test(y[rows_e], p[rows_e], y[rows_t], p[rows_t])
        shared["external.delta.auroc (DeLong)"] = Estimate(r.estimate, r.ci_low, r.ci_high)
    out: dict[str, dict[str, Estimate]] = {}
    for method in methods:
        engine.settings = IntervalSettings(method=method)
        est: dict[str, Estimate] = {f"test.{m}": analyzer.estimate(rows_t, m, dt[m]) for m in c["test"] if m in dt}
        est.update({f"external.{m}": analyzer.estimate(rows_e, m, de[m]) for m in c["external"]})
        worst = worst_groups(groups, analyzer)  # the audit's own selection and interval
        est.update({f"fairness.sex.worst_group.{m}": worst[m] for m in c["worst_group"] if m in worst})
        for m in c["delta"]:  # the rule of auditkit/analysis/external.py's _delta
            if m not in dt or m not in de:
                continue
            diff = de[m] - dt[m]
            if m in NORMAL_INTERVAL_METRICS:
                est[f"external.delta.{m}"] = normal_estimate(diff, level=0.95)
            else:
                est[f"external.delta.{m}"] = engine.estimate(diff)
        est.update(shared)
        out[method] = est
    return out


def run(
    *, n_sim: int, n: int, k: int, n_boot: int, methods: list[str], sc: Scenario | None = None,
    progress: bool = False, first_rep: int = 0,
) -> dict[str, dict[str, dict[str, float]]]:
    """Return {method: {cell: {truth, coverage, n, mean_estimate, mean_width, below, above}}}.

    Simulated audit ``rep`` uses seed 10,000 + rep for its data and ``rep`` for its
    resamples, reps ``first_rep`` .. ``first_rep + n_sim − 1``: runs over disjoint
    ranges are independent and :func:`pool` merges their tables.
    """
    sc = sc or Scenario()
    truth = truths(sc)
    hits: dict[str, dict[str, list[tuple[float, float, float]]]] = {m: {} for m in methods}
    live = progress and sys.stderr.isatty()
    span = range(first_rep, first_rep + n_sim)
    reps = track(span, total=n_sim, description="simulated audits") if live else span
    with single_threaded_blas():
        for rep in reps:
            if progress and not sys.stderr.isatty() and (rep - first_rep) % 20 == 0:
                print(f"{rep - first_rep}/{n_sim} simulated audits", file=sys.stderr, flush=True)
            for method, estimates in one_audit(rep, n=n, k=k, n_boot=n_boot, methods=methods, sc=sc).items():
                for key, est in estimates.items():
                    if key not in truth:
                        continue
                    lo = est.ci_low if est.ci_low is not None else np.nan
                    hi = est.ci_high if est.ci_high is not None else np.nan
                    point = est.estimate if est.estimate is not None else np.nan
                    hits[method].setdefault(key, []).append((point, lo, hi))
    table: dict[str, dict[str, dict[str, float]]] = {}
    for method in methods:
        table[method] = {}
        for key, vals in hits[method].items():
            a = np.array(vals, dtype=np.float64)
            ok = np.isfinite(a[:, 1]) & np.isfinite(a[:, 2])
            t = truth[key]
            table[method][key] = {
                "truth": t,
                "coverage": float(np.mean((a[ok, 1] <= t) & (t <= a[ok, 2]))) if ok.any() else float("nan"),
                "below": float(np.mean(a[ok, 2] < t)) if ok.any() else float("nan"),
                "above": float(np.mean(a[ok, 1] > t)) if ok.any() else float("nan"),
                "n": int(ok.sum()),
                "mean_estimate": float(np.nanmean(a[:, 0])),
                "mean_width": float(np.mean(a[ok, 2] - a[ok, 1])) if ok.any() else float("nan"),
            }
    return table


def pool(tables: Sequence[dict[str, dict[str, dict[str, float]]]]) -> dict[str, dict[str, dict[str, float]]]:
    """Return one table from tables of disjoint rep ranges (rates and means weighted by their counts)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for method in tables[0]:
        out[method] = {}
        for key in tables[0][method]:
            rows = [t[method][key] for t in tables if key in t.get(method, {})]
            total = sum(r["n"] for r in rows)

            def mean(field: str, rows: list[dict[str, float]] = rows, total: int = total) -> float:
                return float(sum(r[field] * r["n"] for r in rows) / total) if total else float("nan")

            out[method][key] = {
                "truth": rows[0]["truth"], "n": total,
                **{f: mean(f) for f in ("coverage", "below", "above", "mean_estimate", "mean_width")},
            }  # fmt: skip
    return out


def _metric_of(cell: str) -> str:
    return cell.split(".")[-1].split(" ")[0]


def unproven(table: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """Return the registry's gateable computed metrics with no simulated cell (their intervals are unproven)."""
    covered = {_metric_of(k) for k in next(iter(table.values()))} if table else set()
    return [m for m in metrics.cohort_keys() if _gateable(m) and m not in covered]


def outside(table: dict[str, dict[str, dict[str, float]]], method: str, lo: float = 0.93, hi: float = 0.97) -> list[str]:
    """Return the cells of gateable metrics whose coverage under ``method`` is outside [lo, hi]."""
    return [
        key for key, row in table[method].items()
        if _gateable(_metric_of(key)) and not (lo <= row["coverage"] <= hi)
    ]  # fmt: skip


def _print(table: dict[str, dict[str, dict[str, float]]], *, n_sim: int, n: int, k: int) -> None:
    methods = list(table)
    design = "independent images" if k == 1 else f"{n // k} patients x {k} images"
    print(f"coverage of 95% intervals: {n_sim} simulated audits, n = {n} per cohort, {design}")
    head = f"{'cell':40s} {'truth':>8s} {'mean est':>9s} " + " ".join(f"{m:>11s}" for m in methods)
    print(head)
    for key in table[methods[0]]:
        row = table[methods[0]][key]
        cells_ = []
        for m in methods:
            cov = table[m][key]["coverage"]
            flag = "" if 0.93 <= cov <= 0.97 else ("*" if _gateable(_metric_of(key)) else "d")
            cells_.append(f"{cov:10.3f}{flag or ' '}")
        print(f"{key:40s} {row['truth']:8.4f} {row['mean_estimate']:9.4f} " + " ".join(cells_))
    print("* outside 0.93-0.97 (gateable); d outside, descriptive (registry gateable=False)")
    missing = unproven(table)
    if missing:
        print("UNPROVEN: registry metrics marked gateable but not simulated here: " + ", ".join(missing))


def markdown(independent: dict, clustered: dict) -> str:
    """Return benchmarks/RESULTS.md's coverage table of two pooled runs (``--json`` documents, one per design).

    Bold: the default method of the design (``ci_method: auto``: percentile
    unclustered, BCa clustered); ``*``: a gateable metric outside 0.93-0.97;
    ``d``: descriptive (registry ``gateable=False``). The last column gives the
    Monte Carlo SE of a true 0.95 at each design's number of audits.
    """
    tables = (independent["table"], clustered["table"])
    lines = [
        "| cell (95% interval) | truth | independent: percentile | independent: BCa "
        "| clustered: percentile | clustered: BCa | audits (indep. / clustered) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key in tables[0]["percentile"]:
        cells, counts = [], []
        for design, table in enumerate(tables):
            for method in ("percentile", "bca"):
                row = table.get(method, {}).get(key)
                if row is None:
                    cells.append("")
                    continue
                cov = row["coverage"]
                flag = "" if 0.93 <= cov <= 0.97 else (" \\*" if _gateable(_metric_of(key)) else " d")
                bold = (design == 0 and method == "percentile") or (design == 1 and method == "bca")
                cells.append(f"**{cov:.3f}**{flag}" if bold else f"{cov:.3f}{flag}")
            row = table["percentile"].get(key)
            counts.append(str(row["n"]) if row else "0")
        truth = tables[0]["percentile"][key]["truth"]
        lines.append(f"| {key} | {truth:.4f} | " + " | ".join(cells) + f" | {' / '.join(counts)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the harness and print the coverage table (and write it as JSON with --json)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-sim", type=int, default=300)
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--images-per-patient", type=int, default=1)
    ap.add_argument("--methods", default="percentile,bca")
    ap.add_argument("--json", default=None)
    ap.add_argument("--first-rep", type=int, default=0, help="first simulated audit (disjoint ranges pool)")
    ap.add_argument("--pool", nargs="+", default=None, metavar="JSON",
                    help="print the pooled table of earlier --json runs of one design instead of simulating")
    ap.add_argument("--markdown", nargs=2, default=None, metavar=("INDEPENDENT_JSON", "CLUSTERED_JSON"),
                    help="print RESULTS.md's table of two pooled --json documents (independent, clustered)")
    args = ap.parse_args(argv)
    if args.markdown:
        print(markdown(*(json.loads(Path(p).read_text()) for p in args.markdown)))
        return 0
    if args.pool:
        runs = [json.loads(Path(path).read_text()) for path in args.pool]
        table = pool([r["table"] for r in runs])
        n_sim = sum(r["n_sim"] for r in runs)
        _print(table, n_sim=n_sim, n=runs[0]["n"], k=runs[0]["images_per_patient"])
        if args.json:
            with open(args.json, "w") as fh:
                json.dump({**runs[0], "n_sim": n_sim, "seconds": sum(r["seconds"] for r in runs), "table": table},
                          fh, indent=1)
        return 0
    t0 = time.perf_counter()
    table = run(
        first_rep=args.first_rep,
        n_sim=args.n_sim,
        n=args.n,
        k=args.images_per_patient,
        n_boot=args.n_boot,
        methods=args.methods.split(","),
        progress=True,
    )
    _print(table, n_sim=args.n_sim, n=args.n, k=args.images_per_patient)
    elapsed = time.perf_counter() - t0
    print(f"{elapsed:.0f} s on {platform.machine()} ({platform.processor() or 'cpu'})")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {
                    "n_sim": args.n_sim,
                    "n": args.n,
                    "images_per_patient": args.images_per_patient,
                    "n_boot": args.n_boot,
                    "first_rep": args.first_rep,
                    "seconds": elapsed,
                    "table": table,
                },
                fh,
                indent=1,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
