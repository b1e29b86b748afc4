"""A received model runs no code: TorchScript is refused like a module:factory unless trusted."""

from __future__ import annotations

import pytest
from hardening_builders import write_torchscript_payload

from auditkit.cli import run
from auditkit.errors import ExitCode

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def test_torchscript_payload_runs_only_with_trust_model_code(tmp_path, tiny_data, capsys):
    marker = tmp_path / "pwned.bin"
    model = write_torchscript_payload(tmp_path / "evil", marker)
    assert not marker.exists()
    base = ["--quiet", "predict", "--model", str(model), "--manifest", str(tiny_data), "--device", "cpu"]
    code = run([*base, "--out", str(tmp_path / "p.csv")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == ExitCode.INPUT_ERROR and len(err) == 1 and "--trust-model-code" in err[0], err
    assert not marker.exists() and not (tmp_path / "p.csv").exists()
    code = run(["--quiet", "audit", "--model", str(model), "--manifest", str(tiny_data),
                "--device", "cpu", "--out", str(tmp_path / "rep")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == ExitCode.INPUT_ERROR and len(err) == 1 and "TorchScript" in err[0], err
    code = run(["--quiet", "explain", "--model", str(model), "--manifest", str(tiny_data),
                "--device", "cpu", "--out", str(tmp_path / "ex")])
    assert code == ExitCode.INPUT_ERROR
    assert not marker.exists()
    # the payload is real: trusted, the same command runs it and the marker appears
    code = run([*base, "--out", str(tmp_path / "p2.csv"), "--trust-model-code"])
    assert code == ExitCode.OK, capsys.readouterr().err
    assert marker.read_bytes() == b"A" * 8


def test_help_says_torchscript_is_code(capsys):
    for command in ("predict", "explain", "audit"):
        assert run([command, "--help"]) == 0
        assert "TorchScript" in capsys.readouterr().out
