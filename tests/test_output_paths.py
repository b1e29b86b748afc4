"""Outputs the system refuses (a file where a folder must go, a folder where a file must go) exit 2 with one line."""

from __future__ import annotations

import pytest

from auditkit.cli import run
from auditkit.errors import ExitCode, OutputPathError
from auditkit.fileio import atomic_write_text


def _one_line(capsys, *needles: str) -> None:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("auditkit: error: "), err
    assert ".tmp" not in err[0] and "Traceback" not in err[0], err
    for needle in needles:
        assert needle in err[0], err[0]


def test_atomic_write_refuses_a_folder_in_the_way_and_a_file_as_parent(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(OutputPathError) as refused:
        atomic_write_text(tmp_path / "taken", "x")
    assert f"cannot write '{tmp_path / 'taken'}': it is a folder" in str(refused.value)
    assert ".tmp" not in str(refused.value)  # the user's path, not the temporary file's
    (tmp_path / "plain").write_text("keep")
    with pytest.raises(OutputPathError, match="is a file, not a folder"):
        atomic_write_text(tmp_path / "plain" / "out.txt", "x")
    assert (tmp_path / "plain").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain", "taken"]  # no temporary left


def test_cli_output_under_a_file_exits_2(tmp_path, capsys):
    (tmp_path / "plain").write_text("keep")
    code = run(["--quiet", "synth", "--out", str(tmp_path / "plain" / "ph"), "--n", "40", "--size", "32"])
    assert code == ExitCode.INPUT_ERROR
    _one_line(capsys, f"{str(tmp_path / 'plain')!r} is a file, not a folder")


def test_train_and_predict_into_the_wrong_kind_of_path_exit_2(quick_phantom, trained_smallcnn, phantom_subset, tmp_path, capsys):
    (tmp_path / "plain").write_text("keep")
    manifest = phantom_subset(5)
    args = ["--manifest", str(manifest), "--data-root", str(quick_phantom.out_dir), "--device", "cpu"]
    code = run(["--quiet", "train", *args, "--arch", "smallcnn", "--out", str(tmp_path / "plain"), "--epochs", "1"])
    assert code == ExitCode.INPUT_ERROR
    _one_line(capsys, f"{str(tmp_path / 'plain')!r} is a file, not a folder")
    (tmp_path / "p.parquet").mkdir()
    code = run(["--quiet", "predict", *args, "--model", str(trained_smallcnn), "--out", str(tmp_path / "p.parquet")])
    assert code == ExitCode.INPUT_ERROR
    _one_line(capsys, f"'{tmp_path / 'p.parquet'}': it is a folder")
