"""Prediction split over torchrun ranks: each rank scores its shard, writes it, and the shards are merged.

Each rank scores the contiguous rows :func:`auditkit.distributed.shard_bounds`
gives it (whole batches, so every batch holds the same images as in one
process) and writes them atomically to ``.<out>.shards/rows-START-STOP.npz``
beside the output, keyed by everything that determines the scores (model,
calibration, manifest, rows). A rerun after a rank was killed reuses every
finished shard whose key matches and scores only the missing ones. The
shards are then gathered to every rank in rank order (manifest order), so
the merged table does not depend on the number of ranks.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from auditkit import distributed
from auditkit.fileio import atomic_write_bytes
from auditkit.progress import status

Scorer = Callable[[pd.DataFrame], tuple[np.ndarray, "np.ndarray | None"]]


def shard_folder(out: str | os.PathLike[str]) -> Path:
    """Return the folder of ``out``'s shard files (hidden, beside it)."""
    target = Path(out)
    return target.parent / f".{target.name}.shards"


def shard_key(**fields: object) -> str:
    """Return the hex SHA-256 of the canonical JSON of ``fields`` (what determines a shard's contents)."""
    text = json.dumps(fields, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _path(folder: Path, start: int, stop: int) -> Path:
    return folder / f"rows-{start:09d}-{stop:09d}.npz"


def write_shard(path: Path, key: str, ids: list[str], prob: np.ndarray, features: np.ndarray | None) -> Path:
    """Write one shard (ids, probabilities, optional embeddings) atomically, tagged with ``key``."""
    buffer = io.BytesIO()
    arrays = {"key": np.array(key), "ids": np.array(ids, dtype=str), "prob": np.asarray(prob, np.float64)}
    if features is not None:
        arrays["features"] = np.asarray(features, np.float32)
    np.savez(buffer, **arrays)
    return atomic_write_bytes(path, buffer.getvalue())


def read_shard(path: Path, key: str) -> tuple[np.ndarray, np.ndarray | None] | None:
    """Return (probabilities, embeddings or None) of a finished shard with this ``key``, else None."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["key"]) != key:
                return None
            features = data["features"] if "features" in data.files else None
            return data["prob"], features
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None


def infer_sharded(
    score: Scorer,
    frame: pd.DataFrame,
    *,
    ctx: distributed.Context,
    out: str | os.PathLike[str] | None,
    key_fields: dict[str, object],
    batch_size: int,
    embeddings: bool,
    fault_point: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Return every row's probabilities (N, K) (and embeddings) with this rank scoring only its shard.

    ``score`` scores a slice of ``frame``. With ``out`` the shard is written
    next to it (and reused by a rerun); every rank receives all shards.
    ``fault_point``: the resume tests' kill (:func:`auditkit.distributed.maybe_fault`)
    may strike here (``predict``; not the scoring inside ``explain``, whose kill
    point is its map shards).
    """
    n = len(frame)
    start, stop = distributed.shard_bounds(n, ctx, align=batch_size)
    folder = shard_folder(out) if out is not None else None
    key = shard_key(**key_fields, start=start, stop=stop, n=n, embeddings=embeddings)
    found = read_shard(_path(folder, start, stop), key) if folder is not None else None
    if stop == start:
        status(f"{ctx.label()}: no rows to score ({n} images, {ctx.world_size} ranks)")
        prob, features = None, None
    elif found is not None:
        status(f"{ctx.label()}: shard rows {start + 1}-{stop} ({stop - start} of {n} images) already scored; reused")
        prob, features = found
    else:
        status(f"{ctx.label()}: scoring shard rows {start + 1}-{stop} ({stop - start} of {n} images)")
        prob, features = score(frame.iloc[start:stop])
        bounds = [distributed.shard_bounds(n, distributed.Context(ctx.world_size, r), align=batch_size)
                  for r in range(ctx.world_size) if r != ctx.rank]  # fmt: skip
        others = [_path(folder, a, b) for a, b in bounds if b > a] if folder is not None else []
        if fault_point:
            distributed.maybe_fault(ctx, wait_for=others)
        if folder is not None:
            ids = frame["id"].astype(str).iloc[start:stop].tolist()
            write_shard(_path(folder, start, stop), key, ids, prob, features if embeddings else None)
    parts = distributed.all_gather((start, stop, prob, features if embeddings else None))
    parts.sort(key=lambda p: p[0])
    pieces = [p[2] for p in parts if p[1] > p[0]]
    merged = np.concatenate(pieces) if pieces else np.zeros((0, 0))
    feats = None
    if embeddings:
        chunks = [p[3] for p in parts if p[3] is not None and p[1] > p[0]]
        feats = np.concatenate(chunks) if chunks else None
    return merged, feats


def remove_shards(out: str | os.PathLike[str]) -> None:
    """Remove ``out``'s shard folder (rank 0, once the merged table is written)."""
    shutil.rmtree(shard_folder(out), ignore_errors=True)
