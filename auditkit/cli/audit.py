"""``auditkit audit``: model + manifest (or a predictions table) → results.json → gate → report.

The options of the run settings (``--n-boot``, ``--seed``, ``--ci-method``)
take their bounds, defaults and choices from :mod:`auditkit.run_context`, the
one declaration the settings models use too (checked in
``tests/audit/test_run_context.py``).
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any

import typer

from auditkit import run_context
from auditkit.cli import app
from auditkit.errors import ExitCode

#: ``--ci-method`` choices: run_context's CiMethod, so the CLI cannot offer a method the settings refuse.
CiMethodChoice = enum.Enum("CiMethodChoice", {m: m for m in run_context.CI_METHODS}, type=str)  # type: ignore[misc]

#: flags of the run (inputs, outputs, policy) and of the statistical settings, as build_config takes them.
RUN_FLAGS = (
    "model", "manifest", "predictions", "out", "embeddings", "policy", "allow_insufficient", "data_root",
    "allow_outside_root", "trust_model_code", "device", "batch_size", "force", "uncertain_labels",
)  # fmt: skip
SETTING_FLAGS = ("positive_class", "operating_point", "n_boot", "seed")
LIST_SETTING_FLAGS = {"attributes": "attributes", "intersections": "intersections", "external_site": "external_sites"}

_MODEL = typer.Option(None, "--model", help="Checkpoint folder (models/NAME).")
_MANIFEST = typer.Option(None, "--manifest", help="Manifest of the images to audit (predictions run first).")
_PREDICTIONS = typer.Option(None, "--predictions", help="A predictions table (CSV or Parquet) instead of a model run.")
_OUT = typer.Option(None, "--out", help="Output folder (results.json, summary.md, report.pdf, ...).")
_ATTRIBUTES = typer.Option(None, "--attributes", help="Subgroup columns, e.g. sex,age_group.")
_INTERSECTIONS = typer.Option(None, "--intersections", help="e.g. sex+age_group (repeatable).")
_EXTERNAL_SITE = typer.Option(None, "--external-site", help="A site declared external (repeatable).")
_POSITIVE_CLASS = typer.Option(None, "--positive-class", help="Positive class of a binary task.")
_OPERATING_POINT = typer.Option(
    None, "--operating-point", help="youden | sensitivity:0.9 | specificity:0.9 | threshold:0.5 (chosen on val)."
)
_N_BOOT = typer.Option(
    None, "--n-boot", min=run_context.MIN_N_BOOT, max=run_context.MAX_N_BOOT,
    help=f"Bootstrap resamples (default {run_context.DEFAULT_N_BOOT}).",
)  # fmt: skip
_SEED = typer.Option(None, "--seed", min=run_context.MIN_SEED, help=f"Random seed (default {run_context.DEFAULT_SEED}).")
_CI_METHOD = typer.Option(
    None, "--ci-method", case_sensitive=False,
    help=f"Interval method (default {run_context.DEFAULT_CI_METHOD}: BCa when patients have several images, "
    "else percentile).",
)  # fmt: skip
_EMBEDDINGS = typer.Option(None, "--embeddings", help="Embeddings keyed by id (shift tests).")
_POLICY = typer.Option(None, "--policy", help="Gate the results: 'default' or a policy YAML (exit 1 on fail).")
_ALLOW_INSUFFICIENT = typer.Option(None, "--allow-insufficient", help="Insufficient evidence does not block the gate.")
_NO_EXPLAIN = typer.Option(False, "--no-explain", help="Skip the explanations.")
_NO_REPORT = typer.Option(False, "--no-report", help="Skip the PDF/HTML report.")
_DATA_ROOT = typer.Option(None, "--data-root", help="Root that manifest paths may not escape (default: its folder).")
_ALLOW_OUTSIDE_ROOT = typer.Option(None, "--allow-outside-root", help="Allow manifest paths outside the root.")
_TRUST_MODEL_CODE = typer.Option(
    None, "--trust-model-code", help="Allow a module:factory or TorchScript checkpoint (both run the model's own code)."
)
_DEVICE = typer.Option(None, "--device", help="cuda, mps or cpu (default: best).")
_BATCH_SIZE = typer.Option(None, "--batch-size", min=1, help="Inference batch size.")
_CONFIG = typer.Option(None, "--config", help="Audit YAML (inputs, settings, intended use); flags override it.")
_FORCE = typer.Option(None, "--force", help="Overwrite an existing audit.")
_LABELS = typer.Option(
    None, "--labels", help="Multi-label: the findings to audit (label_<f>/score_<f> columns; default: all)."
)
_UNCERTAIN_LABELS = typer.Option(None, "--uncertain-labels", help="A finding's -1 label: ignore (default) | zeros | ones.")


def _split(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    out: list[str] = []
    for value in values:
        out += [v.strip() for v in value.split(",") if v.strip()]
    return out


@app.command("audit")
def audit_command(
    model: Path | None = _MODEL,
    manifest: Path | None = _MANIFEST,
    predictions: Path | None = _PREDICTIONS,
    out: Path | None = _OUT,
    attributes: list[str] | None = _ATTRIBUTES,
    intersections: list[str] | None = _INTERSECTIONS,
    external_site: list[str] | None = _EXTERNAL_SITE,
    positive_class: str | None = _POSITIVE_CLASS,
    operating_point: str | None = _OPERATING_POINT,
    n_boot: int | None = _N_BOOT,
    seed: int | None = _SEED,
    ci_method: CiMethodChoice | None = _CI_METHOD,  # type: ignore[valid-type]
    embeddings: Path | None = _EMBEDDINGS,
    policy: str | None = _POLICY,
    allow_insufficient: bool | None = _ALLOW_INSUFFICIENT,
    no_explain: bool = _NO_EXPLAIN,
    no_report: bool = _NO_REPORT,
    data_root: Path | None = _DATA_ROOT,
    allow_outside_root: bool | None = _ALLOW_OUTSIDE_ROOT,
    trust_model_code: bool | None = _TRUST_MODEL_CODE,
    device: str | None = _DEVICE,
    batch_size: int | None = _BATCH_SIZE,
    config: Path | None = _CONFIG,
    force: bool | None = _FORCE,
    labels: list[str] | None = _LABELS,
    uncertain_labels: str | None = _UNCERTAIN_LABELS,
) -> int:
    """Audit a model: discrimination, calibration, fairness, external validity, explanations, report, gate."""
    from auditkit.pipeline import run_pipeline

    outcome = run_pipeline(audit_config(dict(locals())))
    from auditkit.distributed import env_rank

    if env_rank() > 0:  # a torchrun helper rank: rank 0 reports the audit (each rank named its shards)
        return int(ExitCode.OK)
    typer.echo(f"results: {outcome.files['results']}")
    if "report_pdf" in outcome.files:
        typer.echo(f"report:  {outcome.files['report_pdf']}")
    if outcome.gate is None:
        return int(ExitCode.OK)
    from auditkit.gate import print_verdict_table

    print_verdict_table(outcome.gate)
    return int(ExitCode.OK if outcome.gate.passed else ExitCode.GATE_FAILED)


def audit_config(flags: dict[str, Any]) -> Any:
    """Return the :class:`~auditkit.audit.config.AuditConfig` of the command's flags (None = not given)."""
    from auditkit.audit.config import build_config

    run = {name: flags[name] for name in RUN_FLAGS}
    run["explain"] = False if flags["no_explain"] else None
    run["report"] = False if flags["no_report"] else None
    run["labels"] = tuple(_split(flags["labels"]) or ()) or None
    overrides = {name: flags[name] for name in SETTING_FLAGS}
    overrides.update({key: _split(flags[name]) for name, key in LIST_SETTING_FLAGS.items()})
    method = flags["ci_method"]
    overrides["ci_method"] = None if method is None else str(getattr(method, "value", method))
    return build_config(config_path=flags["config"], run=run, overrides=overrides)
