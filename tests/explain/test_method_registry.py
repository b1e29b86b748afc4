"""The attribution-method registry: every method declared once and read by api, runner, config, report and CLI.

Oracles: a hand computation (Integrated Gradients of a linear model with a
black baseline is input × weight, summed over channels; Sundararajan et al.
2017 §3) for the declared post-processing, and the registry's own
declarations for every table that must not drift from it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from auditkit.errors import ConfigError, InvalidInputError
from auditkit.explain import api, runner
from auditkit.explain import methods as registry
from auditkit.explain.config import SaliencyConfig
from auditkit.report.sections import explanations


class Tiny(nn.Module):
    """A 2-channel conv layer, global average pooling and a linear head (a CAM-able model)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Conv2d(2, 3, 3, padding=1, stride=2)  # a 4x4 layer map: upsampled
        self.head = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.features(x)).mean(dim=(2, 3)))


@pytest.mark.parametrize("name", registry.names())
def test_every_method_runs_through_the_api_with_its_declared_steps(name):
    x = torch.rand(2, 2, 8, 8, generator=torch.Generator().manual_seed(1))
    params = {"n_steps": 8} if name == "ig" else {"n_samples": 4, "random_state": 0} if name == "smoothgrad" else {}
    result = api.attribute(Tiny().eval(), x, method=name, target=1, target_layer="features", **params)
    method = registry.get(name)
    # applied steps are recorded with their arguments, e.g. upsample(8x8)
    assert tuple(step.split("(")[0] for step in result.postprocessing) == method.postprocess
    assert result.maps.shape == (2, 8, 8)
    assert set(result.params) <= set(method.parameters) | {"target_layer"}
    with pytest.raises(InvalidInputError):
        api.attribute(Tiny().eval(), x, method=name, target=1, target_layer="features", not_a_parameter=1)


def test_ig_of_a_linear_model_is_input_times_weight_summed_over_channels():
    weight = torch.tensor([[0.5, -1.0], [2.0, 0.25]])

    class Linear(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.einsum("nchw,kc->nk", x, weight)

    x = torch.rand(1, 2, 4, 4, generator=torch.Generator().manual_seed(2))
    result = api.attribute(Linear(), x, method="ig", target=1, n_steps=16, baseline="zeros")
    expected = (x[0] * weight[1][:, None, None]).sum(0).numpy()
    assert np.allclose(result.maps[0], expected, atol=1e-5)


def test_every_table_is_the_registry():
    names = registry.names()
    assert names == api.METHODS
    assert set(api.DEFAULT_POSTPROCESS) == set(names) and set(runner.DISPLAY_STEPS) == set(names)
    assert {n for n in names if registry.get(n).family == "cam"} == api.CAM_METHODS
    assert registry.labels() == runner.METHOD_LABELS
    assert registry.labels() == explanations.SHORT_NAMES and registry.units() == explanations.UNITS
    assert all(explanations.METHOD_NAMES[n].startswith(registry.get(n).label + " (") for n in names)
    labels = list(registry.labels().values())
    assert len(labels) == len(set(labels))


def test_aliases_and_the_settings_accept_exactly_the_registered_methods():
    assert registry.get("Grad-CAM++").name == "gradcampp"
    assert registry.get("integrated_gradients").name == "ig"
    with pytest.raises(KeyError):
        registry.get("lime")
    assert SaliencyConfig(methods="gradcam,smoothgrad").methods == ("gradcam", "smoothgrad")
    with pytest.raises((ConfigError, ValueError), match="lime"):
        SaliencyConfig.from_any({"methods": ["lime"]})
    with pytest.raises(ValueError, match="already registered"):
        registry.register(registry.get("ig"))


def test_explain_sample_gives_ig_the_checkpoints_normalization_and_the_maps_of_the_api(tmp_path):
    """The one "explain a sample" path: its IG arguments and maps against the API called by hand.

    Oracle: ``api.attribute`` with the normalization written out by hand
    (IG's black baseline is ``(0 - mean) / std`` in the model's input space).
    """
    from types import SimpleNamespace

    from auditkit.explain.cache import MapCache
    from auditkit.explain.sample import ImageSet, explain_sample, method_kwargs

    preprocess = SimpleNamespace(mean=(0.5, 0.25), std=(0.2, 0.4))
    assert method_kwargs("ig", {"n_steps": 8}, preprocess) == {"n_steps": 8, "mean": (0.5, 0.25), "std": (0.2, 0.4)}
    assert method_kwargs("ig", {"mean": [0.0, 0.0]}, preprocess)["mean"] == [0.0, 0.0]  # the caller's wins
    assert method_kwargs("gradcam", {}, preprocess) == {}  # a CAM takes no normalization
    model = Tiny()
    x = torch.randn(5, 2, 8, 8, generator=torch.Generator().manual_seed(1))
    loaded = SimpleNamespace(model=model, preprocess=preprocess, target_layer="features", sha256="tiny")
    entries = list(explain_sample(loaded, {"a": ImageSet(x, 1)}, methods=("ig", "gradcam"),
                                  params={"ig": {"n_steps": 8}}, cache=MapCache(tmp_path / "c"), batch_size=2))  # fmt: skip
    assert [e.method for e in entries] == ["ig", "gradcam"] and entries[0].n_from_cache == 0
    by_hand = api.attribute(model, x, method="ig", target=1, n_steps=8, mean=(0.5, 0.25), std=(0.2, 0.4))
    np.testing.assert_allclose(entries[0].maps["a"].maps, by_hand.maps, rtol=1e-5, atol=1e-6)
    again = list(explain_sample(loaded, {"a": ImageSet(x, 1)}, methods=("ig",), params={"ig": {"n_steps": 8}},
                                cache=MapCache(tmp_path / "c"), batch_size=2))  # fmt: skip
    assert again[0].n_from_cache == 5
    np.testing.assert_array_equal(again[0].maps["a"].maps, entries[0].maps["a"].maps)


def test_audit_settings_name_saliency_fields_and_accepted_parameters():
    """Each registered ``audit_settings`` pair maps a SaliencyConfig field onto a parameter the explainer accepts."""
    from auditkit.audit.saliency import _method_params

    cfg = SaliencyConfig(ig_steps=7, smoothgrad_samples=3, seed=11)
    for name in registry.names():
        method = registry.get(name)
        for param, field in method.audit_settings:
            assert field in SaliencyConfig.model_fields and param in method.parameters
    assert _method_params("ig", cfg) == {"n_steps": 7, "baseline": cfg.ig_baseline}
    assert _method_params("smoothgrad", cfg) == {"n_samples": 3, "noise_level": cfg.smoothgrad_noise, "random_state": 11}
    assert _method_params("gradcam", cfg) == {}
