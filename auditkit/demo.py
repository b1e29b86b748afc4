"""``auditkit demo``: plant flaws in a synthetic phantom, train a model on it, and watch the audit catch them.

The demonstration the toolkit exists for, in one command and a few minutes on
a 2-core CPU: generate the multi-site phantom with three planted flaws,

- a **shortcut**: a burned-in "R" marker in the top-right corner that appears
  on 75% of positive and 25% of negative images at the internal sites (and on
  half of all images, whatever the label, at the external site);
- **underdiagnosis**: lesions of female patients are nearly invisible
  (contrast ×0.15, radius ×0.7), so the model misses more of them;
- **site shift**: the external site's acquisition (gamma, blur, noise, field
  of view, offset) lies outside the internal sites' range;

train ``smallcnn`` on the internal sites, audit it with the shipped default
policy (predictions, statistics, explanations, gate, PDF), and show each
planted flaw caught by the rule that should catch it. ``--clean`` does the
same on the flaw-free phantom, which must pass the same policy. The demo
exits 0 either way: it is a demonstration, not a release gate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditkit.errors import InvalidInputError, OutputExistsError
from auditkit.progress import status


@dataclass(frozen=True)
class DemoPlan:
    """How big the demo's phantom, training and explanation sample are."""

    n_images: int
    size: int
    epochs: int
    batch_size: int
    n_boot: int
    saliency: dict[str, Any]


# The phantom and training are the same in both modes (measured: the planted underdiagnosis gap
# needs about 500 optimiser steps to emerge, since the model learns the shortcut marker first and
# the lesions after); --quick explains fewer images with Grad-CAM only and halves the resamples.
FULL = DemoPlan(
    n_images=4000, size=64, epochs=12, batch_size=64, n_boot=1000,
    saliency={"methods": ["gradcam", "ig"], "max_images": 256},
)  # fmt: skip
QUICK = DemoPlan(
    n_images=4000, size=64, epochs=12, batch_size=64, n_boot=500,
    saliency={
        "methods": ["gradcam"], "max_images": 96, "max_val_images": 48,
        "sanity_images": 10, "faithfulness_images": 16, "stability_images": 8,
    },
)  # fmt: skip

#: The flaws the demo plants, their strengths, and the rule of the default policy that must catch each.
PLANTED: tuple[dict[str, Any], ...] = (
    {
        "flaw": "shortcut",
        "strength": 0.5,
        "rule": "saliency-shortcut",
        "metric": "saliency.gradcam.shortcut_score",
        "description": "burned-in 'R' marker in the top-right corner on 75% of positive and 25% of "
        "negative images at the internal sites; label-independent at the external site",
    },
    {
        "flaw": "underdiagnosis",
        "strength": 1.0,
        "rule": "fairness-fnr-gap",
        "metric": "fairness.sex.gap.fnr",
        "description": "lesions of female patients nearly invisible (contrast x0.15, radius x0.7)",
    },
    {
        "flaw": "site_shift",
        "strength": 1.0,
        "rule": "external-auroc-delta",
        "metric": "external.site_C.delta.auroc",
        "description": "external site_C acquired with gamma, blur, noise, offset and field of view "
        "outside the internal sites' range",
    },
)


@dataclass(frozen=True, eq=False)
class DemoOutcome:
    """What the demo produced: where things are, the gate's outcome and each planted flaw's fate."""

    out_dir: Path
    manifest: Path
    model_dir: Path
    audit_dir: Path
    report_pdf: Path | None
    passed: bool | None
    expected_findings: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    gate: Any = None


def _check_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"--out {str(out)!r} is a file; give a folder for the demo")
    if out.exists() and any(out.iterdir()) and not force:
        raise OutputExistsError(
            f"{out} is not empty; pass --force to replace the demo there, or choose another --out"
        )


def run_demo(
    out: str | Path = "reports/demo",
    *,
    quick: bool = False,
    clean: bool = False,
    force: bool = False,
    seed: int = 0,
    device: str | None = None,
) -> DemoOutcome:
    """Return the outcome of the demonstration written under ``out``.

    ``out/data`` holds the phantom, ``out/models/smallcnn`` the checkpoint and
    ``out/audit`` the audit (results.json, report.pdf/html, gate files).
    """
    from auditkit.audit.config import build_config
    from auditkit.pipeline import run_pipeline
    from auditkit.train import train

    if not 0 <= int(seed) < 2**32:
        raise InvalidInputError(f"--seed must be between 0 and 2**32 - 1, got {seed}")
    out = Path(out)
    _check_out(out, force)
    plan = QUICK if quick else FULL
    seconds: dict[str, float] = {}

    start = time.perf_counter()
    phantom = _make_phantom(out / "data", plan, clean=clean, seed=seed)
    seconds["phantom"] = time.perf_counter() - start

    start = time.perf_counter()
    status(f"demo: training smallcnn for up to {plan.epochs} epochs on the internal sites")
    model_dir = out / "models" / "smallcnn"
    train(
        phantom.manifest_path, arch="smallcnn", out=model_dir, epochs=plan.epochs, batch_size=plan.batch_size, seed=seed,
        device=device, force=True, name="smallcnn-phantom",
    )  # fmt: skip
    seconds["train"] = time.perf_counter() - start

    start = time.perf_counter()
    audit_dir = out / "audit"
    run = {
        "model": model_dir,
        "manifest": phantom.manifest_path,
        "out": audit_dir,
        "policy": "default",
        "force": True,
        "device": device,
    }
    audit_config = build_config(run=run, overrides=_audit_overrides(plan, quick=quick, clean=clean, seed=seed))
    outcome = run_pipeline(audit_config)
    seconds["audit"] = time.perf_counter() - start
    return DemoOutcome(
        out_dir=out,
        manifest=phantom.manifest_path,
        model_dir=model_dir,
        audit_dir=audit_dir,
        report_pdf=outcome.files.get("report_pdf"),
        passed=outcome.passed,
        expected_findings=list(outcome.results.data.get("expected_findings", [])),
        seconds=seconds,
        gate=outcome.gate,
    )


def _make_phantom(folder: Path, plan: DemoPlan, *, clean: bool, seed: int) -> Any:
    """Return the generated phantom (the flawed one unless ``clean``) written to ``folder``."""
    from auditkit.data.phantom import PhantomConfig, generate_phantom

    planted = () if clean else PLANTED
    config = PhantomConfig(n_images=plan.n_images, size=plan.size, seed=seed).with_flaws(
        tuple(p["flaw"] for p in planted), {p["flaw"]: p["strength"] for p in planted}
    )
    status(
        f"demo: generating the {'clean' if clean else 'flawed'} phantom "
        f"({plan.n_images} images, {plan.size}x{plan.size}, 3 sites) in {folder}"
    )
    return generate_phantom(folder, config, force=True)


def _audit_overrides(plan: DemoPlan, *, quick: bool, clean: bool, seed: int) -> dict[str, Any]:
    """Return the demo audit's config overrides: attributes, resamples, saliency, expected findings."""
    planted = () if clean else PLANTED
    return {
        "attributes": ["sex", "age_group"],
        "n_boot": plan.n_boot,
        "seed": seed,
        "saliency": plan.saliency,
        # the declared perturbations on (a seeded sample of) the internal test split: docs/clinical-validation.md
        "clinical": {"robustness": {"enabled": True, "max_images": 300 if quick else 800}},
        "intended_use": _intended_use(clean),
        "expected_findings": [
            {"name": p["flaw"], "description": p["description"], "rule": p["rule"], "metric": p["metric"]}
            for p in planted
        ],
    }


def _intended_use(clean: bool) -> dict[str, str]:
    flaws = (
        "none: this is the clean phantom, which the default policy should pass"
        if clean
        else "; ".join(f"{p['flaw']} ({p['description']})" for p in PLANTED)
    )
    return {
        "intended_use": "Demonstration only: auditkit's synthetic chest-radiograph-like phantom, "
        "a binary 'lesion' vs 'normal' classifier. Not a medical device.",
        "intended_users": "Engineers evaluating auditkit.",
        "limitations": f"Synthetic data with planted flaws: {flaws}.",
        "manufacturer": "auditkit demo",
        "device_version": "demo",
    }
