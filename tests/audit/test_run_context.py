"""The run context: one declaration of seed, n_boot, ci_level and ci_method, used by every interval.

Oracles: the field declarations of :mod:`auditkit.run_context` (the CLI's
options and both settings models are checked against them, not against
copies), and SciPy's ``scipy.stats.bootstrap(method="BCa")`` for the
saliency evidence's BCa interval.
"""

from __future__ import annotations

import numpy as np
import pytest
import typer
from scipy import stats

from auditkit import run_context
from auditkit.audit.config import AuditSettings, build_settings
from auditkit.errors import ConfigError
from auditkit.explain.config import SaliencyConfig
from auditkit.explain.evaluation.bootstrap import bootstrap_mean, bootstrap_ratio


def _bounds(model, name):
    meta = {type(m).__name__: m for m in model.model_fields[name].metadata}
    out = {}
    for kind in ("Ge", "Gt", "Le", "Lt"):
        if kind in meta:
            out[kind.lower()] = getattr(meta[kind], kind.lower())
    return out


@pytest.mark.parametrize("name", ["seed", "n_boot", "ci_level", "ci_method"])
def test_audit_and_saliency_settings_share_bounds_and_defaults(name):
    assert _bounds(AuditSettings, name) == _bounds(SaliencyConfig, name)
    assert AuditSettings.model_fields[name].default == SaliencyConfig.model_fields[name].default
    assert AuditSettings.model_fields[name].default == getattr(run_context, f"DEFAULT_{name.upper()}")


def test_the_cli_options_follow_the_declared_bounds():
    from auditkit.cli import app

    command = typer.main.get_command(app).commands["audit"]
    options = {p.name: p for p in command.params}
    n_boot = options["n_boot"]
    assert (n_boot.min, n_boot.max) == (run_context.MIN_N_BOOT, run_context.MAX_N_BOOT)
    assert _bounds(AuditSettings, "n_boot") == {"ge": n_boot.min, "le": n_boot.max}
    assert options["seed"].min == _bounds(AuditSettings, "seed")["ge"]
    assert str(run_context.DEFAULT_N_BOOT) in options["n_boot"].help


def test_the_cli_ci_method_choices_are_the_declared_methods(capsys):
    """--ci-method offers exactly run_context's CiMethod (the settings' field type): one declaration."""
    import typing

    from auditkit.cli import run
    from auditkit.cli.audit import CiMethodChoice

    assert tuple(m.value for m in CiMethodChoice) == run_context.CI_METHODS == typing.get_args(run_context.CiMethod)
    assert typing.get_args(AuditSettings.model_fields["ci_method"].annotation) == run_context.CI_METHODS
    assert run(["audit", "--predictions", "x.csv", "--ci-method", "jackknife"]) == 2
    err = capsys.readouterr().err
    assert "--ci-method" in err and all(m in err for m in run_context.CI_METHODS)


def test_one_context_is_built_from_the_settings_and_reaches_saliency():
    settings = build_settings(overrides={"n_boot": 200, "seed": 4, "ci_level": 0.9, "ci_method": "bca",
                                         "saliency": {"max_images": 8}})  # fmt: skip
    context = settings.run_context
    assert context == run_context.RunContext(seed=4, n_boot=200, ci_level=0.9, ci_method="bca")
    assert (context.intervals.level, context.intervals.method) == (0.9, "bca")
    assert SaliencyConfig.from_any(settings).run_context == context
    assert SaliencyConfig.from_any(settings.model_dump()).run_context == context
    with pytest.raises(ConfigError, match="n_boot"):
        build_settings(overrides={"n_boot": 10})
    with pytest.raises(ValueError, match="n_boot"):
        run_context.RunContext(n_boot=10)


def test_saliency_bca_interval_agrees_with_scipy_and_differs_from_percentile():
    values = np.random.default_rng(3).exponential(size=120)
    ours = bootstrap_mean(values, n_boot=8000, ci_method="bca", random_state=1)
    plain = bootstrap_mean(values, n_boot=8000, random_state=1)
    ref = stats.bootstrap((values,), np.mean, n_resamples=8000, method="BCa", confidence_level=0.95,
                          random_state=2).confidence_interval  # fmt: skip
    width = ref.high - ref.low
    assert ours.method.startswith("BCa bootstrap")
    assert abs(ours.ci_low - ref.low) < 0.05 * width and abs(ours.ci_high - ref.high) < 0.05 * width
    # a right-skewed mean: BCa moves both ends up relative to the percentile interval
    assert ours.ci_low > plain.ci_low and ours.ci_high > plain.ci_high
    assert ours.ci_low <= ours.estimate <= ours.ci_high


def test_saliency_bca_ratio_is_clustered_by_patient_and_contains_its_estimate():
    rng = np.random.default_rng(0)
    patients = np.repeat(np.arange(40), 3)
    den = rng.uniform(0.5, 1.5, patients.size)
    num = den * rng.beta(2, 5, 40)[patients]
    est = bootstrap_ratio(num, den, clusters=patients, n_boot=2000, ci_method="bca")
    assert "patients" in est.method and est.method.startswith("BCa")
    assert est.ci_low <= est.estimate <= est.ci_high
