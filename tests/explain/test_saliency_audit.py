"""The saliency section of an audit and the explain command, on the phantom with a trained smallcnn.

The session fixtures (tests/conftest.py) give a smallcnn trained on the quick
phantom, where the shortcut flaw is ON: a burned-in marker in the top-right
corner goes with the positive label at the internal sites. A second, clean
model is trained here on a phantom with every flaw OFF.
"""

from __future__ import annotations

import json

import jsonschema
import numpy as np
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
def flawed_saliency(flawed, quick_phantom, tmp_path_factory):
    from auditkit.audit.saliency import run_saliency
    from auditkit.explain.guard import model_state_fingerprint

    loaded, table = flawed
    before = model_state_fingerprint(loaded.model)
    out = tmp_path_factory.mktemp("report")
    # the predictions table and the phantom's images are in different folders: the images' root is named
    section, gallery = run_saliency(
        loaded, table, out_dir=out, config={**FAST, "methods": ["gradcam", "ig"]},
        data_root=quick_phantom.manifest_path.parent,
    )  # fmt: skip
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
    assert section["ig"]["completeness"]["tolerance"] == 0.05  # the documented default (the paper's guidance)
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
    # an image column with no path in it is no better, and nothing is written before the refusal
    with pytest.raises(InvalidInputError, match=r"no 'image' column.*--no-explain"):
        run_saliency(None, frame.assign(image=None), out_dir=tmp_path / "out", config={"methods": "gradcam"})
    assert not (tmp_path / "out").exists()


def test_cohorts_are_the_internal_test_split_and_each_external_site():
    from auditkit.audit.saliency import _cohort_of

    frame = pd.DataFrame({"split": ["test", "external", None, "val", "external"], "site": ["a", "C", None, "b", None]})
    assert _cohort_of(frame).tolist() == ["test", "C", None, None, "external"]
    assert _cohort_of(frame.drop(columns="split")).tolist() == ["test"] * 5


@pytest.mark.slow
def test_ig_completeness_summary_is_the_gap_of_a_by_hand_path_integral(flawed, quick_phantom, tmp_path):
    """The completeness block against IG integrated by hand (Gauss-Legendre nodes from NumPy, autograd gradients)."""
    from auditkit.audit.saliency import run_saliency
    from auditkit.explain.images import load_images, normalization_of

    loaded, table = flawed
    rows = table.frame[table.frame["split"] == "test"].groupby("y_true").head(3).reset_index(drop=True)
    steps = 8  # few nodes, so the completeness gap is large enough to compare
    cheap = {**FAST, "methods": ["ig"], "ig_steps": steps, "max_images": len(rows), "sanity_images": 2,
             "sanity_blocks": 1, "sanity_independent": False, "faithfulness_images": 2, "stability_images": 2,
             "gallery_max": 0, "n_boot": 50}  # fmt: skip
    section, _ = run_saliency(
        loaded, rows, out_dir=tmp_path, config=cheap, data_root=quick_phantom.manifest_path.parent
    )
    completeness = section["ig"]["completeness"]
    assert section["ig"]["n_images"] == len(rows)  # every row is explained, so the order does not matter

    # IG_i = (x_i - x'_i) * integral_0^1 dF_t(x' + a (x - x'))/dx_i da, t the positive class (index 1),
    # x' raw black through the normalisation; relative gap |sum IG - (F(x) - F(x'))| / max(|F(x) - F(x')|, 0.1)
    x = load_images(rows, loaded.preprocess).inputs.double()
    mean, std = (np.asarray(v, dtype=float).reshape(1, -1, 1, 1) for v in normalization_of(loaded.preprocess))
    baseline = torch.as_tensor(np.broadcast_to((0.0 - mean) / std, x.shape).copy())
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    model = loaded.model.double()
    try:
        integral = torch.zeros_like(x)
        for a, w in zip((nodes + 1) / 2, weights / 2, strict=True):
            point = (baseline + a * (x - baseline)).requires_grad_(True)
            (grad,) = torch.autograd.grad(model(point)[:, 1].sum(), point)
            integral += w * grad
        with torch.no_grad():
            gain = (model(x)[:, 1] - model(baseline)[:, 1]).numpy()
    finally:
        model.float()  # the module-scoped model goes back as it came
    total = ((x - baseline) * integral).sum(dim=(1, 2, 3)).numpy()
    relative = np.abs(total - gain) / np.maximum(np.abs(gain), 0.1)
    assert relative.max() > 1e-4  # the check is not vacuous
    assert completeness["max_rel_delta"] == pytest.approx(relative.max(), rel=1e-3, abs=1e-5)
    assert completeness["median_rel_delta"] == pytest.approx(np.median(relative), rel=1e-3, abs=1e-5)
    assert completeness["n_failed"] == int((relative > 0.05).sum())
    assert completeness["passed"] is bool((relative <= 0.05).all())


# --- the table's paths are fenced in the data root ---------------------------------------------


class _Stop(Exception):
    """Raised by the recording preprocess once every image has been read."""


class _RecordingPreprocess:
    """Stands in for a checkpoint's preprocess: keeps each image it is given, stops after ``n``."""

    def __init__(self, n: int) -> None:
        self.n, self.images = n, []

    def __call__(self, image):
        self.images.append(image)
        if len(self.images) == self.n:
            raise _Stop
        return torch.zeros(1, 4, 4)


def _png(path, value: int):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((6, 6), value, dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def fenced(tmp_path):
    """(root folder holding a predictions CSV writer, a PNG outside the root)."""
    from auditkit.audit.predictions import read_predictions

    root = tmp_path / "root"
    _png(root / "inside.png", 50)
    outside = _png(tmp_path / "outside.png", 200)

    def table(second: str, **extra):
        frame = pd.DataFrame({"id": ["a", "b"], "y_true": [0, 1], "score": [0.2, 0.7],
                              "image": ["inside.png", second], **extra})  # fmt: skip
        frame.to_csv(root / "preds.csv", index=False)
        return read_predictions(root / "preds.csv")

    return root, outside, table


def _levels(images) -> list[int]:
    """Return the grey level (0-255) of each uniform image read, sorted."""
    return sorted(round(float(i.max()) * 255) for i in images)


def _saliency(table, tmp_path, n_images=2, **kwargs):
    from types import SimpleNamespace

    from auditkit.audit.saliency import run_saliency

    preprocess = _RecordingPreprocess(n_images)
    with pytest.raises(_Stop):
        run_saliency(SimpleNamespace(preprocess=preprocess), table, out_dir=tmp_path / "out",
                     config={"methods": "gradcam"}, **kwargs)  # fmt: skip
    return preprocess.images


def test_a_path_escaping_the_tables_folder_is_refused_naming_row_and_column(fenced, tmp_path):
    from auditkit.audit.saliency import run_saliency
    from auditkit.errors import AuditkitError, PathEscapeError

    root, outside, table = fenced
    for second in ("../outside.png", str(outside), f"{root}/../outside.png"):
        with pytest.raises(PathEscapeError, match=r"preds\.csv row 2, column 'image': path .*outside\.png") as info:
            run_saliency(None, table(second), out_dir=tmp_path / "out", config={"methods": "gradcam"})
        assert isinstance(info.value, AuditkitError) and "\n" not in str(info.value)
        assert "--allow-outside-root" in str(info.value)
    # a mask or ROI elsewhere is refused the same way
    for column in ("mask", "roi"):
        with pytest.raises(PathEscapeError, match=rf"row 1, column '{column}'"):
            run_saliency(None, table("inside.png", **{column: ["../outside.png", None]}), out_dir=tmp_path / "out",
                         config={"methods": "gradcam"})  # fmt: skip


def test_a_symlink_in_the_root_pointing_out_of_it_is_refused(fenced, tmp_path):
    from auditkit.audit.saliency import run_saliency
    from auditkit.errors import PathEscapeError

    root, outside, table = fenced
    (root / "link.png").symlink_to(outside)
    with pytest.raises(PathEscapeError, match=r"row 2, column 'image': path 'link\.png' resolves to"):
        run_saliency(None, table("link.png"), out_dir=tmp_path / "out", config={"methods": "gradcam"})


def test_paths_inside_the_root_are_read_and_allow_outside_root_reads_the_others(fenced, tmp_path):
    root, _, table = fenced
    # inside the table's folder (the default root), relative or absolute: both read, as stored
    images = _saliency(table(str(root / "inside.png")), tmp_path)
    assert _levels(images) == [50, 50]
    # the user allows reading outside the root: the outside file is read
    images = _saliency(table("../outside.png"), tmp_path, allow_outside_root=True)
    assert _levels(images) == [50, 200]


def test_relative_paths_are_taken_from_an_explicit_data_root(fenced, tmp_path, monkeypatch):
    from auditkit.audit.saliency import run_saliency
    from auditkit.errors import InvalidInputError, PathEscapeError

    root, _, table = fenced
    # relative to data_root, not to the table's folder: 'outside.png' is found under tmp_path
    frame = table("outside.png").frame.assign(image=["root/inside.png", "outside.png"])
    images = _saliency(frame, tmp_path, data_root=tmp_path)
    assert _levels(images) == [50, 200]
    # a bare DataFrame is fenced too: in data_root, else in the current folder
    with pytest.raises(PathEscapeError, match="the predictions table row 2, column 'image'"):
        run_saliency(None, frame.assign(image=["inside.png", "../outside.png"]), out_dir=tmp_path / "out",
                     config={"methods": "gradcam"}, data_root=root)  # fmt: skip
    monkeypatch.chdir(root)
    with pytest.raises(PathEscapeError, match="the predictions table row 2, column 'image'"):
        run_saliency(None, frame.assign(image=["inside.png", "../outside.png"]), out_dir=tmp_path / "out",
                     config={"methods": "gradcam"})  # fmt: skip
    assert _levels(_saliency(frame.assign(image=["inside.png", "inside.png"]), tmp_path)) == [50, 50]
    with pytest.raises(InvalidInputError, match=r"data root .* is not a folder"):
        run_saliency(None, frame, out_dir=tmp_path / "out", config={"methods": "gradcam"}, data_root=root / "nope")


# --- the saliency settings are checked up front --------------------------------------------


def test_an_unknown_saliency_setting_is_one_sentence_naming_it_and_the_allowed_ones():
    from auditkit.errors import AuditkitError, ConfigError
    from auditkit.explain.config import SaliencyConfig, check_saliency_settings

    for check in (SaliencyConfig.from_any, check_saliency_settings):
        with pytest.raises(ConfigError) as info:
            check({"methods": "gradcam", "max_imagse": 10})
        message = str(info.value)
        assert isinstance(info.value, AuditkitError) and "\n" not in message
        assert "'max_imagse'" in message
        assert all(name in message for name in SaliencyConfig.model_fields)
    with pytest.raises(ConfigError, match=r"'ig_steps'.*got 1"):
        check_saliency_settings({"ig_steps": 1})
    with pytest.raises(ConfigError, match=r"'methods'.*lime"):
        check_saliency_settings({"methods": ["lime"]})
    with pytest.raises(ConfigError, match="must be a mapping"):
        check_saliency_settings(["gradcam"])
    assert check_saliency_settings(None) is None
    assert check_saliency_settings({"methods": "gradcam", "n_boot": 200}) == {"methods": "gradcam", "n_boot": 200}


def test_the_worst_cases_of_failures_get_gallery_panels_in_rank_order(flawed, quick_phantom, tmp_path):
    """Planted 'failures': the two lowest-scoring positives of the internal test split, ranked by hand."""
    from auditkit.audit.saliency import run_saliency

    loaded, table = flawed
    frame = table.frame
    test_pos = frame[(frame["split"] == "test") & (frame["y_true"] == 1)]
    score = test_pos["score_1"] if "score_1" in test_pos.columns else test_pos["score"]
    worst = test_pos.assign(_s=score.to_numpy()).sort_values("_s").head(2)
    failures = {"threshold": 0.5, "cohorts": {"test": {"false_negative": {"n": 2, "worst": [
        {"id": str(i), "score": float(s)} for i, s in zip(worst["id"], worst["_s"], strict=True)]}}}}
    cheap = {**FAST, "methods": ["gradcam"], "max_images": 8, "sanity_images": 2, "sanity_blocks": 1,
             "sanity_independent": False, "faithfulness_images": 2, "stability_images": 2, "gallery_max": 1}
    section, gallery = run_saliency(loaded, table, out_dir=tmp_path, config=cheap,
                                    data_root=quick_phantom.manifest_path.parent, failures=failures)
    picked = [g for g in gallery if g["category"] == "worst_false_negative"]
    assert [g["id"] for g in picked] == [str(i) for i in worst["id"]]
    assert [g["worst_rank"] for g in picked] == [1, 2] and {g["cohort"] for g in picked} == {"test"}
    assert [g["score"] for g in picked] == pytest.approx(list(worst["_s"]), abs=1e-6)
    for g in picked:
        assert (tmp_path / g["overlays"]["gradcam"]).is_file() and (tmp_path / g["image"]).is_file()
    assert len([g for g in gallery if "worst_rank" not in g]) <= 1  # the sample's gallery is unchanged
    assert section["gradcam"]["n_images"] <= 2 * 8  # the evidence is the stratified sample's (8 per cohort)
