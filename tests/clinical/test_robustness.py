"""Robustness: a model with a planted noise sensitivity is found; perturbations are graded and deterministic."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from auditkit.clinical.perturbations import PERTURBATIONS, resolve
from auditkit.clinical.robustness import run_perturbations
from auditkit.data.transforms import Preprocess
from auditkit.stats.robustness import (
    condition_effects,
    precision_summary,
    repeatability,
    worst_condition,
)

SIZE = 32


def _images(n, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.binomial(1, 0.5, n)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    blob = np.exp(-((yy - 16) ** 2 + (xx - 16) ** 2) / 30.0)
    contrast = rng.uniform(0.05, 0.35, n) * y
    base = 0.4 + 0.1 * np.sin(xx / 5.0)[None] * rng.uniform(0.5, 1.5, (n, 1, 1))
    x = np.clip(base + contrast[:, None, None] * blob[None] + rng.normal(0, 0.01, (n, SIZE, SIZE)), 0, 1)
    return torch.tensor(x[:, None], dtype=torch.float32), y


class Detector(nn.Module):
    """Blob contrast (centre minus ring); ``fragile`` adds a planted dependence on pixel-level energy."""

    def __init__(self, fragile: float, floor: float = 0.045) -> None:
        super().__init__()
        self.fragile, self.floor = fragile, floor
        yy, xx = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
        r2 = (yy - 16.0) ** 2 + (xx - 16.0) ** 2
        self.register_buffer("centre", (r2 < 16).float() / (r2 < 16).sum())
        self.register_buffer("ring", ((r2 > 64) & (r2 < 144)).float() / ((r2 > 64) & (r2 < 144)).sum())

    def forward(self, x):
        x = x * 0.25 + 0.5  # undo the Preprocess normalisation
        contrast = (x[:, 0] * self.centre).sum((1, 2)) - (x[:, 0] * self.ring).sum((1, 2))
        lap = x[:, 0, 1:-1, 1:-1] * 4 - x[:, 0, :-2, 1:-1] - x[:, 0, 2:, 1:-1] - x[:, 0, 1:-1, :-2] - x[:, 0, 1:-1, 2:]
        energy = lap.abs().mean((1, 2))
        logit = 40 * (contrast - 0.08) + self.fragile * torch.relu(energy - self.floor)
        return torch.stack([-logit / 2, logit / 2], dim=1)


PRE = Preprocess(input_size=(SIZE, SIZE), in_channels=1, mean=(0.5,), std=(0.25,))


def _run(model, x, names, seed=0):
    forward = lambda b: torch.softmax(model(b), dim=1)  # noqa: E731
    batches = [x[i : i + 64] for i in range(0, len(x), 64)]
    return run_perturbations(forward, batches, PRE, resolve(names), seed=seed, model=model)


def test_planted_noise_sensitivity_is_found(make_engine):
    x, y = _images(300)
    names = ["noise", "blur", "gamma", "shift"]
    engine = make_engine(300, n_boot=200)
    found = {}
    for fragile in (0.0, 400.0):
        scores = _run(Detector(fragile), x, names)
        pert = {k: v[:, 1] for k, v in scores.perturbed.items()}
        effects = condition_effects(engine, np.arange(300), y, scores.base[:, 1], pert, threshold=0.5)
        found[fragile] = (effects, worst_condition(effects))
    effects, worst = found[400.0]
    assert worst.groups[0].startswith("noise@") and worst.ci_low > 0.05
    assert effects["noise@3"]["flip_rate"].estimate > 3 * effects["blur@3"]["flip_rate"].estimate
    # without the planted term, noise costs little AUROC
    robust, _ = found[0.0]
    assert robust["noise@3"]["auroc_drop"].estimate < effects["noise@3"]["auroc_drop"].estimate - 0.05
    # the reference AUROC is scikit-learn's
    from sklearn.metrics import roc_auc_score

    base = _run(Detector(400.0), x[:, :, :, :], ["gamma"]).base[:, 1]
    assert effects["none"]["auroc"].estimate == pytest.approx(roc_auc_score(y, base))


def test_runner_is_deterministic_and_perturbations_graded():
    x, _ = _images(40, seed=3)
    model = Detector(400.0)
    a, b = _run(model, x, ["noise"], seed=5), _run(model, x, ["noise"], seed=5)
    np.testing.assert_array_equal(a.perturbed["noise@2"], b.perturbed["noise@2"])
    c = _run(model, x, ["noise"], seed=6)
    assert not np.array_equal(a.perturbed["noise@2"], c.perturbed["noise@2"])
    gen = torch.Generator().manual_seed(0)
    for p in PERTURBATIONS.values():
        changes = []
        for sev in (1, 2, 3):
            out = p.apply(x, sev, gen)
            assert out.shape == x.shape and float(out.min()) >= 0 and float(out.max()) <= 1
            changes.append(float((out - x).abs().mean()))
        assert changes[0] < changes[2], p.name  # graded: the strongest moves the image most
    # gamma by hand on a constant image
    np.testing.assert_allclose(PERTURBATIONS["gamma"].apply(torch.full((1, 1, 4, 4), 0.5), 2, gen), 0.5**1.35, rtol=1e-6)


def test_precision_and_repeatability_by_hand():
    base = np.array([0.5, 0.2])
    mild = {"a": np.array([0.6, 0.2]), "b": np.array([0.4, 0.2])}
    p = precision_summary(base, mild)
    np.testing.assert_allclose(p["per_image_sd"], [0.1, 0.0], atol=1e-12)
    assert p["cv_percent_median"] == pytest.approx(np.median([20.0, 0.0]), abs=1e-9)
    groups = np.array(["p1", "p1", "p2", "p2", None], dtype=object)
    scores = np.array([0.4, 0.6, 0.3, 0.3, 0.9])
    r = repeatability(groups, scores, threshold=0.5)
    # variances 0.02 and 0 with one degree of freedom each: s_w = sqrt(0.01)
    assert r["within_subject_sd"] == pytest.approx(0.1)
    assert r["repeatability_coefficient"] == pytest.approx(0.277)
    assert r["call_disagreement"] == pytest.approx(0.5)
