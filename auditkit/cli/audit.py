"""``auditkit audit``: audit a model from its predictions table and write results.json + summary.md."""

from __future__ import annotations

from pathlib import Path

import typer

from auditkit.cli import app
from auditkit.errors import ConfigError


def _split(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    out: list[str] = []
    for value in values:
        out += [v.strip() for v in value.split(",") if v.strip()]
    return out


@app.command("audit")
def audit_command(
    predictions: Path | None = typer.Option(
        None, "--predictions", help="Predictions table (CSV or Parquet)."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Output folder for results.json and summary.md."
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
    n_boot: int | None = typer.Option(None, "--n-boot", help="Bootstrap resamples (default 1000)."),
    seed: int | None = typer.Option(None, "--seed", help="Random seed (default 0)."),
    ci_method: str | None = typer.Option(None, "--ci-method", help="percentile | bca."),
    embeddings: Path | None = typer.Option(
        None, "--embeddings", help="Embeddings keyed by id (shift tests)."
    ),
    config: Path | None = typer.Option(
        None, "--config", help="Audit settings YAML; flags override it."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing results.json."),
) -> None:
    """Measure discrimination, calibration, subgroup fairness and external validity with 95% CIs."""
    from auditkit.audit.config import AuditConfig, build_settings
    from auditkit.audit.run import run_audit

    if predictions is None:
        raise ConfigError(
            "auditkit audit needs --predictions P (a CSV or Parquet predictions table)"
        )
    if out is None:
        raise ConfigError("auditkit audit needs --out DIR (where results.json and summary.md go)")
    settings = build_settings(
        config_path=config,
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
    run_audit(
        AuditConfig(
            predictions=predictions,
            out=out,
            force=force,
            embeddings=embeddings,
            config_path=config,
            settings=settings,
        )
    )
