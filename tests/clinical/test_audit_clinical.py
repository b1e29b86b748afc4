"""The audit's clinical section: decision curves, conformal coverage per subgroup, a planted hidden slice."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from auditkit.cli import run
from auditkit.stats.conformal import calibrate, prediction_sets
from auditkit.stats.decision_curve import net_benefit


def _table(n, rng, prefix):
    y = rng.binomial(1, 0.35, n)
    sex = rng.choice(["F", "M"], n)
    latent = rng.random(n) < 0.2  # no column names it
    strength = np.where(latent, 0.3, 2.0)
    x = strength * (2 * y - 1) + rng.normal(0, 1, n)
    score = 1 / (1 + np.exp(-x))
    centres = np.random.default_rng(99).normal(0, 3, (4, 16))
    emb = centres[np.where(latent, 3, rng.integers(0, 3, n))] + rng.normal(0, 1, (n, 16))
    ids = [f"{prefix}{i}" for i in range(n)]
    frame = pd.DataFrame({"id": ids, "y_true": y, "score": score, "sex": sex,
                          "patient_id": [f"{prefix}p{i}" for i in range(n)]})
    return frame, pd.DataFrame(emb, columns=[f"emb_{j}" for j in range(16)]).assign(id=ids), latent


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    root = tmp_path_factory.mktemp("clinical")
    rng = np.random.default_rng(5)
    val, val_e, _ = _table(500, rng, "v")
    test, test_e, latent = _table(1200, rng, "t")
    table = pd.concat([val.assign(split="val"), test.assign(split="test")], ignore_index=True)
    from PIL import Image

    Image.fromarray(np.arange(64 * 64, dtype=np.uint8).reshape(64, 64)).save(root / "img.png")
    table["image"] = "img.png"  # every row one image: enough for the slices' example images
    table.to_csv(root / "preds.csv", index=False)
    pd.concat([val_e, test_e]).to_parquet(root / "emb.parquet")
    (root / "audit.yaml").write_text(
        "n_boot: 200\nmmd_permutations: 20\ndate: '2026-01-01'\nattributes: [sex]\n"
        "clinical:\n  slices: {n_slices: 5}\n  decision_curve: {range: [0.05, 0.5], step: 0.05, key_thresholds: [0.2]}\n"
    )
    code = run(["-q", "audit", "--predictions", str(root / "preds.csv"), "--embeddings", str(root / "emb.parquet"),
                "--config", str(root / "audit.yaml"), "--out", str(root / "out"), "--no-report", "--no-explain"])
    assert code in (0, 1)
    path = root / "out" / "results.json"
    return json.loads(path.read_text())["clinical"], table, latent, path


def test_decision_curve_and_conformal_numbers(audited):
    clinical, table, _, _ = audited
    test = table[table.split == "test"]
    dca = clinical["decision_curve"]["test"]
    t = np.array(dca["curve"]["thresholds"])
    np.testing.assert_allclose(dca["curve"]["model"], net_benefit(test.y_true.to_numpy(), test.score.to_numpy(), t),
                               atol=1e-12)
    assert dca["at"]["t20"]["threshold"] == 0.2
    at = dca["at"]["t20"]["advantage"]
    assert at["ci_low"] <= at["estimate"] <= at["ci_high"]
    # conformal coverage per subgroup, by numpy on the same sets
    val = table[table.split == "val"]
    probs = lambda f: np.column_stack([1 - f.score, f.score])  # noqa: E731
    sets = prediction_sets(calibrate(probs(val), val.y_true.to_numpy(), alpha=0.1, method="mondrian"), probs(test))
    covered = sets[np.arange(len(test)), test.y_true.to_numpy()]
    block = clinical["conformal"]["mondrian"]["test"]
    for sex in ("F", "M"):
        mask = (test.sex == sex).to_numpy()
        assert block["groups"]["sex"][sex]["coverage"]["estimate"] == pytest.approx(covered[mask].mean())
    assert block["overall"]["coverage"]["estimate"] == pytest.approx(covered.mean())
    assert block["min_group_coverage"]["groups"][0].split("=")[0] in ("sex", "class")


def test_hidden_slice_found_in_audit(audited):
    clinical, table, latent, _ = audited
    block = clinical["slices"]["test"]
    assert block["n_flagged"] >= 1
    test_ids = table[table.split == "test"].id.to_numpy()
    worst = block["records"][0]
    assert worst["flagged"] and worst["auroc_gap"]["p_adjusted"] < 0.05
    reps = set(worst["representative_ids"])
    assert reps and reps <= set(test_ids[latent])  # its typical members are the latent slice's
    out = audited[3].parent
    assert len(worst["representative_images"]) == len(worst["representative_ids"])
    assert all((out / p).read_bytes().startswith(b"\x89PNG") for p in worst["representative_images"])


def test_gate_rules_on_clinical_paths(audited, tmp_path):
    """A subgroup-coverage rule (target − tolerance) and a slice rule, checked by auditkit gate."""
    path = str(audited[3])

    def verdict(rule: str) -> int:
        (tmp_path / "p.yaml").write_text(f"name: t\nversion: '1'\nrules:\n{rule}")
        return run(["-q", "gate", path, "--policy", str(tmp_path / "p.yaml")])

    coverage = "  - {{id: cov, metric: clinical.conformal.mondrian.test.min_group_coverage, min: {}, use: ci_high}}\n"
    assert verdict(coverage.format(0.85)) == 0  # 90% target - 5% tolerance: met
    assert verdict(coverage.format(0.99)) == 1  # credibly below 99%
    assert verdict("  - {id: d, metric: clinical.decision_curve.test.at.t20.advantage, min: 0, use: ci_low}\n") == 0
    # the planted slice is credibly worse than the rest by more than 0.1 AUROC
    assert verdict("  - {id: s, metric: clinical.slices.test.worst_auroc_gap, min: -0.10, use: ci_high}\n") == 1


def test_multiclass_audit_has_conformal_sets_and_says_what_does_not_apply(tmp_path):
    """A three-class audit: split-conformal coverage equals crepes' sets; the binary analyses give their reason."""
    crepes = pytest.importorskip("crepes")
    rng = np.random.default_rng(3)
    n, classes = 900, np.array(["normal", "benign", "malignant"])
    y = rng.choice(3, n, p=[0.5, 0.3, 0.2])
    logits = rng.normal(size=(n, 3))
    logits[np.arange(n), y] += 1.5
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    split = rng.choice(["val", "test"], n)
    frame = pd.DataFrame({"id": [f"m{i}" for i in range(n)], "y_true": classes[y], "split": split})
    for k, name in enumerate(classes):
        frame[f"score_{name}"] = p[:, k]
    frame.to_csv(tmp_path / "preds.csv", index=False)
    (tmp_path / "audit.yaml").write_text("n_boot: 100\ndate: '2026-01-01'\n")
    code = run(["-q", "audit", "--predictions", str(tmp_path / "preds.csv"), "--config", str(tmp_path / "audit.yaml"),
                "--out", str(tmp_path / "out"), "--no-report", "--no-explain"])  # fmt: skip
    assert code in (0, 1)
    clinical = json.loads((tmp_path / "out" / "results.json").read_text())["clinical"]
    assert clinical["task"] == "multiclass"
    val, test = split == "val", split == "test"
    cc = crepes.ConformalClassifier()
    cc.fit(1 - p[val][np.arange(val.sum()), y[val]])
    sets = cc.predict_set(1 - p[test], confidence=0.9, smoothing=False).astype(bool)
    covered = sets[np.arange(test.sum()), y[test]]
    block = clinical["conformal"]["split"]["test"]
    assert block["overall"]["coverage"]["estimate"] == pytest.approx(covered.mean())
    assert set(block["groups"]["class"]) == {"0", "1", "2"}
    for key in ("decision_curve", "slices", "robustness"):
        assert "one-vs-rest" in clinical[key]["not_applicable"]


def test_a_one_class_slice_that_errs_is_found_by_its_error_gap(tmp_path):
    """A planted cluster of healthy images the model calls positive (a device it mistakes for disease).

    The slice holds no positives, so it has no AUROC: the AUROC gaps cannot see it. Its error rate at
    the operating point (numpy, on the slice's planted members) is far above the rest's, and
    ``worst_error_gap`` names it with a Holm-adjusted test and a gate rule fails on it.
    """
    rng = np.random.default_rng(11)

    def table(n, prefix):
        device = rng.random(n) < 0.2
        y = np.where(device, 0, rng.binomial(1, 0.45, n))
        x = np.where(device, 1.5, 2.0 * (2 * y - 1)) + rng.normal(0, 1, n)
        centres = np.random.default_rng(7).normal(0, 4, (4, 12))
        emb = centres[np.where(device, 3, rng.integers(0, 3, n))] + rng.normal(0, 1, (n, 12))
        ids = [f"{prefix}{i}" for i in range(n)]
        frame = pd.DataFrame({"id": ids, "y_true": y, "score": 1 / (1 + np.exp(-x)), "patient_id": ids})
        return frame, pd.DataFrame(emb, columns=[f"emb_{j}" for j in range(12)]).assign(id=ids), device

    val, val_e, _ = table(400, "v")
    test, test_e, device = table(900, "t")
    pd.concat([val.assign(split="val"), test.assign(split="test")]).to_csv(tmp_path / "p.csv", index=False)
    pd.concat([val_e, test_e]).to_parquet(tmp_path / "e.parquet")
    (tmp_path / "a.yaml").write_text("n_boot: 200\nmmd_permutations: 10\ndate: '2026-01-01'\n"
                                     "clinical:\n  slices: {n_slices: 4}\n")  # fmt: skip
    assert run(["-q", "audit", "--predictions", str(tmp_path / "p.csv"), "--embeddings", str(tmp_path / "e.parquet"),
                "--config", str(tmp_path / "a.yaml"), "--out", str(tmp_path / "out"), "--no-report",
                "--no-explain"]) in (0, 1)  # fmt: skip
    document = json.loads((tmp_path / "out" / "results.json").read_text())
    block = document["clinical"]["slices"]["test"]
    threshold = document["operating_point"]["threshold"]
    worst = block["worst_error_gap"]
    planted = next(r for r in block["records"] if r["slice"] == int(worst["groups"][0].split()[1]))
    assert planted["n_positive"] == 0 and planted["auroc_gap"]["estimate"] is None  # no AUROC for it
    assert block["n_without_auroc"] >= 1 and "worst_error_gap" in block["worst_auroc_gap"]["method"]
    errors = (test.score.to_numpy() >= threshold).astype(int) != test.y_true.to_numpy()
    assert planted["n"] == device.sum()  # the cluster is the planted device images, all of them
    expected = errors[device].mean() - errors[~device].mean()
    assert worst["estimate"] == pytest.approx(expected, abs=1e-9)
    assert planted["error_flagged"] and worst["p_adjusted"] < 0.05 and block["n_error_flagged"] >= 1
    (tmp_path / "g.yaml").write_text("name: t\nversion: '1'\nrules:\n"
                                     "  - {id: e, metric: clinical.slices.test.worst_error_gap, max: 0.1, use: ci_low}\n")
    assert run(["-q", "gate", str(tmp_path / "out" / "results.json"), "--policy", str(tmp_path / "g.yaml")]) == 1
