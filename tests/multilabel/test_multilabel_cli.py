"""``auditkit audit`` on a multi-label table: results.json nests every finding, the gate catches the one planted gap.

Planted truth: three findings on the same patients; ``nodule``'s positives in
women score lower (an underdiagnosis gap: women's false-negative rate is far
higher), the other two findings score alike in both sexes. Oracles: each
finding's test AUROC against scikit-learn on that finding's labelled test rows,
its FNR gap against fairlearn's MetricFrame at the finding's own frozen
threshold, the rows kept under ``--uncertain-labels zeros`` by hand count, and
the gate's verdicts against the planted gap.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from auditkit.cli import run
from auditkit.results import validate_results

FINDINGS = ("atelectasis", "effusion", "nodule")

POLICY = """name: multilabel
version: "1"
block_on_insufficient: false
rules:
  - id: fnr-gap
    metric: fairness.sex.gap.fnr
    max: 0.15
    use: ci_low
  - id: auroc
    metric: discrimination.test.auroc
    min: 0.6
    use: ci_low
"""


def _table(n: int = 1200, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    split = rng.choice(["val", "test"], n, p=[0.45, 0.55])
    sex = rng.choice(["F", "M"], n)
    frame = pd.DataFrame({"id": [f"img{i}" for i in range(n)], "patient_id": [f"p{i}" for i in range(n)],
                          "site": "site_A", "split": split, "sex": sex})  # fmt: skip
    for finding in FINDINGS:
        y = (rng.random(n) < 0.4).astype(float)
        strength = np.full(n, 2.5)
        if finding == "nodule":
            strength[sex == "F"] = 0.6  # women's nodules are missed far more often
        signal = strength * y + rng.normal(0, 1, n)
        labels = y.astype(object)
        labels[rng.random(n) < 0.05] = -1.0
        labels[rng.random(n) < 0.03] = None
        frame[f"label_{finding}"] = labels
        frame[f"score_{finding}"] = 1 / (1 + np.exp(-(signal - 1.2)))
    return frame


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    root = tmp_path_factory.mktemp("multilabel_cli")
    table = _table()
    table.to_csv(root / "predictions.csv", index=False)
    (root / "policy.yaml").write_text(POLICY, encoding="utf-8")
    code = run([
        "--quiet", "audit", "--predictions", str(root / "predictions.csv"), "--out", str(root / "audit"),
        "--attributes", "sex", "--n-boot", "200", "--no-report", "--uncertain-labels", "zeros",
        "--policy", str(root / "policy.yaml"),
    ])  # fmt: skip
    document = json.loads((root / "audit" / "results.json").read_text(encoding="utf-8"))
    return table, code, document


def test_every_finding_is_audited_and_checked_against_the_libraries(audited):
    from fairlearn.metrics import MetricFrame, false_negative_rate
    from sklearn.metrics import roc_auc_score

    table, _, document = audited
    validate_results(document)
    assert document["run"]["task"] == "multilabel" and document["run"]["findings"] == list(FINDINGS)
    assert document["label_policy"]["uncertain"] == "zeros"
    assert "discrimination" not in document  # a multi-label audit nests, a single-label one keeps its paths
    for finding in FINDINGS:
        labels = pd.to_numeric(table[f"label_{finding}"], errors="coerce")
        kept = labels.notna() & (table["split"] == "test")  # zeros: -1 is kept as absent
        y = (labels[kept] == 1).astype(int).to_numpy()
        score = table.loc[kept, f"score_{finding}"].to_numpy()
        section = document["findings"][finding]
        assert section["cohorts"]["test"]["n_images"] == int(kept.sum())
        assert section["discrimination"]["test"]["auroc"]["estimate"] == pytest.approx(roc_auc_score(y, score))
        threshold = section["operating_point"]["threshold"]
        fnr = MetricFrame(metrics=false_negative_rate, y_true=y, y_pred=(score >= threshold).astype(int),
                          sensitive_features=table.loc[kept, "sex"].to_numpy())  # fmt: skip
        assert section["fairness"]["sex"]["gap"]["fnr"]["estimate"] == pytest.approx(fnr.difference())
    assert all("decision_curve" in document["findings"][f]["clinical"] for f in FINDINGS)
    macro = document["macro"]["discrimination"]["test"]["auroc"]["estimate"]
    assert macro == pytest.approx(np.mean([document["findings"][f]["discrimination"]["test"]["auroc"]["estimate"]
                                           for f in FINDINGS]))  # fmt: skip


def test_the_gate_catches_the_planted_gap_in_its_finding_only(audited):
    _, code, document = audited
    assert code == 1
    gate = json.loads((Path(document["inputs"]["predictions"]["path"]).parent / "audit" / "gate.json")
                      .read_text(encoding="utf-8"))  # fmt: skip
    checks = {c["metric"]: c["verdict"] for c in gate["rules"]}
    assert checks["findings.nodule.fairness.sex.gap.fnr"] == "fail"
    for finding in ("atelectasis", "effusion"):
        assert checks[f"findings.{finding}.fairness.sex.gap.fnr"] == "pass"
    assert all(checks[f"findings.{f}.discrimination.test.auroc"] == "pass" for f in FINDINGS)


def test_the_report_has_a_section_per_finding(audited, tmp_path):
    import re

    _, _, document = audited
    folder = Path(document["inputs"]["predictions"]["path"]).parent / "audit"
    assert run(["--quiet", "report", str(folder), "--out", str(folder / "report.html")]) == 0
    text = re.sub(r"<[^>]+>", " ", (folder / "report.html").read_text(encoding="utf-8"))
    assert "Findings of a multi-label model" in text
    for finding in FINDINGS:
        assert f"Finding: {finding}" in text
        auroc = document["findings"][finding]["discrimination"]["test"]["auroc"]["estimate"]
        assert f"{auroc:.3f} (95% CI" in text
    nodule_gap = document["findings"]["nodule"]["fairness"]["sex"]["gap"]["fnr"]
    assert f"{nodule_gap['estimate']:.3f} (95% CI {nodule_gap['ci_low']:.3f}" in text
    assert "Holm-adjusted jointly across findings" in text
