"""The saliency section of an audit and the explain command, on the phantom with a trained smallcnn.

The session fixtures (tests/conftest.py) give a smallcnn trained on the quick
phantom, where the shortcut flaw is ON: a burned-in marker in the top-right
corner goes with the positive label at the internal sites. A second, clean
model is trained here on a phantom with every flaw OFF.
"""

from __future__ import annotations

import json

import jsonschema
import pandas as pd
import pytest
import torch
from PIL import Image

from auditkit.cli import run
from auditkit.errors import ExitCode

FAST = dict(
    max_images=40,
    max_val_images=24,
    ig_steps=24,
    sanity_images=8,
    sanity_blocks=3,
    faithfulness_images=12,
    faithfulness_steps=10,
    stability_images=6,
    n_boot=300,
    gallery_per_category=1,
)
SECTION_KEYS = {
    "n_images", "target", "params", "postprocessing", "localization", "faithfulness", "sanity",
    "shortcut_score", "shortcut", "stability", "completeness", "by_group",
}


@pytest.fixture(scope="module")
def flawed(trained_smallcnn, quick_predictions):
    from auditkit.audit.predictions import read_predictions
    from auditkit.nets import load_checkpoint

    return load_checkpoint(trained_smallcnn, device="cpu"), read_predictions(quick_predictions)


@pytest.fixture(scope="module")
def flawed_saliency(flawed, tmp_path_factory):
    from auditkit.audit.saliency import run_saliency
    from auditkit.explain.guard import model_state_fingerprint

    loaded, table = flawed
    before = model_state_fingerprint(loaded.model)
    out = tmp_path_factory.mktemp("report")
    section, gallery = run_saliency(loaded, table, out_dir=out, config={**FAST, "methods": ["gradcam", "ig"]})
    assert model_state_fingerprint(loaded.model) == before  # the caller's model is untouched
    return section, gallery, out


@pytest.fixture(scope="module")
def clean_model(tmp_path_factory):
    """A smallcnn trained on a phantom with every flaw off (val AUROC about 0.9)."""
    from auditkit.audit.predictions import read_predictions
    from auditkit.data.phantom import PhantomConfig, generate_phantom
    from auditkit.nets import load_checkpoint
    from auditkit.predict import predict
    from auditkit.progress import set_quiet
    from auditkit.train import train

    root = tmp_path_factory.mktemp("clean")
    set_quiet(True)
    try:
        phantom = generate_phantom(root / "phantom", PhantomConfig(n_images=640, size=48, seed=1).with_flaws((), {}))
        result = train(
            phantom.manifest_path, arch="smallcnn", out=root / "model", epochs=6, batch_size=32, lr=3e-3,
            patience=4, seed=0, device="cpu", input_size=(48, 48), num_workers=0,
        )
        predict(result.model_dir, phantom.manifest_path, out=root / "preds.parquet", device="cpu", num_workers=0)
    finally:
        set_quiet(False)
    return load_checkpoint(result.model_dir, device="cpu"), read_predictions(root / "preds.parquet"), phantom


@pytest.mark.slow
def test_saliency_section_has_the_documented_keys_and_fits_the_schema(flawed_saliency):
    from auditkit.results import results_schema

    section, _, _ = flawed_saliency
    assert set(section) == {"gradcam", "ig"}
    schema = results_schema()
    validator = jsonschema.Draft202012Validator({"$defs": schema["$defs"], **schema["properties"]["saliency"]})
    validator.validate(json.loads(json.dumps(section)))
    for block in section.values():
        assert set(block) == SECTION_KEYS
        assert block["n_images"] == 80  # 40 from the internal test split + 40 from external site_C
        assert set(block["shortcut"]["by_cohort"]) == {"test", "site_C"}
        assert set(block["by_group"]) == {"sex", "age_group"}
        for key in ("hit_rate", "energy_pointing", "iou_otsu", "dice_otsu", "iou_tuned", "dice_tuned"):
            value = block["localization"][key]
            assert 0 <= value["ci_low"] <= value["estimate"] <= value["ci_high"] <= 1
        assert 0.2 <= block["localization"]["threshold_tuned"] <= 0.8
    assert section["ig"]["completeness"]["passed"] == (
        section["ig"]["completeness"]["max_rel_delta"] <= section["ig"]["completeness"]["tolerance"]
    )
    assert section["gradcam"]["completeness"] is None
    assert section["gradcam"]["postprocessing"] == ["upsample(48x48)", "relu"]
    assert section["ig"]["postprocessing"] == ["sum_channels", "relu"]


@pytest.mark.slow
def test_gradcam_of_the_trained_model_passes_the_randomisation_sanity_check(flawed_saliency):
    sanity = flawed_saliency[0]["gradcam"]["sanity"]
    assert sanity["passed"] is True
    assert sanity["cascading_mean_ssim"] < sanity["baseline_ssim"]["estimate"]
    assert [step["layer"] for step in sanity["cascading"]] == ["fc", "features.3", "features.2"]


@pytest.mark.slow
def test_gallery_files_exist_with_their_scale_and_cover_categories_and_groups(flawed_saliency, flawed):
    _, gallery, out = flawed_saliency
    table = flawed[1]
    assert 4 <= len(gallery) <= 24
    assert {g["category"] for g in gallery} <= {"true_positive", "false_negative", "false_positive", "true_negative"}
    assert {g["cohort"] for g in gallery} == {"test", "site_C"}
    assert {g["attributes"]["sex"] for g in gallery} == set(table.frame["sex"])
    for item in gallery:
        assert (out / item["image"]).is_file() and item["image"].startswith("explain/images/")
        for method, rel in item["overlays"].items():
            assert rel == f"explain/overlays/{item['id']}__{method}.png"
            with Image.open(out / rel) as png:
                assert json.loads(png.text["auditkit:scale"])["vmax"] > 0
        row = table.frame.set_index("id").loc[item["id"]]
        assert item["score"] == pytest.approx(table.probs[table.frame.index[table.frame["id"] == item["id"]][0], 1])
        assert item["y_true"] == table.classes.classes[int(row["y_true"])]


@pytest.mark.slow
def test_the_planted_marker_is_flagged_and_a_clean_model_is_not(flawed, flawed_saliency, clean_model, quick_phantom, tmp_path):
    from auditkit.audit.saliency import run_saliency
    from auditkit.explain.evaluation.shortcut import corner_masses, pooled_share
    from auditkit.explain.images import load_images
    from auditkit.explain.runner import explain_inputs

    # per image, on the flawed model: the maps move to the corner when the marker is there
    loaded, table = flawed
    truth = {r["id"]: r["marker"] for r in json.loads(quick_phantom.truth_path.read_text())["images"]}
    test = table.frame[table.frame["split"] == "test"].reset_index(drop=True)
    images = load_images(test, loaded.preprocess)
    maps = explain_inputs(loaded.model, images.inputs, method="gradcam", target=1, target_layer=loaded.target_layer)
    inside, mass = corner_masses(maps.display(), rois=images.rois)
    marker = test["id"].map(truth).to_numpy(dtype=bool)
    # with the marker, 4x a diffuse map's share of the positive evidence sits in one corner
    assert pooled_share(inside[marker], mass[marker]) > 4 / 16
    # without it there is next to no positive evidence at all (measured: 0.001 against 13 units):
    # the flawed model's "lesion" evidence is the marker
    assert inside[marker].mean() > 100 * inside[~marker].mean()

    # aggregated: the flawed model's score sits clearly above a diffuse map's (1/16) and above the
    # clean model's, whose interval stays near chance
    flawed_score = flawed_saliency[0]["gradcam"]["shortcut_score"]
    clean_loaded, clean_table, _ = clean_model
    cheap = {**FAST, "methods": ["gradcam"], "sanity_images": 2, "sanity_blocks": 1, "sanity_independent": False,
             "faithfulness_images": 2, "stability_images": 2, "gallery_max": 0}
    clean_section, _ = run_saliency(clean_loaded, clean_table, out_dir=tmp_path, config=cheap)
    clean_score = clean_section["gradcam"]["shortcut_score"]
    assert flawed_score["ci_low"] > 2 * 1 / 16
    assert clean_score["ci_high"] < flawed_score["ci_low"]
    assert clean_score["estimate"] < 2 * 1 / 16


@pytest.mark.slow
def test_explain_command_writes_overlays_and_an_index(trained_smallcnn, quick_phantom, tmp_path, capsys):
    out = tmp_path / "explain"
    code = run([
        "--quiet", "explain", "--model", str(trained_smallcnn), "--manifest", str(quick_phantom.manifest_path),
        "--methods", "gradcam,ig", "--out", str(out), "--limit", "5", "--select", "errors", "--target", "lesion",
    ])
    assert code == ExitCode.OK
    index = pd.read_csv(out / "explanations.csv")
    assert len(index) == 10 and set(index["method"]) == {"gradcam", "ig"}
    assert (index["target_class"] == "lesion").all()
    for rel in index["overlay"]:
        assert (out / rel).is_file()
    record = json.loads((out / "explain.json").read_text())
    assert record["methods"]["ig"]["postprocessing"] == ["sum_channels", "relu"]
    assert record["selection"] == {"how": "errors", "limit": 5, "target": "lesion", "n_images": 5}
    # a rerun finds every map in the cache
    assert run(["--quiet", "explain", "--model", str(trained_smallcnn), "--manifest", str(quick_phantom.manifest_path),
                "--methods", "gradcam,ig", "--out", str(out), "--limit", "5", "--select", "errors", "--target", "lesion"]) == 0
    assert pd.read_csv(out / "explanations.csv").equals(index)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--methods", "lime"], "--methods got lime"),
        (["--target", "pneumothorax"], "--target 'pneumothorax' is not"),
        (["--select", "worst"], "--select must be one of"),
    ],
)
@pytest.mark.slow
def test_explain_command_bad_input_is_one_line_and_exit_2(trained_smallcnn, quick_phantom, tmp_path, capsys, args, message):
    base = ["explain", "--model", str(trained_smallcnn), "--manifest", str(quick_phantom.manifest_path), "--out", str(tmp_path)]
    assert run([*base, *args]) == ExitCode.INPUT_ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]


def test_explain_command_missing_manifest_is_exit_2(tmp_path, capsys):
    code = run(["explain", "--model", str(tmp_path / "nope"), "--manifest", str(tmp_path / "m.csv"), "--out", str(tmp_path)])
    assert code == ExitCode.INPUT_ERROR
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_saliency_needs_an_image_column(tmp_path):
    from auditkit.audit.saliency import run_saliency
    from auditkit.errors import InvalidInputError

    frame = pd.DataFrame({"id": ["a", "b"], "y_true": [0, 1], "score": [0.2, 0.7]})
    with pytest.raises(InvalidInputError, match="no 'image' column"):
        run_saliency(None, frame, out_dir=tmp_path, config={"methods": "gradcam"})
    assert torch.is_tensor(torch.zeros(1))


def test_cohorts_are_the_internal_test_split_and_each_external_site():
    from auditkit.audit.saliency import _cohort_of

    frame = pd.DataFrame({"split": ["test", "external", None, "val", "external"], "site": ["a", "C", None, "b", None]})
    assert _cohort_of(frame).tolist() == ["test", "C", None, None, "external"]
    assert _cohort_of(frame.drop(columns="split")).tolist() == ["test"] * 5
