"""auditkit monitor: a drifted batch is flagged (and fails the monitor gate), a clean one is not."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from auditkit.cli import run


def _batch(n, rng, *, prior=0.35, shift=0.0, emb_shift=0.0, prefix="b"):
    y = rng.binomial(1, prior, n)
    x = rng.normal(2 * y - 1 + shift, 1.0)
    score = 1 / (1 + np.exp(-(2 * x + np.log(0.35 / 0.65))))  # calibrated at prevalence 0.35
    patients = [f"{prefix}p{i // 2}" for i in range(n)]
    emb = rng.normal(0, 1, (n, 8)) + np.outer(x, np.ones(8)) * 0.3 + emb_shift
    ids = [f"{prefix}{i}" for i in range(n)]
    frame = pd.DataFrame({"id": ids, "y_true": y, "score": score, "patient_id": patients})
    embeddings = pd.DataFrame(emb, columns=[f"emb_{j}" for j in range(8)]).assign(id=ids)
    return frame, embeddings


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    root = tmp_path_factory.mktemp("monitor")
    rng = np.random.default_rng(0)
    val, val_e = _batch(600, rng, prefix="v")
    test, test_e = _batch(800, rng, prefix="t")
    table = pd.concat([val.assign(split="val"), test.assign(split="test")], ignore_index=True)
    table.to_csv(root / "preds.csv", index=False)
    pd.concat([val_e, test_e]).to_parquet(root / "emb.parquet")
    (root / "audit.yaml").write_text("n_boot: 100\nmmd_permutations: 50\ndate: '2026-01-01'\n")
    code = run(["-q", "audit", "--predictions", str(root / "preds.csv"), "--embeddings", str(root / "emb.parquet"),
                "--config", str(root / "audit.yaml"), "--out", str(root / "base"), "--no-report", "--no-explain"])
    assert code in (0, 1)  # the audit's own gate verdict does not matter here
    return root


def _monitor(root, name, frame, emb):
    frame.drop(columns=["y_true"]).to_parquet(root / f"{name}.parquet")
    emb.to_parquet(root / f"{name}_emb.parquet")
    code = run(["-q", "monitor", "--baseline", str(root / "base"), "--predictions", str(root / f"{name}.parquet"),
                "--embeddings", str(root / f"{name}_emb.parquet"), "--out", str(root / name), "--n-boot", "200"])
    assert code == 0
    doc = json.loads((root / name / "monitor.json").read_text())
    gate = run(["-q", "gate", str(root / name / "monitor.json"), "--policy", "monitor"])
    return doc["monitor"], gate


def test_clean_batch_passes_and_drifted_batch_is_flagged(baseline):
    rng = np.random.default_rng(11)
    clean, gate_clean = _monitor(baseline, "clean", *_batch(700, rng, prefix="c"))
    assert not clean["flags"]["any"], clean["flags"]
    assert gate_clean == 0
    # the label-free accuracy is the reference's within its CI
    est = clean["estimates"]["cbpe_accuracy"]
    assert est["ci_low"] - 0.03 <= clean["reference"]["accuracy"] <= est["ci_high"] + 0.03

    drifted, gate_drift = _monitor(baseline, "drift", *_batch(700, rng, prior=0.7, emb_shift=0.5, prefix="d"))
    flags = drifted["flags"]
    assert flags["score_drift"] and flags["embedding_drift"] and flags["prevalence_shift"], flags
    assert gate_drift == 1
    assert any("prevalence" in w for w in drifted["warnings"])


def test_monitor_input_errors(baseline, tmp_path):
    bad = pd.DataFrame({"id": ["a", "b"], "score": [0.2, 1.7]})
    bad.to_csv(tmp_path / "bad.csv", index=False)
    code = run(["-q", "monitor", "--baseline", str(baseline / "base"), "--predictions", str(tmp_path / "bad.csv"),
                "--out", str(tmp_path / "o")])
    assert code == 2
