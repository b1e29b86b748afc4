"""Multi-label findings audited per finding: a planted shortcut is caught in its finding only.

Planted truth: three findings scored on the same patients at three sites;
``effusion``'s internal scores lean on a marker that the external site lacks
(a shortcut), the other two findings discriminate equally everywhere. The
audit must show a significant external AUROC drop for effusion and none for
the others, with Holm adjustment across findings x subgroups. Label policy:
hand counts of rows kept under ignore / zeros / ones (CheXpert's U-policies).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from auditkit.audit.config import build_settings
from auditkit.audit.multilabel import audit_findings, encode_finding, finding_names, finding_table
from auditkit.audit.statistics import compute_statistics
from auditkit.errors import PredictionsError
from auditkit.predictions_table import from_frame

FINDINGS = ("atelectasis", "effusion", "nodule")


def _table(n: int = 900, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    site = rng.choice(["site_A", "site_B", "site_C"], n, p=[0.4, 0.3, 0.3])
    split = np.where(site == "site_C", "external", rng.choice(["val", "test"], n, p=[0.4, 0.6]))
    frame = pd.DataFrame({
        "id": [f"img{i}" for i in range(n)], "patient_id": [f"p{i}" for i in range(n)], "site": site,
        "split": split, "sex": rng.choice(["F", "M"], n),
    })  # fmt: skip
    logit = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    for finding in FINDINGS:
        y = (rng.random(n) < 0.35).astype(float)
        signal = 1.6 * y + rng.normal(0, 1, n)
        if finding == "effusion":
            marker = (y == 1) & (site != "site_C") & (rng.random(n) < 0.9)
            signal = (
                0.2 * y + 3.0 * marker + rng.normal(0, 1, n)
            )  # the shortcut carries the internal AUROC
        labels = y.astype(object)
        labels[rng.random(n) < 0.05] = -1.0  # uncertain
        labels[rng.random(n) < 0.03] = None  # unlabelled
        frame[f"label_{finding}"] = labels
        frame[f"score_{finding}"] = logit(signal - 1)
    return frame


def _statistics(settings):
    def run(table: pd.DataFrame) -> dict:
        return compute_statistics(
            from_frame(table, None, path=Path("multilabel.csv"), sha256="0" * 64), settings
        )

    return run


def test_uncertainty_policies_by_hand():
    values = [1, 0, -1, None, "", "1.0", -1]
    np.testing.assert_array_equal(
        encode_finding(values, policy="ignore"), [1, 0, np.nan, np.nan, np.nan, 1, np.nan]
    )
    np.testing.assert_array_equal(
        encode_finding(values, policy="zeros"), [1, 0, 0, np.nan, np.nan, 1, 0]
    )
    np.testing.assert_array_equal(
        encode_finding(values, policy="ones"), [1, 0, 1, np.nan, np.nan, 1, 1]
    )
    with pytest.raises(PredictionsError, match="row 2 has '2'"):
        encode_finding([1, "2"])
    table = _table(60)
    kept = finding_table(table, "nodule", policy="ignore")
    labels = table["label_nodule"]
    assert len(kept) == int(((labels == 0) | (labels == 1)).sum())
    assert finding_names(list(table.columns)) == list(FINDINGS)
    assert finding_names(list(table.columns), ["effusion"]) == ["effusion"]


@pytest.fixture(scope="module")
def results():
    settings = build_settings(overrides={"n_boot": 300, "seed": 0, "attributes": ["sex"]})
    return audit_findings(_table(), _statistics(settings), policy="ignore")


def test_gate_wildcards_reach_every_finding(results):
    from auditkit.gate import evaluate
    from auditkit.gate.policy import parse_policy

    policy = parse_policy(
        'name: multilabel\nversion: "1"\nblock_on_insufficient: false\nrules:\n'
        "  - id: external-auroc-delta\n    metric: findings.*.external.*.delta.auroc\n    min: -0.05\n    use: ci_high\n"
        "  - id: fnr-gap\n    metric: findings.*.fairness.sex.gap.fnr\n    max: 0.5\n    use: estimate\n",
        source="multilabel-policy.yaml",
    )
    outcome = evaluate({"schema_version": 1, **results}, policy)
    verdicts = {c.metric: c.verdict for c in outcome.checks}
    assert {m.split(".")[1] for m in verdicts} == set(FINDINGS)
    failed = sorted(m for m, v in verdicts.items() if v == "fail")
    assert failed == ["findings.effusion.external.site_C.delta.auroc"]


@pytest.mark.slow
def test_the_shortcut_is_caught_in_effusion_only(results):
    assert set(results["findings"]) == set(FINDINGS)
    deltas = {f: results["findings"][f]["external"]["site_C"]["delta"]["auroc"] for f in FINDINGS}
    assert deltas["effusion"]["ci_high"] < 0 and deltas["effusion"]["p_adjusted"] < 0.05
    for finding in ("atelectasis", "nodule"):
        # judged family-wise: one unadjusted 95% interval in a few excludes 0 by chance (here
        # atelectasis, p = 0.02 unadjusted), which is why the p-values are adjusted across findings
        assert deltas[finding]["p_adjusted"] > 0.05, finding
        assert abs(deltas[finding]["estimate"]) < 0.1
    # each finding has its own operating point, chosen on its own validation rows
    thresholds = {f: results["findings"][f]["operating_point"]["threshold"] for f in FINDINGS}
    assert len({round(float(t), 6) for t in thresholds.values()}) == 3
    macro = results["macro"]["discrimination"]["test"]["auroc"]
    by_hand = np.mean(
        [results["findings"][f]["discrimination"]["test"]["auroc"]["estimate"] for f in FINDINGS]
    )
    assert macro["estimate"] == pytest.approx(by_hand) and macro["n_findings"] == 3
    assert results["multiplicity"]["method"] == "holm" and results["multiplicity"]["n_tests"] >= 6
    # Holm across findings x subgroups is never less strict than within one finding
    for finding in FINDINGS:
        node = results["findings"][finding]["external"]["site_C"]["delta"]["auroc"]
        if node.get("p_adjusted_within_finding") is not None:
            assert node["p_adjusted"] >= node["p_adjusted_within_finding"] - 1e-12
