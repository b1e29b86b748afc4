"""A resumable on-disk cache of attribution maps, one compressed ``.npz`` per image and method.

The key is the SHA-256 of a canonical JSON of everything that determines a
map: the model's weights hash, the hash of the exact input tensor (the image
after preprocessing, so a changed image or preprocessing misses), the method,
its parameters, the post-processing steps and the target specification
(``predicted``, or the class index asked for). Files are written atomically
(temporary file, then rename), so a run killed at any moment leaves whole
entries only, and a rerun computes just the missing ones. A file that cannot
be read (a disk error) is a miss and is rewritten.

Fault injection for the resume test: when ``AUDITKIT_FAULT_KILL_AFTER_MAPS``
is set to k, the process kills itself with SIGKILL right after writing its
k-th entry (nothing else reads this variable).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from auditkit.fileio import atomic_open, to_jsonable

CACHE_VERSION = 1
FAULT_ENV = "AUDITKIT_FAULT_KILL_AFTER_MAPS"


@dataclass(frozen=True)
class CachedMap:
    """One image's attribution map with what it explains."""

    map: np.ndarray
    """The map after the recorded post-processing, (H, W) float32."""
    target: int
    """The class explained."""
    scores: np.ndarray
    """The model's class scores (logits) for the image, (K,) float32."""
    extras: dict[str, Any] = field(default_factory=dict)
    """Scalar diagnostics (IG: delta, relative_delta, completeness_passed)."""
    postprocessing: tuple[str, ...] = ()
    """Names of the post-processing steps applied to ``map``."""


def input_digest(tensor: torch.Tensor) -> str:
    """Return the hex SHA-256 of a tensor's shape and float32 bytes (the preprocessed image)."""
    array = tensor.detach().float().cpu().contiguous().numpy()
    digest = hashlib.sha256(repr(tuple(array.shape)).encode("ascii"))
    digest.update(array.tobytes())
    return digest.hexdigest()


def cache_key(
    *,
    model_sha256: str,
    input_sha256: str,
    method: str,
    params: Mapping[str, Any],
    postprocessing: Sequence[str],
    target: str,
) -> str:
    """Return the hex SHA-256 of the canonical JSON of everything that determines one map."""
    record = {
        "version": CACHE_VERSION,
        "model": model_sha256,
        "input": input_sha256,
        "method": method,
        "params": to_jsonable(dict(params)),
        "postprocessing": list(postprocessing),
        "target": target,
    }
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


class MapCache:
    """Maps on disk under ``root``: ``root/<key[:2]>/<key>.npz``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._writes = 0

    def path(self, key: str) -> Path:
        """Return the file that holds (or will hold) entry ``key``."""
        return self.root / key[:2] / f"{key}.npz"

    def __contains__(self, key: str) -> bool:
        return self.path(key).is_file()

    def get(self, key: str) -> CachedMap | None:
        """Return the entry stored under ``key``, or None if it is absent or unreadable."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                extras = json.loads(str(data["extras"]))
                return CachedMap(
                    map=data["map"].astype(np.float32),
                    target=int(data["target"]),
                    scores=data["scores"].astype(np.float32),
                    extras=extras,
                    postprocessing=tuple(json.loads(str(data["postprocessing"]))),
                )
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError):
            return None

    def put(self, key: str, entry: CachedMap) -> Path:
        """Write ``entry`` under ``key`` atomically and return its path."""
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            map=np.asarray(entry.map, dtype=np.float32),
            target=np.int64(entry.target),
            scores=np.asarray(entry.scores, dtype=np.float32),
            extras=np.array(json.dumps(to_jsonable(entry.extras), sort_keys=True)),
            postprocessing=np.array(json.dumps(list(entry.postprocessing))),
        )
        path = self.path(key)
        with atomic_open(path, "wb") as handle:
            handle.write(buffer.getvalue())
        self._writes += 1
        self._maybe_fault()
        return path

    def _maybe_fault(self) -> None:
        limit = os.environ.get(FAULT_ENV)
        if limit and limit.isdigit() and self._writes >= int(limit):
            os.kill(os.getpid(), signal.SIGKILL)
