"""The resumable training state, saved after every epoch without pickle.

``resume/state.safetensors`` holds every tensor (model, optimiser moments,
torch RNG states); ``resume/state.json`` holds everything scalar (optimiser
hyper-parameters, scheduler and grad-scaler state, NumPy and Python RNG
states, the history, early-stopping bookkeeping, the run's settings) and the
SHA-256 of the tensor file, so a torn pair (one file from another epoch) is
detected. Both are written atomically, the JSON last.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save
from torch import nn

from auditkit.errors import CheckpointError
from auditkit.fileio import atomic_write_bytes, sha256_bytes, sha256_file, write_json

STATE_DIR = "resume"
TENSORS_FILE = "state.safetensors"
JSON_FILE = "state.json"
STATE_VERSION = 1


def capture_rng() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Return ``(tensors, scalars)``: the torch CPU/CUDA RNG states and the NumPy/Python ones."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for index, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{index}"] = state
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    scalars = {
        "numpy": [kind, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)],
        "python": [version, list(internal), gauss],
    }
    return tensors, scalars


def restore_rng(tensors: dict[str, torch.Tensor], scalars: dict[str, Any]) -> None:
    """Set the torch, CUDA, NumPy and Python RNGs to a state from :func:`capture_rng`."""
    torch.set_rng_state(tensors["rng.torch"])
    cuda = sorted(k for k in tensors if k.startswith("rng.cuda."))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[k] for k in cuda])
    kind, keys, pos, has_gauss, cached = scalars["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = scalars["python"]
    random.setstate((version, tuple(internal), gauss))


def _split_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entry in state["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{key}"] = value.detach().to("cpu").contiguous().clone()
            else:
                scalars.setdefault(str(index), {})[key] = value
    groups = [
        {k: (list(v) if isinstance(v, tuple) else v) for k, v in group.items()}
        for group in state["param_groups"]
    ]
    return tensors, {"param_groups": groups, "scalars": scalars}


def _join_optimizer(tensors: dict[str, torch.Tensor], scalars: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if not name.startswith("optim."):
            continue
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = value
    for index, entry in scalars["scalars"].items():
        state.setdefault(int(index), {}).update(entry)
    groups = []
    for group in scalars["param_groups"]:
        restored = dict(group)
        if isinstance(restored.get("betas"), list):
            restored["betas"] = tuple(restored["betas"])
        groups.append(restored)
    return {"state": state, "param_groups": groups}


@dataclass
class ResumeState:
    """The state of a run after its last completed epoch."""

    epoch: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    scaler: dict[str, Any]
    rng_tensors: dict[str, torch.Tensor]
    rng_scalars: dict[str, Any]
    history: list[dict[str, Any]]
    progress: dict[str, Any]
    settings: dict[str, Any]


def save_resume_state(
    out_dir: str | os.PathLike[str],
    *,
    epoch: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    history: list[dict[str, Any]],
    progress: dict[str, Any],
    settings: dict[str, Any],
) -> Path:
    """Write the state after ``epoch`` to ``out_dir/resume/`` atomically and return the JSON path.

    ``progress`` holds the early-stopping bookkeeping (best epoch and score,
    epochs without improvement); ``settings`` the run's settings, checked on resume.
    """
    folder = Path(out_dir) / STATE_DIR
    tensors = {
        f"model.{name}": value.detach().to("cpu").contiguous().clone()
        for name, value in model.state_dict().items()
    }
    optim_tensors, optim_scalars = _split_optimizer(optimizer.state_dict())
    rng_tensors, rng_scalars = capture_rng()
    tensors.update(optim_tensors)
    tensors.update(rng_tensors)
    payload = save(tensors)
    atomic_write_bytes(folder / TENSORS_FILE, payload)
    record = {
        "version": STATE_VERSION,
        "epoch": int(epoch),
        "tensors_sha256": sha256_bytes(payload),
        "optimizer": optim_scalars,
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": rng_scalars,
        "history": history,
        "progress": progress,
        "settings": settings,
    }
    # JSON keeps 17 significant digits, so every float (lr, betas, RNG) round-trips exactly
    return write_json(folder / JSON_FILE, record)


def has_resume_state(out_dir: str | os.PathLike[str]) -> bool:
    """Return whether ``out_dir`` holds a resumable state."""
    return (Path(out_dir) / STATE_DIR / JSON_FILE).is_file()


def load_resume_state(out_dir: str | os.PathLike[str]) -> ResumeState:
    """Return the state saved in ``out_dir/resume/``; CheckpointError if it is missing or torn."""
    folder = Path(out_dir) / STATE_DIR
    json_path, tensors_path = folder / JSON_FILE, folder / TENSORS_FILE
    if not json_path.is_file() or not tensors_path.is_file():
        raise CheckpointError(
            f"nothing to resume in {str(out_dir)!r}: {STATE_DIR}/{JSON_FILE} and "
            f"{STATE_DIR}/{TENSORS_FILE} are needed; run without --resume to start afresh"
        )
    try:
        record = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{str(json_path)!r} is not valid JSON ({exc}); start afresh") from None
    if sha256_file(tensors_path) != record.get("tensors_sha256"):
        raise CheckpointError(
            f"{str(tensors_path)!r} does not belong to {str(json_path)!r} (SHA-256 differs); "
            "the resume state is torn: start afresh without --resume"
        )
    tensors = load_file(str(tensors_path), device="cpu")
    model = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    rng_tensors = {k: v for k, v in tensors.items() if k.startswith("rng.")}
    return ResumeState(
        epoch=int(record["epoch"]),
        model=model,
        optimizer=_join_optimizer(tensors, record["optimizer"]),
        scheduler=record["scheduler"],
        scaler=record["scaler"],
        rng_tensors=rng_tensors,
        rng_scalars=record["rng"],
        history=list(record["history"]),
        progress=dict(record["progress"]),
        settings=dict(record["settings"]),
    )
