"""``train``: fit a model on a manifest and write its checkpoint folder.

The recipe: patient-level splits (external sites never enter training,
validation or threshold choice); AdamW (Loshchilov & Hutter, ICLR 2019) with
a per-step linear warm-up + cosine schedule; cross-entropy weighted by the
training split's class counts; early stopping on validation AUROC (on
validation loss when the validation split lacks a class) with a patience;
the best epoch's weights are the checkpoint. Deterministic by seed on CPU
(seeded RNGs, deterministic algorithms, per-epoch seeded shuffling); the
state after every epoch is saved so ``resume=True`` continues an interrupted
run exactly. The caller's global RNG states and determinism flags are
restored afterwards.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from auditkit.errors import InvalidInputError, ManifestError, OutputExistsError
from auditkit.fileio import sha256_file, write_json
from auditkit.nets import checkpoint as ckpt
from auditkit.nets import custom
from auditkit.nets.device import (
    autocast_dtype,
    describe_device,
    make_grad_scaler,
    memory_format,
    select_device,
)
from auditkit.nets.embed import embedding_layer_name
from auditkit.nets.layers import resolve_target_layer
from auditkit.nets.zoo import ARCHITECTURES, build_model
from auditkit.progress import is_quiet, make_progress
from auditkit.train.loop import evaluate, train_one_epoch
from auditkit.train.metrics import balanced_class_weights, selection_auroc
from auditkit.train.schedule import default_warmup_steps, make_scheduler
from auditkit.train.state import has_resume_state, load_resume_state, restore_rng, save_resume_state

if TYPE_CHECKING:
    from auditkit.data.manifest import Manifest

SCORE_DEFINITION = "softmax probability of the positive class (class index 1)"
# the settings a resumed run must share with the interrupted one
_RESUME_KEYS = (
    "arch", "epochs", "batch_size", "lr", "weight_decay", "patience", "seed", "input_size",
    "in_channels", "weights_sha256", "augment", "class_weighting", "external_sites",
    "manifest_sha256", "positive_class",
)  # fmt: skip


@dataclass(frozen=True)
class TrainSettings:
    """Everything that determines a training run besides the data (recorded in model.json)."""

    arch: str
    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-2
    patience: int = 5
    seed: int = 0
    input_size: tuple[int, int] | None = None
    in_channels: int | None = None
    weights_path: str | None = None
    target_layer: str | None = None
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
def _isolated_global_state(device: torch.device) -> Iterator[None]:
    """Restore the caller's RNG states and determinism flags after training."""
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
        # cuBLAS needs a fixed workspace for deterministic GEMMs; must precede its initialisation
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


def seed_worker(worker_id: int) -> None:
    """Seed NumPy and Python in a DataLoader worker from its torch seed (PyTorch's reproducibility recipe)."""
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


def _make_loader(dataset, *, batch_size: int, shuffle: bool, device: torch.device,
                 num_workers: int | None, seed: int, drop_last: bool = False):  # fmt: skip
    """Return a DataLoader with the data layer's worker/pinning policy and a seeded generator."""
    from torch.utils.data import DataLoader

    from auditkit.data.dataset import make_loader

    policy = make_loader(dataset, batch_size=batch_size, shuffle=False, device=device, num_workers=num_workers)
    generator = torch.Generator()
    generator.manual_seed(seed)
    workers = policy.num_workers
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        drop_last=drop_last,
        generator=generator,
        worker_init_fn=seed_worker if workers > 0 else None,
        persistent_workers=False,
    )


def _split_counts(frame: pd.DataFrame, split: pd.Series, n_classes: int) -> dict[str, dict[str, Any]]:
    counts: dict[str, dict[str, Any]] = {}
    for name in ("train", "val", "test", "external"):
        rows = frame.loc[split == name]
        if rows.empty:
            continue
        entry: dict[str, Any] = {
            "n_images": len(rows),
            "n_patients": int(rows["patient_id"].nunique()),
        }
        y = rows["y_true"].to_numpy(dtype=np.int64)
        if n_classes == 2:
            entry["n_positive"] = int((y == 1).sum())
        else:
            entry["class_counts"] = np.bincount(y, minlength=n_classes).tolist()
        counts[name] = entry
    return counts


def _normalization_from_data(frame: pd.DataFrame, *, input_size, in_channels, limit: int, seed: int):
    """Return per-channel ``(mean, std)`` of up to ``limit`` preprocessed training images."""
    from auditkit.data.dataset import ImageDataset
    from auditkit.data.transforms import Preprocess

    rng = np.random.default_rng(seed)
    take = np.sort(rng.choice(len(frame), size=min(limit, len(frame)), replace=False))
    sample = frame.iloc[take].reset_index(drop=True)
    identity = Preprocess(
        input_size=tuple(input_size), in_channels=in_channels,
        mean=(0.0,) * in_channels, std=(1.0,) * in_channels,
    )  # fmt: skip
    dataset = ImageDataset(sample, identity, augment=False, cache=False)
    total = torch.zeros(in_channels, dtype=torch.float64)
    total_sq = torch.zeros(in_channels, dtype=torch.float64)
    pixels = 0
    for i in range(len(dataset)):
        x = dataset[i][0].double()  # (C, h, w)
        total += x.sum(dim=(1, 2))
        total_sq += (x * x).sum(dim=(1, 2))
        pixels += x.shape[1] * x.shape[2]
    mean = total / pixels
    std = torch.sqrt(torch.clamp(total_sq / pixels - mean * mean, min=1e-12))
    return tuple(round(float(v), 6) for v in mean), tuple(round(max(float(v), 1e-3), 6) for v in std)


def _prepare_output(out: Path, *, resume: bool, force: bool) -> str:
    """Return ``"fresh"``, ``"resume"`` or ``"done"`` after checking ``out``."""
    model_json = out / ckpt.MODEL_JSON
    if resume:
        if has_resume_state(out):
            return "resume"
        if model_json.is_file():
            meta = json.loads(model_json.read_text(encoding="utf-8"))
            if meta.get("training", {}).get("completed"):
                return "done"
        return "missing"
    if out.exists() and any(out.iterdir()):
        if not force:
            raise OutputExistsError(
                f"output folder {str(out)!r} is not empty; pass --force to overwrite it, "
                "--resume to continue an interrupted run, or choose another --out"
            )
        shutil.rmtree(out / "resume", ignore_errors=True)
        for name in (ckpt.MODEL_JSON, ckpt.WEIGHTS_FILE, ckpt.SPLITS_FILE, ckpt.HISTORY_FILE):
            (out / name).unlink(missing_ok=True)
    return "fresh"


def _result_from_meta(out: Path, meta: dict[str, Any]) -> TrainResult:
    training = meta.get("training", {})
    metrics = meta.get("metrics", {})
    return TrainResult(
        model_dir=out,
        best_epoch=int(training.get("best_epoch", 0)),
        best_score=float(metrics.get(training.get("monitor", "val_auroc")) or math.nan),
        monitor=str(training.get("monitor", "val_auroc")),
        epochs_run=int(training.get("epochs_run", 0)),
        stopped_early=bool(training.get("stopped_early", False)),
        completed=bool(training.get("completed", False)),
        history=ckpt.read_history(out),
        meta=meta,
    )


def _resolve_architecture(settings: TrainSettings) -> tuple[str, str | None]:
    """Return ``(kind, torchscript source)`` for ``settings.arch``: zoo, factory or torchscript."""
    if settings.arch in ARCHITECTURES:
        return "zoo", None
    if custom.is_factory_spec(settings.arch):
        return "factory", None
    if custom.is_torchscript_path(settings.arch):
        return "torchscript", settings.arch
    # raises the zoo's error, which lists the names and the two custom forms
    from auditkit.nets.zoo import get_arch

    get_arch(settings.arch)
    raise AssertionError("unreachable")  # pragma: no cover


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
) -> TrainResult:
    """Return the result of training ``arch`` on ``manifest``; the checkpoint is written to ``out``.

    ``external_sites`` (and rows whose manifest ``split`` is ``external``) never
    enter training or validation. ``weights_path`` is a local ImageNet weights
    file for a torchvision architecture, or initial safetensors weights for a
    ``module:factory``/TorchScript model. ``epochs=0`` packages a model without
    training (its validation metrics are still recorded). ``on_epoch_end``
    receives each epoch's history row; returning True stops the run as if it
    were interrupted (the resume state stays, so ``resume=True`` continues it).
    """
    from auditkit.data.manifest import Manifest, read_manifest
    from auditkit.data.splits import assign_splits

    size = (input_size, input_size) if isinstance(input_size, int) else input_size
    settings = TrainSettings(
        arch=arch, epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
        patience=patience, seed=seed, input_size=tuple(size) if size is not None else None,
        in_channels=in_channels, weights_path=os.fspath(weights_path) if weights_path else None,
        target_layer=target_layer, augment=augment, class_weighting=class_weighting,
        mixed_precision=mixed_precision, num_workers=num_workers, cache=cache,
    )  # fmt: skip
    settings.validate()
    kind, torchscript_source = _resolve_architecture(settings)
    out_dir = Path(out)
    mode = _prepare_output(out_dir, resume=resume, force=force)
    if mode == "done":
        meta = json.loads((out_dir / ckpt.MODEL_JSON).read_text(encoding="utf-8"))
        return _result_from_meta(out_dir, meta)
    if mode == "missing":
        load_resume_state(out_dir)  # raises the explanatory CheckpointError
    target = select_device(device)

    if isinstance(manifest, Manifest):
        data = manifest
    else:
        data = read_manifest(
            manifest, data_root=data_root, allow_outside_root=allow_outside_root,
            positive_class=positive_class,
        )  # fmt: skip
    frame = data.frame
    known_sites = sorted(frame["site"].astype(str).unique())
    for site in external_sites:
        if site not in known_sites:
            raise InvalidInputError(
                f"--external-site {site!r} is not a site of {str(data.path)!r}; its sites are {known_sites}"
            )
    split = assign_splits(frame, seed=seed, external_sites=tuple(external_sites))
    classes = data.classes
    n_classes = classes.n_classes
    train_rows = frame.loc[split == "train"].reset_index(drop=True)
    val_rows = frame.loc[split == "val"].reset_index(drop=True)
    if train_rows.empty or val_rows.empty:
        raise ManifestError(
            f"{str(data.path)!r}: the training split has {len(train_rows)} image(s) and the validation "
            f"split {len(val_rows)}; both need images (add data or fix the 'split' column)"
        )
    train_y = train_rows["y_true"].to_numpy(dtype=np.int64)
    absent = [classes.classes[k] for k in range(n_classes) if not (train_y == k).any()]
    if absent:
        raise ManifestError(
            f"{str(data.path)!r}: class(es) {absent} have no image in the training split; "
            "every class needs training examples"
        )
    val_has_all = len(np.unique(val_rows["y_true"])) == n_classes
    monitor = "val_auroc" if val_has_all else "val_loss"

    spec = ARCHITECTURES.get(settings.arch)
    channels = settings.in_channels or (spec.default_in_channels if spec else None)
    shape = settings.input_size or (spec.default_input_size if spec else None)
    weights_sha = sha256_file(settings.weights_path) if settings.weights_path else None

    with _isolated_global_state(target):
        seed_everything(seed)
        if kind == "zoo":
            model = build_model(
                settings.arch, in_channels=channels, num_classes=n_classes,
                weights_path=settings.weights_path, input_size=shape,
            )  # fmt: skip
        else:
            model = (
                custom.load_torchscript(torchscript_source)
                if kind == "torchscript"
                else custom.build_factory_model(settings.arch, in_channels=channels or 1, num_classes=n_classes)
            )
            channels = channels or custom.infer_in_channels(model) or 1
            if shape is None:
                raise InvalidInputError(
                    f"--arch {settings.arch!r} is a custom model: give its input size with --input-size"
                )
            if settings.weights_path:
                from auditkit.nets.weights import read_safetensors

                state = read_safetensors(settings.weights_path, what="initial weights file")
                try:
                    model.load_state_dict(state, strict=True)
                except RuntimeError as exc:
                    raise InvalidInputError(
                        f"initial weights {settings.weights_path!r} do not fit {settings.arch!r} "
                        f"({str(exc).strip().splitlines()[0]}); give weights saved from this model"
                    ) from None
            custom.check_output_shape(
                model, in_channels=channels, num_classes=n_classes, input_size=tuple(shape),
                device=torch.device("cpu"), where=f"--arch {settings.arch!r}",
            )  # fmt: skip
        layer_name, _ = resolve_target_layer(model, settings.target_layer)
        head_name = spec.head if spec else embedding_layer_name(model) if kind == "factory" else None

        if settings.weights_path and kind == "zoo":
            mean, std = spec.normalization(channels)
            norm_source = "ImageNet"
        else:
            mean, std = _normalization_from_data(
                train_rows, input_size=shape, in_channels=channels,
                limit=settings.max_norm_images, seed=seed,
            )  # fmt: skip
            norm_source = f"training split ({min(settings.max_norm_images, len(train_rows))} images)"
        from auditkit.data.dataset import ImageDataset
        from auditkit.data.transforms import Preprocess

        preprocess = Preprocess(input_size=tuple(shape), in_channels=channels, mean=mean, std=std)
        model = model.to(target, memory_format=memory_format(target))

        train_set = ImageDataset(train_rows, preprocess, augment=settings.augment, cache=settings.cache)
        val_set = ImageDataset(val_rows, preprocess, augment=False, cache=settings.cache)
        # a last training batch of one image would break BatchNorm's batch statistics
        drop_last = len(train_set) % batch_size == 1
        steps_per_epoch = max(len(train_set) // batch_size + (0 if drop_last or len(train_set) % batch_size == 0 else 1), 1)
        total_steps = max(settings.epochs * steps_per_epoch, 1)
        warmup = default_warmup_steps(total_steps, steps_per_epoch)

        class_weights = (
            balanced_class_weights(train_y, n_classes) if settings.class_weighting == "balanced"
            else np.ones(n_classes)
        )  # fmt: skip
        weight_tensor = torch.as_tensor(class_weights, dtype=torch.float32, device=target)
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        scheduler = make_scheduler(optimizer, total_steps=total_steps, warmup_steps=warmup)
        scaler = make_grad_scaler(target, enabled=settings.mixed_precision)

        fingerprint = {
            "manifest_path": str(data.path),
            "manifest_sha256": data.sha256,
            "n_images": len(frame),
            "splits": _split_counts(frame, split, n_classes),
            "external_sites": sorted(external_sites),
        }
        run_settings = {
            "arch": settings.arch, "epochs": epochs, "batch_size": batch_size, "lr": lr,
            "weight_decay": weight_decay, "patience": patience, "seed": seed,
            "input_size": list(shape), "in_channels": channels, "weights_sha256": weights_sha,
            "augment": augment, "class_weighting": class_weighting,
            "external_sites": sorted(external_sites), "manifest_sha256": data.sha256,
            "positive_class": classes.positive_class,
        }  # fmt: skip

        history: list[dict[str, Any]] = []
        progress_state = {"best_epoch": 0, "best_score": None, "stale_epochs": 0, "stopped_early": False}
        start_epoch = 1
        if mode == "resume":
            state = load_resume_state(out_dir)
            for key in _RESUME_KEYS:
                if state.settings.get(key) != json.loads(json.dumps(run_settings.get(key))):
                    raise InvalidInputError(
                        f"--resume: {key} is {run_settings.get(key)!r} now but was "
                        f"{state.settings.get(key)!r} in the interrupted run in {str(out_dir)!r}; "
                        "use the same settings, or start afresh without --resume"
                    )
            model.load_state_dict(state.model)
            optimizer.load_state_dict(state.optimizer)
            scheduler.load_state_dict(state.scheduler)
            scaler.load_state_dict(state.scaler)
            restore_rng(state.rng_tensors, state.rng_scalars)
            history = state.history
            progress_state.update(state.progress)
            start_epoch = state.epoch + 1

        base_meta = {
            "name": name or out_dir.name,
            "arch": custom.TORCHSCRIPT if kind == "torchscript" else settings.arch,
            "classes": classes.to_dict(),
            "output": {
                "activation": "softmax",
                "n_outputs": n_classes,
                "score": SCORE_DEFINITION if n_classes == 2 else "softmax probability of each class",
            },
            "input_size": list(shape),
            "in_channels": channels,
            "preprocess": preprocess.to_dict(),
            "normalization": {"mean": list(mean), "std": list(std), "source": norm_source},
            "target_layer": layer_name,
            "embedding_layer": head_name,
            "seed": seed,
        }
        if kind == "torchscript":
            base_meta["torchscript_source"] = torchscript_source

        def training_block(epochs_run: int, completed: bool) -> dict[str, Any]:
            return {
                "optimizer": "AdamW",
                "lr": lr,
                "weight_decay": weight_decay,
                "betas": [0.9, 0.999],
                "schedule": f"linear warm-up ({warmup} steps) then cosine decay to 0, per step",
                "epochs": epochs,
                "epochs_run": epochs_run,
                "best_epoch": progress_state["best_epoch"],
                "batch_size": batch_size,
                "steps_per_epoch": steps_per_epoch,
                "seed": seed,
                "loss": "cross-entropy" + (" (class-weighted)" if class_weighting == "balanced" else ""),
                "class_weights": [float(w) for w in class_weights],
                "augmentation": "light affine and intensity (data layer)" if augment else None,
                "device": describe_device(target),
                "mixed_precision": str(autocast_dtype(target)).replace("torch.", "")
                if settings.mixed_precision and autocast_dtype(target) is not None
                else None,
                "channels_last": memory_format(target) is torch.channels_last,
                "deterministic": True,
                "monitor": monitor,
                "early_stopping": {"monitor": monitor, "patience": patience,
                                   "mode": "max" if monitor == "val_auroc" else "min"},
                "stopped_early": progress_state["stopped_early"],
                "completed": completed,
                "initial_weights": {"path": settings.weights_path, "sha256": weights_sha}
                if settings.weights_path else None,
                "external_sites": sorted(external_sites),
                "data_fingerprint": fingerprint,
            }  # fmt: skip

        def save_best(epoch_row: dict[str, Any], epochs_run: int) -> None:
            meta = dict(base_meta)
            meta["training"] = training_block(epochs_run, completed=False)
            meta["metrics"] = {k: epoch_row[k] for k in ("epoch", "train_loss", "val_loss", "val_auroc")}
            ckpt.save_checkpoint(out_dir, model, meta)

        def improved(row: dict[str, Any]) -> bool:
            value = row[monitor]
            best = progress_state["best_score"]
            if value is None:
                return best is None and progress_state["best_epoch"] == 0
            if best is None:
                return True
            return value > best if monitor == "val_auroc" else value < best

        if mode == "fresh":
            ckpt.write_splits(out_dir, pd.DataFrame({"patient_id": frame["patient_id"], "split": split}))
        interrupted = False
        train_loader = _make_loader(
            train_set, batch_size=batch_size, shuffle=True, device=target,
            num_workers=settings.num_workers, seed=seed, drop_last=drop_last,
        )  # fmt: skip
        val_loader = _make_loader(
            val_set, batch_size=batch_size, shuffle=False, device=target,
            num_workers=settings.num_workers, seed=seed,
        )  # fmt: skip

        if settings.epochs == 0 and mode == "fresh":
            result = evaluate(model, val_loader, device=target, class_weight=weight_tensor,
                              mixed_precision=settings.mixed_precision)  # fmt: skip
            row = {"epoch": 0, "train_loss": None, "val_loss": result.loss,
                   "val_auroc": _finite_or_none(selection_auroc(result.y_true, result.prob)),
                   "lr": None}  # fmt: skip
            history.append(row)
            save_best(row, 0)

        with make_progress() as bar:
            task = bar.add_task(
                f"training {settings.arch}", total=settings.epochs * steps_per_epoch,
                completed=(start_epoch - 1) * steps_per_epoch,
            )  # fmt: skip
            epoch = start_epoch - 1
            for epoch in range(start_epoch, settings.epochs + 1):
                train_loader.generator.manual_seed(seed * 100_003 + epoch)
                train_loss = train_one_epoch(
                    model, train_loader, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
                    class_weight=weight_tensor, device=target,
                    mixed_precision=settings.mixed_precision,
                    on_step=lambda: bar.advance(task),
                )  # fmt: skip
                result = evaluate(model, val_loader, device=target, class_weight=weight_tensor,
                                  mixed_precision=settings.mixed_precision)  # fmt: skip
                row = {
                    "epoch": epoch,
                    "train_loss": train_loss,
                    "val_loss": result.loss,
                    "val_auroc": _finite_or_none(selection_auroc(result.y_true, result.prob)),
                    "lr": float(optimizer.param_groups[0]["lr"]),
                }
                history.append(row)
                best = improved(row)
                if best:
                    progress_state.update(best_epoch=epoch, best_score=row[monitor], stale_epochs=0)
                    save_best(row, epoch)
                else:
                    progress_state["stale_epochs"] += 1
                if progress_state["stale_epochs"] >= patience:
                    progress_state["stopped_early"] = True
                ckpt.write_history(out_dir, history)
                save_resume_state(
                    out_dir, epoch=epoch, model=model, optimizer=optimizer, scheduler=scheduler,
                    scaler=scaler, history=history, progress=progress_state, settings=run_settings,
                )  # fmt: skip
                if not is_quiet():
                    auroc = "n/a" if row["val_auroc"] is None else f"{row['val_auroc']:.3f}"
                    bar.console.print(
                        f"epoch {epoch}/{settings.epochs}  train_loss {train_loss:.4f}  "
                        f"val_loss {row['val_loss']:.4f}  val_auroc {auroc}" + ("  (best)" if best else "")
                    )
                if progress_state["stopped_early"]:
                    break
                if on_epoch_end is not None and on_epoch_end(dict(row)):
                    interrupted = True
                    break

        ckpt.write_history(out_dir, history)
        epochs_run = history[-1]["epoch"] if history else 0
        model_json = out_dir / ckpt.MODEL_JSON
        meta = json.loads(model_json.read_text(encoding="utf-8"))
        meta["training"] = training_block(epochs_run, completed=not interrupted)
        meta["training"]["best_epoch"] = progress_state["best_epoch"]
        if not interrupted:
            write_json(model_json, meta)
            shutil.rmtree(out_dir / "resume", ignore_errors=True)
        return TrainResult(
            model_dir=out_dir,
            best_epoch=int(progress_state["best_epoch"]),
            best_score=float(progress_state["best_score"]) if progress_state["best_score"] is not None else math.nan,
            monitor=monitor,
            epochs_run=int(epochs_run),
            stopped_early=bool(progress_state["stopped_early"]),
            completed=not interrupted,
            history=list(history),
            meta=meta,
        )


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


__all__ = ["TrainResult", "TrainSettings", "seed_everything", "train"]
_ = asdict  # dataclasses.asdict is re-exported for callers that serialise TrainSettings
