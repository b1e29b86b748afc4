"""``auditkit explain``: saliency maps of a checkpoint on a manifest's images, with overlays.

Writes under ``--out``: ``overlays/ID__METHOD.png`` (image, heatmap on a
stated shared scale, lesion outline when the manifest has masks or boxes),
``images/ID.png``, ``explanations.csv`` (one row per image and method: the
class explained, its probability, the files, IG's completeness gap),
``explain.json`` (model, manifest, parameters and post-processing of every
method) and ``cache/`` (the raw maps; a rerun resumes from it). A wrong input
exits 2 with one line naming what and where.
"""

from __future__ import annotations

from pathlib import Path

import typer

from auditkit.cli import app
from auditkit.errors import ExitCode
from auditkit.explain import methods as attribution_methods


@app.command("explain")
def explain(
    model: Path = typer.Option(..., "--model", help="Checkpoint folder (models/NAME) written by 'auditkit train'."),
    manifest: Path = typer.Option(..., "--manifest", help="Manifest CSV/Parquet of the images to explain."),
    methods: str = typer.Option(
        "gradcam", "--methods", help=f"Comma-separated: {', '.join(attribution_methods.names())}."
    ),
    out: Path = typer.Option(..., "--out", help="Folder for overlays, explanations.csv and the map cache."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Explain at most N images."),
    select: str = typer.Option(
        "all", "--select", help="all | random | errors (confident mistakes first) | top (highest score) | stratified."
    ),
    target: str = typer.Option(
        "predicted", "--target", help="Class to explain: predicted, true, or a class name/index."
    ),
    device: str | None = typer.Option(None, "--device", help="auto (default), cpu, cuda, cuda:N or mps."),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="Images per batch (default 16)."),
    overlay_format: str = typer.Option("png", "--format", help="Overlay format: png or jpeg."),
    seed: int = typer.Option(
        0, "--seed", min=0, help="Seed of --select random/stratified and of SmoothGrad's noise."
    ),
    data_root: Path | None = typer.Option(
        None, "--data-root", help="Folder the manifest's paths are relative to (default: the manifest's)."
    ),
    allow_outside_root: bool = typer.Option(False, "--allow-outside-root", help="Allow paths outside the root."),
    trust_model_code: bool = typer.Option(
        False, "--trust-model-code", help="Allow a module:factory or TorchScript checkpoint (both run the model's own code)."
    ),
) -> int:
    """Explain a model's decisions on a manifest's images: overlays, maps and an index table."""
    from auditkit.errors import InvalidInputError
    from auditkit.explain.runner import explain_manifest, parse_methods
    from auditkit.explain.sampling import SELECTIONS
    from auditkit.fileio import output_lock, protect_input
    from auditkit.progress import status

    if select not in SELECTIONS:
        raise InvalidInputError(f"--select must be one of {', '.join(SELECTIONS)}, got {select!r}")
    if overlay_format not in ("png", "jpeg"):
        raise InvalidInputError(f"--format must be png or jpeg, got {overlay_format!r}")
    protect_input(manifest, "the manifest (--manifest)")
    protect_input(model, "the model folder (--model)", tree=True)
    with output_lock(out):
        summary = explain_manifest(
            model,
            manifest,
            methods=parse_methods(methods),
            out=out,
            limit=limit,
            select=select,
            target=target,
            device=device,
            batch_size=batch_size,
            overlay_format=overlay_format,
            random_state=seed,
            params={"smoothgrad": {"random_state": seed}},
            data_root=data_root,
            allow_outside_root=allow_outside_root,
            trust_code=trust_model_code,
        )
    from auditkit.distributed import env_rank

    if env_rank() == 0:  # under torchrun the summary is rank 0's; each rank named its shard already
        status(
            f"explained {summary.n_images} images with {', '.join(summary.methods)} "
            f"({summary.n_from_cache} maps from the cache); index: {summary.index}"
        )
    return int(ExitCode.OK)
