"""``auditkit view``: the clinician's saliency viewer of a report, served locally or exported as one HTML file."""

from __future__ import annotations

from pathlib import Path

import typer

from auditkit.cli import app


@app.command("view")
def view_command(
    report: Path = typer.Argument(..., help="The report folder (reports/NAME) or its results.json."),
    port: int = typer.Option(8765, "--port", min=0, max=65535, help="Port to serve on (0: any free port)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; the default is reachable from this machine only."),
    export: Path | None = typer.Option(
        None, "--export", help="Write the viewer as one self-contained HTML file instead of serving it."
    ),
    assets: str | None = typer.Option(
        None, "--assets", help="With --export: put the images in this folder beside the HTML (one images.js) instead of inlining them."
    ),
    force: bool = typer.Option(False, "--force", help="With --export: replace an existing file."),
) -> None:
    """Page through every explained case, filter, compare methods and record verdicts (read-only)."""
    if export is not None:
        from auditkit.viewer.page import export_html

        typer.echo(str(export_html(report, export, assets=assets, force=force)))
        return
    from auditkit.errors import InvalidInputError
    from auditkit.viewer.server import make_server

    try:
        server = make_server(report, host=host, port=port)
    except OSError as error:
        raise InvalidInputError(f"cannot listen on {host}:{port} ({error.strerror}); choose another --port") from None
    bound_host, bound_port = server.server_address[:2]
    where = "this machine only" if bound_host in ("127.0.0.1", "::1", "localhost") else "other machines too"
    typer.echo(f"auditkit viewer: bound to {bound_host}:{bound_port}, reachable from {where}")
    typer.echo(f"read-only; open http://{bound_host}:{bound_port}/ (Ctrl+C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
