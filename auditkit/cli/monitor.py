"""``auditkit monitor``: label-free performance estimates and drift checks of a new batch against an audit."""

from __future__ import annotations

from pathlib import Path

import typer

from auditkit import run_context
from auditkit.cli import app


@app.command("monitor")
def monitor_command(
    baseline: Path = typer.Option(..., "--baseline", help="The audit folder (reports/NAME) whose test split is the reference."),
    predictions: Path = typer.Option(
        ..., "--predictions", help="The new batch's predictions (CSV/Parquet: id, score; y_true optional)."
    ),
    out: Path = typer.Option(..., "--out", help="Folder for monitor.json (gate-checkable) and monitor.md."),
    embeddings: Path | None = typer.Option(
        None, "--embeddings", help="The batch's embeddings (id, emb_0..), tested against the baseline's."
    ),
    n_boot: int = typer.Option(
        500, "--n-boot", min=run_context.MIN_N_BOOT, max=run_context.MAX_N_BOOT, help="Bootstrap resamples of the batch."
    ),
    seed: int = typer.Option(
        run_context.DEFAULT_SEED, "--seed", min=run_context.MIN_SEED, help="Seed of the resamples and permutation tests."
    ),
    prevalence_tolerance: float = typer.Option(
        0.05, "--prevalence-tolerance", min=0.0, max=1.0,
        help="Flag a prevalence change whose CI lies wholly beyond ± this.",
    ),
    accuracy_tolerance: float = typer.Option(
        0.05, "--accuracy-tolerance", min=0.0, max=1.0,
        help="Flag an estimated accuracy whose CI lies wholly below reference − this.",
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing monitor.json."),
) -> None:
    """Estimate a new batch's performance without labels, test it for drift, and write a gate-checkable file."""
    from auditkit.clinical.monitor import MonitorSettings, run_monitor
    settings = MonitorSettings(
        n_boot=n_boot, seed=seed, prevalence_tolerance=prevalence_tolerance, accuracy_tolerance=accuracy_tolerance
    )
    path = run_monitor(baseline, predictions, out, embeddings=embeddings, settings=settings, force=force)
    typer.echo(str(path))
