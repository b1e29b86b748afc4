"""``auditkit synth``: write the synthetic multi-site phantom (images, masks, manifest, ground truth).

Prints the manifest's path on stdout (so a script can capture it) and a
summary on stderr. A bad flag value, an unknown flaw or a non-empty output
folder without ``--force`` exits 2 with one line on stderr.
"""

from __future__ import annotations

from pathlib import Path

import typer

from auditkit.cli import app
from auditkit.errors import ConfigError, ExitCode


def parse_flaws(text: str) -> tuple[str, ...]:
    """Return the flaw names of ``--flaws`` (``none``, ``all`` or a comma list), in canonical order."""
    from auditkit.data.phantom import FLAW_NAMES

    words = [w.strip() for w in text.split(",") if w.strip()]
    if words in (["none"], []):
        return ()
    if words == ["all"]:
        return FLAW_NAMES
    unknown = [w for w in words if w not in FLAW_NAMES]
    if unknown:
        raise ConfigError(
            f"--flaws: unknown flaw(s) {unknown}; use a comma list of {', '.join(FLAW_NAMES)}, "
            "or 'none' for the clean phantom, or 'all'"
        )
    return tuple(name for name in FLAW_NAMES if name in words)


def parse_strengths(items: list[str]) -> dict[str, float]:
    """Return ``{flaw: strength}`` from ``--strength flaw=value`` options (comma lists allowed)."""
    strengths: dict[str, float] = {}
    for item in items:
        for part in (p.strip() for p in item.split(",")):
            if not part:
                continue
            name, sep, value = part.partition("=")
            try:
                number = float(value)
            except ValueError:
                number = float("nan")
            if not sep or not name.strip() or number != number:
                raise ConfigError(
                    f"--strength: expected flaw=value with a number in [0, 1] (e.g. shortcut=0.9), "
                    f"got {part!r}"
                )
            strengths[name.strip()] = number
    return strengths


@app.command("synth")
def synth(
    out: Path = typer.Option(..., "--out", help="Folder to write the phantom into (must be empty)."),
    n: int = typer.Option(3000, "--n", help="Number of images."),
    size: int = typer.Option(64, "--size", help="Image side in pixels (32-512)."),
    sites: int = typer.Option(3, "--sites", help="Number of sites; the last one is external."),
    seed: int = typer.Option(0, "--seed", min=0, help="Random seed: same seed, same bytes."),
    flaws: str = typer.Option(
        "all",
        "--flaws",
        help="Planted flaws: a comma list of shortcut, underdiagnosis, label_noise, site_shift; "
        "'all' (default) or 'none' for the clean phantom.",
    ),
    strength: list[str] = typer.Option(
        [], "--strength", help="A flaw's strength in [0, 1], e.g. --strength shortcut=0.9 (repeatable)."
    ),
    bit_depth: int = typer.Option(8, "--bit-depth", help="PNG bit depth: 8 or 16."),
    workers: int | None = typer.Option(
        None, "--workers", help="Rendering processes (default: automatic; output bytes do not depend on it)."
    ),
    force: bool = typer.Option(False, "--force", help="Replace a phantom already in --out."),
) -> int:
    """Generate the synthetic multi-site phantom with planted, recorded flaws."""
    from auditkit.data.phantom import build_config, generate_phantom
    from auditkit.fileio import output_lock
    from auditkit.progress import status

    config = build_config(n_images=n, size=size, n_sites=sites, seed=seed, bit_depth=bit_depth)
    config = config.with_flaws(parse_flaws(flaws), parse_strengths(strength))
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be a positive number of processes, got {workers}")
    with output_lock(out):
        result = generate_phantom(out, config, force=force, workers=workers)
    enabled = ", ".join(config.flaws.enabled_names()) or "none (clean)"
    status(
        f"phantom: {result.n_images} images of {size}x{size} from {config.n_sites} site(s) "
        f"(external: {config.external_site or 'none'}); flaws: {enabled}; ground truth in "
        f"{result.truth_path}"
    )
    typer.echo(str(result.manifest_path))
    return int(ExitCode.OK)
