"""Exit 2 prints exactly one line on stderr: no library warning, log record, multi-line message or usage block."""

from __future__ import annotations

import logging
import warnings

import pytest

import auditkit.gate.policy as policy_module
from auditkit.cli import run
from auditkit.errors import ExitCode, PolicyError


def _lines(capsys) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("quiet", [[], ["--quiet"]])
def test_library_noise_and_a_multi_line_message_become_one_line(monkeypatch, capsys, caplog, recwarn, tmp_path, quiet):
    def noisy(path_or_name):
        warnings.warn("pydicom-style warning\nwith a second line", UserWarning, stacklevel=1)
        logging.getLogger("pyarrow").warning("a library log record")
        raise PolicyError("policy.yaml: first part\n  second part from a library\n  third")

    monkeypatch.setattr(policy_module, "load_policy", noisy)
    monkeypatch.setattr("auditkit.gate.load_policy", noisy)
    code = run([*quiet, "gate", str(tmp_path / "results.json"), "--policy", "x"])
    lines = _lines(capsys)
    assert code == ExitCode.INPUT_ERROR
    assert lines == ["auditkit: error: policy.yaml: first part second part from a library third"]
    assert not [w for w in recwarn if "pydicom-style" in str(w.message)]  # silenced, not merely captured
    assert not [r for r in caplog.records if r.name == "pyarrow"]
    # outside the command the caller's warning filters are untouched
    with pytest.warns(UserWarning):
        warnings.warn("still visible", UserWarning, stacklevel=1)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["synth", "--out", "x", "--n", "many"], "'--n'"),
        (["synth", "--colour", "red"], "--colour"),
        (["frobnicate"], "frobnicate"),
        (["gate"], "Missing argument"),
        (["audit", "--n-boot", "x"], "--n-boot"),
    ],
)
def test_a_bad_flag_value_is_one_line_naming_the_command(capsys, argv, fragment):
    assert run(argv) == ExitCode.INPUT_ERROR
    lines = _lines(capsys)
    assert len(lines) == 1 and lines[0].startswith("auditkit: error: auditkit"), lines
    assert fragment in lines[0] and "--help" in lines[0]
    assert not any(word in lines[0] for word in ("Usage:", "Try '"))
