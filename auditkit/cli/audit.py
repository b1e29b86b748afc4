"""``auditkit audit``: model + manifest (or a predictions table) → results.json → gate → report."""

from __future__ import annotations

from pathlib import Path

import typer

from auditkit import run_context
from auditkit.cli import app
from auditkit.errors import ExitCode


def _split(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    out: list[str] = []
    for value in values:
        out += [v.strip() for v in value.split(",") if v.strip()]
    return out


@app.command("audit")
def audit_command(
    model: Path | None = typer.Option(None, "--model", help="Checkpoint folder (models/NAME)."),
    manifest: Path | None = typer.Option(
        None, "--manifest", help="Manifest of the images to audit (predictions run first)."
    ),
    predictions: Path | None = typer.Option(
        None, "--predictions", help="A predictions table (CSV or Parquet) instead of a model run."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Output folder (results.json, summary.md, report.pdf, ...)."
    ),
    attributes: list[str] | None = typer.Option(
        None, "--attributes", help="Subgroup columns, e.g. sex,age_group."
    ),
    intersections: list[str] | None = typer.Option(
        None, "--intersections", help="e.g. sex+age_group (repeatable)."
    ),
    external_site: list[str] | None = typer.Option(
        None, "--external-site", help="A site declared external (repeatable)."
    ),
    positive_class: str | None = typer.Option(
        None, "--positive-class", help="Positive class of a binary task."
    ),
    operating_point: str | None = typer.Option(
        None,
        "--operating-point",
        help="youden | sensitivity:0.9 | specificity:0.9 | threshold:0.5 (chosen on val).",
    ),
    n_boot: int | None = typer.Option(
        None, "--n-boot", min=run_context.MIN_N_BOOT, max=run_context.MAX_N_BOOT,
        help=f"Bootstrap resamples (default {run_context.DEFAULT_N_BOOT}).",
    ),
    seed: int | None = typer.Option(
        None, "--seed", min=0, help=f"Random seed (default {run_context.DEFAULT_SEED})."
    ),
    ci_method: str | None = typer.Option(None, "--ci-method", help="auto (BCa when patients have several images, else percentile) | percentile | bca."),
    embeddings: Path | None = typer.Option(
        None, "--embeddings", help="Embeddings keyed by id (shift tests)."
    ),
    policy: str | None = typer.Option(
        None, "--policy", help="Gate the results: 'default' or a policy YAML (exit 1 on fail)."
    ),
    allow_insufficient: bool | None = typer.Option(
        None, "--allow-insufficient", help="Insufficient evidence does not block the gate."
    ),
    no_explain: bool = typer.Option(False, "--no-explain", help="Skip the explanations."),
    no_report: bool = typer.Option(False, "--no-report", help="Skip the PDF/HTML report."),
    data_root: Path | None = typer.Option(
        None, "--data-root", help="Root that manifest paths may not escape (default: its folder)."
    ),
    allow_outside_root: bool | None = typer.Option(
        None, "--allow-outside-root", help="Allow manifest paths outside the root."
    ),
    trust_model_code: bool | None = typer.Option(
        None, "--trust-model-code", help="Allow a module:factory or TorchScript checkpoint (both run the model's own code)."
    ),
    device: str | None = typer.Option(None, "--device", help="cuda, mps or cpu (default: best)."),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="Inference batch size."),
    config: Path | None = typer.Option(
        None, "--config", help="Audit YAML (inputs, settings, intended use); flags override it."
    ),
    force: bool | None = typer.Option(None, "--force", help="Overwrite an existing audit."),
    labels: list[str] | None = typer.Option(
        None, "--labels", help="Multi-label: the findings to audit (label_<f>/score_<f> columns; default: all)."
    ),
    uncertain_labels: str | None = typer.Option(
        None, "--uncertain-labels", help="A finding's -1 label: ignore (default) | zeros | ones."
    ),
) -> int:
    """Audit a model: discrimination, calibration, fairness, external validity, explanations, report, gate."""
    from auditkit.audit.config import build_config
    from auditkit.pipeline import run_pipeline

    audit_config = build_config(
        config_path=config,
        run={
            "model": model,
            "manifest": manifest,
            "predictions": predictions,
            "out": out,
            "embeddings": embeddings,
            "policy": policy,
            "allow_insufficient": allow_insufficient,
            "explain": False if no_explain else None,
            "report": False if no_report else None,
            "data_root": data_root,
            "allow_outside_root": allow_outside_root,
            "trust_model_code": trust_model_code,
            "device": device,
            "batch_size": batch_size,
            "force": force,
            "labels": tuple(_split(labels)) if labels else None,
            "uncertain_labels": uncertain_labels,
        },
        overrides={
            "attributes": _split(attributes),
            "intersections": _split(intersections),
            "external_sites": _split(external_site),
            "positive_class": positive_class,
            "operating_point": operating_point,
            "n_boot": n_boot,
            "seed": seed,
            "ci_method": ci_method,
        },
    )
    outcome = run_pipeline(audit_config)
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
