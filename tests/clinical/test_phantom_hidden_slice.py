"""The phantom's planted hidden slice is found by the audit, end to end, from a trained CNN's embeddings.

``hidden_slice`` gives a latent quarter of the patients (named by no column) a
chest-drain-like tube and fainter lesions (config.Flaws). A small CNN is
trained on the phantom; its penultimate embeddings and scores go through
``auditkit audit --predictions --embeddings`` (the code under test: k-means
candidate slices, bootstrap AUROC gaps, Holm) and ``auditkit gate``. The
truth is planted: phantom membership (``cases["hidden_slice"]``, written only
to phantom.json) must be concentrated in the worst flagged slice, and the
same pipeline on the phantom without the flaw (same seed, same patients)
must flag nothing. Seed 0 here; seeds 1 and 2 behave alike (docs/clinical-validation.md).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from auditkit.cli import run
from auditkit.data.phantom import PhantomConfig
from auditkit.data.phantom.cohort import sample_cases
from auditkit.data.phantom.render import render_cases
from auditkit.data.transforms import Preprocess
from auditkit.embeddings_table import read_embeddings
from auditkit.stats.slices import candidate_slices
from tests.clinical.tiny_training import fit

SIZE, N, EPOCHS, SEED = 32, 1200, 20, 0
STRENGTH = 1.0  # the flaw at full strength: lesion contrast x0.3 in the slice
#: about 120 test images per slice: a planted quarter of the ~600 test images fits in one (the default,
#: one slice per 60 images, would split it in two)
N_SLICES = 5
PRE = Preprocess(input_size=(SIZE, SIZE), in_channels=1, mean=(0.5,), std=(0.25,))
#: fails when the worst slice is credibly (95% CI) more than 0.05 AUROC below the rest
SLICE_RULE = "  - {id: slice, metric: clinical.slices.test.worst_auroc_gap, min: -0.05, use: ci_high}\n"


def _phantom(hidden: bool, seed: int):
    """Return images (N, 1, S, S), the cases, and the planted membership (the same patients either way)."""
    base = PhantomConfig(n_images=N, size=SIZE, seed=seed, n_sites=1)
    flawed = base.with_flaws(("hidden_slice",), {"hidden_slice": STRENGTH})
    config = flawed if hidden else flawed.with_flaws(())
    cases = sample_cases(config)
    images = np.rint(render_cases(cases, config).images * 255) / 255  # the 8-bit PNGs' values
    membership = sample_cases(flawed)["hidden_slice"].to_numpy(bool)  # who would carry the device
    return torch.tensor(images[:, None], dtype=torch.float32), cases, membership


def _network() -> tuple[nn.Module, nn.Module]:
    """Return (features, model): three conv blocks and a global max pool (the 32-d embedding), then a linear head."""

    def block(i: int, o: int) -> list[nn.Module]:
        return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU()]

    features = nn.Sequential(*block(1, 16), nn.MaxPool2d(2), *block(16, 16), nn.MaxPool2d(2), *block(16, 32),
                             nn.AdaptiveMaxPool2d(1), nn.Flatten())  # fmt: skip
    return features, nn.Sequential(features, nn.Linear(32, 2))


def _train(x: torch.Tensor, y: np.ndarray, seed: int) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(seed)
    features, model = _network()
    fit(model, PRE.finish(x), torch.tensor(y), epochs=EPOCHS, lr=3e-3, seed=seed)
    return features.eval(), model


def audit_phantom(root, hidden: bool, seed: int = SEED) -> dict:
    """Train on 45% of the patients, audit the rest (val 5%, test 50%); return what the tests read."""
    x, cases, membership = _phantom(hidden, seed)
    patient = cases["patient_index"].to_numpy()
    rank = patient / (patient.max() + 1)
    split = np.where(rank < 0.45, "train", np.where(rank < 0.5, "val", "test"))
    y = cases["label"].to_numpy()
    train = split == "train"
    features, model = _train(x[train], y[train], seed)
    with torch.no_grad():
        held = PRE.finish(x[~train])
        emb = features(held)
        score = torch.softmax(model[1](emb), dim=1)[:, 1].numpy()
    ids = cases["id"].astype(str).to_numpy()[~train]
    table = pd.DataFrame({"id": ids, "y_true": y[~train], "score": score, "split": split[~train],
                          "patient_id": cases["patient_id"].astype(str).to_numpy()[~train]})  # fmt: skip
    root.mkdir(parents=True, exist_ok=True)
    table.to_csv(root / "preds.csv", index=False)
    columns = {f"emb_{j}": emb[:, j].numpy().astype(np.float64) for j in range(emb.shape[1])}
    pd.DataFrame({"id": ids, **columns}).to_parquet(root / "emb.parquet")
    (root / "audit.yaml").write_text(
        f"n_boot: 500\nmmd_permutations: 0\ndate: '2026-01-01'\nclinical:\n  slices: {{n_slices: {N_SLICES}}}\n"
    )
    code = run(["-q", "audit", "--predictions", str(root / "preds.csv"), "--embeddings", str(root / "emb.parquet"),
                "--config", str(root / "audit.yaml"), "--out", str(root / "out"), "--no-report", "--no-explain"])  # fmt: skip
    assert code in (0, 1)
    results_path = root / "out" / "results.json"
    results = json.loads(results_path.read_text())
    (root / "policy.yaml").write_text(f"name: t\nversion: '1'\nrules:\n{SLICE_RULE}")
    gate = run(["-q", "gate", str(results_path), "--policy", str(root / "policy.yaml")])
    test = table["split"].to_numpy() == "test"
    block = results["clinical"]["slices"]["test"]
    # the audit's clustering is deterministic: redo it with its recorded settings to see each slice's members
    cfg = results["clinical"]["settings"]["slices"]
    labels = candidate_slices(read_embeddings(root / "emb.parquet", list(ids[test])), n_slices=block["n_slices"],
                              n_components=cfg["n_components"], random_state=results["run"]["seed"])  # fmt: skip
    return {"block": block, "labels": labels, "planted": membership[~train][test], "ids": ids[test], "gate": gate}


@pytest.fixture(scope="module")
def audits(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: threads only contend
    try:
        root = tmp_path_factory.mktemp("hidden_slice")
        return audit_phantom(root / "flawed", True), audit_phantom(root / "clean", False)
    finally:
        torch.set_num_threads(threads)


def _members(audit: dict, record: dict) -> np.ndarray:
    inside = audit["labels"] == record["slice"]
    assert inside.sum() == record["n"]  # the re-clustering is the audit's
    return inside


@pytest.mark.slow
def test_planted_hidden_slice_is_the_worst_flagged_slice(audits):
    flawed, _ = audits
    records, planted = flawed["block"]["records"], flawed["planted"]
    for record in records:
        _members(flawed, record)
    flagged = [r for r in records if r["flagged"]]
    assert flagged
    worst = flagged[0]
    assert worst is records[0]  # records are sorted by AUROC gap: the worst slice is the flagged one
    assert worst["auroc_gap"]["p_adjusted"] < 0.05 and worst["auroc_gap"]["ci_high"] < -0.05
    inside = _members(flawed, worst)
    base = planted.mean()
    assert 0.15 < base < 0.35
    assert planted[inside].mean() >= 3 * base  # enriched well above the base rate
    assert planted[inside].sum() >= 0.35 * planted.sum()  # and holding a large share of the planted images
    reps = set(worst["representative_ids"])
    assert reps and reps <= set(flawed["ids"][planted])  # its typical members carry the device
    assert flawed["gate"] == 1  # the slice rule fails the release


@pytest.mark.slow
def test_same_pipeline_on_the_clean_phantom_flags_nothing(audits):
    _, clean = audits
    records = clean["block"]["records"]
    assert clean["block"]["n_flagged"] == 0 and not any(r["flagged"] for r in records)
    for record in records:  # nor is any slice where the device would have been
        inside = _members(clean, record)
        assert clean["planted"][inside].mean() < 2 * clean["planted"].mean()
    assert clean["gate"] == 0
