"""``auditkit report``: render the PDF/A-3b (and HTML) audit report of a results.json."""

from __future__ import annotations

from pathlib import Path

import typer

from auditkit.cli import app


@app.command("report")
def report_command(
    results: Path = typer.Argument(..., help="results.json of an audit (or the folder that holds it)."),
    out: Path | None = typer.Option(
        None, "--out", help="Output file: report.pdf (default: next to results.json); a .html name writes HTML only."
    ),
    html: bool = typer.Option(False, "--html", help="Also write the self-contained HTML report next to the PDF."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing report."),
    policy: Path | None = typer.Option(
        None, "--policy", help="The gate policy YAML to embed in the PDF (must match the recorded SHA-256)."
    ),
    review: Path | None = typer.Option(
        None, "--review", help="Reviewer verdicts exported by `auditkit view` (JSON): adds the clinician-review section."
    ),
) -> None:
    """Render the regulator's dossier from results.json alone: nothing is recomputed."""
    from auditkit.fileio import output_lock, protect_input, refuse_input_overwrite
    from auditkit.report import render_report

    protect_input(results if results.is_file() else results / "results.json", "the results (RESULTS)")
    protect_input(policy, "the policy (--policy)")
    folder = results if results.is_dir() else results.parent
    out_pdf: Path | None = out if out is not None else folder / "report.pdf"
    out_html: Path | None = None
    if out_pdf is not None and out_pdf.suffix.lower() in (".html", ".htm"):
        out_pdf, out_html = None, out_pdf
    elif html:
        out_html = out_pdf.with_suffix(".html")
    for path in (out_pdf, out_html):
        if path is not None:
            refuse_input_overwrite(path, flag="--out")  # before anything is rendered
    target = out_pdf if out_pdf is not None else out_html
    with output_lock(target if target is not None else folder):
        written = render_report(results, out_pdf=out_pdf, out_html=out_html, force=force, policy=policy, review=review)
    for path in written:
        typer.echo(str(path))
