"""Benchmark: the shared bootstrap vs a naive scikit-learn loop and fairlearn's MetricFrame bootstrap.

Workload (issue 3): n = 100,000 predictions, 10 subgroups, 1,000 resamples,
AUROC + sensitivity + specificity + ECE (15 equal-width bins) per group with
95% percentile intervals, resamples stratified by class. Each contender does
the whole job: draw the resamples, compute the metrics per group, form the
intervals.

* auditkit: one (units x resamples) count matrix, every group a view over it;
* naive: per resample, draw stratified indices, then per group scikit-learn's
  ``roc_auc_score``/``recall_score`` and a NumPy binned ECE;
* fairlearn: ``MetricFrame(..., n_boot=B)`` with the same four metrics.

The naive loop and fairlearn are timed on a fraction of the resamples and
extrapolated linearly (their cost is linear in B; said in the output). Also
times DeLong's variance against one ``roc_auc_score`` call at n = 100,000,
and checks, for a sample of resamples and groups, that the engine's AUROC
equals ``roc_auc_score`` on that resample's rows to 1e-12.

Run: ``.venv/bin/python benchmarks/bootstrap.py [--repeats 3] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
from sklearn.metrics import recall_score, roc_auc_score

from auditkit.stats.bootstrap import IntervalSettings, make_resamples
from auditkit.stats.calibration import binned_ece
from auditkit.stats.delong import delong_variance
from auditkit.stats.discrimination import threshold_rates
from auditkit.stats.engine import Engine, single_threaded_blas
from auditkit.stats.views import BinaryView, FeatureSpec, uniform_edges

THRESHOLD = 0.5
N_BINS = 15


def make_data(n: int, n_groups: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (y (n,), probabilities (n,), group (n,)): binormal scores, group effects on the scores."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, n_groups, n)
    y = (rng.random(n) < 0.3).astype(np.int64)
    z = rng.normal(size=n) + (1.0 + 0.1 * group) * y - 0.8
    return y, 1.0 / (1.0 + np.exp(-z)), group


def numpy_ece(y: np.ndarray, p: np.ndarray) -> float:
    """Binned ECE, 15 equal-width bins, as a user would write it with NumPy."""
    b = np.clip(np.searchsorted(np.linspace(0, 1, N_BINS + 1), p, side="right") - 1, 0, N_BINS - 1)
    pos = np.bincount(b, weights=y, minlength=N_BINS)
    conf = np.bincount(b, weights=p, minlength=N_BINS)
    return float(np.abs(pos - conf).sum() / len(p))


def run_auditkit(y, p, group, n_boot, seed=0):
    """Return ({group: {metric: (point, lo, hi)}}, boot values per group, resamples)."""
    n_groups = int(group.max()) + 1
    with single_threaded_blas():
        res = make_resamples(y, n_boot=n_boot, random_state=seed)
        engine = Engine(res, IntervalSettings())
        spec = FeatureSpec(threshold=THRESHOLD, uniform_edges=uniform_edges(N_BINS))

        def statistic(batch):
            rates = threshold_rates(batch)
            return {
                "auroc": batch.auroc(),
                "sensitivity": rates["sensitivity"],
                "specificity": rates["specificity"],
                "ece": binned_ece(batch),
            }

        out, boots = {}, {}
        for g in range(n_groups):
            rows = np.flatnonzero(group == g)
            view = BinaryView.from_arrays(rows, y[rows], p[rows], spec=spec)
            dists = engine.evaluate(view, statistic)
            out[g] = {k: engine.estimate(d) for k, d in dists.items()}
            boots[g] = dists
    return out, boots, res


def run_naive(y, p, group, n_boot, seed=0):
    """Return per-group percentile intervals from a per-resample loop of scikit-learn calls."""
    rng = np.random.default_rng(seed)
    neg, pos = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
    n_groups = int(group.max()) + 1
    values = np.empty((n_boot, n_groups, 4))
    for b in range(n_boot):
        idx = np.concatenate([rng.choice(neg, len(neg)), rng.choice(pos, len(pos))])
        yb, pb, gb = y[idx], p[idx], group[idx]
        pred = (pb >= THRESHOLD).astype(np.int64)
        for g in range(n_groups):
            m = gb == g
            values[b, g] = (
                roc_auc_score(yb[m], pb[m]),
                recall_score(yb[m], pred[m]),
                recall_score(yb[m], pred[m], pos_label=0),
                numpy_ece(yb[m], pb[m]),
            )
    return np.quantile(values, [0.025, 0.975], axis=0)


def run_fairlearn(y, p, group, n_boot, seed=0):
    """Return fairlearn MetricFrame's bootstrap intervals per group."""
    from fairlearn.metrics import MetricFrame

    metrics = {
        "auroc": roc_auc_score,
        "sensitivity": lambda t, s: recall_score(t, s >= THRESHOLD),
        "specificity": lambda t, s: recall_score(t, s >= THRESHOLD, pos_label=0),
        "ece": numpy_ece,
    }
    frame = MetricFrame(
        metrics=metrics,
        y_true=y,
        y_pred=p,
        sensitive_features=group,
        n_boot=n_boot,
        ci_quantiles=[0.025, 0.975],
        random_state=seed,
    )
    return frame.by_group_ci


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def verify(y, p, group, boots, res, *, n_check=8):
    """Return the largest |engine AUROC − roc_auc_score| over sampled resamples and groups (and rate checks)."""
    counts = res.counts[res.unit_of_row]
    rng = np.random.default_rng(1)
    worst = 0.0
    for r in rng.choice(res.n_boot, n_check, replace=False):
        idx = np.repeat(np.arange(len(y)), counts[:, r])
        yb, pb, gb = y[idx], p[idx], group[idx]
        for g in rng.choice(int(group.max()) + 1, 3, replace=False):
            m = gb == g
            worst = max(worst, abs(boots[g]["auroc"].boot[r] - roc_auc_score(yb[m], pb[m])))
            sens = recall_score(yb[m], pb[m] >= THRESHOLD)
            assert abs(boots[g]["sensitivity"].boot[r] - sens) < 1e-12
            assert abs(boots[g]["ece"].boot[r] - numpy_ece(yb[m], pb[m])) < 1e-9
    return worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=10)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--naive-fraction", type=int, default=20, help="resamples timed for the naive loop"
    )
    parser.add_argument(
        "--fairlearn-fraction", type=int, default=20, help="resamples timed for fairlearn"
    )
    parser.add_argument("--quick", action="store_true", help="n = 20,000, 200 resamples, 1 repeat")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    args = parser.parse_args()
    if args.quick:
        args.n, args.n_boot, args.repeats, args.naive_fraction, args.fairlearn_fraction = (
            20_000,
            200,
            1,
            5,
            5,
        )
    y, p, group = make_data(args.n, args.groups)
    print(
        f"bootstrap benchmark: n={args.n:,}, {args.groups} groups, {args.n_boot} resamples, "
        f"{platform.machine()} {platform.processor() or ''}, python {platform.python_version()}"
    )

    ours = []
    for _ in range(args.repeats):
        seconds, (result, boots, res) = timed(run_auditkit, y, p, group, args.n_boot)
        ours.append(seconds)
    tracemalloc.start()
    run_auditkit(y, p, group, args.n_boot)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    worst = verify(y, p, group, boots, res)

    naive = [
        timed(run_naive, y, p, group, args.naive_fraction)[0] * args.n_boot / args.naive_fraction
        for _ in range(args.repeats)
    ]
    fair = [
        timed(run_fairlearn, y, p, group, args.fairlearn_fraction)[0]
        * args.n_boot
        / args.fairlearn_fraction
        for _ in range(args.repeats)
    ]

    auc_calls, delong_calls = [], []
    for _ in range(max(5, args.repeats)):
        auc_calls.append(timed(roc_auc_score, y, p)[0])
        delong_calls.append(timed(delong_variance, y, p)[0])

    med = statistics.median
    figures = {
        "n": args.n,
        "groups": args.groups,
        "n_boot": args.n_boot,
        "repeats": args.repeats,
        "auditkit_s": med(ours),
        "naive_s_extrapolated": med(naive),
        "fairlearn_s_extrapolated": med(fair),
        "ratio_naive": med(naive) / med(ours),
        "ratio_fairlearn": med(fair) / med(ours),
        "peak_tracemalloc_mib": peak / 2**20,
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "max_auroc_abs_diff_vs_sklearn": worst,
        "roc_auc_score_ms": med(auc_calls) * 1e3,
        "delong_variance_ms": med(delong_calls) * 1e3,
        "delong_ratio": med(delong_calls) / med(auc_calls),
        "runs_auditkit_s": ours,
        "runs_naive_s": naive,
        "runs_fairlearn_s": fair,
    }
    g0 = result[0]
    print(
        f"  group 0: AUROC {g0['auroc'].estimate:.4f} ({g0['auroc'].ci_low:.4f}-{g0['auroc'].ci_high:.4f}), "
        f"ECE {g0['ece'].estimate:.4f} ({g0['ece'].ci_low:.4f}-{g0['ece'].ci_high:.4f})"
    )
    print(
        f"  auditkit engine        {med(ours):8.2f} s   (runs: {', '.join(f'{s:.2f}' for s in ours)})"
    )
    print(
        f"  naive sklearn loop     {med(naive):8.1f} s   (timed {args.naive_fraction} resamples, x{args.n_boot // args.naive_fraction})"
        f"   ratio {figures['ratio_naive']:.0f}x (goal >= 50x)"
    )
    print(
        f"  fairlearn MetricFrame  {med(fair):8.1f} s   (timed n_boot={args.fairlearn_fraction}, x{args.n_boot // args.fairlearn_fraction})"
        f"   ratio {figures['ratio_fairlearn']:.0f}x (goal >= 10x)"
    )
    print(
        f"  peak memory: {figures['peak_tracemalloc_mib']:.0f} MiB traced (numpy), max RSS {figures['max_rss_mib']:.0f} MiB (goal < 2048)"
    )
    print(
        f"  AUROC per resample vs roc_auc_score on the same rows: max |diff| = {worst:.1e} (goal <= 1e-12)"
    )
    print(
        f"  DeLong variance {figures['delong_variance_ms']:.1f} ms vs one roc_auc_score {figures['roc_auc_score_ms']:.1f} ms:"
        f" {figures['delong_ratio']:.2f}x (goal <= 2x)"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2))
    ok = worst <= 1e-12 and figures["delong_ratio"] <= 2.0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
