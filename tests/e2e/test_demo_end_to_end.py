"""The project's most important test: a biased model does not ship, a clean one does.

``auditkit demo --quick`` plants three flaws in the synthetic phantom
(a shortcut marker, underdiagnosis of female patients, an external-site
shift), trains smallcnn and audits it with the default policy. The gate must
fail naming exactly the rules that should catch those flaws, and the clean
phantom must pass the same policy. The planted effects are recomputed here
from the predictions table with scikit-learn, and the shortcut from the
phantom's own record of where it put the marker.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pandas as pd
import pytest
import yaml
from pypdf import PdfReader
from sklearn.metrics import confusion_matrix, roc_auc_score

from auditkit.cli import run
from auditkit.errors import ExitCode

pytestmark = pytest.mark.slow

PLANTED_RULES = {"saliency-shortcut", "fairness-fnr-gap", "external-auroc-delta"}


@pytest.fixture(scope="module")
def flawed(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "flawed"
    assert run(["--quiet", "demo", "--quick", "--out", str(out)]) == ExitCode.OK
    return out


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "clean"
    assert run(["--quiet", "demo", "--quick", "--clean", "--out", str(out)]) == ExitCode.OK
    return out


def _gate(results, tmp_path):
    paths = {name: tmp_path / name for name in ("gate.json", "junit.xml", "summary.md")}
    code = run([
        "--quiet", "gate", str(results), "--policy", "default", "--json", str(paths["gate.json"]),
        "--junit", str(paths["junit.xml"]), "--summary", str(paths["summary.md"]),
    ])  # fmt: skip
    return code, json.loads(paths["gate.json"].read_text()), paths


def test_flawed_model_is_blocked_by_exactly_the_rules_of_the_planted_flaws(flawed, tmp_path):
    code, gate, paths = _gate(flawed / "audit" / "results.json", tmp_path)
    assert code == ExitCode.GATE_FAILED
    blocking = {(r["id"], r["metric"]) for r in gate["rules"] if r["blocking"]}
    assert {rule for rule, _ in blocking} == PLANTED_RULES
    assert ("fairness-fnr-gap", "fairness.sex.gap.fnr") in blocking
    assert ("external-auroc-delta", "external.site_C.delta.auroc") in blocking
    assert ("saliency-shortcut", "saliency.gradcam.shortcut_score") in blocking
    # the CI report formats agree: one JUnit failure per blocking check, the summary names the rules
    suite = ET.parse(paths["junit.xml"]).getroot()
    failures = suite.iter("failure")
    assert len(list(failures)) == len(blocking)
    summary = paths["summary.md"].read_text()
    assert all(rule in summary for rule in PLANTED_RULES)


def test_each_planted_flaw_is_recorded_as_caught_by_its_rule(flawed):
    results = json.loads((flawed / "audit" / "results.json").read_text())
    findings = {f["name"]: f for f in results["expected_findings"]}
    assert set(findings) == {"shortcut", "underdiagnosis", "site_shift"}
    assert all(f["caught"] for f in findings.values())


def test_the_planted_effects_are_real_in_the_predictions(flawed):
    """Recompute the underdiagnosis gap and the external AUROC drop with scikit-learn."""
    results = json.loads((flawed / "audit" / "results.json").read_text())
    table = pd.read_parquet(flawed / "audit" / "predictions.parquet")
    threshold = results["operating_point"]["threshold"]
    test = table[table["split"] == "test"]
    fnr = {}
    for sex, rows in test.groupby("sex"):
        _tn, _fp, fn, tp = confusion_matrix(rows["y_true"], rows["score"] >= threshold, labels=[0, 1]).ravel()
        fnr[sex] = fn / (fn + tp)
    assert results["fairness"]["sex"]["gap"]["fnr"]["estimate"] == pytest.approx(fnr["F"] - fnr["M"], abs=1e-9)
    assert fnr["F"] - fnr["M"] > 0.2
    assert results["fairness"]["sex"]["gap"]["fnr"]["ci_low"] > 0  # detected: the CI excludes 0
    external = table[table["site"] == "site_C"]
    delta = roc_auc_score(external["y_true"], external["score"]) - roc_auc_score(test["y_true"], test["score"])
    assert results["external"]["site_C"]["delta"]["auroc"]["estimate"] == pytest.approx(delta, abs=1e-9)
    assert delta < -0.1


def test_the_shortcut_lives_where_the_phantom_put_the_marker(flawed):
    """The model's scores depend on the marker the phantom recorded, and Grad-CAM looks at that corner."""
    truth = pd.DataFrame(json.loads((flawed / "data" / "phantom.json").read_text())["images"])
    table = pd.read_parquet(flawed / "audit" / "predictions.parquet").merge(truth[["id", "marker"]], on="id")
    negatives = table[(table["split"] == "test") & (table["y_true"] == 0)]
    marked = negatives.loc[negatives["marker"], "score"].mean()
    unmarked = negatives.loc[~negatives["marker"], "score"].mean()
    assert marked > unmarked + 0.3  # healthy images with the marker look diseased to the model
    shortcut = json.loads((flawed / "audit" / "results.json").read_text())["saliency"]["gradcam"]
    assert shortcut["shortcut_score"]["ci_low"] > 0.15 > 1 / 16  # well above a diffuse map's share


def test_results_name_the_case_records_the_viewer_reads(flawed, tmp_path):
    """results.json points at explain/cases.json by path and SHA-256 (hashlib); a changed file is refused."""
    import hashlib
    import shutil

    from auditkit.viewer.data import build_payload

    audit = flawed / "audit"
    entry = json.loads((audit / "results.json").read_text())["artifacts"]["cases"]
    raw = (audit / entry["path"]).read_bytes()
    assert entry["path"] == "explain/cases.json" and entry["sha256"] == hashlib.sha256(raw).hexdigest()
    assert entry["n_cases"] == len(json.loads(raw)["cases"]) > 0
    assert len(build_payload(audit)["cases"]) == entry["n_cases"]
    copy = tmp_path / "audit"
    shutil.copytree(audit, copy, ignore=shutil.ignore_patterns("cache"))
    (copy / entry["path"]).write_bytes(raw.replace(b'"cases"', b'"cases" ', 1))  # same records, other bytes
    assert run(["--quiet", "view", str(copy), "--export", str(tmp_path / "v.html")]) == ExitCode.INPUT_ERROR


def test_clean_phantom_passes_the_same_policy(clean, tmp_path):
    code, gate, _ = _gate(clean / "audit" / "results.json", tmp_path)
    assert code == ExitCode.OK
    assert gate["passed"] and not [r for r in gate["rules"] if r["blocking"]]
    results = json.loads((clean / "audit" / "results.json").read_text())
    assert not results.get("expected_findings")  # nothing was planted
    gap = results["fairness"]["sex"]["gap"]["fnr"]
    assert gap["ci_low"] <= 0 <= gap["ci_high"]  # no underdiagnosis planted, none detected


def test_pdf_and_console_show_each_flaw_caught(flawed, capsys):
    text = "\n".join(page.extract_text() for page in PdfReader(flawed / "audit" / "report.pdf").pages)
    assert text.count("CAUGHT") >= 3
    for rule in PLANTED_RULES:
        assert rule in text
    # the console: rerunning the demo's summary is costly, so check the gate table the audit prints
    code = run(["gate", str(flawed / "audit" / "results.json"), "--policy", "default"])
    assert code == ExitCode.GATE_FAILED
    out = capsys.readouterr().out
    assert all(rule in out for rule in PLANTED_RULES)


def test_ci_recipe_audit_from_a_yaml_config_exits_1(flawed, tmp_path):
    """What examples/ci runs: audit a checkpoint with the default policy; the exit code blocks the job."""
    config = tmp_path / "audit.yaml"
    config.write_text(yaml.safe_dump({
        "model": str(flawed / "models" / "smallcnn"),
        "manifest": str(flawed / "data" / "manifest.csv"),
        "out": "ci-audit",
        "policy": "default",
        "explain": False,
        "report": False,
        "attributes": ["sex", "age_group"],
        "n_boot": 200,
    }))  # fmt: skip
    assert run(["--quiet", "audit", "--config", str(config)]) == ExitCode.GATE_FAILED
    results = json.loads((tmp_path / "ci-audit" / "results.json").read_text())
    failed = {r["id"] for r in results["gate"]["rules"] if r["blocking"]}
    assert {"fairness-fnr-gap", "external-auroc-delta"} <= failed
    assert "saliency" not in results  # explanations were switched off in the config
    # a second run refuses to overwrite; flags override the YAML
    assert run(["--quiet", "audit", "--config", str(config)]) == ExitCode.INPUT_ERROR
    assert run(["--quiet", "audit", "--config", str(config), "--force"]) == ExitCode.GATE_FAILED


def test_audit_config_errors_are_one_line_exit_2(tmp_path, capsys):
    config = tmp_path / "audit.yaml"
    config.write_text("model: m\nmanifest: x.csv\nout: o\nn_bootstrap: 10\n")
    assert run(["audit", "--config", str(config)]) == ExitCode.INPUT_ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "n_bootstrap" in err[0] and str(config) in err[0]
    config.write_text("manifest: x.csv\nout: o\n")
    assert run(["audit", "--config", str(config)]) == ExitCode.INPUT_ERROR
    assert "--model" in capsys.readouterr().err
