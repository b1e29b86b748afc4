"""The audit's robustness run on the trained smallcnn: unperturbed scores equal auditkit predict's."""

from __future__ import annotations

import json

import pytest

from auditkit.cli import run


@pytest.mark.slow
def test_robustness_section_with_the_model(quick_predictions, trained_smallcnn, quick_phantom, tmp_path):
    (tmp_path / "audit.yaml").write_text(
        "n_boot: 100\nmmd_permutations: 0\ndate: '2026-01-01'\n"
        "clinical:\n  robustness: {enabled: true, max_images: 80, perturbations: [noise, blur, jpeg], severities: [1, 3]}\n"
    )
    code = run(["--quiet", "audit", "--predictions", str(quick_predictions), "--model", str(trained_smallcnn),
                "--data-root", str(quick_phantom.out_dir), "--config", str(tmp_path / "audit.yaml"),
                "--out", str(tmp_path / "out"), "--no-explain", "--no-report", "--device", "cpu"])
    assert code in (0, 1)
    rob = json.loads((tmp_path / "out" / "results.json").read_text())["clinical"]["robustness"]
    assert rob["n_images"] == 80
    # the runner's unperturbed pass reproduces the table auditkit predict wrote (same model, same images)
    assert rob["max_abs_diff_vs_recorded"] < 1e-4
    assert [c["key"] for c in rob["conditions"]] == ["noise@1", "noise@3", "blur@1", "blur@3", "jpeg@1", "jpeg@3"]
    # the strongest noise moves more calls than the mildest
    assert rob["effects"]["noise@3"]["flip_rate"]["estimate"] >= rob["effects"]["noise@1"]["flip_rate"]["estimate"]
    assert rob["precision"]["n_conditions"] == 4  # unperturbed + the three mildest
