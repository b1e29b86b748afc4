"""``auditkit gate``: apply a release policy to a results.json and exit 0 (pass) or 1 (fail).

Input errors (a malformed policy, a metric path that matches nothing, a
missing results file) exit 2 with one line on stderr. The verdict table goes
to stdout: it is the command's result, and what a CI log shows.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer

from auditkit.cli import app
from auditkit.errors import ExitCode


@app.command("gate")
def gate(
    results: Path = typer.Argument(
        ..., help="results.json of an audit (or the report folder that holds it)."
    ),
    policy: str = typer.Option(
        ..., "--policy", help="'default' (the shipped clinical policy) or a policy YAML file."
    ),
    json_out: Path | None = typer.Option(
        None, "--json", help="Write every expanded rule and the verdict as JSON."
    ),
    junit_out: Path | None = typer.Option(
        None,
        "--junit",
        help="Write JUnit XML (one testcase per expanded rule) for CI test reports.",
    ),
    summary_out: Path | None = typer.Option(
        None,
        "--summary",
        help="Write a Markdown summary (for $GITHUB_STEP_SUMMARY or a PR comment).",
    ),
    allow_insufficient: bool = typer.Option(
        False,
        "--allow-insufficient",
        help="Insufficient evidence (a CI straddling a goal) does not block, unless a rule says "
        "insufficient: block. Recorded as an override in every output.",
    ),
) -> int:
    """Apply a gate policy to an audit's results: exit 0 pass, 1 fail, 2 input error."""
    import contextlib

    from auditkit.fileio import (
        output_lock,
        protect_input,
        refuse_input_overwrite,
        refuse_while_written,
    )
    from auditkit.gate import evaluate, load_policy, print_verdict_table, write_outputs
    from auditkit.gate.outputs import headline
    from auditkit.progress import is_quiet
    from auditkit.results import read_results_file

    protect_input(policy, "the policy (--policy)")
    protect_input(results if results.is_file() else results / "results.json", "the results (RESULTS)")
    for flag, path in (("--json", json_out), ("--junit", junit_out), ("--summary", summary_out)):
        if path is not None:
            refuse_input_overwrite(path, flag=flag)  # before anything is judged or written
    refuse_while_written(results if results.is_dir() else results.parent, "the audit folder")
    loaded_policy = load_policy(policy)
    loaded = read_results_file(results)  # one read: the hash is of the bytes evaluated
    outcome = evaluate(
        loaded.data, loaded_policy, block_on_insufficient=False if allow_insufficient else None
    )
    outcome = dataclasses.replace(
        outcome, results_source=str(loaded.path), results_sha256=loaded.sha256
    )
    with contextlib.ExitStack() as locks:  # two gates writing one --json/--junit never interleave
        for flag, path in (("--json", json_out), ("--junit", junit_out), ("--summary", summary_out)):
            if path is not None:
                locks.enter_context(output_lock(path, flag=flag))
        write_outputs(outcome, json_path=json_out, junit_path=junit_out, summary_path=summary_out)
    if is_quiet():
        typer.echo(headline(outcome))
    else:
        print_verdict_table(outcome)
    return int(ExitCode.OK if outcome.passed else ExitCode.GATE_FAILED)
