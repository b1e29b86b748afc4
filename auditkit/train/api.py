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
import json
import math
import os
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from auditkit import distributed
from auditkit.errors import InvalidInputError
from auditkit.fileio import guards_inputs, sha256_file
from auditkit.nets import checkpoint as ckpt
from auditkit.nets.device import (
    autocast_dtype,
    describe_device,
    memory_format,
    select_device,
)
from auditkit.train import steps
from auditkit.train.data import TrainingData, load_training_data
from auditkit.train.fit import Fit, run_epochs
from auditkit.train.network import Network, build_network

if TYPE_CHECKING:
    from auditkit.data.manifest import Manifest

SCORE_DEFINITION = "softmax probability of the positive class (class index 1)"


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


def _weights_entry(weights_path: str | os.PathLike[str] | None) -> dict[str, Any] | None:
    """Return the initial weights' path and SHA-256 for the record (None without a weights file)."""
    if weights_path is None or not Path(weights_path).is_file():
        return None
    return {"path": os.fspath(weights_path), "sha256": sha256_file(weights_path)}


@guards_inputs(manifest="the manifest", weights_path="the initial weights")
def train(
    manifest: str | os.PathLike[str] | Manifest, *, arch: str, out: str | os.PathLike[str],
    external_sites: Sequence[str] = (), positive_class: str | None = None, epochs: int = 20,
    batch_size: int = 64, lr: float = 1e-3, weight_decay: float = 1e-2, patience: int = 5,
    device: str | torch.device | None = None, seed: int = 0, resume: bool = False, force: bool = False,
    input_size: int | tuple[int, int] | None = None, in_channels: int | None = None,
    weights_path: str | os.PathLike[str] | None = None, target_layer: str | None = None, augment: bool = True,
    class_weighting: str = "balanced", mixed_precision: bool = True, num_workers: int | None = None,
    cache: bool = True, data_root: str | os.PathLike[str] | None = None, allow_outside_root: bool = False,
    name: str | None = None, on_epoch_end: Callable[[dict[str, Any]], bool | None] | None = None,
    calibration: str = "temperature", split_fractions: dict[str, float] | None = None,
) -> TrainResult:  # fmt: skip
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
    settings = TrainSettings(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, patience=patience,
                             seed=seed, augment=augment, class_weighting=class_weighting, num_workers=num_workers,
                             mixed_precision=mixed_precision, cache=cache)  # fmt: skip
    out_dir = Path(out)
    ctx, mode = steps.start_run(settings, arch, calibration, out_dir, device=device, resume=resume, force=force)
    if mode == "done":
        meta = json.loads((out_dir / ckpt.MODEL_JSON).read_text("utf-8"))
        return _result(out_dir, meta, ckpt.read_history(out_dir))
    target = select_device(distributed.rank_device(device))
    data = load_training_data(manifest, seed=seed, external_sites=external_sites, positive_class=positive_class,
                              data_root=data_root, allow_outside_root=allow_outside_root,
                              split_fractions=split_fractions)  # fmt: skip
    overwrite = mode == "overwrite"
    mode = "fresh" if overwrite else mode
    size = (input_size, input_size) if isinstance(input_size, int) else input_size
    weights_entry = _weights_entry(weights_path)
    with isolated_global_state(target):
        seed_everything(seed)
        net = build_network(arch, num_classes=data.classes.n_classes, in_channels=in_channels,
                            input_size=tuple(size) if size else None, weights_path=weights_path,
                            target_layer=target_layer)  # fmt: skip
        sets = steps.make_datasets(arch, net, data, settings)
        model = net.model.to(target, memory_format=memory_format(target))
        run = steps.build_fit(ctx, model, sets, settings, data, target, out_dir,
                         steps.settings_record(arch, settings, net, data, weights_entry))  # fmt: skip
        fit, ddp_plan = run.fit, run.loaders.ddp_plan
        start_epoch = steps.resume_run(fit, model, run.run_settings, out_dir) if mode == "resume" else 1
        base = _model_record(name or out_dir.name, net, data, sets.preprocess, sets.norm_source, seed)

        def record(completed: bool) -> dict[str, Any]:
            return _training_record(
                settings, fit, data, warmup=run.loaders.warmup, class_weights=run.class_weights,
                weights=weights_entry, completed=completed,
                augmentation=sets.augmentation.to_dict() if sets.augmentation else None,
            )  # fmt: skip

        def save_best(row: dict[str, Any]) -> None:
            meta = {**base, "training": record(False)}
            meta["metrics"] = {k: row[k] for k in ("epoch", "train_loss", "val_loss", "val_auroc")}
            ckpt.save_checkpoint(out_dir, model, meta)

        if mode == "fresh":
            steps.fresh_start(fit, out_dir, data, overwrite=overwrite, save_best=save_best)
        interrupted = run_epochs(fit, start_epoch=start_epoch, save_best=save_best, on_epoch_end=on_epoch_end)
        if ddp_plan is not None:
            distributed.barrier()  # rank 0 has written the best weights
        calibrate = not interrupted and calibration == "temperature"
        calibration_record = steps.calibrate_run(fit, out_dir, sets.val, settings, target) if calibrate else None

    meta = steps.finish_run(fit, out_dir, record(not interrupted), interrupted=interrupted,
                   calibration_record=calibration_record, ddp_plan=ddp_plan, target=target)  # fmt: skip
    return _result(out_dir, meta, list(fit.history))


__all__ = ["TrainResult", "TrainSettings", "seed_everything", "train"]
