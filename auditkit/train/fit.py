"""The epoch loop: train, validate, keep the best epoch, save the resume state, stop early.

Early stopping (Prechelt, "Early Stopping — But When?", 1998): the monitored
validation number (AUROC, higher is better; or loss, lower is better) must
improve within ``patience`` epochs; the best epoch's weights are written as
the checkpoint as soon as they appear, so an interrupted run still leaves
its best model behind. After every epoch the full state is saved
(:mod:`auditkit.train.state`), so a resumed run continues exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from auditkit.nets import checkpoint as ckpt
from auditkit.progress import is_quiet, make_progress
from auditkit.train.loop import evaluate, train_one_epoch
from auditkit.train.metrics import selection_auroc
from auditkit.train.state import save_resume_state


@dataclass
class Progress:
    """Early-stopping bookkeeping, saved with the resume state."""

    best_epoch: int = 0
    best_score: float | None = None
    stale_epochs: int = 0
    stopped_early: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form stored in the resume state."""
        return {
            "best_epoch": self.best_epoch,
            "best_score": self.best_score,
            "stale_epochs": self.stale_epochs,
            "stopped_early": self.stopped_early,
        }

    def improved(self, value: float | None, monitor: str) -> bool:
        """Return whether ``value`` of ``monitor`` beats the best so far (an undefined value never does)."""
        if value is None:
            return False
        if self.best_score is None:
            return True
        return value > self.best_score if monitor == "val_auroc" else value < self.best_score


@dataclass
class Fit:
    """Everything the epoch loop touches."""

    model: nn.Module
    train_loader: Any
    val_loader: Any
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    class_weight: torch.Tensor
    device: torch.device
    out_dir: Path
    monitor: str
    patience: int
    epochs: int
    seed: int
    mixed_precision: bool
    steps_per_epoch: int
    settings: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    progress: Progress = field(default_factory=Progress)
    ddp: Any = None
    """The rank's :class:`auditkit.train.ddp.DdpPlan` under torchrun, else None."""

    @property
    def is_main(self) -> bool:
        """Return whether this process writes the run's files (always, unless a non-zero torchrun rank)."""
        return self.ddp is None or self.ddp.ctx.is_main


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def validate(fit: Fit) -> tuple[float, float | None]:
    """Return the validation ``(loss, AUROC or None)`` of the current model (under torchrun: of every rank's shard)."""
    if fit.ddp is not None:
        from auditkit.train.ddp import gathered_evaluate

        result = gathered_evaluate(
            fit.model, fit.val_loader, device=fit.device, class_weight=fit.class_weight,
            mixed_precision=fit.mixed_precision,
        )  # fmt: skip
    else:
        result = evaluate(
            fit.model, fit.val_loader, device=fit.device, class_weight=fit.class_weight,
            mixed_precision=fit.mixed_precision,
        )  # fmt: skip
    return result.loss, _finite_or_none(selection_auroc(result.y_true, result.prob))


def shuffle_seed(seed: int, epoch: int) -> int:
    """Return the seed of epoch ``epoch``'s shuffling order (independent of how the run got there)."""
    return seed * 100_003 + epoch


def run_epochs(
    fit: Fit,
    *,
    start_epoch: int,
    save_best: Callable[[dict[str, Any]], None],
    on_epoch_end: Callable[[dict[str, Any]], bool | None] | None = None,
) -> bool:
    """Train epochs ``start_epoch..fit.epochs``; return True if ``on_epoch_end`` interrupted the run."""
    with make_progress() as bar:
        task = bar.add_task(
            "training", total=fit.epochs * fit.steps_per_epoch,
            completed=(start_epoch - 1) * fit.steps_per_epoch,
        )  # fmt: skip
        for epoch in range(start_epoch, fit.epochs + 1):
            sampler = getattr(fit.train_loader, "sampler", None)
            if fit.ddp is not None and hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch)  # DistributedSampler: the order of (seed, epoch) on every rank
            else:
                fit.train_loader.generator.manual_seed(shuffle_seed(fit.seed, epoch))
            train_loss = train_one_epoch(
                fit.model, fit.train_loader, optimizer=fit.optimizer, scheduler=fit.scheduler,
                scaler=fit.scaler, class_weight=fit.class_weight, device=fit.device,
                mixed_precision=fit.mixed_precision, on_step=lambda: bar.advance(task),
            )  # fmt: skip
            val_loss, val_auroc = validate(fit)
            row = {
                "epoch": epoch,
                "train_loss": train_loss,
                "val_loss": val_loss,
                "val_auroc": val_auroc,
                "lr": float(fit.optimizer.param_groups[0]["lr"]),
            }
            fit.history.append(row)
            best = fit.progress.improved(row[fit.monitor], fit.monitor)
            if best:
                fit.progress.best_epoch, fit.progress.best_score = epoch, row[fit.monitor]
                fit.progress.stale_epochs = 0
                if fit.is_main:
                    save_best(row)
            else:
                fit.progress.stale_epochs += 1
            fit.progress.stopped_early = fit.progress.stale_epochs >= fit.patience and epoch < fit.epochs
            if fit.is_main:  # under torchrun rank 0 alone writes; every rank took the same decision
                ckpt.write_history(fit.out_dir, fit.history)
                save_resume_state(
                    fit.out_dir, epoch=epoch, model=getattr(fit.model, "module", fit.model),
                    optimizer=fit.optimizer, scheduler=fit.scheduler, scaler=fit.scaler, history=fit.history,
                    progress=fit.progress.to_dict(), settings=fit.settings,
                )  # fmt: skip
            if fit.ddp is not None:
                from auditkit import distributed

                distributed.barrier()
                distributed.maybe_fault(fit.ddp.ctx)  # the resume test: a rank dies after a saved epoch
            if not is_quiet() and fit.is_main:
                auroc = "n/a" if val_auroc is None else f"{val_auroc:.3f}"
                bar.console.print(
                    f"epoch {epoch}/{fit.epochs}  train_loss {train_loss:.4f}  val_loss {val_loss:.4f}  "
                    f"val_auroc {auroc}" + ("  (best)" if best else "")
                )
            if fit.progress.stopped_early:
                return False
            if on_epoch_end is not None and on_epoch_end(dict(row)):
                return True
    return False
