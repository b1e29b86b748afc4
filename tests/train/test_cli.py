"""``auditkit train`` / ``auditkit predict``: one line and exit 2 for bad input, 0 for a real run."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from auditkit.cli import run
from auditkit.errors import ExitCode


def _one_error_line(capsys, *needles):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("auditkit: error: "), err
    for needle in needles:
        assert needle in err[0], err[0]
    assert "Traceback" not in err[0]


def test_missing_manifest_exits_2(tmp_path, capsys):
    code = run(["train", "--manifest", str(tmp_path / "none.csv"), "--arch", "smallcnn", "--out", str(tmp_path / "m")])
    assert code == ExitCode.INPUT_ERROR
    _one_error_line(capsys, "none.csv")


def test_unknown_architecture_exits_2(quick_phantom, tmp_path, capsys):
    code = run(["train", "--manifest", str(quick_phantom.manifest_path), "--arch", "resnet7", "--out", str(tmp_path / "m")])
    assert code == ExitCode.INPUT_ERROR
    _one_error_line(capsys, "resnet7", "smallcnn")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_device_exits_2(quick_phantom, tmp_path, capsys):
    code = run(["train", "--manifest", str(quick_phantom.manifest_path), "--arch", "smallcnn",
                "--out", str(tmp_path / "m"), "--device", "cuda"])  # fmt: skip
    assert code == ExitCode.INPUT_ERROR
    _one_error_line(capsys, "CUDA is not available")


def test_resume_without_state_exits_2(quick_phantom, tmp_path, capsys):
    code = run(["train", "--manifest", str(quick_phantom.manifest_path), "--arch", "smallcnn",
                "--out", str(tmp_path / "m"), "--resume"])  # fmt: skip
    assert code == ExitCode.INPUT_ERROR
    _one_error_line(capsys, "nothing to resume")


@pytest.mark.slow
def test_train_and_predict_commands_run_and_refuse_a_tampered_checkpoint(
    phantom_subset, quick_phantom, tmp_path, capsys
):
    manifest = phantom_subset(25)
    model = tmp_path / "models" / "cli"
    common = ["--data-root", str(quick_phantom.out_dir), "--num-workers", "0"]
    code = run(["--quiet", "train", "--manifest", str(manifest), "--arch", "smallcnn", "--out", str(model),
                "--epochs", "1", "--batch-size", "16", "--input-size", "32", "--device", "cpu", *common])  # fmt: skip
    assert code == ExitCode.OK, capsys.readouterr().err
    assert capsys.readouterr().out.strip() == str(model)
    preds = tmp_path / "preds.parquet"
    code = run(["--quiet", "predict", "--model", str(model), "--manifest", str(manifest), "--out", str(preds), *common])
    assert code == ExitCode.OK
    assert len(pd.read_parquet(preds)) == len(pd.read_csv(manifest))

    code = run(["train", "--manifest", str(manifest), "--arch", "smallcnn", "--out", str(model), *common])
    assert code == ExitCode.INPUT_ERROR
    _one_error_line(capsys, "not empty", "--force")

    # --force with a wrong input fails before anything of the old checkpoint is removed
    before = {p.name: p.read_bytes() for p in model.iterdir()}
    code = run(["train", "--manifest", str(tmp_path / "typo.csv"), "--arch", "smallcnn", "--out", str(model),
                "--force", *common])  # fmt: skip
    assert code == ExitCode.INPUT_ERROR
    _one_error_line(capsys, "typo.csv")
    assert {p.name: p.read_bytes() for p in model.iterdir()} == before

    code = run(["predict", "--model", str(model), "--manifest", str(manifest), "--out", str(tmp_path / "p.txt"), *common])
    assert code == ExitCode.INPUT_ERROR
    _one_error_line(capsys, "p.txt", ".parquet or .csv")

    weights = model / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x7f")
    code = run(["predict", "--model", str(model), "--manifest", str(manifest), "--out", str(preds), "--force", *common])
    assert code == ExitCode.INPUT_ERROR
    _one_error_line(capsys, "weights.safetensors", "SHA-256")
