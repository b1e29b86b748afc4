"""``auditkit audit --predictions``: results.json + summary.md, end to end, through the CLI.

Oracles: scikit-learn on the test rows (AUROC, confusion matrix), the
operating point recomputed from the validation rows alone with
``roc_curve``, the shipped JSON Schema (``load_results``), and byte equality
of reruns.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import confusion_matrix, roc_auc_score, roc_curve

from auditkit.audit.config import AuditSettings
from auditkit.audit.predictions import read_predictions
from auditkit.audit.statistics import compute_statistics
from auditkit.cli import run
from auditkit.errors import ExitCode
from auditkit.results import get_path, load_results

from .conftest import make_table

ARGS = [
    "--attributes",
    "sex,age_group",
    "--intersections",
    "sex+age_group",
    "--n-boot",
    "100",
    "--seed",
    "3",
    "--no-report",  # the report has its own tests; these check results.json and summary.md
]


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    """One binary audit of a table with patients of 2 images each, run through the CLI."""
    folder = tmp_path_factory.mktemp("audit")
    frame = make_table(1600, images_per_patient=2, flaw=1.0)
    csv = folder / "preds.csv"
    frame.to_csv(csv, index=False)
    out = folder / "out"
    code = run(["--quiet", "audit", "--predictions", str(csv), "--out", str(out), *ARGS])
    assert code == ExitCode.OK
    return frame, csv, out, load_results(out / "results.json")


def test_results_hold_the_paths_the_gate_and_report_read(audited):
    frame, _, out, doc = audited
    for path in (
        "discrimination.test.auroc",
        "discrimination.val.sensitivity",
        "calibration.test.ece",
        "calibration.test.slope",
        "fairness.sex.gap.fnr",
        "fairness.sex.worst_group.auroc",
        "fairness.sex+age_group.groups.F+60+.n",
        "external.C.delta.auroc",
        "external.C.calibration.ece",
        "external.C.shift.score_ks.p_adjusted",
        "cohorts.test.n_images",
        "curves.C.roc.tpr_low",
        "recalibration.temperature.test.ece",
    ):
        get_path(doc, path)
    assert doc["run"]["cluster_column"] == "patient_id" and doc["run"]["clustered"] is True
    assert "clustered by patient_id" in doc["run"]["resampling"]
    assert doc["created"] and len(doc["run"]["config_sha256"]) == 64
    test = frame[frame["split"] == "test"]
    auroc = doc["discrimination"]["test"]["auroc"]
    assert auroc["estimate"] == pytest.approx(
        roc_auc_score(test["y_true"], test["score"]), abs=1e-12
    )
    assert auroc["ci_low"] < auroc["estimate"] < auroc["ci_high"]
    # with several images per patient the AUROC difference uses the clustered bootstrap, not DeLong
    assert "bootstrap" in doc["external"]["C"]["delta"]["auroc"]["method"]
    assert doc["cohorts"]["test"]["n_patients"] == test["patient_id"].nunique()
    summary = (out / "summary.md").read_text()
    assert f"{auroc['estimate']:.3f} ({auroc['ci_low']:.3f}–{auroc['ci_high']:.3f})" in summary


def test_operating_point_is_chosen_on_validation_rows_only(audited):
    frame, _, _, doc = audited
    val = frame[frame["split"] == "val"]
    fpr, tpr, thr = roc_curve(val["y_true"], val["score"], drop_intermediate=False)
    op = doc["operating_point"]
    assert op["chosen_on"] == "val" and op["rule"] == "youden"
    assert op["threshold"] == pytest.approx(thr[np.argmax(tpr - fpr)])
    test = frame[frame["split"] == "test"]
    tn, fp, fn, tp = confusion_matrix(test["y_true"], test["score"] >= op["threshold"]).ravel()
    cm = doc["discrimination"]["test"]["confusion_matrix"]
    assert (cm["tp"], cm["fp"], cm["tn"], cm["fn"]) == (tp, fp, tn, fn)


def test_planted_underdiagnosis_shows_in_the_fnr_gap(audited):
    gap = audited[3]["fairness"]["sex"]["gap"]["fnr"]
    assert gap["groups"] == ["F", "M"] and gap["ci_low"] > 0
    assert audited[3]["fairness"]["sex"]["multiplicity"]["method"] == "holm"


def test_rerun_is_byte_identical_and_overwrite_needs_force(audited, capsys):
    _, csv, out, _ = audited
    first = (out / "results.json").read_bytes()
    code = run(["--quiet", "audit", "--predictions", str(csv), "--out", str(out), *ARGS])
    assert code == ExitCode.INPUT_ERROR
    assert "already exists; pass --force" in capsys.readouterr().err
    code = run(["--quiet", "audit", "--predictions", str(csv), "--out", str(out), "--force", *ARGS])
    assert code == ExitCode.OK
    assert (out / "results.json").read_bytes() == first


def _one_line_error(capsys, args, match):
    code = run(["--quiet", "audit", *args])
    err = capsys.readouterr().err
    assert code == ExitCode.INPUT_ERROR, err
    assert match in err and "Traceback" not in err and err.count("\n") == 1


def test_bad_inputs_exit_2_with_one_line(tmp_path, capsys):
    frame = make_table(400)
    good = tmp_path / "good.csv"
    frame.to_csv(good, index=False)
    bad = tmp_path / "bad.csv"
    frame.assign(score=frame["score"].where(frame.index != 3)).to_csv(bad, index=False)
    out = ["--out", str(tmp_path / "o"), "--n-boot", "50"]
    _one_line_error(capsys, ["--predictions", str(bad), *out], "row 4, column 'score' is nan")
    _one_line_error(
        capsys,
        ["--predictions", str(good), "--attributes", "race", *out],
        "attribute column 'race'",
    )
    _one_line_error(
        capsys, ["--predictions", str(good), "--external-site", "Q", *out], "--external-site 'Q'"
    )
    _one_line_error(
        capsys,
        ["--predictions", str(good), "--operating-point", "best", *out],
        "operating point 'best'",
    )
    config = tmp_path / "audit.yaml"
    config.write_text("n_boot: 50\nbootstraps: 10\n")
    _one_line_error(
        capsys,
        ["--predictions", str(good), "--config", str(config), *out],
        "unknown setting 'bootstraps'",
    )
    no_val = tmp_path / "noval.csv"
    frame[frame["split"] != "val"].to_csv(no_val, index=False)
    _one_line_error(capsys, ["--predictions", str(no_val), *out], "no validation split")


def test_no_validation_split_works_with_a_fixed_threshold(tmp_path):
    frame = make_table(500)
    frame = frame[frame["split"] != "val"]
    table_path = tmp_path / "p.csv"
    frame.to_csv(table_path, index=False)
    sections = compute_statistics(
        read_predictions(table_path), AuditSettings(n_boot=50, operating_point="threshold:0.5")
    )
    assert sections["operating_point"]["chosen_on"] == "given"
    assert sections["recalibration"] is None
    assert any(w["code"] == "no_recalibration" for w in sections["warnings"])


def test_changing_test_scores_never_moves_the_threshold(tmp_path):
    frame = make_table(600, external=False)
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    frame.to_csv(a, index=False)
    shifted = frame.copy()
    shifted.loc[shifted["split"] == "test", "score"] **= 3
    shifted.to_csv(b, index=False)
    s = AuditSettings(n_boot=50)
    t_a = compute_statistics(read_predictions(a), s)["operating_point"]["threshold"]
    t_b = compute_statistics(read_predictions(b), s)["operating_point"]["threshold"]
    assert t_a == t_b


def test_multiclass_audit_with_embeddings_and_bca(tmp_path):
    rng = np.random.default_rng(0)
    n = 700
    y = rng.choice(["a", "b", "c"], n)
    k = pd.Series(y).map({"a": 0, "b": 1, "c": 2}).to_numpy()
    logits = rng.normal(size=(n, 3)) + 1.8 * np.eye(3)[k]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    site = np.where(rng.random(n) < 0.3, "S2", "S1")
    frame = pd.DataFrame(
        {
            "id": [f"i{i}" for i in range(n)],
            "y_true": y,
            "score_a": probs[:, 0],
            "score_b": probs[:, 1],
            "score_c": probs[:, 2],
            "site": site,
            "split": np.where(site == "S2", "external", rng.choice(["val", "test"], n)),
        }
    )
    frame.to_csv(tmp_path / "m.csv", index=False)
    emb = pd.DataFrame(
        rng.normal(size=(n, 4)) + (site == "S2")[:, None] * 1.0,
        columns=[f"emb_{j}" for j in range(4)],
    )
    emb.insert(0, "id", frame["id"])
    emb.to_parquet(tmp_path / "e.parquet", index=False)
    out = tmp_path / "out"
    code = run(
        [
            "--quiet",
            "audit",
            "--predictions",
            str(tmp_path / "m.csv"),
            "--out",
            str(out),
            "--n-boot",
            "60",
            "--ci-method",
            "bca",
            "--embeddings",
            str(tmp_path / "e.parquet"),
        ]
    )
    assert code == ExitCode.OK
    doc = json.loads((out / "results.json").read_text())
    test = frame[frame["split"] == "test"]
    disc = doc["discrimination"]["test"]
    assert (
        disc["confusion_matrix"]["matrix"]
        == confusion_matrix(
            test["y_true"],
            np.array(["a", "b", "c"])[test[["score_a", "score_b", "score_c"]].to_numpy().argmax(1)],
        ).tolist()
    )
    assert disc["auroc"]["estimate"] == pytest.approx(
        roc_auc_score(test["y_true"], test[["score_a", "score_b", "score_c"]], multi_class="ovr"),
        abs=1e-12,
    )
    assert set(disc["per_class"]) == {"a", "b", "c"}
    assert doc["run"]["ci_method"] == "bca" and doc["operating_point"]["rule"] == "argmax"
    shift = doc["external"]["S2"]["shift"]
    assert shift["domain_auroc"]["estimate"] > 0.7 and shift["mmd"]["p_value"] < 0.05


def test_delong_auroc_interval_option_on_unclustered_data(tmp_path):
    """auroc_ci: delong gives the logit-transformed DeLong interval (variance by brute-force components)."""
    from scipy.special import expit, logit
    from scipy.stats import norm

    frame = make_table(800, external=False)
    path = tmp_path / "p.csv"
    frame.to_csv(path, index=False)
    sections = compute_statistics(
        read_predictions(path), AuditSettings(n_boot=50, auroc_ci="delong")
    )
    est = sections["discrimination"]["test"]["auroc"]
    test = frame[frame["split"] == "test"]
    y, s = test["y_true"].to_numpy(), test["score"].to_numpy()
    psi = (s[y == 1][:, None] > s[y == 0][None, :]) + 0.5 * (
        s[y == 1][:, None] == s[y == 0][None, :]
    )
    var = np.var(psi.mean(1), ddof=1) / psi.shape[0] + np.var(psi.mean(0), ddof=1) / psi.shape[1]
    auc = psi.mean()
    half = norm.ppf(0.975) * np.sqrt(var) / (auc * (1 - auc))
    assert "DeLong" in est.method
    assert est.ci_low == pytest.approx(expit(logit(auc) - half), abs=1e-10)
    assert est.ci_high == pytest.approx(expit(logit(auc) + half), abs=1e-10)


def test_predictions_of_another_model_are_refused_and_a_csv_is_flagged_unverified(
    quick_predictions, trained_smallcnn, quick_phantom, phantom_subset, tmp_path, capsys
):
    import pyarrow.parquet as pq

    from auditkit.nets.checkpoint import load_checkpoint

    weights_sha = load_checkpoint(trained_smallcnn, device="cpu").sha256
    table = pq.read_table(quick_predictions)
    recorded = json.loads(table.schema.metadata[b"auditkit"])
    assert recorded["model_sha256"] == weights_sha  # predict wrote the model's fingerprint
    other = tmp_path / "other_model.parquet"
    meta = {**table.schema.metadata, b"auditkit": json.dumps({**recorded, "model_sha256": "f" * 64}).encode()}
    pq.write_table(table.replace_schema_metadata(meta), other)
    common = ["--model", str(trained_smallcnn), "--no-explain", "--no-report", "--n-boot", "50", "--device", "cpu"]
    _one_line_error(
        capsys, ["--predictions", str(other), "--out", str(tmp_path / "a"), *common], "ffffffffffff"
    )
    assert not (tmp_path / "a" / "results.json").exists()
    # with --manifest too, the model runs but the table audited is still the one given
    manifest = phantom_subset(5)
    both = ["--predictions", str(other), "--manifest", str(manifest), "--data-root", str(quick_phantom.out_dir)]
    _one_line_error(capsys, [*both, "--out", str(tmp_path / "a2"), *common], "ffffffffffff")

    as_csv = tmp_path / "p.csv"
    table.to_pandas().to_csv(as_csv, index=False)
    code = run(["--quiet", "audit", "--predictions", str(as_csv), "--out", str(tmp_path / "b"), *common])
    assert code == ExitCode.OK
    codes = [w["code"] for w in load_results(tmp_path / "b" / "results.json")["warnings"]]
    assert "predictions_model_unverified" in codes

    code = run(["--quiet", "audit", "--predictions", str(quick_predictions), "--out", str(tmp_path / "c"), *common])
    assert code == ExitCode.OK
    codes = [w["code"] for w in load_results(tmp_path / "c" / "results.json")["warnings"]]
    assert "predictions_model_unverified" not in codes


def test_force_removes_the_earlier_runs_gate_files_but_never_an_input(tmp_path):
    out = tmp_path / "audit"
    out.mkdir()
    table = out / "predictions.parquet"  # an input that happens to live in the audit folder
    make_table(400).to_parquet(table)
    args = ["--quiet", "audit", "--predictions", str(table), "--out", str(out), "--n-boot", "50", "--no-report",
            "--attributes", "sex"]  # fmt: skip
    assert run([*args, "--policy", "default"]) in (ExitCode.OK, ExitCode.GATE_FAILED)
    gate_files = ["gate.json", "gate-junit.xml", "gate-summary.md", "policy.yaml"]
    assert all((out / name).is_file() for name in gate_files)
    assert run([*args, "--force"]) == ExitCode.OK  # no policy this time
    assert not any((out / name).exists() for name in gate_files)
    assert "gate" not in load_results(out / "results.json")
    assert table.is_file()


def test_a_config_that_is_not_utf8_exits_2(tmp_path, capsys):
    config = tmp_path / "audit.yaml"
    config.write_bytes("n_boot: 50\nmodel_name: Röntgen\n".encode("latin-1"))
    make_table(100).to_csv(tmp_path / "p.csv", index=False)
    _one_line_error(
        capsys, ["--predictions", str(tmp_path / "p.csv"), "--out", str(tmp_path / "o"), "--config", str(config)],
        "not UTF-8",
    )


def test_attribute_mistakes_are_named(tmp_path, capsys):
    make_table(200).to_csv(tmp_path / "p.csv", index=False)
    base = ["--predictions", str(tmp_path / "p.csv"), "--out", str(tmp_path / "o"), "--n-boot", "50"]
    _one_line_error(capsys, [*base, "--attributes", "score"], "part of the predictions contract")
    _one_line_error(capsys, [*base, "--attributes", "sex,sex"], "attribute 'sex' is given twice")
    _one_line_error(capsys, [*base, "--intersections", "sex+sex"], "names a column twice")
    _one_line_error(
        capsys, [*base, "--intersections", "sex+age_group", "--intersections", "age_group+sex"], "repeats"
    )


def test_force_keeps_a_policy_kept_in_the_audit_folder_and_a_typo_removes_nothing(tmp_path, capsys):
    from importlib import resources

    out = tmp_path / "audit"
    out.mkdir()
    table = tmp_path / "p.parquet"
    make_table(400).to_parquet(table)
    policy = out / "policy.yaml"  # the user's own, edited policy, kept beside the results
    policy.write_bytes(resources.files("auditkit").joinpath("policies", "default.yaml").read_bytes())
    args = ["--quiet", "audit", "--out", str(out), "--n-boot", "50", "--no-report", "--attributes", "sex",
            "--policy", str(policy), "--force"]  # fmt: skip
    assert run([*args, "--predictions", str(table)]) in (ExitCode.OK, ExitCode.GATE_FAILED)
    assert policy.is_file() and (out / "results.json").is_file()
    before = sorted(p.name for p in out.iterdir())
    _one_line_error(capsys, [*args[2:], "--predictions", str(tmp_path / "typo.parquet")], "nothing was removed")
    assert sorted(p.name for p in out.iterdir()) == before


@pytest.mark.parametrize(
    ("yaml_text", "fragment"),
    [
        ("n_boot: 50\nsaliency:\n  max_imgs: 10\n", "max_imgs"),  # refused before any work
        ("trust_model_code: true\n", "unknown setting 'trust_model_code'"),  # the command line only
    ],
)
def test_audit_yaml_mistakes_are_refused_before_any_work(tmp_path, capsys, yaml_text, fragment):
    config = tmp_path / "audit.yaml"
    config.write_text(yaml_text)
    make_table(100).to_csv(tmp_path / "p.csv", index=False)
    _one_line_error(
        capsys, ["--predictions", str(tmp_path / "p.csv"), "--out", str(tmp_path / "o"), "--config", str(config)],
        fragment,
    )
    assert not (tmp_path / "o").exists()


def test_a_table_predict_wrote_elsewhere_is_explained_within_the_root_it_recorded(
    quick_predictions, trained_smallcnn, quick_phantom, tmp_path
):
    import pyarrow.parquet as pq

    recorded = json.loads(pq.read_schema(quick_predictions).metadata[b"auditkit"])
    assert recorded["data_root"] == str(quick_phantom.manifest_path.parent.resolve())
    config = tmp_path / "audit.yaml"
    config.write_text(
        "n_boot: 50\nsaliency: {methods: [gradcam], max_images: 8, max_val_images: 4, sanity_images: 2,\n"
        "  sanity_blocks: 1, faithfulness_images: 2, stability_images: 2, gallery_max: 2, n_boot: 50}\n"
    )
    code = run(["--quiet", "audit", "--predictions", str(quick_predictions), "--model", str(trained_smallcnn),
                "--out", str(tmp_path / "a"), "--config", str(config), "--no-report", "--device", "cpu"])  # fmt: skip
    assert code == ExitCode.OK
    assert "gradcam" in load_results(tmp_path / "a" / "results.json")["saliency"]


def test_summary_of_a_platt_fit_that_did_not_converge_says_so():
    from auditkit.audit.summary import render_summary

    ece = {"estimate": 0.1, "ci_low": 0.05, "ci_high": 0.2}
    doc = {"recalibration": {"platt": {"parameters": {"a": None, "b": 1.5}, "test": {"ece": ece}}}}
    assert "| platt | a=not fitted, b=1.5 | 0.100 (0.050–0.200) |" in render_summary(doc)


def test_saliency_attributes_of_the_wrong_type_are_a_config_error():
    from auditkit.errors import ConfigError
    from auditkit.explain.config import check_saliency_settings

    with pytest.raises(ConfigError, match="'attributes' should be a list"):
        check_saliency_settings({"attributes": 5})
    assert check_saliency_settings({"attributes": "sex, age_group"}) == {"attributes": "sex, age_group"}
