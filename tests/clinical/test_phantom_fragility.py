"""The phantom's planted robustness flaw: a model trained on it breaks under a mild declared perturbation.

``fragility`` renders every lesion mainly as a one-pixel checkerboard after the
site's blur (config.Flaws). A small CNN trained on the flawed phantom learns
that texture; the audit's robustness runner and statistics (the code under
test) must find its AUROC collapsing under the mildest resolution loss while
the same CNN trained on the clean phantom (same seed, same patients and
lesions) barely moves. The truth is planted: which images carry the texture
and that resolution loss removes it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from auditkit.clinical.perturbations import resolve
from auditkit.clinical.robustness import run_perturbations
from auditkit.data.phantom import PhantomConfig
from auditkit.data.phantom.cohort import sample_cases
from auditkit.data.phantom.render import render_cases
from auditkit.data.transforms import Preprocess
from auditkit.stats.robustness import condition_effects
from tests.clinical.tiny_training import fit

SIZE, N, EPOCHS = 32, 600, 25
PRE = Preprocess(input_size=(SIZE, SIZE), in_channels=1, mean=(0.5,), std=(0.25,))


def _phantom(fragile: bool):
    config = PhantomConfig(n_images=N, size=SIZE, seed=0, n_sites=1).with_flaws(("fragility",) if fragile else ())
    cases = sample_cases(config)
    images = np.rint(render_cases(cases, config).images * 255) / 255  # the 8-bit PNGs' values
    return torch.tensor(images[:, None], dtype=torch.float32), cases["label"].to_numpy()


def _trained(x: torch.Tensor, y: np.ndarray) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(8, 2))  # fmt: skip
    return fit(model, PRE.finish(x), torch.tensor(y), epochs=EPOCHS, lr=1e-2, seed=0)


def _effects(fragile: bool, make_engine):
    x, y = _phantom(fragile)
    n_train = int(0.6 * N)
    model = _trained(x[:n_train], y[:n_train])
    x_test, y_test = x[n_train:], y[n_train:]
    scores = run_perturbations(lambda b: torch.softmax(model(b), dim=1), [x_test[i : i + 128] for i in range(0, len(x_test), 128)],
                               PRE, resolve(["resolution", "blur", "noise"]), severities=(1,), model=model)  # fmt: skip
    base = scores.base[:, 1]
    engine = make_engine(len(y_test), n_boot=200)
    threshold = float(np.quantile(base, 1 - y_test.mean()))
    effects = condition_effects(engine, np.arange(len(y_test)), y_test, base,
                                {k: v[:, 1] for k, v in scores.perturbed.items()}, threshold=threshold)  # fmt: skip
    return effects, roc_auc_score(y_test, base)


@pytest.mark.slow
def test_model_trained_on_the_fragile_phantom_breaks_under_mild_resolution_loss(make_engine):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: threads only contend
    try:
        flawed, flawed_auroc = _effects(True, make_engine)
        clean, _ = _effects(False, make_engine)
    finally:
        torch.set_num_threads(threads)
    assert flawed_auroc > 0.95  # the checkerboard is trivially learnable: the flaw is what the model reads
    drop = flawed["resolution@1"]["auroc_drop"]
    assert drop.ci_low > 0.3  # found: the mildest resolution loss (x0.75) wipes out the texture
    assert clean["resolution@1"]["auroc_drop"].estimate < 0.2
    assert drop.estimate - clean["resolution@1"]["auroc_drop"].estimate > 0.25
    # specificity: the perturbations that leave one-pixel texture alone do not hurt the flawed model
    for key in ("blur@1", "noise@1"):
        assert abs(flawed[key]["auroc_drop"].estimate) < 0.05


def test_fragility_changes_only_the_lesions():
    """Images without a lesion are byte-identical with the flaw on and off (it is a lesion appearance)."""
    base = PhantomConfig(n_images=40, size=SIZE, seed=3)
    flawed = base.with_flaws(("shortcut", "fragility"))
    plain = base.with_flaws(("shortcut",))
    cases_f, cases_p = sample_cases(flawed), sample_cases(plain)
    render_f, render_p = render_cases(cases_f, flawed), render_cases(cases_p, plain)
    img_f, img_p = render_f.images, render_p.images
    lesion = cases_p["lesion"].to_numpy()
    assert lesion.any() and (~lesion).any()
    np.testing.assert_array_equal(img_f[~lesion], img_p[~lesion])
    # inside the lesions the flaw moves the signal to the finest scale: a 2x2 checkerboard filter's response
    def finest(images):
        response = np.abs(images[:, :-1, :-1] - images[:, 1:, :-1] - images[:, :-1, 1:] + images[:, 1:, 1:])
        return response[render_p.lesion_masks[:, :-1, :-1]].mean()

    assert finest(img_f) > 3 * finest(img_p)
