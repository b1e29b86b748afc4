"""``train``: fit a model on a manifest and write its checkpoint folder.

The recipe: patient-level splits (external sites never enter training,
validation or threshold choice); AdamW (Loshchilov & Hutter, ICLR 2019) with
a per-step linear warm-up + cosine schedule (:mod:`auditkit.train.schedule`);
cross-entropy weighted by the training split's class counts; early stopping
on validation AUROC (on validation loss when the validation split lacks a
class) with a patience; the best epoch's weights are the checkpoint
(:mod:`auditkit.train.fit`). Deterministic by seed on CPU (seeded RNGs,
deterministic algorithms, a per-epoch seeded shuffling order); the state after
every epoch is saved so ``resume=True`` continues an interrupted run exactly.
The caller's global RNG states and determinism flags are restored afterwards.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import random
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from auditkit import distributed
from auditkit.errors import CheckpointError, InvalidInputError, OutputExistsError
from auditkit.fileio import LOCK_NAME, sha256_file, write_json
from auditkit.nets import checkpoint as ckpt
from auditkit.nets.device import (
    autocast_dtype,
    describe_device,
    make_grad_scaler,
    memory_format,
    select_device,
)
from auditkit.nets.zoo import ARCHITECTURES
from auditkit.train import ddp
from auditkit.train.calibrate import CALIBRATION_METHODS, temperature_record
from auditkit.train.data import TrainingData, load_training_data, normalization_statistics
from auditkit.train.fit import Fit, Progress, run_epochs, validate
from auditkit.train.loop import evaluate
from auditkit.train.metrics import balanced_class_weights
from auditkit.train.network import Network, architecture_kind, build_network
from auditkit.train.schedule import default_warmup_steps, make_scheduler
from auditkit.train.state import has_resume_state, load_resume_state, restore_rng

if TYPE_CHECKING:
    from auditkit.data.manifest import Manifest

SCORE_DEFINITION = "softmax probability of the positive class (class index 1)"
RESUME_KEYS = (
    "arch", "epochs", "batch_size", "lr", "weight_decay", "patience", "seed", "input_size",
    "in_channels", "weights_sha256", "augment", "class_weighting", "external_sites",
    "manifest_sha256", "positive_class",
)  # fmt: skip
"""The settings a resumed run must share with the interrupted one."""


@dataclass(frozen=True)
class TrainSettings:
    """The training hyper-parameters (recorded in model.json, checked on resume)."""

    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-2
    patience: int = 5
    seed: int = 0
    augment: bool = True
    class_weighting: str = "balanced"
    mixed_precision: bool = True
    num_workers: int | None = None
    cache: bool = True
    max_norm_images: int = 512

    def validate(self) -> None:
        """Raise InvalidInputError naming the first setting out of its domain."""
        checks = [
            (self.epochs >= 0, f"--epochs must be 0 or more, got {self.epochs}"),
            (self.batch_size >= 2, f"--batch-size must be 2 or more (BatchNorm), got {self.batch_size}"),
            (self.lr > 0 and math.isfinite(self.lr), f"--lr must be a positive number, got {self.lr}"),
            (self.weight_decay >= 0, f"--weight-decay must be 0 or more, got {self.weight_decay}"),
            (self.patience >= 1, f"--patience must be 1 or more, got {self.patience}"),
            (0 <= self.seed < 2**32, f"--seed must be between 0 and 2**32 - 1, got {self.seed}"),
            (
                self.class_weighting in ("balanced", "none"),
                f"class_weighting must be 'balanced' or 'none', got {self.class_weighting!r}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise InvalidInputError(message)


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced: the checkpoint folder and how the run went."""

    model_dir: Path
    best_epoch: int
    best_score: float
    monitor: str
    epochs_run: int
    stopped_early: bool
    completed: bool
    history: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def isolated_global_state(device: torch.device) -> Iterator[None]:
    """Restore the caller's RNG states (torch, CUDA, NumPy, Python) and determinism flags afterwards."""
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    benchmark = torch.backends.cudnn.benchmark
    np_state = np.random.get_state()
    py_state = random.getstate()
    devices = [device.index or 0] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.backends.cudnn.benchmark = benchmark
        np.random.set_state(np_state)
        random.setstate(py_state)


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), NumPy and Python, and turn on deterministic algorithms (warn-only)."""
    if torch.cuda.is_available():
        # cuBLAS needs a fixed workspace for deterministic GEMMs; set before its first use
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


def _output_mode(out: Path, *, resume: bool, force: bool) -> str:
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


def _clear_checkpoint(out: Path) -> None:
    """Remove the checkpoint files and resume state of an earlier run in ``out`` (after inputs were validated)."""
    shutil.rmtree(out / "resume", ignore_errors=True)
    for name in (ckpt.MODEL_JSON, ckpt.WEIGHTS_FILE, ckpt.SPLITS_FILE, ckpt.HISTORY_FILE, ckpt.TORCHSCRIPT_FILE):
        (out / name).unlink(missing_ok=True)


def _result(out: Path, meta: dict[str, Any], history: list[dict[str, Any]]) -> TrainResult:
    training = meta["training"]
    score = meta.get("metrics", {}).get(training["monitor"])
    return TrainResult(
        model_dir=out,
        best_epoch=int(training["best_epoch"]),
        best_score=float(score) if score is not None else math.nan,
        monitor=str(training["monitor"]),
        epochs_run=int(training["epochs_run"]),
        stopped_early=bool(training["stopped_early"]),
        completed=bool(training["completed"]),
        history=history,
        meta=meta,
    )


def _model_record(name: str, net: Network, data: TrainingData, preprocess, norm_source: str, seed: int) -> dict:
    n_classes = data.classes.n_classes
    record: dict[str, Any] = {
        "name": name,
        "arch": net.arch,
        "classes": data.classes.to_dict(),
        "output": {
            "activation": "softmax",
            "n_outputs": n_classes,
            "score": SCORE_DEFINITION if n_classes == 2 else "softmax probability of each class",
        },
        "input_size": list(net.input_size),
        "in_channels": net.in_channels,
        "preprocess": preprocess.to_dict(),
        "normalization": {"mean": list(preprocess.mean), "std": list(preprocess.std), "source": norm_source},
        "target_layer": net.target_layer,
        "embedding_layer": net.head,
        "seed": seed,
    }
    if net.torchscript_source is not None:
        record["torchscript_source"] = net.torchscript_source
    return record


def _training_record(
    settings: TrainSettings, fit: Fit, data: TrainingData, *, warmup: int, class_weights: np.ndarray,
    weights: dict[str, Any] | None, augmentation: dict[str, Any] | None, completed: bool,
) -> dict[str, Any]:  # fmt: skip
    dtype = autocast_dtype(fit.device) if settings.mixed_precision else None
    return {
        "optimizer": "AdamW",
        "lr": settings.lr,
        "weight_decay": settings.weight_decay,
        "betas": [0.9, 0.999],
        "schedule": f"linear warm-up ({warmup} steps) then cosine decay to 0, stepped per batch",
        "epochs": settings.epochs,
        "epochs_run": fit.history[-1]["epoch"] if fit.history else 0,
        "best_epoch": fit.progress.best_epoch,
        "batch_size": settings.batch_size,
        "steps_per_epoch": fit.steps_per_epoch,
        "seed": settings.seed,
        "loss": "cross-entropy" + (" weighted by balanced class weights" if settings.class_weighting == "balanced" else ""),
        "class_weights": [float(w) for w in class_weights],
        "augmentation": augmentation,
        "device": describe_device(fit.device),
        "mixed_precision": str(dtype).removeprefix("torch.") if dtype is not None else None,
        "channels_last": memory_format(fit.device) is torch.channels_last,
        "deterministic": True,
        "monitor": fit.monitor,
        "early_stopping": {
            "monitor": fit.monitor, "mode": "max" if fit.monitor == "val_auroc" else "min",
            "patience": settings.patience,
        },
        "stopped_early": fit.progress.stopped_early,
        "completed": completed,
        "initial_weights": weights,
        "external_sites": list(data.external_sites),
        "data_fingerprint": data.fingerprint(),
    }  # fmt: skip


def _fit_calibration(fit: Fit, out_dir: Path) -> dict[str, Any] | None:
    """Return the temperature record fitted on validation with the BEST epoch's weights loaded."""
    from safetensors.torch import load_file

    best = load_file(str(out_dir / ckpt.WEIGHTS_FILE), device=str(fit.device))
    fit.model.load_state_dict(best)
    result = evaluate(fit.model, fit.val_loader, device=fit.device, mixed_precision=fit.mixed_precision)
    weights = fit.class_weight.detach().cpu().numpy() if fit.class_weight is not None else None
    return temperature_record(result.y_true, result.prob, class_weights=weights)


def _check_resume(settings: dict[str, Any], saved: dict[str, Any], out: Path) -> None:
    for key in RESUME_KEYS:
        now = json.loads(json.dumps(settings.get(key)))
        if saved.get(key) != now:
            raise InvalidInputError(
                f"--resume: {key} is {now!r} now but was {saved.get(key)!r} in the interrupted run in "
                f"{str(out)!r}; use the same settings, or start afresh without --resume"
            )


def train(
    manifest: str | os.PathLike[str] | Manifest,
    *,
    arch: str,
    out: str | os.PathLike[str],
    external_sites: Sequence[str] = (),
    positive_class: str | None = None,
    epochs: int = 20,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 1e-2,
    patience: int = 5,
    device: str | torch.device | None = None,
    seed: int = 0,
    resume: bool = False,
    force: bool = False,
    input_size: int | tuple[int, int] | None = None,
    in_channels: int | None = None,
    weights_path: str | os.PathLike[str] | None = None,
    target_layer: str | None = None,
    augment: bool = True,
    class_weighting: str = "balanced",
    mixed_precision: bool = True,
    num_workers: int | None = None,
    cache: bool = True,
    data_root: str | os.PathLike[str] | None = None,
    allow_outside_root: bool = False,
    name: str | None = None,
    on_epoch_end: Callable[[dict[str, Any]], bool | None] | None = None,
    calibration: str = "temperature",
    split_fractions: dict[str, float] | None = None,
) -> TrainResult:
    """Return the result of training ``arch`` on ``manifest``; the checkpoint is written to ``out``.

    ``external_sites`` (and rows whose manifest ``split`` is ``external``) never
    enter training or validation. ``weights_path``: a LOCAL ImageNet weights
    file for a torchvision architecture, or initial safetensors weights of a
    ``module:factory``/TorchScript model. ``epochs=0`` packages a model
    without training (its validation metrics are still recorded).
    ``on_epoch_end`` receives each epoch's history row; returning True stops
    the run as if it were interrupted (``resume=True`` continues it).
    ``force`` overwrites an existing checkpoint in ``out``. ``calibration``
    (``"temperature"``, the default, or ``"none"``) fits a temperature to the
    best model's validation logits once training completes (Guo et al. 2017)
    and stores it in model.json, where ``predict`` applies it.
    ``split_fractions`` (e.g. ``{"train": .6, "val": .15, "test": .25}``)
    replaces the default 70/15/15 patient-level split.
    """
    from auditkit.data.dataset import ImageDataset, make_loader
    from auditkit.data.transforms import Augment, Preprocess

    settings = TrainSettings(
        epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, patience=patience,
        seed=seed, augment=augment, class_weighting=class_weighting, mixed_precision=mixed_precision,
        num_workers=num_workers, cache=cache,
    )  # fmt: skip
    settings.validate()
    if calibration not in CALIBRATION_METHODS:
        raise InvalidInputError(
            f"--calibration {calibration!r} is not one of {', '.join(CALIBRATION_METHODS)}"
        )
    architecture_kind(arch)
    out_dir = Path(out)
    ctx = distributed.init(select_device(distributed.rank_device(device)))
    if ctx.active:  # rank 0 decides before any rank writes (another rank would see its files)
        mode = distributed.broadcast(_output_mode(out_dir, resume=resume, force=force) if ctx.is_main else None)
    else:
        mode = _output_mode(out_dir, resume=resume, force=force)
    if mode == "done":
        meta = json.loads((out_dir / ckpt.MODEL_JSON).read_text("utf-8"))
        return _result(out_dir, meta, ckpt.read_history(out_dir))
    target = select_device(distributed.rank_device(device))
    data = load_training_data(
        manifest, seed=seed, external_sites=external_sites, positive_class=positive_class,
        data_root=data_root, allow_outside_root=allow_outside_root, split_fractions=split_fractions,
    )  # fmt: skip
    overwrite = mode == "overwrite"
    mode = "fresh" if overwrite else mode
    size = (input_size, input_size) if isinstance(input_size, int) else input_size
    weights_entry = (
        {"path": os.fspath(weights_path), "sha256": sha256_file(weights_path)}
        if weights_path is not None and Path(weights_path).is_file() else None
    )  # fmt: skip

    with isolated_global_state(target):
        seed_everything(seed)
        net = build_network(
            arch, num_classes=data.classes.n_classes, in_channels=in_channels,
            input_size=tuple(size) if size else None, weights_path=weights_path, target_layer=target_layer,
        )  # fmt: skip
        # the training images are decoded once: statistics are taken from the same
        # (cached) dataset before its normalisation and augmentation are switched on
        identity = Preprocess(input_size=net.input_size, in_channels=net.in_channels, mean=(0.0,), std=(1.0,))
        train_set = ImageDataset(data.train_rows, identity, augment=False, cache=cache)
        if net.imagenet:
            mean, std = ARCHITECTURES[arch].normalization(net.in_channels)
            norm_source = "ImageNet"
        else:
            mean, std = normalization_statistics(train_set, limit=settings.max_norm_images, seed=seed)
            norm_source = f"training split ({min(settings.max_norm_images, len(train_set))} images)"
        preprocess = Preprocess(input_size=net.input_size, in_channels=net.in_channels, mean=mean, std=std)
        augmentation = Augment() if augment else None
        train_set.preprocess, train_set.augment = preprocess, augmentation
        val_set = ImageDataset(data.val_rows, preprocess, augment=False, cache=cache)
        model = net.model.to(target, memory_format=memory_format(target))

        # a last training batch of one image would break BatchNorm's batch statistics
        drop_last = len(train_set) % batch_size == 1
        steps_per_epoch = max(len(train_set) // batch_size + int(len(train_set) % batch_size > 1), 1)
        total_steps = max(epochs * steps_per_epoch, 1)
        warmup = default_warmup_steps(total_steps, steps_per_epoch)
        class_weights = (
            balanced_class_weights(data.train_labels, data.classes.n_classes)
            if class_weighting == "balanced" else np.ones(data.classes.n_classes)
        )  # fmt: skip
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        run_settings = {
            "arch": arch, "epochs": epochs, "batch_size": batch_size, "lr": lr,
            "weight_decay": weight_decay, "patience": patience, "seed": seed,
            "input_size": list(net.input_size), "in_channels": net.in_channels,
            "weights_sha256": weights_entry["sha256"] if weights_entry else None, "augment": augment,
            "class_weighting": class_weighting, "external_sites": list(data.external_sites),
            "manifest_sha256": data.manifest.sha256, "positive_class": data.classes.positive_class,
        }  # fmt: skip
        ddp_plan = ddp.plan(ctx, batch_size) if ctx.active else None
        if ddp_plan is not None:  # torchrun: this rank's share of every batch (auditkit.train.ddp)
            train_batches = ddp.train_loader(train_set, ddp_plan, device=target, seed=seed, num_workers=num_workers)
            val_batches = ddp.shard_loader(val_set, ddp_plan, device=target, num_workers=num_workers)
            steps_per_epoch = max(len(train_batches), 1)
            total_steps = max(epochs * steps_per_epoch, 1)
            warmup = default_warmup_steps(total_steps, steps_per_epoch)
            from auditkit.progress import status

            status(
                f"{ctx.label()}: training on {len(train_batches.sampler)} of {len(train_set)} images per epoch "
                f"({ddp_plan.batch_size} per step), validating {len(val_batches.dataset)} of {len(val_set)}"
            )
        else:
            train_batches = make_loader(
                train_set, batch_size=batch_size, shuffle=True, device=target, num_workers=num_workers,
                seed=seed, drop_last=drop_last,
            )  # fmt: skip
            val_batches = make_loader(
                val_set, batch_size=batch_size, shuffle=False, device=target, num_workers=num_workers
            )
        fit = Fit(
            model=ddp.wrap_model(model, target) if ddp_plan is not None else model,
            train_loader=train_batches,
            val_loader=val_batches,
            optimizer=optimizer,
            scheduler=make_scheduler(optimizer, total_steps=total_steps, warmup_steps=warmup),
            scaler=make_grad_scaler(target, enabled=mixed_precision),
            class_weight=torch.as_tensor(class_weights, dtype=torch.float32, device=target),
            device=target, out_dir=out_dir, monitor=data.monitor, patience=patience, epochs=epochs,
            seed=seed, mixed_precision=mixed_precision, steps_per_epoch=steps_per_epoch,
            settings=run_settings, ddp=ddp_plan,
        )  # fmt: skip
        start_epoch = 1
        if mode == "resume":
            state = load_resume_state(out_dir)
            _check_resume(run_settings, state.settings, out_dir)
            model.load_state_dict(state.model)
            fit.optimizer.load_state_dict(state.optimizer)
            fit.scheduler.load_state_dict(state.scheduler)
            fit.scaler.load_state_dict(state.scaler)
            restore_rng(state.rng_tensors, state.rng_scalars)
            fit.history = list(state.history)
            fit.progress = Progress(**state.progress)
            start_epoch = state.epoch + 1

        base = _model_record(name or out_dir.name, net, data, preprocess, norm_source, seed)

        def record(completed: bool) -> dict[str, Any]:
            return _training_record(
                settings, fit, data, warmup=warmup, class_weights=class_weights, weights=weights_entry,
                augmentation=augmentation.to_dict() if augmentation else None, completed=completed,
            )  # fmt: skip

        def save_best(row: dict[str, Any]) -> None:
            meta = {**base, "training": record(False)}
            meta["metrics"] = {k: row[k] for k in ("epoch", "train_loss", "val_loss", "val_auroc")}
            ckpt.save_checkpoint(out_dir, model, meta)

        if mode == "fresh":
            if fit.is_main:  # under torchrun rank 0 alone writes
                if overwrite:  # only now: every input has been validated, so nothing is lost in vain
                    _clear_checkpoint(out_dir)
                ckpt.write_splits(out_dir, data.assignment())
            if epochs == 0:
                val_loss, val_auroc = validate(fit)  # every rank: a gathered evaluation under torchrun
                row = {"epoch": 0, "train_loss": None, "val_loss": val_loss, "val_auroc": val_auroc, "lr": None}
                fit.history.append(row)
                if fit.is_main:
                    save_best(row)
                    ckpt.write_history(out_dir, fit.history)
        interrupted = run_epochs(fit, start_epoch=start_epoch, save_best=save_best, on_epoch_end=on_epoch_end)
        calibration_record = None
        if ddp_plan is not None:
            distributed.barrier()  # rank 0 has written the best weights
        if (
            not interrupted and fit.is_main and calibration == "temperature"
            and (out_dir / ckpt.WEIGHTS_FILE).is_file()
        ):  # fmt: skip
            if ddp_plan is not None:  # rank 0 fits the temperature on the whole validation split
                fit = dataclasses.replace(
                    fit, model=ddp.unwrap(fit.model), ddp=None,
                    val_loader=make_loader(val_set, batch_size=batch_size, shuffle=False, device=target,
                                           num_workers=num_workers),
                )  # fmt: skip
            calibration_record = _fit_calibration(fit, out_dir)

    model_json = out_dir / ckpt.MODEL_JSON
    if fit.is_main:
        if not model_json.is_file():
            raise CheckpointError(f"training wrote no checkpoint to {str(out_dir)!r}")  # pragma: no cover
        meta = json.loads(model_json.read_text("utf-8"))
        meta["training"] = record(not interrupted)
        if ddp_plan is not None:
            meta["training"]["distributed"] = ddp.record(ddp_plan, target)
        if not interrupted:
            meta["calibration"] = calibration_record
            write_json(model_json, meta)
            shutil.rmtree(out_dir / "resume", ignore_errors=True)
    if ddp_plan is not None:
        distributed.barrier()  # every rank returns rank 0's finished record
        meta = json.loads(model_json.read_text("utf-8"))
    return _result(out_dir, meta, list(fit.history))


__all__ = ["TrainResult", "TrainSettings", "seed_everything", "train"]
