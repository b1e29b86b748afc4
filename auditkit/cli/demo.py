"""``auditkit demo``: the synthetic phantom with planted flaws, trained, audited, gated and reported."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from auditkit.cli import app
from auditkit.errors import ExitCode


def _estimate(check: dict) -> str:
    from auditkit.results.format import format_estimate

    estimate = check.get("estimate")
    if estimate is None or isinstance(estimate, bool):
        return "undefined" if estimate is None else str(estimate).lower()
    return format_estimate(check, ascii_only=True)


@app.command("demo")
def demo_command(
    out: Path = typer.Option(Path("reports/demo"), "--out", help="Folder for the phantom, model and audit."),
    quick: bool = typer.Option(False, "--quick", help="Same phantom and model; Grad-CAM only, on fewer images, 500 resamples (about a minute)."),
    clean: bool = typer.Option(False, "--clean", help="The flaw-free phantom: the policy should pass."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the phantom, training and bootstrap."),
    device: str | None = typer.Option(None, "--device", help="cuda, mps or cpu (default: best)."),
    force: bool = typer.Option(False, "--force", help="Replace an earlier demo in --out."),
    volumes: bool = typer.Option(
        False, "--volumes", help="The 3-D phantom (CT-like volumes): smallcnn3d, the audit, full-depth Grad-CAM."
    ),
) -> int:
    """Plant flaws in a synthetic phantom, train smallcnn, audit it, and show each flaw caught (exits 0)."""
    from rich.console import Console

    if volumes:
        return _volume_demo(out if out != Path("reports/demo") else Path("reports/demo-volumes"), quick, seed, force)

    from auditkit.demo import run_demo
    from auditkit.fileio import output_lock
    from auditkit.gate import print_verdict_table

    with output_lock(out):
        outcome = run_demo(out, quick=quick, clean=clean, force=force, seed=seed, device=device)
    # CI logs are not terminals and would wrap at 80 columns; honour COLUMNS if set.
    wide = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160
    console = Console(highlight=False, width=wide)
    if outcome.gate is not None:
        print_verdict_table(outcome.gate)
    if outcome.expected_findings:
        import textwrap

        from rich.text import Text

        console.print("\n[bold]Planted flaws and the rules that should catch them[/]")
        width = max(40, console.width)
        for item in outcome.expected_findings:
            # plain Text (a description may hold brackets) wrapped under its word at the console's width
            line = Text("  ")
            line.append("CAUGHT" if item["caught"] else "MISSED", style="bold green" if item["caught"] else "bold red")
            lines = textwrap.wrap(f"{item['name']}: {item['description']}", width=width - 10)
            line.append(f"  {lines[0] if lines else item['name']}")
            console.print(line)
            for rest in lines[1:]:
                console.print(Text(f"          {rest}"))
            for check in item["checks"] or [{}]:
                text = (f"rule {item['rule']} on {check.get('metric', '(no check)')}: "
                        f"{_estimate(check)} -> {check.get('verdict', 'no check')}")
                for part in textwrap.wrap(text, width=width, initial_indent="          ",
                                          subsequent_indent="            ", break_on_hyphens=False):
                    console.print(Text(part))
    elif outcome.passed is not None:
        verdict = "passes" if outcome.passed else "does NOT pass"
        console.print(f"Clean phantom: the model {verdict} the default policy.")
    timing = ", ".join(f"{k} {v:.0f} s" for k, v in outcome.seconds.items())
    console.print(f"Timings: {timing}.")
    console.print(f"Report (PDF): {outcome.report_pdf}")
    console.print(f"Results: {outcome.audit_dir / 'results.json'}  Model: {outcome.model_dir}")
    console.print(
        "The demo exits 0 whatever the verdict: it is a demonstration. In CI, gate with "
        "'auditkit audit ... --policy default' or 'auditkit gate', which exit 1 on failure."
    )
    return int(ExitCode.OK)


def _volume_demo(out: Path, quick: bool, seed: int, force: bool) -> int:
    from rich.console import Console

    from auditkit.demo_volumes import run_volume_demo
    from auditkit.fileio import output_lock
    from auditkit.gate import print_verdict_table

    with output_lock(out):
        outcome = run_volume_demo(out, quick=quick, seed=seed, force=force)
    wide = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160
    console = Console(highlight=False, width=wide)
    if outcome.gate is not None:
        print_verdict_table(outcome.gate)
    console.print("\n[bold]Planted flaws in the 3-D phantom and what caught them[/]")
    for item in outcome.expected_findings:
        word = "[bold green]CAUGHT[/]" if item["caught"] else "[bold red]MISSED[/]"
        console.print(f"  {word}  {item['name']}: {item['description']}")
        for check in item["checks"] or [{}]:
            console.print(
                f"          rule {item['rule']} on {check.get('metric', '(no check)')}: "
                f"{_estimate(check)} -> {check.get('verdict', 'no check')}"
            )
    word = "[bold green]CAUGHT[/]" if outcome.shortcut_caught else "[bold red]MISSED[/]"
    console.print(
        f"  {word}  shortcut: a 4^3 marker cube in the corner of internal positives; full-depth Grad-CAM "
        f"puts {outcome.shortcut_ratio_marked:.1f}x the box's volume share of saliency in it on marked "
        f"volumes (IG: {outcome.ig_shortcut_ratio_marked:.1f}x; unmarked, Grad-CAM: "
        f"{outcome.shortcut_ratio_unmarked:.1f}x, nan = no positive saliency)"
    )
    timing = ", ".join(f"{k} {v:.0f} s" for k, v in outcome.seconds.items())
    console.print(f"Timings: {timing}.")
    console.print(f"Report (PDF): {outcome.report_pdf}")
    console.print(f"3-D saliency: {outcome.saliency_path}  slice panels: {outcome.audit_dir / 'volume_panels'}")
    console.print(f"Results: {outcome.audit_dir / 'results.json'}  Model: {outcome.model_dir}")
    return int(ExitCode.OK)
