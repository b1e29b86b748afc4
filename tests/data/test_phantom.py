"""The phantom's planted ground truth, measured from the files it writes (images, masks, manifest).

Each flaw is checked from the PNGs and the manifest, not from the generator's
own bookkeeping alone: masks against the pixels that differ from a lesion-free
render, markers detected from the pixels, lesion contrast measured inside the
mask against the surrounding lung, site statistics from the images, and
label flips from the label/mask disagreement.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import ndimage, stats

from auditkit.cli import run
from auditkit.data.manifest import read_manifest
from auditkit.data.phantom import PhantomConfig, SiteConfig, generate_phantom
from auditkit.data.phantom.cohort import sample_cases
from auditkit.data.phantom.render import quantize, render_cases
from auditkit.data.readers import read_image
from auditkit.errors import OutputExistsError
from auditkit.labels import ClassSpec

N_IMAGES = 1500

pytestmark = pytest.mark.slow  # every test here generates a phantom


@pytest.fixture(scope="module")
def flawed(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("phantom")
    result = generate_phantom(out, PhantomConfig(n_images=N_IMAGES, seed=11), workers=0)
    truth = json.loads(result.truth_path.read_text())
    manifest = read_manifest(result.manifest_path)
    images = np.stack([np.asarray(Image.open(p)) for p in manifest.frame["image"]])
    # images without a lesion have no mask file: their mask is empty
    masks = np.stack(
        [np.asarray(Image.open(p)) > 0 if isinstance(p, str) else np.zeros((64, 64), bool)
         for p in manifest.frame["mask"]]
    )
    rois = np.stack([np.asarray(Image.open(p)) > 0 for p in manifest.frame["roi"]])
    return {
        "out": out,
        "truth": truth,
        "table": pd.DataFrame(truth["images"]),
        "manifest": manifest,
        "images": images,
        "masks": masks,
        "rois": rois,
    }


def _tree_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def test_same_seed_same_bytes_whatever_the_workers(tmp_path):
    config = PhantomConfig(n_images=150, seed=4)
    generate_phantom(tmp_path / "a", config, workers=0)
    generate_phantom(tmp_path / "b", config, workers=2)
    generate_phantom(tmp_path / "c", PhantomConfig(n_images=150, seed=5), workers=0)
    assert _tree_hash(tmp_path / "a") == _tree_hash(tmp_path / "b")
    assert _tree_hash(tmp_path / "a") != _tree_hash(tmp_path / "c")
    assert not any(p.name.startswith(".") for p in (tmp_path / "a").iterdir())  # no staging left


def test_manifest_follows_the_contract(flawed):
    manifest = flawed["manifest"]
    frame = manifest.frame
    assert len(frame) == N_IMAGES
    assert manifest.classes == ClassSpec(("normal", "lesion"), "lesion")
    assert manifest.attribute_columns == ("sex", "age_group")
    assert manifest.has_masks and manifest.has_roi
    external = frame["site"] == flawed["truth"]["external_site"]
    assert (frame.loc[external, "split"] == "external").all()
    assert frame.loc[~external, "split"].isna().all()
    assert flawed["images"].shape == (N_IMAGES, 64, 64) and flawed["images"].dtype == np.uint8
    # a mask file exactly for the images that show a lesion
    assert (frame["mask"].notna().to_numpy() == flawed["table"]["lesion_present"].to_numpy()).all()
    table = flawed["table"]
    assert (frame["id"].to_numpy() == table["id"].to_numpy()).all()
    assert (frame["y_true"].to_numpy() == table["label"].to_numpy()).all()


def test_masks_are_exactly_the_lesion_footprint(flawed):
    truth, table = flawed["truth"], flawed["table"]
    config = PhantomConfig.model_validate(truth["config"])
    cases = sample_cases(config)
    rows = np.flatnonzero(table["lesion_present"].to_numpy())[:120]
    rows = np.concatenate([rows, np.flatnonzero(~table["lesion_present"].to_numpy())[:40]])
    without = quantize(render_cases(cases.iloc[rows], config, lesions=False).images, 8)
    for k, row in enumerate(rows):
        differs = flawed["images"][row] != without[k]
        mask = flawed["masks"][row]
        if not table.loc[row, "lesion_present"]:
            assert not mask.any() and not differs.any()
            assert table.loc[row, "lesion_box"] is None
            continue
        radius = truth["blur_radius_px"][table.loc[row, "site"]]
        halo = ndimage.binary_dilation(mask, structure=np.ones((2 * radius + 1,) * 2, dtype=bool))
        assert not (differs & ~halo).any()  # nothing changes beyond the site's blur reach
        assert differs[mask].mean() >= 0.95  # and (nearly) every lesion pixel changes
        assert (mask <= flawed["rois"][row]).all()  # lesions lie in the lungs
        assert int(mask.sum()) == table.loc[row, "lesion_area_px"] > 0
        ys, xs = np.nonzero(mask)
        assert table.loc[row, "lesion_box"] == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_masks_match_pixel_for_pixel_without_blur(tmp_path):
    sites = (
        SiteConfig(name="site_A", blur_sigma=0.0, noise_sigma=0.01),
        SiteConfig(name="site_B", blur_sigma=0.0, noise_sigma=0.01, gamma=1.1),
    )
    config = PhantomConfig(n_images=60, seed=2, sites=sites)
    generate_phantom(tmp_path, config, workers=0)
    cases = sample_cases(config)
    without = quantize(render_cases(cases, config, lesions=False).images, 8)
    for row, image_id in enumerate(cases["id"]):
        image = np.asarray(Image.open(tmp_path / "images" / f"{image_id}.png"))
        mask_path = tmp_path / "masks" / f"{image_id}.png"
        mask = np.asarray(Image.open(mask_path)) > 0 if mask_path.exists() else np.zeros((64, 64), bool)
        np.testing.assert_array_equal(image != without[row], mask)


def _lesion_signal(image: np.ndarray, mask: np.ndarray, roi: np.ndarray) -> float:
    """Mean intensity inside the mask minus the mean of the lung ring 2-4 px around it."""
    outer = ndimage.binary_dilation(mask, iterations=4)
    inner = ndimage.binary_dilation(mask, iterations=2)
    ring = outer & ~inner & roi
    return float(image[mask].mean() - image[ring].mean()) if ring.any() else np.nan


def test_lesions_are_brighter_than_their_surroundings_by_their_contrast(flawed):
    table = flawed["table"]
    rows = np.flatnonzero(table["lesion_present"].to_numpy())
    signal = np.array(
        [_lesion_signal(flawed["images"][r] / 255.0, flawed["masks"][r], flawed["rois"][r]) for r in rows]
    )
    ok = np.isfinite(signal)
    assert np.median(signal[ok]) > 0.03
    rho = stats.spearmanr(signal[ok], table.loc[rows[ok], "lesion_contrast"]).statistic
    assert rho > 0.5


def test_underdiagnosed_subgroup_has_fainter_lesions_in_the_pixels(flawed):
    table = flawed["table"]
    flaw = flawed["truth"]["flaws"]["underdiagnosis"]
    assert flaw["enabled"] and (flaw["attribute"], flaw["value"]) == ("sex", "F")
    rows = np.flatnonzero(table["lesion_present"].to_numpy())
    signal = np.array(
        [_lesion_signal(flawed["images"][r] / 255.0, flawed["masks"][r], flawed["rois"][r]) for r in rows]
    )
    female = (table.loc[rows, "sex"] == "F").to_numpy()
    ok = np.isfinite(signal)
    result = stats.mannwhitneyu(signal[ok & female], signal[ok & ~female], alternative="less")
    assert result.pvalue < 1e-6
    assert np.median(signal[ok & female]) < 0.75 * np.median(signal[ok & ~female])
    assert table.loc[table["underdiagnosed"], "sex"].eq("F").all()


def _detect_marker(images: np.ndarray) -> np.ndarray:
    corner = images[:, :12, -10:]  # top-right corner, where the letter is burned in
    return (corner >= 240).sum(axis=(1, 2)) >= 10


def test_marker_tracks_the_label_at_internal_sites_only(flawed):
    table, manifest = flawed["table"], flawed["manifest"]
    detected = _detect_marker(flawed["images"])
    np.testing.assert_array_equal(detected, table["marker"].to_numpy())
    label = manifest.frame["y_true"].to_numpy()
    external = (manifest.frame["site"] == flawed["truth"]["external_site"]).to_numpy()
    strength = flawed["truth"]["flaws"]["shortcut"]["strength"]
    for is_external in (False, True):
        sel = external == is_external
        table2x2 = pd.crosstab(detected[sel], label[sel]).to_numpy()
        p_value = stats.chi2_contingency(table2x2).pvalue
        rate_pos = detected[sel & (label == 1)].mean()
        rate_neg = detected[sel & (label == 0)].mean()
        if is_external:
            assert p_value > 1e-3 and abs(rate_pos - 0.5) < 0.12 and abs(rate_neg - 0.5) < 0.12
        else:
            assert p_value < 1e-12
            assert abs(rate_pos - (1 + strength) / 2) < 0.05 and abs(rate_neg - (1 - strength) / 2) < 0.05


def test_label_flips_only_in_the_noisy_subgroup(flawed):
    table, manifest = flawed["table"], flawed["manifest"]
    flaw = flawed["truth"]["flaws"]["label_noise"]
    lesion_in_pixels = flawed["masks"].any(axis=(1, 2))
    disagree = manifest.frame["y_true"].to_numpy() != lesion_in_pixels
    in_group = (manifest.frame[flaw["attribute"]] == flaw["value"]).to_numpy()
    assert disagree.any() and not (disagree & ~in_group).any()
    assert set(manifest.frame.loc[disagree, "id"]) == set(flaw["flipped_ids"])
    np.testing.assert_array_equal(table["label_flipped"].to_numpy(), disagree)
    assert disagree.sum() == round(flaw["strength"] * in_group.sum()) == flaw["n_flipped"]


def test_external_site_images_beyond_the_internal_range(flawed):
    frame = flawed["manifest"].frame
    images = flawed["images"] / 255.0
    rois = flawed["rois"]
    lung_mean = np.array([images[i][rois[i]].mean() for i in range(len(images))])
    # noise: spread of the air corner (top-left, no marker) after removing its local mean
    air = images[:, :8, :8]
    noise = (air - ndimage.uniform_filter(air, size=(1, 3, 3))).std(axis=(1, 2))
    by_site = pd.DataFrame({"site": frame["site"], "lung": lung_mean, "noise": noise}).groupby("site").median()
    external = flawed["truth"]["external_site"]
    internal = by_site.drop(index=external)
    assert by_site.loc[external, "lung"] < internal["lung"].min() - 0.03
    assert by_site.loc[external, "noise"] > internal["noise"].max() * 1.3
    assert internal["lung"].max() - internal["lung"].min() < 0.1  # internal sites differ mildly


def test_patients_stay_in_one_site_sex_and_age_group(flawed):
    frame = flawed["manifest"].frame
    per_patient = frame.groupby("patient_id")[["site", "sex", "age_group"]].nunique()
    assert (per_patient == 1).all().all()
    sizes = frame.groupby("patient_id").size()
    assert (sizes >= 2).sum() > 100 and sizes.max() <= 4


def test_demographics_and_site_prevalence(flawed):
    frame, truth = flawed["manifest"].frame, flawed["truth"]
    patients = frame.drop_duplicates("patient_id")
    assert stats.binomtest(int((patients["sex"] == "F").sum()), len(patients), 0.5).pvalue > 1e-3
    config = PhantomConfig.model_validate(truth["config"])
    observed = patients["age_group"].value_counts().reindex(["18-40", "40-60", "60-80", "80+"]).to_numpy()
    expected = np.asarray(config.age_distribution) * len(patients)
    assert stats.chisquare(observed, expected).pvalue > 1e-3
    lesion = pd.Series(flawed["masks"].any(axis=(1, 2)), index=frame.index)
    for site in config.site_list:
        sel = frame["site"] == site.name
        rate, n = lesion[sel].mean(), int(sel.sum())
        # images of a patient are correlated, so allow twice the binomial standard error, x3
        assert abs(rate - site.prevalence) < 6 * np.sqrt(site.prevalence * (1 - site.prevalence) / n)


def test_clean_phantom_has_no_flaws_and_shares_the_anatomy(flawed):
    config = PhantomConfig.model_validate(flawed["truth"]["config"])
    clean = config.with_flaws(())
    clean_cases, flawed_cases = sample_cases(clean), sample_cases(config)
    assert (clean_cases["label"] == clean_cases["label_true"]).all()
    assert not clean_cases["underdiagnosed"].any()
    # paired by seed: the same patients, findings and anatomy with and without flaws
    for column in ("patient_id", "site", "sex", "age_group", "lesion", "lesion_cx", "body_w"):
        assert clean_cases[column].equals(flawed_cases[column])
    internal = ~clean_cases["external"]
    rates = clean_cases[internal].groupby("label")["marker"].mean()
    assert abs(rates[1] - rates[0]) < 0.1
    ext = clean_cases.loc[clean_cases["external"], "gamma"].iloc[0]
    internal_gammas = clean_cases.loc[internal, "gamma"]
    assert internal_gammas.min() <= ext <= internal_gammas.max()


def test_sixteen_bit_and_larger_images(tmp_path):
    config8 = PhantomConfig(n_images=12, size=128, seed=3)
    generate_phantom(tmp_path / "p8", config8, workers=0)
    generate_phantom(tmp_path / "p16", config8.model_copy(update={"bit_depth": 16}), workers=0)
    image8 = read_image(tmp_path / "p8" / "images" / "img00000.png")
    image16 = read_image(tmp_path / "p16" / "images" / "img00000.png")
    assert image8.shape == image16.shape == (128, 128)
    np.testing.assert_allclose(image8, image16, atol=0.5 / 255 + 1e-6)
    assert len(np.unique(image16)) > len(np.unique(image8))


def test_refuses_a_non_empty_folder_unless_forced(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(OutputExistsError, match="not empty"):
        generate_phantom(tmp_path, PhantomConfig(n_images=8), workers=0)
    generate_phantom(tmp_path, PhantomConfig(n_images=8), force=True, workers=0)
    (tmp_path / ".phantom-staging-killed" / "images").mkdir(parents=True)  # a killed run's leftovers
    generate_phantom(tmp_path, PhantomConfig(n_images=10), force=True, workers=0)
    assert not (tmp_path / ".phantom-staging-killed").exists()
    assert len(list((tmp_path / "images").iterdir())) == 10
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    other = tmp_path / "other"
    (other / "images").mkdir(parents=True)
    with pytest.raises(OutputExistsError, match="not a phantom"):
        generate_phantom(other, PhantomConfig(n_images=8), force=True, workers=0)


def test_synth_command_and_its_exit_codes(tmp_path, capsys):
    out = tmp_path / "ph"
    assert run(["-q", "synth", "--out", str(out), "--n", "20", "--flaws", "none", "--seed", "1"]) == 0
    assert capsys.readouterr().out.strip() == str(out / "manifest.csv")
    truth = json.loads((out / "phantom.json").read_text())
    assert not any(flaw["enabled"] for flaw in truth["flaws"].values())
    assert run(["-q", "synth", "--out", str(out), "--n", "20"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert run(["-q", "synth", "--out", str(tmp_path / "x"), "--flaws", "shortcut,bogus"]) == 2
    assert "unknown flaw" in capsys.readouterr().err
    assert run(["-q", "synth", "--out", str(tmp_path / "x"), "--strength", "shortcut=1.5"]) == 2
    assert "flaws.shortcut.strength" in capsys.readouterr().err
    args = ["-q", "synth", "--out", str(out), "--n", "20", "--force", "--flaws", "shortcut",
            "--strength", "shortcut=1"]
    assert run(args) == 0
    truth = json.loads((out / "phantom.json").read_text())
    assert truth["flaws"]["shortcut"] == {**truth["flaws"]["shortcut"], "enabled": True, "strength": 1.0}
    assert not truth["flaws"]["label_noise"]["enabled"]
