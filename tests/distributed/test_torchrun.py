"""torchrun on the CPU: 2 gloo processes train, predict and explain a tiny phantom like one process does.

Each test launches ``python -m torch.distributed.run --nproc-per-node 2
--standalone -m auditkit ...`` (one thread per process) and compares with a
single-process run of the same command (the oracle: auditkit's own
single-process path, which the rest of the suite checks against
scikit-learn, captum and friends), and with scikit-learn's AUROC for the
validation AUROC recorded by distributed training. A rank killed mid-run
(``AUDITKIT_FAULT_KILL_RANK``) followed by a rerun must give the same final
outputs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score

pytestmark = pytest.mark.slow

SIZE = 32
N_IMAGES = 80


def torchrun(*args: str, env: dict[str, str] | None = None, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``auditkit ARGS`` under torchrun with 2 CPU processes; return the finished process."""
    full = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    full.pop("AUDITKIT_FAULT_KILL_AFTER_MAPS", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--standalone",
           "-m", "auditkit", *args]  # fmt: skip
    return subprocess.run(cmd, cwd=cwd, env=full, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny phantom and a smallcnn trained on it for one epoch (one process)."""
    from auditkit.data.phantom import PhantomConfig, generate_phantom
    from auditkit.progress import set_quiet
    from auditkit.train import train

    root = tmp_path_factory.mktemp("dist")
    phantom = generate_phantom(root / "phantom", PhantomConfig(n_images=N_IMAGES, size=SIZE, seed=3))
    set_quiet(True)
    try:
        model = train(phantom.manifest_path, arch="smallcnn", out=root / "model", epochs=1, batch_size=16,
                      seed=0, device="cpu", input_size=(SIZE, SIZE), augment=False, num_workers=0).model_dir  # fmt: skip
    finally:
        set_quiet(False)
    return root, phantom.manifest_path, model


def _single_predictions(tiny, name: str) -> pd.DataFrame:
    from auditkit.predict import predict
    from auditkit.progress import set_quiet

    root, manifest, model = tiny
    set_quiet(True)
    try:
        predict(model, manifest, out=root / name, device="cpu", batch_size=8, num_workers=0)
        return pd.read_parquet(root / name)
    finally:
        set_quiet(False)


def test_predict_two_ranks_after_a_killed_rank_equal_one_process(tiny):
    root, manifest, model = tiny
    single = _single_predictions(tiny, "single.parquet")
    args = ["predict", "--model", str(model), "--manifest", str(manifest), "--device", "cpu", "--batch-size", "8"]

    half = N_IMAGES // 2
    killed = torchrun(*args, "--out", str(root / "killed.parquet"), env={"AUDITKIT_FAULT_KILL_RANK": "1"}, cwd=root)
    assert killed.returncode != 0
    # each rank names its rank and shard size; rank 0 finished its shard before rank 1 died
    assert f"rank 0/2: scoring shard rows 1-{half} ({half} of {N_IMAGES} images)" in killed.stderr
    assert f"rank 1/2: scoring shard rows {half + 1}-{N_IMAGES} ({half} of {N_IMAGES} images)" in killed.stderr
    assert not (root / "killed.parquet").exists()
    assert [p.name for p in (root / ".killed.parquet.shards").iterdir()] == [f"rows-{0:09d}-{half:09d}.npz"]
    rerun = torchrun(*args, "--out", str(root / "killed.parquet"), cwd=root)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"rank 0/2: shard rows 1-{half} ({half} of {N_IMAGES} images) already scored; reused" in rerun.stderr
    two = pd.read_parquet(root / "killed.parquet")
    pd.testing.assert_frame_equal(two, single, check_exact=False, atol=1e-5, rtol=0)
    assert two["id"].tolist() == single["id"].tolist()
    assert json.loads(pq.read_schema(root / "killed.parquet").metadata[b"auditkit"])["world_size"] == 2
    assert not (root / ".killed.parquet.shards").exists()


def _maps(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: np.load(p)["map"] for p in sorted((folder / "cache").glob("*/*.npz"))}


def test_explain_two_ranks_after_a_killed_rank_equal_one_process(tiny):
    from auditkit.explain.runner import explain_manifest
    from auditkit.progress import set_quiet

    root, manifest, model = tiny
    killed = torchrun("explain", "--model", str(model), "--manifest", str(manifest), "--methods", "gradcam,ig",
                      "--out", str(root / "e2"), "--limit", "16", "--batch-size", "4", "--device", "cpu",
                      env={"AUDITKIT_FAULT_KILL_RANK": "1"}, cwd=root)  # fmt: skip
    assert killed.returncode != 0
    assert "rank 1/2: explaining shard images 9-16 (8 of 16)" in killed.stderr
    partial = _maps(root / "e2")
    assert 0 < len(partial) < 32
    set_quiet(True)
    try:  # the single-process run, with the CLI's default parameters
        explain_manifest(model, manifest, methods=("gradcam", "ig"), out=root / "e3", limit=16, batch_size=4,
                         device="cpu")  # fmt: skip
    finally:
        set_quiet(False)
    rerun = torchrun("explain", "--model", str(model), "--manifest", str(manifest), "--methods", "gradcam,ig",
                     "--out", str(root / "e2"), "--limit", "16", "--batch-size", "4", "--device", "cpu", cwd=root)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    two, three = _maps(root / "e2"), _maps(root / "e3")
    assert two.keys() == three.keys() and len(two) == 32
    for key in two:
        np.testing.assert_allclose(two[key], three[key], rtol=0, atol=1e-6)
    shards = json.loads((root / "e2" / "cache" / "shards.json").read_text())
    assert shards["world_size"] == 2
    assert [s["rows"] for s in shards["shards"]] == [[0, 8], [8, 16]]
    assert json.loads((root / "e2" / "explain.json").read_text())["distributed"]["world_size"] == 2
    pd.testing.assert_frame_equal(pd.read_csv(root / "e2" / "explanations.csv"),
                                  pd.read_csv(root / "e3" / "explanations.csv"))  # fmt: skip
    assert rerun.stderr.count("explained 16 images") == 1  # the summary line is rank 0's alone

    # --select errors scores every image first: each rank its shard, gathered (not all on every rank)
    errors = torchrun("explain", "--model", str(model), "--manifest", str(manifest), "--methods", "gradcam",
                      "--select", "errors", "--limit", "6", "--out", str(root / "e4"), "--batch-size", "4",
                      "--device", "cpu", cwd=root)  # fmt: skip
    assert errors.returncode == 0, errors.stderr[-2000:]
    half = N_IMAGES // 2
    assert f"rank 0/2: scoring shard rows 1-{half} ({half} of {N_IMAGES} images)" in errors.stderr
    assert f"rank 1/2: scoring shard rows {half + 1}-{N_IMAGES} ({half} of {N_IMAGES} images)" in errors.stderr
    set_quiet(True)
    try:
        explain_manifest(model, manifest, methods=("gradcam",), out=root / "e5", select="errors", limit=6,
                         batch_size=4, device="cpu")  # fmt: skip
    finally:
        set_quiet(False)
    pd.testing.assert_frame_equal(pd.read_csv(root / "e4" / "explanations.csv"),
                                  pd.read_csv(root / "e5" / "explanations.csv"))  # fmt: skip


def test_train_two_ranks_records_gathered_validation_and_resumes_after_a_killed_rank(tiny):
    from auditkit.predict import predict
    from auditkit.progress import set_quiet

    root, manifest, _ = tiny
    args = ["train", "--manifest", str(manifest), "--arch", "smallcnn", "--epochs", "2", "--batch-size", "16",
            "--device", "cpu", "--seed", "0", "--input-size", str(SIZE), "--no-augment", "--num-workers", "0"]  # fmt: skip
    run = torchrun(*args, "--out", str(root / "m2"), cwd=root)
    assert run.returncode == 0, run.stderr[-2000:]
    meta = json.loads((root / "m2" / "model.json").read_text())
    assert meta["training"]["distributed"]["world_size"] == 2
    assert meta["training"]["distributed"]["batch_size_per_rank"] == 8
    assert meta["training"]["completed"] is True
    # the recorded validation AUROC is that of the saved weights on the WHOLE validation split
    set_quiet(True)
    try:
        table = predict(root / "m2", manifest, device="cpu", num_workers=0)
    finally:
        set_quiet(False)
    val = table.frame[table.frame["split"] == "val"]
    assert meta["metrics"]["val_auroc"] == pytest.approx(roc_auc_score(val["y_true"], val["score"]), abs=1e-6)

    killed = torchrun(*args, "--out", str(root / "m3"), env={"AUDITKIT_FAULT_KILL_RANK": "1"}, cwd=root)
    assert killed.returncode != 0
    assert (root / "m3" / "resume").is_dir()
    resumed = torchrun(*args, "--out", str(root / "m3"), "--resume", cwd=root)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert (root / "m3" / "weights.safetensors").read_bytes() == (root / "m2" / "weights.safetensors").read_bytes()
    history = pd.read_csv(root / "m3" / "history.csv")
    pd.testing.assert_frame_equal(history, pd.read_csv(root / "m2" / "history.csv"))


def test_audit_saliency_two_ranks_equal_one_process(tiny):
    """The audit's saliency maps are split over the ranks; rank 0's evidence equals a single process's."""
    from auditkit.cli import run
    from auditkit.progress import set_quiet

    root, manifest, model = tiny
    config = root / "audit.yaml"
    config.write_text(
        "n_boot: 50\nsaliency: {methods: [gradcam, ig], ig_steps: 4, max_images: 12, max_val_images: 4,\n"
        "  sanity_images: 2, sanity_blocks: 1, faithfulness_images: 2, stability_images: 2, gallery_max: 2,\n"
        "  n_boot: 50, batch_size: 4}\n"
    )
    args = ["audit", "--model", str(model), "--manifest", str(manifest), "--config", str(config), "--no-report",
            "--device", "cpu"]  # fmt: skip
    two = torchrun(*args, "--out", str(root / "a2"), cwd=root)
    assert two.returncode == 0, two.stderr[-3000:]
    set_quiet(True)
    try:
        assert run(["--quiet", *args, "--out", str(root / "a1")]) == 0
    finally:
        set_quiet(False)
    one_doc = json.loads((root / "a1" / "results.json").read_text())
    two_doc = json.loads((root / "a2" / "results.json").read_text())
    assert set(one_doc["saliency"]) == {"gradcam", "ig"}
    assert two_doc["saliency"] == one_doc["saliency"] and two_doc["gallery"] == one_doc["gallery"]
    one_maps, two_maps = _maps(root / "a1" / "explain"), _maps(root / "a2" / "explain")
    assert one_maps.keys() == two_maps.keys() and len(one_maps) > 0
    for key in one_maps:
        np.testing.assert_array_equal(two_maps[key], one_maps[key])
    # each rank explained about half of the sampled cases, and named its rank and shard size
    shards = json.loads((root / "a2" / "explain" / "cache" / "shards-sample.json").read_text())
    assert shards["world_size"] == 2
    (a, b), (c, d) = (s["rows"] for s in shards["shards"])
    assert a == 0 and b == c and d > c and abs((b - a) - (d - c)) <= 4
    assert f"rank 1/2: explaining shard sample {c + 1}-{d} ({d - c} of {d})" in two.stderr
    assert two.stdout.count("results: ") == 1  # the final summary is rank 0's alone
