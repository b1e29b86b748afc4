"""Saliency per finding of a multi-label model: each finding's own logit explained, checked against captum and the phantom.

Oracles: captum's ``LayerGradCam`` and ``IntegratedGradients`` with
``target=k`` on the same tiny sigmoid-head network (the maps of finding k are
the gradients of logit k, no softmax across findings); the multi-label
phantom's planted truth (auditkit.data.phantom.multilabel: each finding's
region written as ``mask_<f>``, the effusion shortcut's marker box in
phantom.json): effusion's saliency mass in the marker box on the internal
marked effusion-positive images is far above the other findings' maps of the
same images (captum IG) and above the external site's (no marker there), the
pointing-game hit rate recomputed by hand from the maps and the planted masks,
and the gate's wildcard reaching ``findings.*.saliency.<m>.localization``.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam

from auditkit.audit.multilabel_saliency import (
    FindingModel,
    finding_model,
    finding_saliency,
    resolved_frame,
)
from auditkit.data.transforms import Preprocess
from auditkit.explain.cache import MapCache
from auditkit.explain.config import SaliencyConfig
from auditkit.explain.sample import ImageSet, explain_sample
from auditkit.nets.zoo import build_model


def test_each_findings_maps_are_captums_with_target_k(tmp_path):
    torch.manual_seed(0)
    model = build_model("smallcnn", in_channels=1, num_classes=3).eval()
    preprocess = Preprocess(input_size=(16, 16), in_channels=1)
    fm = FindingModel(model, "features.3", "0" * 64, preprocess, {}, ("a", "b", "c"))
    x = torch.randn(4, 1, 16, 16)
    black = torch.full_like(x, (0.0 - 0.5) / 0.25)  # raw intensity 0 after the checkpoint's normalisation
    layer = dict(model.named_modules())["features.3"]
    for k in range(3):
        got = {e.method: e.maps["sample"] for e in explain_sample(
            fm, {"sample": ImageSet(x, k)}, methods=("gradcam", "ig"), params={"ig": {"n_steps": 16}},
            cache=MapCache(tmp_path / "cache"), batch_size=4)}  # fmt: skip
        cam = LayerAttribution.interpolate(LayerGradCam(model, layer).attribute(x, target=k), (16, 16), "bilinear")
        np.testing.assert_allclose(got["gradcam"].maps, cam[:, 0].detach().numpy(), atol=1e-5)
        ig = IntegratedGradients(model).attribute(x, baselines=black, target=k, n_steps=16, method="gausslegendre")
        np.testing.assert_allclose(got["ig"].maps, ig.sum(1).detach().numpy(), atol=1e-5)
        assert (got["ig"].targets == k).all()
    assert not np.allclose(got["ig"].maps, IntegratedGradients(model).attribute(
        x, baselines=black, target=0, n_steps=16).sum(1).detach().numpy(), atol=1e-5)  # fmt: skip


def _share(maps: np.ndarray, box: list[int]) -> np.ndarray:
    y0, x0, y1, x1 = box
    positive = np.clip(maps, 0, None)
    return positive[:, y0:y1, x0:x1].sum((1, 2)) / np.maximum(positive.sum((1, 2)), 1e-12)


@pytest.mark.slow
def test_effusions_saliency_sits_on_the_planted_marker(audited):
    root, model, _, _, document, phantom = audited
    truth = json.loads(phantom.truth_path.read_text(encoding="utf-8"))
    box = truth["flaws"]["effusion_shortcut"]["marker_box"]
    # results.json: on effusion-positive images, IG's share in the declared marker region is high
    # internally (90% carry the marker) and near nothing at the external site (none does)
    region = document["findings"]["effusion"]["saliency"]["ig"]["shortcut"]["declared_region"]
    internal, external = region["positives_by_cohort"]["test"], region["positives_by_cohort"]["site_C"]
    assert internal["ci_low"] > 4 * region["diffuse_map_share"]
    assert external["estimate"] < internal["ci_low"] / 2
    for finding in ("opacity", "nodule"):  # the region is declared for effusion only
        assert document["findings"][finding]["saliency"]["ig"]["shortcut"]["declared_region"] is None
    # the same images, explained for the other findings' logits (captum): effusion's map alone is on the marker
    import torch as _torch

    from auditkit.train.multilabel import load_multilabel_model

    fm = finding_model(load_multilabel_model(model))
    frame = resolved_frame(pd.read_csv(phantom.manifest_path), fm.findings, root=phantom.out_dir, where="manifest")
    frame["split"] = frame["site"].map(lambda s: "external" if s == "site_C" else "test")
    frame["score_effusion"], frame["score_opacity"], frame["score_nodule"] = 0.9, 0.9, 0.9
    cfg = SaliencyConfig(methods=("ig",), max_images=24, sanity_images=2, sanity_blocks=1, ig_steps=16,
                         gallery_max=0, n_boot=50)  # fmt: skip
    result = finding_saliency(fm, frame, "effusion", out_dir=root / "probe", cfg=cfg, threshold=0.5)
    marked = {r["id"] for r in truth["images"] if r["marker"]}
    rows = np.flatnonzero(result.sample["id"].isin(marked).to_numpy() & (result.sample["_cohort"] == "test").to_numpy())
    assert len(rows) >= 5
    own = _share(result.displays["ig"][rows], box)
    from auditkit.explain.images import load_images

    x = load_images(result.sample.iloc[rows], fm.preprocess).inputs
    black = _torch.full_like(x, -2.0)
    for j, finding in enumerate(fm.findings):
        if finding != "effusion":
            other = IntegratedGradients(fm.model).attribute(x, baselines=black, target=j, n_steps=16)
            assert own.mean() > 3 * _share(other.sum(1).detach().numpy(), box).mean(), finding


@pytest.mark.slow
def test_localisation_is_measured_against_each_findings_planted_region(audited):
    from PIL import Image

    root, model, _, _, document, phantom = audited
    from auditkit.train.multilabel import load_multilabel_model

    fm = finding_model(load_multilabel_model(model))
    frame = resolved_frame(pd.read_csv(phantom.manifest_path), fm.findings, root=phantom.out_dir, where="manifest")
    frame["split"] = "test"
    frame["score_opacity"] = 0.9
    cfg = SaliencyConfig(methods=("ig",), max_images=40, sanity_images=2, sanity_blocks=1, ig_steps=16,
                         gallery_max=0, n_boot=50)  # fmt: skip
    result = finding_saliency(fm, frame, "opacity", out_dir=root / "probe-loc", cfg=cfg, threshold=0.5)
    planted = {r["id"]: r["opacity"] for r in json.loads(phantom.truth_path.read_text(encoding="utf-8"))["images"]}
    hits, areas = [], []
    for i, mask in enumerate(result.masks):
        assert (mask is not None) == planted[result.sample["id"].iloc[i]]  # a region exactly where it was planted
        if mask is not None:
            png = np.asarray(Image.open(phantom.out_dir / "masks" / f"{result.sample['id'].iloc[i]}_opacity.png")) > 0
            np.testing.assert_array_equal(mask, png)
            peak = np.unravel_index(np.argmax(result.displays["ig"][i]), mask.shape)
            hits.append(bool(mask[peak]))
            areas.append(mask.mean())
    block = result.section["ig"]["localization"]
    assert block["n_images"] == len(hits)
    assert block["hit_rate"]["estimate"] == pytest.approx(np.mean(hits))  # the pointing game by hand
    assert block["hit_rate"]["ci_low"] > 2 * np.mean(areas)  # far above a peak dropped at random
    # and in the audit's results.json, every finding's localisation is over its own positives
    for finding in fm.findings:
        loc = document["findings"][finding]["saliency"]["ig"]["localization"]
        assert loc["n_images"] >= 1 and loc["hit_rate"]["estimate"] is not None


@pytest.mark.slow
def test_results_validate_and_the_gate_reaches_each_findings_saliency(audited):
    from auditkit.gate import evaluate
    from auditkit.gate.policy import parse_policy
    from auditkit.results import validate_results

    root, _, _, _, document, _ = audited
    validate_results(document)
    assert "saliency" not in document  # a multi-label audit nests its saliency per finding
    assert not [w for w in document.get("warnings", []) if w.get("code") == "multilabel_explanations_not_run"]
    for finding in ("opacity", "nodule", "effusion"):
        section = document["findings"][finding]["saliency"]
        assert set(section) == {"gradcam", "ig"}
        assert "logit of finding" in section["ig"]["target"] and section["ig"]["completeness"]["n_failed"] >= 0
        for method in ("gradcam", "ig"):  # deletion/insertion on the finding's own sigmoid, noise/shift SSIM
            assert "sigmoid probability" in section[method]["faithfulness"]["score"]
            assert section[method]["faithfulness"]["n_images"] > 0 and section[method]["stability"]["n_images"] > 0
        gallery = document["findings"][finding]["gallery"]
        assert gallery and all(e["overlays"]["ig"].startswith(f"explain/{finding}/overlays/") for e in gallery)
        assert all((root / "audit" / e["overlays"]["gradcam"]).is_file() for e in gallery)
    policy = parse_policy(
        'name: ml-saliency\nversion: "1"\nblock_on_insufficient: false\nrules:\n'
        "  - id: hit\n    metric: findings.*.saliency.gradcam.localization.hit_rate\n    min: 0.0\n    use: estimate\n"
        "  - id: ig-hit\n    metric: findings.*.saliency.ig.localization.hit_rate\n    min: 0.0\n    use: estimate\n",
        source="ml-saliency.yaml",
    )
    checks = {c.metric: c.verdict for c in evaluate(document, policy).checks}
    assert {f"findings.{f}.saliency.ig.localization.hit_rate" for f in ("opacity", "nodule", "effusion")} <= set(checks)
    assert len(checks) == 6


@pytest.mark.slow
def test_the_report_shows_each_findings_saliency_and_gallery(audited):
    import re

    from auditkit.cli import run

    root, _, _, _, document, _ = audited
    folder = root / "audit"
    assert run(["--quiet", "report", str(folder), "--out", str(folder / "report.html"), "--force"]) == 0
    html = (folder / "report.html").read_text(encoding="utf-8")
    text = re.sub(r"<[^>]+>", " ", html)
    for finding in ("opacity", "nodule", "effusion"):
        assert f"Saliency of {finding}" in text
        hit = document["findings"][finding]["saliency"]["ig"]["localization"]["hit_rate"]
        assert f"{hit['estimate']:.3f} (95% CI {hit['ci_low']:.3f}" in text
    share = document["findings"]["effusion"]["saliency"]["ig"]["shortcut"]["declared_region"]
    assert f"{share['positives_by_cohort']['test']['estimate']:.3f} (95% CI" in text
    strips = re.findall(r'alt="image, Grad-CAM, Integrated Gradients for ', html)
    assert 3 <= len(strips) <= 12  # a small gallery per finding (results.json keeps every case)


def test_a_findings_mask_path_cannot_leave_the_data_root(tmp_path):
    from auditkit.errors import PathEscapeError

    (tmp_path / "data").mkdir()
    frame = pd.DataFrame({"id": ["a", "b"], "image": ["x.png", "y.png"], "mask_nodule": ["", "../../etc/passwd"],
                          "shortcut_nodule": ["m.png", ""]})  # fmt: skip
    with pytest.raises(PathEscapeError, match=r"manifest.csv row 2, column 'mask_nodule'"):
        resolved_frame(frame, ["nodule"], root=(tmp_path / "data").resolve(), where="manifest.csv")
    frame.loc[1, "mask_nodule"] = "masks/b.png"
    resolved = resolved_frame(frame, ["nodule"], root=(tmp_path / "data").resolve(), where="manifest.csv")
    assert pd.isna(resolved["mask_nodule"].iloc[0])  # blank: the finding is absent, no mask
    assert resolved["mask_nodule"].iloc[1] == str((tmp_path / "data" / "masks" / "b.png").resolve())
    assert resolved["shortcut_nodule"].iloc[0] == str((tmp_path / "data" / "m.png").resolve())
