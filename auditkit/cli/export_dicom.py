"""``auditkit export-dicom``: the saliency maps of DICOM-sourced cases as DICOM for PACS."""

from __future__ import annotations

from pathlib import Path

import typer

from auditkit.cli import app


@app.command("export-dicom")
def export_dicom_command(
    report: Path = typer.Argument(..., help="The report folder (reports/NAME) or its results.json."),
    out: Path = typer.Option(..., "--out", help="Folder for the DICOM files (one sub-folder per series)."),
    secondary_capture: bool = typer.Option(
        False, "--secondary-capture", help="Also write a Secondary Capture of each blended overlay (for PACS without Parametric Map support)."
    ),
    deidentify: bool = typer.Option(
        False, "--deidentify", help="Remove the PS3.15 basic-profile attributes from the exported series (UIDs retained)."
    ),
    force: bool = typer.Option(False, "--force", help="Write into a non-empty --out folder."),
) -> None:
    """Write one DICOM Parametric Map per case and method (float values, the source's geometry)."""
    from auditkit.export.dicom import export_dicom

    summary = export_dicom(report, out, secondary_capture=secondary_capture, deidentify=deidentify, force=force)
    for line in summary.lines():
        typer.echo(line)
