"""The steps of one training run (:func:`auditkit.train.api.train`): output mode, data sets, loaders, fit, resume, finish.

Each step is one function so that ``train`` reads as the sequence of the run;
the order of the calls (and so of every random draw) is ``train``'s.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from auditkit import distributed
from auditkit.errors import CheckpointError, InvalidInputError, OutputExistsError
from auditkit.fileio import LOCK_NAME, write_json
from auditkit.nets import checkpoint as ckpt
from auditkit.nets.device import make_grad_scaler, select_device
from auditkit.nets.zoo import ARCHITECTURES
from auditkit.train import ddp
from auditkit.train.calibrate import CALIBRATION_METHODS, temperature_record
from auditkit.train.data import TrainingData, normalization_statistics
from auditkit.train.fit import Fit, Progress, validate
from auditkit.train.loop import evaluate
from auditkit.train.metrics import balanced_class_weights
from auditkit.train.network import Network, architecture_kind
from auditkit.train.schedule import default_warmup_steps, make_scheduler
from auditkit.train.state import has_resume_state, load_resume_state, restore_rng

if TYPE_CHECKING:
    from auditkit.train.api import TrainSettings

RESUME_KEYS = (
    "arch", "epochs", "batch_size", "lr", "weight_decay", "patience", "seed", "input_size",
    "in_channels", "weights_sha256", "augment", "class_weighting", "external_sites",
    "manifest_sha256", "positive_class",
)  # fmt: skip
"""The settings a resumed run must share with the interrupted one."""



def output_mode(out: Path, *, resume: bool, force: bool) -> str:
    """Return ``"fresh"``, ``"overwrite"``, ``"resume"`` or ``"done"`` for ``out`` (nothing is deleted here)."""
    if resume:
        if has_resume_state(out):
            return "resume"
        model_json = out / ckpt.MODEL_JSON
        if model_json.is_file() and ckpt.read_model_json(model_json).get("training", {}).get("completed"):
            return "done"
        load_resume_state(out)  # raises the explanatory CheckpointError
    if out.exists() and any(p.name != LOCK_NAME for p in out.iterdir()):  # the CLI's own lock is not a file in the way
        if not force:
            raise OutputExistsError(
                f"output folder {str(out)!r} is not empty; pass --force to overwrite it, "
                "--resume to continue an interrupted run, or choose another --out"
            )
        return "overwrite"
    return "fresh"


def clear_checkpoint(out: Path) -> None:
    """Remove the checkpoint files and resume state of an earlier run in ``out`` (after inputs were validated)."""
    shutil.rmtree(out / "resume", ignore_errors=True)
    for name in (ckpt.MODEL_JSON, ckpt.WEIGHTS_FILE, ckpt.SPLITS_FILE, ckpt.HISTORY_FILE, ckpt.TORCHSCRIPT_FILE):
        (out / name).unlink(missing_ok=True)


def fit_calibration(fit: Fit, out_dir: Path) -> dict[str, Any] | None:
    """Return the temperature record fitted on validation with the BEST epoch's weights loaded."""
    from safetensors.torch import load_file

    best = load_file(str(out_dir / ckpt.WEIGHTS_FILE), device=str(fit.device))
    fit.model.load_state_dict(best)
    result = evaluate(fit.model, fit.val_loader, device=fit.device, mixed_precision=fit.mixed_precision)
    weights = fit.class_weight.detach().cpu().numpy() if fit.class_weight is not None else None
    return temperature_record(result.y_true, result.prob, class_weights=weights)


def check_resume(settings: dict[str, Any], saved: dict[str, Any], out: Path) -> None:
    for key in RESUME_KEYS:
        now = json.loads(json.dumps(settings.get(key)))
        if saved.get(key) != now:
            raise InvalidInputError(
                f"--resume: {key} is {now!r} now but was {saved.get(key)!r} in the interrupted run in "
                f"{str(out)!r}; use the same settings, or start afresh without --resume"
            )


@dataclass(frozen=True, eq=False)
class Datasets:
    """The training and validation sets, the preprocessing (normalisation included) and the augmentation."""

    train: Any
    val: Any
    preprocess: Any
    augmentation: Any
    norm_source: str


def make_datasets(arch: str, net: Network, data: TrainingData, settings: TrainSettings) -> Datasets:
    """Return the datasets; the normalisation is ImageNet's or measured on the training split."""
    from auditkit.data.dataset import ImageDataset
    from auditkit.data.transforms import Augment, Preprocess

    # the training images are decoded once: statistics are taken from the same
    # (cached) dataset before its normalisation and augmentation are switched on
    identity = Preprocess(input_size=net.input_size, in_channels=net.in_channels, mean=(0.0,), std=(1.0,))
    train_set = ImageDataset(data.train_rows, identity, augment=False, cache=settings.cache)
    if net.imagenet:
        mean, std = ARCHITECTURES[arch].normalization(net.in_channels)
        norm_source = "ImageNet"
    else:
        mean, std = normalization_statistics(train_set, limit=settings.max_norm_images, seed=settings.seed)
        norm_source = f"training split ({min(settings.max_norm_images, len(train_set))} images)"
    preprocess = Preprocess(input_size=net.input_size, in_channels=net.in_channels, mean=mean, std=std)
    augmentation = Augment() if settings.augment else None
    train_set.preprocess, train_set.augment = preprocess, augmentation
    val_set = ImageDataset(data.val_rows, preprocess, augment=False, cache=settings.cache)
    return Datasets(train_set, val_set, preprocess, augmentation, norm_source)


def settings_record(arch: str, settings: TrainSettings, net: Network, data: TrainingData,
                  weights_entry: dict[str, Any] | None) -> dict[str, Any]:
    """Return the settings a resumed run must share (:data:`RESUME_KEYS`)."""
    return {
        "arch": arch, "epochs": settings.epochs, "batch_size": settings.batch_size, "lr": settings.lr,
        "weight_decay": settings.weight_decay, "patience": settings.patience, "seed": settings.seed,
        "input_size": list(net.input_size), "in_channels": net.in_channels,
        "weights_sha256": weights_entry["sha256"] if weights_entry else None, "augment": settings.augment,
        "class_weighting": settings.class_weighting, "external_sites": list(data.external_sites),
        "manifest_sha256": data.manifest.sha256, "positive_class": data.classes.positive_class,
    }  # fmt: skip


@dataclass(frozen=True, eq=False)
class Loaders:
    """The batches of one rank, the schedule's step counts and the torchrun plan (None: one process)."""

    train: Any
    val: Any
    steps_per_epoch: int
    total_steps: int
    warmup: int
    ddp_plan: Any


def make_loaders(ctx: Any, train_set: Any, val_set: Any, settings: TrainSettings, target: torch.device) -> Loaders:
    """Return the loaders (this rank's share of every batch under torchrun) and the step counts."""
    from auditkit.data.dataset import make_loader

    batch_size, epochs, seed, workers = settings.batch_size, settings.epochs, settings.seed, settings.num_workers
    # a last training batch of one image would break BatchNorm's batch statistics
    drop_last = len(train_set) % batch_size == 1
    steps_per_epoch = max(len(train_set) // batch_size + int(len(train_set) % batch_size > 1), 1)
    ddp_plan = ddp.plan(ctx, batch_size) if ctx.active else None
    if ddp_plan is not None:  # torchrun: this rank's share of every batch (auditkit.train.ddp)
        train_batches = ddp.train_loader(train_set, ddp_plan, device=target, seed=seed, num_workers=workers)
        val_batches = ddp.shard_loader(val_set, ddp_plan, device=target, num_workers=workers)
        steps_per_epoch = max(len(train_batches), 1)
        from auditkit.progress import status

        status(
            f"{ctx.label()}: training on {len(train_batches.sampler)} of {len(train_set)} images per epoch "
            f"({ddp_plan.batch_size} per step), validating {len(val_batches.dataset)} of {len(val_set)}"
        )
    else:
        train_batches = make_loader(
            train_set, batch_size=batch_size, shuffle=True, device=target, num_workers=workers,
            seed=seed, drop_last=drop_last,
        )  # fmt: skip
        val_batches = make_loader(val_set, batch_size=batch_size, shuffle=False, device=target, num_workers=workers)
    total_steps = max(epochs * steps_per_epoch, 1)
    warmup = default_warmup_steps(total_steps, steps_per_epoch)
    return Loaders(train_batches, val_batches, steps_per_epoch, total_steps, warmup, ddp_plan)


def resume_run(fit: Fit, model: torch.nn.Module, run_settings: dict[str, Any], out_dir: Path) -> int:
    """Load the interrupted run's state into ``fit`` and return the epoch to continue from."""
    state = load_resume_state(out_dir)
    check_resume(run_settings, state.settings, out_dir)
    model.load_state_dict(state.model)
    fit.optimizer.load_state_dict(state.optimizer)
    fit.scheduler.load_state_dict(state.scheduler)
    fit.scaler.load_state_dict(state.scaler)
    restore_rng(state.rng_tensors, state.rng_scalars)
    fit.history = list(state.history)
    fit.progress = Progress(**state.progress)
    return state.epoch + 1


def finish_run(fit: Fit, out_dir: Path, training: dict[str, Any], *, interrupted: bool,
            calibration_record: dict[str, Any] | None, ddp_plan: Any, target: torch.device) -> dict[str, Any]:
    """Return the final model.json record, written by rank 0 (training record, calibration; resume state removed)."""
    model_json = out_dir / ckpt.MODEL_JSON
    meta: dict[str, Any] = {}
    if fit.is_main:
        if not model_json.is_file():
            raise CheckpointError(f"training wrote no checkpoint to {str(out_dir)!r}")  # pragma: no cover
        meta = json.loads(model_json.read_text("utf-8"))
        meta["training"] = training
        if ddp_plan is not None:
            meta["training"]["distributed"] = ddp.record(ddp_plan, target)
        if not interrupted:
            meta["calibration"] = calibration_record
            write_json(model_json, meta)
            shutil.rmtree(out_dir / "resume", ignore_errors=True)
    if ddp_plan is not None:
        distributed.barrier()  # every rank returns rank 0's finished record
        meta = json.loads(model_json.read_text("utf-8"))
    return meta


def start_run(settings: TrainSettings, arch: str, calibration: str, out_dir: Path, *, device: Any,
           resume: bool, force: bool) -> tuple[Any, str]:
    """Return the process context and the output mode, after checking the settings (rank 0 decides the mode)."""
    settings.validate()
    if calibration not in CALIBRATION_METHODS:
        raise InvalidInputError(
            f"--calibration {calibration!r} is not one of {', '.join(CALIBRATION_METHODS)}"
        )
    architecture_kind(arch)
    ctx = distributed.init(select_device(distributed.rank_device(device)))
    if ctx.active:  # rank 0 decides before any rank writes (another rank would see its files)
        mode = distributed.broadcast(output_mode(out_dir, resume=resume, force=force) if ctx.is_main else None)
    else:
        mode = output_mode(out_dir, resume=resume, force=force)
    return ctx, mode


@dataclass(frozen=True, eq=False)
class Run:
    """The fitting state of one run and what its records need."""

    fit: Fit
    loaders: Loaders
    class_weights: np.ndarray
    run_settings: dict[str, Any]


def build_fit(ctx: Any, model: torch.nn.Module, sets: Datasets, settings: TrainSettings, data: TrainingData,
               target: torch.device, out_dir: Path, run_settings: dict[str, Any]) -> Run:
    """Return the Fit (optimizer, schedule, loaders, class weights) of a run."""
    n_classes = data.classes.n_classes
    class_weights = (
        balanced_class_weights(data.train_labels, n_classes)
        if settings.class_weighting == "balanced" else np.ones(n_classes)
    )  # fmt: skip
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    loaders = make_loaders(ctx, sets.train, sets.val, settings, target)
    fit = Fit(
        model=ddp.wrap_model(model, target) if loaders.ddp_plan is not None else model,
        train_loader=loaders.train,
        val_loader=loaders.val,
        optimizer=optimizer,
        scheduler=make_scheduler(optimizer, total_steps=loaders.total_steps, warmup_steps=loaders.warmup),
        scaler=make_grad_scaler(target, enabled=settings.mixed_precision),
        class_weight=torch.as_tensor(class_weights, dtype=torch.float32, device=target),
        device=target, out_dir=out_dir, monitor=data.monitor, patience=settings.patience, epochs=settings.epochs,
        seed=settings.seed, mixed_precision=settings.mixed_precision, steps_per_epoch=loaders.steps_per_epoch,
        settings=run_settings, ddp=loaders.ddp_plan,
    )  # fmt: skip
    return Run(fit, loaders, class_weights, run_settings)


def fresh_start(fit: Fit, out_dir: Path, data: TrainingData, *, overwrite: bool,
                 save_best: Callable[[dict[str, Any]], None]) -> None:
    """Write the splits of a fresh run (clearing an overwritten checkpoint); package the model when epochs is 0."""
    if fit.is_main:  # under torchrun rank 0 alone writes
        if overwrite:  # only now: every input has been validated, so nothing is lost in vain
            clear_checkpoint(out_dir)
        ckpt.write_splits(out_dir, data.assignment())
    if fit.epochs == 0:
        val_loss, val_auroc = validate(fit)  # every rank: a gathered evaluation under torchrun
        row = {"epoch": 0, "train_loss": None, "val_loss": val_loss, "val_auroc": val_auroc, "lr": None}
        fit.history.append(row)
        if fit.is_main:
            save_best(row)
            ckpt.write_history(out_dir, fit.history)


def calibrate_run(fit: Fit, out_dir: Path, val_set: Any, settings: TrainSettings, target: torch.device) -> dict | None:
    """Return the temperature record rank 0 fits on the whole validation split (None on other ranks)."""
    from auditkit.data.dataset import make_loader

    if not fit.is_main or not (out_dir / ckpt.WEIGHTS_FILE).is_file():
        return None
    if fit.ddp is not None:  # rank 0 fits the temperature on the whole validation split
        fit = dataclasses.replace(
            fit, model=ddp.unwrap(fit.model), ddp=None,
            val_loader=make_loader(val_set, batch_size=settings.batch_size, shuffle=False, device=target,
                                   num_workers=settings.num_workers),
        )  # fmt: skip
    return fit_calibration(fit, out_dir)
