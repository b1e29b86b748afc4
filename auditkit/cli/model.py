"""``auditkit train`` and ``auditkit predict``: fit a model, score a manifest.

Both are thin: parse the flags, call :func:`auditkit.train.train` or
:func:`auditkit.predict.predict`, print where the outputs are. A bad input
(missing manifest, unknown architecture, unavailable device, tampered
checkpoint) is an :class:`~auditkit.errors.AuditkitError`: one line, exit 2.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer

from auditkit.cli import app
from auditkit.errors import InvalidInputError


def _parse_size(text: str | None) -> tuple[int, int] | None:
    """Return ``(h, w)`` from ``"64"`` or ``"64x48"``; InvalidInputError otherwise."""
    if text is None:
        return None
    parts = text.lower().replace("×", "x").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or min(values, default=0) < 1 or max(values) > 8192:
        raise InvalidInputError(f"--input-size {text!r} must be N or HxW in pixels (at most 8192), e.g. 64 or 224x224")
    return (values[0], values[-1])


def _parse_fractions(text: str | None) -> dict[str, float] | None:
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 3:
        raise InvalidInputError(
            f"--split {text!r} must be three fractions train,val,test summing to 1, e.g. 0.6,0.15,0.25"
        )
    return dict(zip(("train", "val", "test"), values, strict=True))


_ARCH = typer.Option(
    ..., "--arch",
    help="Architecture: smallcnn, resnet18/34/50, densenet121, vgg11_bn, vgg16_bn, inception_v3, "
    "efficientnet_b0; 3-D (a manifest of volumes): smallcnn3d, r3d_18, mc3_18, r2plus1d_18; or your own "
    "'package.module:factory' or a TorchScript file.",
)  # fmt: skip
_WEIGHTS = typer.Option(
    None, "--weights", help="LOCAL ImageNet weights (.safetensors/.pth) or initial weights of your model."
)
_SPLIT = typer.Option(
    None, "--split", help="Patient-level train,val,test fractions for rows without a split, e.g. 0.6,0.15,0.25."
)
_CALIBRATION = typer.Option(
    "temperature", "--calibration",
    help="Post-hoc calibration fitted on the validation split: temperature (Guo 2017) or none.",
)  # fmt: skip
_LABELS = typer.Option(
    None, "--labels",
    help="Multi-label: the findings to train (label_<f> columns; a manifest with label_<f> columns and no "
    "'label' is multi-label without it). Sigmoid head, BCE.",
)  # fmt: skip
_WINDOW = typer.Option(None, "--window", help="3-D models: intensity window CENTRE,WIDTH (e.g. -600,1500 for lung CT).")


@app.command("train")
def train_command(
    manifest: Path = typer.Option(..., "--manifest", help="Manifest CSV/Parquet of the images."),
    arch: str = _ARCH,
    out: Path = typer.Option(..., "--out", help="Checkpoint folder to write, e.g. models/NAME."),
    external_site: list[str] = typer.Option(
        [], "--external-site", help="A site kept out of training and validation (repeatable)."
    ),
    positive_class: str | None = typer.Option(None, "--positive-class", help="Positive class name."),
    epochs: int = typer.Option(20, "--epochs", help="Maximum epochs (0: package without training)."),
    batch_size: int = typer.Option(64, "--batch-size"),
    lr: float = typer.Option(1e-3, "--lr", help="Peak AdamW learning rate."),
    weight_decay: float = typer.Option(1e-2, "--weight-decay"),
    patience: int = typer.Option(5, "--patience", help="Epochs without validation gain before stopping."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA, then MPS, then CPU), cpu, cuda[:N], mps."),
    seed: int = typer.Option(0, "--seed", min=0),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run in --out."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing checkpoint in --out."),
    input_size: str | None = typer.Option(None, "--input-size", help="N or HxW (3-D: N or DxHxW; default: the architecture's)."),
    in_channels: int | None = typer.Option(None, "--in-channels", help="1 (grayscale) or 3."),
    weights: Path | None = _WEIGHTS,
    target_layer: str | None = typer.Option(None, "--target-layer", help="Grad-CAM layer (dotted name)."),
    augment: bool = typer.Option(True, "--augment/--no-augment", help="Light training augmentation."),
    num_workers: int | None = typer.Option(None, "--num-workers", help="DataLoader workers (default: auto)."),
    data_root: Path | None = typer.Option(None, "--data-root", help="Root that image paths may not escape."),
    allow_outside_root: bool = typer.Option(False, "--allow-outside-root"),
    split: str | None = _SPLIT,
    calibration: str = _CALIBRATION,
    labels: list[str] | None = _LABELS,
    window: str | None = _WINDOW,
) -> int:
    """Train a model on a manifest and write its checkpoint (weights, model.json, splits, history)."""
    from auditkit.fileio import output_lock, protect_input
    from auditkit.train import train
    from auditkit.train.kinds import train_other_kind

    protect_input(manifest, "the manifest (--manifest)")
    protect_input(weights, "the initial weights (--weights)")
    if Path(arch).is_file():
        protect_input(arch, "the TorchScript model (--arch)")
    options = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "force": force,
               "external_sites": tuple(external_site), "fractions": _parse_fractions(split)}  # fmt: skip
    with output_lock(out):
        other = train_other_kind(manifest, arch=arch, out=out, labels=_names(labels), input_size=input_size,
                                 window=window, options=options)  # fmt: skip
        if other is not None:  # a 3-D or multi-label model
            typer.echo(str(other))
            return 0
        result = train(
            manifest, arch=arch, out=out, external_sites=tuple(external_site), positive_class=positive_class,
            epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, patience=patience,
            device=device, seed=seed, resume=resume, force=force, input_size=_parse_size(input_size),
            in_channels=in_channels, weights_path=weights, target_layer=target_layer, augment=augment,
            num_workers=num_workers, data_root=data_root, allow_outside_root=allow_outside_root,
            calibration=calibration, split_fractions=_parse_fractions(split),
        )  # fmt: skip
    _print_training_summary(result)
    return 0


def _names(values: list[str] | None) -> list[str] | None:
    """Return the comma- or repeat-separated names of an option (None when not given)."""
    names = [v.strip() for value in values or [] for v in value.split(",") if v.strip()]
    return names or None


def _print_training_summary(result: Any) -> None:
    """Print the best epoch on stderr and the checkpoint folder on stdout (rank 0 only under torchrun)."""
    from auditkit.distributed import env_rank
    from auditkit.progress import status

    if env_rank() > 0:  # under torchrun the summary is rank 0's
        return
    score = "n/a" if math.isnan(result.best_score) else f"{result.best_score:.4f}"
    status(
        f"best epoch {result.best_epoch} of {result.epochs_run} ({result.monitor} {score}); "
        f"checkpoint in {result.model_dir}"
    )
    typer.echo(str(result.model_dir))


@app.command("predict")
def predict_command(
    model: Path = typer.Option(..., "--model", help="Checkpoint folder written by auditkit train."),
    manifest: Path = typer.Option(..., "--manifest", help="Manifest CSV/Parquet of the images to score."),
    out: Path = typer.Option(..., "--out", help="Predictions table to write (.parquet or .csv)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda[:N], mps."),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1),
    embeddings: Path | None = typer.Option(
        None, "--embeddings", help="Also write penultimate-layer embeddings keyed by id (.parquet/.npy)."
    ),
    external_site: list[str] = typer.Option(
        [], "--external-site", help="A site to report as external (repeatable)."
    ),
    num_workers: int | None = typer.Option(None, "--num-workers"),
    data_root: Path | None = typer.Option(None, "--data-root"),
    allow_outside_root: bool = typer.Option(False, "--allow-outside-root"),
    trust_model_code: bool = typer.Option(
        False, "--trust-model-code", help="Allow a module:factory or TorchScript checkpoint (both run the model's own code)."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing --out (and --embeddings)."),
) -> int:
    """Score every image of a manifest with a checkpoint and write the predictions table."""
    from auditkit.errors import OutputExistsError
    from auditkit.fileio import output_lock, protect_input, refuse_input_overwrite
    from auditkit.predict import predict
    from auditkit.progress import status

    protect_input(manifest, "the manifest (--manifest)")
    protect_input(model, "the model folder (--model)", tree=True)
    for flag, path in (("--out", out), ("--embeddings", embeddings)):
        if path is None:
            continue
        refuse_input_overwrite(path, flag=flag)
        if path.is_file() and not force:
            raise OutputExistsError(
                f"{flag} {str(path)!r} already exists; pass --force to overwrite it or choose another path"
            )
    from auditkit.train.kinds import predict_other_kind

    with output_lock(out):
        other = predict_other_kind(model, manifest, out=out, batch_size=batch_size,
                                   external_sites=tuple(external_site))  # fmt: skip
        if other is not None:  # a 3-D or multi-label checkpoint
            status(f"{len(other)} images scored with {model}")
            typer.echo(str(out))
            return 0
        table = predict(
            model,
            manifest,
            out=out,
            device=device,
            batch_size=batch_size,
            embeddings_out=embeddings,
            external_sites=tuple(external_site),
            num_workers=num_workers,
            data_root=data_root,
            allow_outside_root=allow_outside_root,
            trust_code=trust_model_code,
        )
    from auditkit.distributed import env_rank

    if env_rank() == 0:  # under torchrun the summary is rank 0's; each rank named its shard already
        counts = table.frame["split"].value_counts().to_dict()
        status(f"{len(table)} images scored ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})")
        typer.echo(str(out))
    return 0
