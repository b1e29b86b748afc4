"""SIGKILL during train, explain, audit (in its PDF step) and report, then rerun: the same bytes, nothing torn.

Each command runs in a child process that is killed (SIGKILL: no clean-up
runs) as soon as it is part-way (a file it writes mid-run appears); the rerun
then runs in-process. The oracle is an uninterrupted run of the same command
into another folder: the rerun's outputs must be byte-identical to it, and
after the kill every file under a final name must be whole (it parses).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from auditkit.cli import run
from auditkit.errors import ExitCode

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::FutureWarning")]

_CHILD = "import sys; from auditkit.cli import main; sys.argv[0] = 'auditkit'; main()"


def _kill_when(argv: list[str], ready, *, timeout: float = 240.0) -> bool:
    """Run ``auditkit argv`` in a child and SIGKILL it once ``ready()``; return whether it was killed mid-run."""
    child = subprocess.Popen([sys.executable, "-c", _CHILD, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        while child.poll() is None and time.monotonic() < deadline:
            if ready():
                child.send_signal(signal.SIGKILL)
                child.wait(timeout=30)
                return True
            time.sleep(0.02)
        return False
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)


def _whole(folder: Path) -> None:
    """Assert every file under a final name in ``folder`` parses (JSON, CSV, PNG, PDF, safetensors)."""
    from safetensors.numpy import load_file

    for path in folder.rglob("*"):
        if not path.is_file() or path.name.endswith(".tmp") or path.name.startswith("."):
            continue
        suffix = path.suffix.lower()
        if suffix == ".json":
            json.loads(path.read_text())
        elif suffix == ".csv":
            pd.read_csv(path)
        elif suffix == ".png":
            with Image.open(path) as image:
                image.load()
        elif suffix == ".pdf":
            assert path.read_bytes().rstrip().endswith(b"%%EOF"), path
        elif suffix == ".safetensors":
            load_file(str(path))


def _same(a: Path, b: Path, names: list[str]) -> None:
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def _predictions(path: Path, n: int = 240) -> Path:
    rng = np.random.default_rng(0)
    y = np.arange(n) % 2
    pd.DataFrame({"id": [f"i{i}" for i in range(n)], "y_true": y, "score": np.clip(0.3 * y + 0.7 * rng.random(n), 0, 1),
                  "patient_id": [f"p{i // 2}" for i in range(n)], "split": ["val", "val", "test", "test"] * (n // 4),
                  "sex": rng.choice(["F", "M"], n)}).to_csv(path, index=False)
    return path


def test_train_killed_after_an_epoch_resumes_to_the_same_checkpoint(tiny_data, tmp_path):
    pd.read_csv(tiny_data).assign(split=None).to_csv(tiny_data, index=False)  # let train split by patient
    args = ["--quiet", "train", "--manifest", str(tiny_data), "--arch", "smallcnn", "--input-size", "16",
            "--epochs", "4", "--patience", "10", "--batch-size", "4", "--device", "cpu", "--seed", "0",
            "--no-augment", "--num-workers", "0", "--split", "0.5,0.25,0.25"]
    reference, killed = tmp_path / "ref", tmp_path / "killed"
    assert run([*args, "--out", str(reference)]) == ExitCode.OK
    assert _kill_when([*args, "--out", str(killed)], lambda: (killed / "resume" / "state.json").exists())
    _whole(killed)
    assert run([*args, "--out", str(killed), "--resume"]) == ExitCode.OK
    _same(reference, killed, ["weights.safetensors", "history.csv", "splits.csv"])


def test_explain_killed_mid_run_resumes_to_the_same_maps(tiny_model, tiny_data, tmp_path):
    args = ["--quiet", "explain", "--model", str(tiny_model), "--manifest", str(tiny_data), "--device", "cpu",
            "--methods", "gradcam,ig"]
    reference, killed = tmp_path / "ref", tmp_path / "killed"
    assert run([*args, "--out", str(reference)]) == ExitCode.OK
    cache = killed / "cache"
    was_killed = _kill_when([*args, "--out", str(killed)], lambda: cache.is_dir() and any(p.is_file() for p in cache.rglob("*")))
    _whole(killed)
    assert run([*args, "--out", str(killed)]) == ExitCode.OK
    overlays = sorted(p.name for p in (reference / "overlays").iterdir())
    assert overlays == sorted(p.name for p in (killed / "overlays").iterdir())
    _same(reference, killed, ["explanations.csv", *[f"overlays/{n}" for n in overlays]])
    assert was_killed or (killed / "explain.json").exists()


def test_audit_killed_in_its_pdf_step_resumes_and_a_killed_report_leaves_no_torn_pdf(tmp_path):
    table = _predictions(tmp_path / "p.csv")
    args = ["--quiet", "audit", "--predictions", str(table), "--n-boot", "50", "--attributes", "sex"]
    reference, killed = tmp_path / "ref", tmp_path / "killed"
    assert run([*args, "--out", str(reference)]) == ExitCode.OK
    was_killed = _kill_when([*args, "--out", str(killed)], lambda: (killed / "results.json").exists())
    _whole(killed)
    if was_killed:
        assert (killed / ".auditkit-run.json").exists()  # the marker says: interrupted, not finished
    left = sorted(p.name for p in killed.iterdir())
    code = run([*args, "--out", str(killed)])
    assert code == ExitCode.OK, f"no resume (killed={was_killed}, files left: {left})"  # no --force needed
    _same(reference, killed, ["results.json", "summary.md", "report.pdf"])
    assert not (killed / ".auditkit-run.json").exists()
    assert run([*args, "--out", str(killed)]) == ExitCode.INPUT_ERROR  # finished: now it needs --force

    # the report alone, killed while it renders: the final name is absent or whole, the rerun identical
    results, pdf = reference / "results.json", reference / "again.pdf"
    started = time.monotonic()
    _kill_when(["--quiet", "report", str(results), "--out", str(pdf)],
               lambda: time.monotonic() - started > 4.0 or any(p.name.startswith(".again.pdf.") for p in reference.iterdir()))
    assert not pdf.exists() or pdf.read_bytes() == (reference / "report.pdf").read_bytes()
    _whole(reference)
    assert run(["--quiet", "report", str(results), "--out", str(pdf), "--force"]) == ExitCode.OK
    assert pdf.read_bytes() == (reference / "report.pdf").read_bytes()
