"""The model.json of the other task kinds (3-D volumes, multi-label findings), read like every checkpoint.

A received 3-D or multi-label checkpoint is as untrusted as a 2-D one: its
model.json goes through the one bounded JSON reader (a nesting bomb is a
CheckpointError), its weights through the same folder fence and SHA-256 check
as :func:`auditkit.nets.checkpoint.load_checkpoint`, and a missing or
mistyped field ends in one CheckpointError naming the file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from auditkit.errors import CheckpointError
from auditkit.fileio import load_json
from auditkit.nets.checkpoint import MODEL_JSON, verified_file

_T = TypeVar("_T")


def task_kind(model_dir: str | Path) -> str | None:
    """Return the ``task.kind`` model.json declares in ``model_dir`` (None when unreadable or absent)."""
    try:
        meta = load_json((Path(model_dir) / MODEL_JSON).read_text(encoding="utf-8"))
        task = meta.get("task") if isinstance(meta, dict) else None
        return str(task["kind"]) if isinstance(task, dict) and "kind" in task else None
    except (OSError, ValueError):
        return None


def read_task_record(model_dir: str | Path, kind: str) -> dict[str, Any]:
    """Return the parsed model.json of a ``kind`` checkpoint; CheckpointError when it is unreadable or another kind."""
    path = Path(model_dir) / MODEL_JSON
    try:
        meta = load_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"'{path}' cannot be read as JSON ({str(exc)[:80]}); restore it or retrain") from None
    task = meta.get("task") if isinstance(meta, dict) else None
    if not isinstance(task, dict) or task.get("kind") != kind:
        raise CheckpointError(f"'{Path(model_dir)}' is not a {kind} checkpoint (model.json task.kind is not {kind!r})")
    return meta


def verified_weights(model_dir: str | Path, meta: dict[str, Any]) -> Path:
    """Return the weights file of ``meta`` once it is fenced inside ``model_dir`` and matches its SHA-256."""
    entry = meta.get("weights")
    if not isinstance(entry, dict):
        raise CheckpointError(f"'{Path(model_dir) / MODEL_JSON}' has no 'weights' record; restore it or retrain")
    return verified_file(Path(model_dir), entry, what="weights file")


def build_from_record(model_dir: str | Path, build: Callable[[], _T]) -> _T:
    """Return ``build()``; a field of model.json it finds missing or mistyped becomes one CheckpointError."""
    try:
        return build()
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise CheckpointError(
            f"'{Path(model_dir) / MODEL_JSON}' is malformed ({type(exc).__name__}: {str(exc)[:80]}); "
            "restore it or retrain"
        ) from None
