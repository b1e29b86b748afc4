"""No output replaces an input, nothing existing is overwritten without --force, one run per output folder."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from auditkit.cli import run
from auditkit.errors import ExitCode, OutputPathError
from auditkit.fileio import atomic_write_text, guard_inputs, lock_path, output_lock, protect_input


def _digest(folder):
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _err(capsys):
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("auditkit: error: "), lines
    return lines[0]


def _table(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return pd.DataFrame({"id": [f"i{i}" for i in range(n)], "y_true": y,
                         "score": np.clip(y * 0.3 + rng.random(n) * 0.7, 0, 1),
                         "patient_id": [f"p{i}" for i in range(n)], "sex": rng.choice(["F", "M"], n)})


def test_guard_refuses_an_input_by_path_symlink_and_hard_link(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("keep")
    (tmp_path / "link.csv").symlink_to(src)
    os.link(src, tmp_path / "hard.csv")
    with guard_inputs():
        protect_input(src, "the manifest (--manifest)")
        for spelling in (src, tmp_path / "link.csv", tmp_path / "hard.csv", tmp_path / "sub" / ".." / "in.csv"):
            with pytest.raises(OutputPathError, match="an input of this run"):
                atomic_write_text(spelling, "lost")
    assert src.read_text() == "keep"
    atomic_write_text(tmp_path / "hard.csv", "free again")  # outside the guard nothing is protected


def test_predict_never_writes_over_its_manifest_and_needs_force(tiny_model, tiny_data, tmp_path, capsys):
    before = tiny_data.read_bytes()
    base = ["--quiet", "predict", "--model", str(tiny_model), "--manifest", str(tiny_data), "--device", "cpu"]
    assert run([*base, "--out", str(tiny_data)]) == ExitCode.INPUT_ERROR
    assert "an input of this run" in _err(capsys)
    assert run([*base, "--out", str(tiny_data), "--force"]) == ExitCode.INPUT_ERROR
    _err(capsys)
    assert tiny_data.read_bytes() == before
    out = tmp_path / "p.csv"
    out.write_text("earlier")
    assert run([*base, "--out", str(out)]) == ExitCode.INPUT_ERROR
    assert "pass --force" in _err(capsys) and out.read_text() == "earlier"
    assert run([*base, "--out", str(out), "--force"]) == ExitCode.OK
    assert pd.read_csv(out)["id"].size == 12
    assert not lock_path(out).exists()
    weights = tiny_model / "weights.safetensors"
    assert run([*base, "--out", str(weights), "--force"]) == ExitCode.INPUT_ERROR
    assert "model folder" in _err(capsys)


def test_explain_into_the_data_folder_replaces_no_image(tiny_model, tmp_path, capsys):
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(data / "images" / f"c{i}.png")
    pd.DataFrame({"id": [f"c{i}" for i in range(4)], "image": [f"images/c{i}.png" for i in range(4)],
                  "label": [0, 1, 0, 1], "split": "test"}).to_csv(data / "m.csv", index=False)
    before = _digest(data)
    code = run(["--quiet", "explain", "--model", str(tiny_model), "--manifest", str(data / "m.csv"),
                "--device", "cpu", "--out", str(data)])
    assert code == ExitCode.INPUT_ERROR
    assert "an input of this run" in _err(capsys)
    after = _digest(data)
    assert {k: v for k, v in after.items() if k in before} == before


def _audited(tmp_path):
    """Return the folder of a small statistics-only audit (results.json, no report)."""
    table = tmp_path / "p.csv"
    _table().to_csv(table, index=False)
    out = tmp_path / "a"
    assert run(["--quiet", "audit", "--predictions", str(table), "--out", str(out), "--n-boot", "50",
                "--no-report", "--attributes", "sex", "--operating-point", "threshold:0.5"]) == ExitCode.OK
    return out


def test_gate_and_report_never_write_over_results_or_policy(tmp_path, capsys):
    out = _audited(tmp_path)
    results = out / "results.json"
    policy = tmp_path / "policy.yaml"
    from importlib import resources
    policy.write_bytes(resources.files("auditkit").joinpath("policies", "default.yaml").read_bytes())
    saved = (results.read_bytes(), policy.read_bytes())
    for flag, target in (("--junit", results), ("--summary", policy), ("--json", results)):
        code = run(["--quiet", "gate", str(results), "--policy", str(policy), flag, str(target)])
        assert code == ExitCode.INPUT_ERROR
        assert "an input of this run" in _err(capsys)
    assert run(["--quiet", "report", str(results), "--out", str(results), "--force"]) == ExitCode.INPUT_ERROR
    _err(capsys)
    assert (results.read_bytes(), policy.read_bytes()) == saved


def test_audit_force_keeps_everything_when_an_input_is_invalid(tmp_path, capsys):
    table = tmp_path / "p.csv"
    _table().to_csv(table, index=False)
    out = tmp_path / "a"
    args = ["--quiet", "audit", "--out", str(out), "--n-boot", "50", "--no-report", "--attributes", "sex", "--operating-point", "threshold:0.5"]
    assert run([*args, "--predictions", str(table), "--policy", "default"]) in (ExitCode.OK, ExitCode.GATE_FAILED)
    before = _digest(out)
    bad = tmp_path / "bad.csv"
    bad.write_text("id,y_true,score\na,1,2.5\n")
    assert run([*args, "--predictions", str(bad), "--force"]) == ExitCode.INPUT_ERROR
    _err(capsys)
    assert _digest(out) == before
    assert not lock_path(out).exists() and not any(p.name.endswith('.lock') for p in out.iterdir())


def _hold(target):
    script = textwrap.dedent(f"""
        import sys
        from auditkit.fileio import output_lock
        with output_lock({str(target)!r}):
            print("held", flush=True)
            sys.stdin.readline()
    """)
    holder = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_output_lock_refuses_a_second_process_naming_the_holder(tmp_path):
    folder = tmp_path / "out"
    holder = _hold(folder)
    try:
        with pytest.raises(OutputPathError) as refused, output_lock(folder):
            pass  # pragma: no cover
        assert f"pid {holder.pid}" in str(refused.value) and str(folder) in str(refused.value)
        code = run(["--quiet", "synth", "--out", str(folder), "--n", "20", "--size", "32"])
        assert code == ExitCode.INPUT_ERROR
    finally:
        holder.communicate("\n", timeout=30)
    with output_lock(folder):  # noqa: SIM117 - free again once the holder ended
        with output_lock(folder):  # and reentrant within one process
            pass
    assert not lock_path(folder).exists() and not folder.exists()  # nothing left, not even the folder


def test_synth_refuses_a_negative_worker_count(tmp_path, capsys):
    assert run(["--quiet", "synth", "--out", str(tmp_path / "s"), "--n", "20", "--workers", "-1"]) == ExitCode.INPUT_ERROR
    assert "--workers" in _err(capsys)


def test_the_lock_lies_beside_the_output_so_an_empty_folder_stays_empty(tmp_path, capsys):
    out = tmp_path / "phantom"
    out.mkdir()  # synth wants an empty folder: the lock must not be a file in it
    assert run(["--quiet", "synth", "--out", str(out), "--n", "40", "--size", "32"]) == ExitCode.OK
    assert lock_path(out) == tmp_path / ".phantom.lock" and not lock_path(out).exists()
    assert not [p for p in tmp_path.rglob("*.lock")]


def test_gate_refuses_an_audit_folder_being_written_and_a_locked_output(tmp_path, capsys):
    out = _audited(tmp_path)
    gate = ["--quiet", "gate", str(out), "--policy", "default"]
    holder = _hold(out)  # an audit rewriting the folder
    try:
        assert run(gate) == ExitCode.INPUT_ERROR
        line = _err(capsys)
        assert "being written" in line and f"pid {holder.pid}" in line
    finally:
        holder.communicate("\n", timeout=30)
    verdict = tmp_path / "gate.json"
    holder = _hold(verdict)  # another gate writing the same --json
    try:
        assert run([*gate, "--json", str(verdict)]) == ExitCode.INPUT_ERROR
        assert f"pid {holder.pid}" in _err(capsys)
        assert not verdict.exists()
    finally:
        holder.communicate("\n", timeout=30)
    assert run([*gate, "--json", str(verdict)]) in (ExitCode.OK, ExitCode.GATE_FAILED)  # free again
    assert verdict.exists() and not lock_path(verdict).exists()


def test_the_python_api_never_writes_over_its_inputs(tiny_model, tiny_data, tmp_path):
    """predict and explain_manifest called directly keep the CLI's promise (no guard opened by the caller)."""
    from auditkit.explain.runner import explain_manifest
    from auditkit.predict import predict

    before = tiny_data.read_bytes()
    with pytest.raises(OutputPathError, match="the manifest"):
        predict(tiny_model, tiny_data, out=tiny_data, device="cpu")
    import shutil

    model = Path(shutil.copytree(tiny_model, tmp_path / "model"))
    weights = model / "notes.csv"  # any file already in the model folder is an input
    weights.write_text("kept\n")
    saved = weights.read_bytes()
    with pytest.raises(OutputPathError, match="the model folder"):
        predict(model, tiny_data, out=weights, device="cpu")
    folder = tmp_path / "explained"
    folder.mkdir()
    manifest = folder / "explanations.csv"  # the name explain writes its index under
    manifest.write_bytes(before)
    pd.read_csv(manifest)  # a manifest whose images resolve from tiny_data's folder
    data_root = tiny_data.parent
    with pytest.raises(OutputPathError, match="the manifest"):
        explain_manifest(tiny_model, manifest, methods=["gradcam"], out=folder, device="cpu", data_root=data_root)
    assert tiny_data.read_bytes() == before and manifest.read_bytes() == before and weights.read_bytes() == saved
    table = predict(tiny_model, tiny_data, out=tmp_path / "ok.csv", device="cpu")  # a fresh output still works
    assert len(table.frame) == 12
