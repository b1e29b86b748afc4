"""Out-of-domain numbers (a negative seed, a zero batch size) are input errors: exit 2, never a traceback."""

from __future__ import annotations

import pytest

from auditkit.cli import run
from auditkit.errors import ExitCode, InvalidInputError


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--seed", "-1"],
        ["synth", "--out", "x", "--seed", "-3"],
        ["train", "--manifest", "m.csv", "--arch", "smallcnn", "--out", "o", "--seed", "-1"],
        ["explain", "--model", "m", "--manifest", "m.csv", "--out", "o", "--seed", "-1"],
        ["audit", "--predictions", "p.csv", "--out", "o", "--seed", "-1"],
        ["audit", "--predictions", "p.csv", "--out", "o", "--batch-size", "0"],
        ["predict", "--model", "m", "--manifest", "m.csv", "--out", "p.csv", "--batch-size", "0"],
    ],
)
def test_out_of_domain_numbers_exit_2_before_any_work(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run(argv) == ExitCode.INPUT_ERROR
    err = capsys.readouterr().err
    assert "Traceback" not in err and ("seed" in err or "batch-size" in err), err
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


def test_the_python_api_refuses_a_negative_seed_too(tmp_path):
    from auditkit.demo import run_demo
    from auditkit.train import train

    with pytest.raises(InvalidInputError, match="--seed"):
        run_demo(tmp_path / "d", seed=-1)
    with pytest.raises(InvalidInputError, match="--seed"):
        train(tmp_path / "m.csv", arch="smallcnn", out=tmp_path / "o", seed=-1)
    assert list(tmp_path.iterdir()) == []
