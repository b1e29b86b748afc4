"""Every registered metric, checked the same way (in the spirit of scikit-learn's ``test_common``).

For each metric of :mod:`auditkit.stats.metrics` that the statistics compute
per cohort: its point estimate through the audit's own path (views, the
engine, :class:`~auditkit.stats.cohort.CohortAnalyzer`) against an oracle
(scikit-learn's metrics, or a NumPy/SciPy hand computation of the published
definition: binned ECE, MCE, the Kumar et al. debiased errors, the logistic
recalibration intercept and slope fitted by SciPy); invariance to the order
of the rows; a sample without one class, where every undefined value must be
explained by a need the metric declares; and its interval containing its
estimate. A metric registered without an oracle here fails
``test_every_computed_metric_has_an_oracle``: adding a metric means adding
its row below.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, optimize, special
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from auditkit.stats import metrics as registry
from auditkit.stats.bootstrap import IntervalSettings, make_resamples
from auditkit.stats.cohort import CohortAnalyzer, TaskArrays
from auditkit.stats.engine import Engine

THRESHOLD = 0.5
N_BINS = 15


# --------------------------------------------------------------------------- oracles


def _cells(y, s):
    tn, fp, fn, tp = confusion_matrix(y, (s >= THRESHOLD).astype(int), labels=[0, 1]).ravel()
    return tp, fp, tn, fn


def _bins_uniform(s):
    return np.clip(np.digitize(s, np.linspace(0, 1, N_BINS + 1)[1:-1], right=False), 0, N_BINS - 1)


def _bins_mass(s):
    edges = np.quantile(s, np.linspace(0, 1, N_BINS + 1))
    edges[0], edges[-1] = 0.0, 1.0
    return np.clip(np.searchsorted(edges, s, side="right") - 1, 0, N_BINS - 1)


def _binned(y, s, bins):
    out = []
    for b in range(N_BINS):
        k = bins == b
        if k.any():
            out.append((k.sum(), y[k].mean(), s[k].mean()))
    return out


def _ece(y, s, bins):
    return sum(n * abs(yb - pb) for n, yb, pb in _binned(y, s, bins)) / len(y)


def _mce(y, s):
    return max(abs(yb - pb) for _, yb, pb in _binned(y, s, _bins_uniform(s)))


def _debiased_l2(y, s):
    total = 0.0
    for n, yb, pb in _binned(y, s, _bins_mass(s)):
        total += n / len(y) * ((yb - pb) ** 2 - (yb * (1 - yb) / (n - 1) if n > 1 else 0.0))
    return np.sqrt(max(total, 0.0))


def _debiased_l1(y, s):
    total = 0.0
    for n, yb, pb in _binned(y, s, _bins_mass(s)):
        d, sd = yb - pb, np.sqrt(yb * (1 - yb) / n)
        # E|N(d, sd²)| of the folded normal, by numerical integration (SciPy), not the closed form
        folded = abs(d) if sd == 0 else integrate.quad(
            lambda x, d=d, sd=sd: abs(x) * np.exp(-0.5 * ((x - d) / sd) ** 2) / (sd * np.sqrt(2 * np.pi)),
            d - 12 * sd, d + 12 * sd, points=[0.0] if d - 12 * sd < 0 < d + 12 * sd else None,
        )[0]  # fmt: skip
        total += n * (2 * abs(d) - folded)
    return max(total / len(y), 0.0)


def _logit(s):
    return special.logit(np.clip(s, 1e-12, 1 - 1e-12))


def _intercept(y, s):
    x = _logit(s)

    def nll(a):
        eta = a + x
        return float(np.sum(np.logaddexp(0, eta) - y * eta))

    return optimize.minimize_scalar(nll, bounds=(-10, 10), method="bounded", options={"xatol": 1e-10}).x


def _slope(y, s):
    model = LogisticRegression(C=np.inf, tol=1e-10, max_iter=10_000).fit(_logit(s)[:, None], y)
    return float(model.coef_[0, 0])


ORACLES = {
    "auroc": lambda y, s: roc_auc_score(y, s),
    "auprc": lambda y, s: average_precision_score(y, s),
    "sensitivity": lambda y, s: recall_score(y, s >= THRESHOLD),
    "specificity": lambda y, s: recall_score(y, s >= THRESHOLD, pos_label=0),
    "ppv": lambda y, s: precision_score(y, s >= THRESHOLD),
    "npv": lambda y, s: precision_score(y, s >= THRESHOLD, pos_label=0),
    "fnr": lambda y, s: 1 - recall_score(y, s >= THRESHOLD),
    "fpr": lambda y, s: (lambda tp, fp, tn, fn: fp / (fp + tn))(*_cells(y, s)),
    "lr_positive": lambda y, s: recall_score(y, s >= THRESHOLD) / (1 - recall_score(y, s >= THRESHOLD, pos_label=0)),
    "lr_negative": lambda y, s: (1 - recall_score(y, s >= THRESHOLD)) / recall_score(y, s >= THRESHOLD, pos_label=0),
    "f1": lambda y, s: f1_score(y, s >= THRESHOLD),
    "balanced_accuracy": lambda y, s: balanced_accuracy_score(y, s >= THRESHOLD),
    "accuracy": lambda y, s: accuracy_score(y, s >= THRESHOLD),
    "ece": lambda y, s: _ece(y, s, _bins_uniform(s)),
    "ece_equal_mass": lambda y, s: _ece(y, s, _bins_mass(s)),
    "ece_debiased": _debiased_l2,
    "ece_l1_debiased": _debiased_l1,
    "mce": _mce,
    "brier": lambda y, s: brier_score_loss(y, s),
    "brier_scaled": lambda y, s: 1 - brier_score_loss(y, s) / (y.mean() * (1 - y.mean())),
    "oe": lambda y, s: y.mean() / s.mean(),
    "intercept": _intercept,
    "slope": _slope,
}
TOLERANCE = {"intercept": 1e-6, "slope": 1e-5, "ece_l1_debiased": 1e-7}


# --------------------------------------------------------------------------- the audit's path


def sample(n=600, *, prevalence=0.35, seed=0, miscalibration=0.7):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < prevalence).astype(np.int64)
    z = rng.normal(size=n) + 1.8 * y - 0.9
    return y, special.expit(miscalibration * z)


def analyse(y, s, *, n_boot=60, seed=0, method="percentile"):
    engine = Engine(make_resamples(np.zeros(len(y), int), n_boot=n_boot, random_state=seed),
                    IntervalSettings(method=method))  # fmt: skip
    analyzer = CohortAnalyzer(TaskArrays(y, np.c_[1 - s, s], ("neg", "pos")), engine, threshold=THRESHOLD,
                              n_bins=N_BINS)  # fmt: skip
    return analyzer, analyzer.metrics(np.arange(len(y)))


COMPUTED = [m.key for m in registry.all_metrics() if m.computed]


@pytest.fixture(scope="module")
def computed():
    y, s = sample()
    return y, s, analyse(y, s)[1]


def test_every_computed_metric_has_an_oracle():
    assert set(COMPUTED) <= set(ORACLES), f"add an oracle for {sorted(set(COMPUTED) - set(ORACLES))}"


def test_the_statistics_compute_exactly_the_registered_metrics(computed):
    _, _, dists = computed
    produced = set(dists)
    declared = set(COMPUTED)
    # a metric the statistics compute but nobody declared would be reported without a label or needs
    assert produced <= declared, f"undeclared metrics: {sorted(produced - declared)}"
    missing = declared - produced
    if missing:
        pytest.skip(f"declared before their computation landed: {sorted(missing)}")


@pytest.mark.parametrize("key", COMPUTED)
def test_each_metric_matches_its_oracle(computed, key):
    y, s, dists = computed
    if key not in dists:
        pytest.skip(f"{key} is declared but not computed in this tree")
    expected = ORACLES[key](y, s)
    assert dists[key].point == pytest.approx(expected, abs=TOLERANCE.get(key, 1e-9))


@pytest.mark.parametrize("key", COMPUTED)
def test_each_metric_is_invariant_to_the_order_of_the_rows(computed, key):
    y, s, dists = computed
    if key not in dists:
        pytest.skip(f"{key} is declared but not computed in this tree")
    order = np.random.default_rng(5).permutation(len(y))
    shuffled = analyse(y[order], s[order])[1]
    assert shuffled[key].point == pytest.approx(dists[key].point, abs=1e-9)


@pytest.mark.parametrize("missing", [1, 0])
def test_without_one_class_every_undefined_metric_declares_that_need(missing):
    y, s = sample(300, seed=3)
    keep = y != missing
    y, s = y[keep], s[keep]
    assert (s >= THRESHOLD).any() and (s < THRESHOLD).any()
    _, dists = analyse(y, s, n_boot=20)
    n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
    for key, dist in dists.items():
        metric = registry.get(key)
        declared = metric.needs_positives if missing == 1 else metric.needs_negatives
        if not np.isfinite(dist.point):
            assert declared, f"{key} is undefined without {'positives' if missing else 'negatives'} but does not declare it"
            reason = registry.undefined_reason(key, n_positive=n_pos, n_negative=n_neg)
            assert reason == ("no positive cases" if missing == 1 else "no negative cases")


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_each_interval_contains_its_estimate(method):
    y, s = sample(800, seed=8, miscalibration=0.5)
    analyzer, dists = analyse(y, s, n_boot=200, method=method)
    outside = []
    for key, dist in dists.items():
        est = analyzer.engine.estimate(dist)
        if est.estimate is None:
            continue
        if not est.ci_low <= est.estimate <= est.ci_high:
            outside.append((key, est.ci_low, est.estimate, est.ci_high))
    assert not outside


def test_declarations_are_consistent():
    labels = [m.label for m in registry.all_metrics()]
    assert len(labels) == len(set(labels)), "two metrics share a printed label"
    for m in registry.all_metrics():
        assert m.decimals in (2, 3)
        if m.target is not None:
            assert m.higher_is_better is None, f"{m.key}: a target value means neither direction is better"
        if m.twin is not None:
            assert registry.get(m.twin) is not None and registry.get(m.twin).fairness_primary
        if m.needs_threshold:
            assert m.family == "discrimination"
    with pytest.raises(ValueError, match="already registered"):
        registry.register(registry.get("auroc"))


def test_a_registered_rate_is_computed_everywhere_without_other_changes():
    """A new confusion-matrix rate (the diagnostic odds ratio) declared only in the registry."""
    dor = registry.Metric("dor_test", "DOR (test)", "discrimination", "(TP·TN) / (FP·FN)",
                          from_counts=lambda tp, fp, tn, fn: tp * tn / (fp * fn), needs_threshold=True,
                          needs_positives=True, needs_negatives=True)  # fmt: skip
    registry.register(dor)
    try:
        y, s = sample(400, seed=2)
        _, dists = analyse(y, s, n_boot=20)
        tp, fp, tn, fn = _cells(y, s)
        assert dists["dor_test"].point == pytest.approx(tp * tn / (fp * fn))
        assert "dor_test" in registry.discrimination_keys()
        from auditkit.report import formatting

        assert formatting.metric_label("dor_test") == "DOR (test)"
    finally:
        registry._REGISTRY.pop("dor_test")


def test_multiclass_macro_metrics_match_scikit_learn():
    rng = np.random.default_rng(4)
    n, k = 600, 3
    y = rng.choice(k, n, p=[0.5, 0.3, 0.2])
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += 1.2
    p = special.softmax(logits, axis=1)
    engine = Engine(make_resamples(np.zeros(n, int), n_boot=20, random_state=0), IntervalSettings())
    dists = CohortAnalyzer(TaskArrays(y, p, ("a", "b", "c")), engine, threshold=None).metrics(np.arange(n))
    pred = p.argmax(1)
    assert dists["auroc"].point == pytest.approx(roc_auc_score(y, p, multi_class="ovr", average="macro"))
    assert dists["sensitivity"].point == pytest.approx(recall_score(y, pred, average="macro"))
    assert dists["ppv"].point == pytest.approx(precision_score(y, pred, average="macro"))
    assert dists["f1"].point == pytest.approx(f1_score(y, pred, average="macro"))
    assert dists["balanced_accuracy"].point == pytest.approx(balanced_accuracy_score(y, pred))
    assert dists["accuracy"].point == pytest.approx(accuracy_score(y, pred))


def test_the_shipped_policies_gate_only_gateable_metrics():
    """A rule of a shipped policy on a registered metric must point at one whose interval a gate may trust."""
    from importlib import resources

    import yaml

    for name in ("default.yaml", "monitor.yaml"):
        path = resources.files("auditkit.policies") / name
        if not path.is_file():
            continue
        for rule in yaml.safe_load(path.read_text("utf-8")).get("rules", []):
            metric = registry.get(str(rule.get("metric", "")).split(".")[-1])
            if metric is not None:
                assert metric.gateable, f"{name}: rule {rule.get('id')!r} gates on descriptive {metric.key!r}"
