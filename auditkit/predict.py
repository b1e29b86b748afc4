"""``predict``: score every image of a manifest with a checkpoint; return the predictions table and write it.

The table is the waist between models and statistics (docs/architecture.md):
``id``, ``y_true`` (class index), ``score`` (binary: the softmax probability of
the positive class) or ``score_<class>`` (multi-class), then the passthrough
columns ``patient_id``, ``site``, ``split``, ``image``, ``mask``, ``roi``,
``bbox_*`` and the attributes.

Splits come from the checkpoint's record (``splits.csv``), never from chance:
a patient the model trained or validated on keeps that split, so it can never
be scored as test. A manifest ``split`` that contradicts the record is an
input error. Patients the checkpoint never saw are ``test``, or ``external``
when their site was external at training time, is named with
``external_sites`` here, or their manifest row says ``external``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from auditkit import distributed
from auditkit.errors import InvalidInputError, ManifestError
from auditkit.fileio import atomic_write_bytes, guards_inputs, sha256_file
from auditkit.nets.checkpoint import LoadedModel, load_checkpoint
from auditkit.nets.device import autocast, memory_format, select_device
from auditkit.nets.embed import capture_head_input, embedding_layer_name
from auditkit.predictions_table import (
    PARQUET_SUFFIXES,
    PredictionsTable,
    build_frame,
    from_frame,
    table_metadata,
    write_predictions,
)
from auditkit.progress import track
from auditkit.train.calibrate import calibrate_logits
from auditkit.train.loop import split_outputs

if TYPE_CHECKING:
    from auditkit.data.manifest import Manifest


def resolve_splits(
    frame: pd.DataFrame,
    recorded: pd.DataFrame | None,
    *,
    external_sites: Sequence[str] = (),
    where: str = "manifest",
) -> pd.Series:
    """Return the split of every row (index = ``frame.index``) from the checkpoint's record.

    ``recorded`` is the checkpoint's ``patient_id,split`` table (None: the
    model never saw any of these patients). ``external_sites``: sites that are
    external (the training run's and any named now). Raises ManifestError on
    a manifest ``split`` that contradicts the record, an unseen patient
    labelled ``train``/``val``, or a training patient at a site declared external.
    """
    known = {} if recorded is None else dict(zip(recorded["patient_id"], recorded["split"], strict=True))
    external = set(external_sites)
    given_col = frame["split"] if "split" in frame.columns else pd.Series(None, index=frame.index)
    out = pd.Series("test", index=frame.index, dtype=object)
    for position, (index, patient, site, given) in enumerate(
        zip(frame.index, frame["patient_id"].astype(str), frame["site"].astype(str), given_col, strict=True)
    ):
        given = None if given is None or (isinstance(given, float) and np.isnan(given)) else str(given)
        row = f"{where} row {position + 1}"
        record = known.get(patient)
        if record is not None:
            if given is not None and given != record:
                raise ManifestError(
                    f"{row}, column 'split': the manifest says {given!r} but the model was trained with "
                    f"patient {patient!r} in {record!r}; drop the manifest's split column or fix the row"
                )
            if site in external and record in ("train", "val"):
                raise ManifestError(
                    f"{row}, column 'site': site {site!r} is declared external but patient {patient!r} "
                    f"was in the model's {record!r} split; an external site must not have been used in training"
                )
            out.at[index] = record
            continue
        if given in ("train", "val"):
            raise ManifestError(
                f"{row}, column 'split': the manifest says {given!r} but the model never saw patient "
                f"{patient!r}; only the model's own record can put a patient in train or val"
            )
        out.at[index] = "external" if given == "external" or site in external else "test"
    return out


def write_embeddings(ids: Sequence[str], embeddings: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """Write penultimate embeddings ``(N, D)`` keyed by id: Parquet ``id, emb_0..`` or a structured ``.npy``.

    The ``.npy`` holds a structured array with fields ``id`` (text) and
    ``embedding`` (float32, ``(D,)``); it loads with ``allow_pickle=False``.
    """
    target = Path(path)
    suffix = target.suffix.lower()
    values = np.asarray(embeddings, dtype=np.float32)
    if suffix in PARQUET_SUFFIXES:
        frame = pd.DataFrame(values, columns=[f"emb_{j}" for j in range(values.shape[1])])
        frame.insert(0, "id", [str(i) for i in ids])
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        return atomic_write_bytes(target, buffer.getvalue())
    if suffix == ".npy":
        width = max((len(str(i)) for i in ids), default=1)
        record = np.zeros(len(ids), dtype=[("id", f"<U{width}"), ("embedding", "<f4", (values.shape[1],))])
        record["id"] = [str(i) for i in ids]
        record["embedding"] = values
        buffer = io.BytesIO()
        np.save(buffer, record, allow_pickle=False)
        return atomic_write_bytes(target, buffer.getvalue())
    raise InvalidInputError(f"--embeddings {str(target)!r} must end in .parquet or .npy")


def _infer(
    loaded: LoadedModel, frame: pd.DataFrame, *, device: torch.device, batch_size: int,
    num_workers: int | None, embeddings: bool,
) -> tuple[np.ndarray, np.ndarray | None]:  # fmt: skip
    """Return softmax probabilities ``(N, K)`` float64 and, if asked, embeddings ``(N, D)`` float32.

    The logits pass through the checkpoint's calibration (prior correction and temperature) first.
    """
    from auditkit.data.dataset import ImageDataset, make_loader

    model = loaded.model
    dataset = ImageDataset(frame.reset_index(drop=True), loaded.preprocess, augment=False, cache=False)
    loader = make_loader(dataset, batch_size=batch_size, shuffle=False, device=device, num_workers=num_workers)
    fmt = memory_format(device)
    non_blocking = device.type == "cuda"
    probs: list[torch.Tensor] = []
    was_training = model.training
    model.eval()
    head = embedding_layer_name(model, loaded.embedding_layer) if embeddings else None
    try:
        with torch.inference_mode():
            capture = capture_head_input(model, head) if head else contextlib.nullcontext([])
            with capture as captured:
                for x, _, _ in track(loader, description="predicting"):
                    x = x.to(device, non_blocking=non_blocking, memory_format=fmt)
                    with autocast(device):
                        logits, _ = split_outputs(model(x))
                    probs.append(torch.softmax(calibrate_logits(logits.float(), loaded.meta), dim=1).double().cpu())
                features = torch.cat([c.float().cpu() for c in captured]).numpy() if head else None
    finally:
        model.train(was_training)
    prob = torch.cat(probs).numpy() if probs else np.zeros((0, loaded.classes.n_classes))
    return prob, features


def score_frame(
    loaded: LoadedModel,
    frame: pd.DataFrame,
    *,
    batch_size: int | None = None,
    num_workers: int | None = None,
    ctx: distributed.Context | None = None,
) -> np.ndarray:
    """Return the released (calibrated) class probabilities (N, K) float64 of the manifest rows ``frame``.

    ``predict``'s batched inference (the same ``_infer``) without its output
    files: ``auditkit explain`` scores with it, so its probabilities and
    predicted classes are predict's. Under torchrun (``ctx`` active; default:
    the joined process group) each rank scores its shard and every rank
    receives all rows, in ``frame`` order.
    """
    ctx = ctx or distributed.group_context()
    size = batch_size or (256 if loaded.device.type == "cuda" else 128)

    def score(rows: pd.DataFrame) -> tuple[np.ndarray, None]:
        return _infer(loaded, rows, device=loaded.device, batch_size=size, num_workers=num_workers,
                      embeddings=False)[0], None  # fmt: skip

    if ctx.active:
        from auditkit.predict_shards import infer_sharded

        return infer_sharded(score, frame, ctx=ctx, out=None, key_fields={}, batch_size=size, embeddings=False,
                             fault_point=False)[0]  # fmt: skip
    return score(frame)[0]


def _check_arguments(
    out: str | os.PathLike[str] | None, embeddings_out: str | os.PathLike[str] | None, batch_size: int | None
) -> None:
    """Refuse a bad output suffix or batch size before any model load or manifest read."""
    if out is not None and Path(out).suffix.lower() not in (*PARQUET_SUFFIXES, ".csv"):
        raise InvalidInputError(f"--out {os.fspath(out)!r} must end in .parquet or .csv")
    if embeddings_out is not None and Path(embeddings_out).suffix.lower() not in (*PARQUET_SUFFIXES, ".npy"):
        raise InvalidInputError(f"--embeddings {os.fspath(embeddings_out)!r} must end in .parquet or .npy")
    if batch_size is not None and int(batch_size) < 1:
        raise InvalidInputError(f"--batch-size must be 1 or more, got {batch_size}")


def _manifest_of(
    manifest: str | os.PathLike[str] | Manifest, loaded: LoadedModel, *, data_root: Any, allow_outside_root: bool
) -> Manifest:
    """Return the manifest to score, read with the model's classes (a given Manifest must have them)."""
    from auditkit.data.manifest import Manifest, read_manifest

    if isinstance(manifest, Manifest):
        if manifest.classes.classes != loaded.classes.classes:
            raise ManifestError(
                f"{str(manifest.path)!r}: its classes {list(manifest.classes.classes)} differ from the model's "
                f"{list(loaded.classes.classes)}; read it with the model's classes"
            )
        return manifest
    return read_manifest(
        manifest, data_root=data_root, allow_outside_root=allow_outside_root, class_spec=loaded.classes
    )


def _table_digest(table: pd.DataFrame) -> str:
    """Return a SHA-256 of a table's contents (the fingerprint of a table that was not written to a file)."""
    import hashlib

    values = pd.util.hash_pandas_object(table, index=False).to_numpy()
    return hashlib.sha256(",".join(map(str, table.columns)).encode() + values.tobytes()).hexdigest()


@guards_inputs(model_dir="the model folder", manifest="the manifest")
def predict(
    model_dir: str | os.PathLike[str] | LoadedModel,
    manifest: str | os.PathLike[str] | Manifest,
    *,
    out: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
    batch_size: int | None = None,
    embeddings_out: str | os.PathLike[str] | None = None,
    external_sites: Sequence[str] = (),
    num_workers: int | None = None,
    data_root: str | os.PathLike[str] | None = None,
    allow_outside_root: bool = False,
    trust_code: bool = False,
    positive_class: str | None = None,
) -> PredictionsTable:
    """Return the validated predictions table of a checkpoint on every row of ``manifest`` (written to ``out`` too).

    Batched inference on the best device (or ``device``) under
    ``torch.inference_mode`` with autocast on GPU. The table is validated once,
    in memory (:func:`auditkit.predictions_table.from_frame`); ``out`` (Parquet
    or CSV) is an output artefact: its ``path`` and ``sha256`` are the table's
    (without ``out``: the manifest's path and a digest of the table's
    contents). ``embeddings_out`` also writes the penultimate-layer embeddings
    keyed by id (:func:`write_embeddings`). Parquet output carries
    ``{classes, positive_class, model_name, model_sha256, data_root}`` under
    the schema metadata key ``auditkit``. ``trust_code`` allows a
    ``module:factory`` checkpoint, whose loading imports Python code.
    ``positive_class`` overrides the checkpoint's for the returned table.
    Under ``torchrun`` each rank scores its shard (:mod:`auditkit.predict_shards`),
    every rank returns the whole table, rank 0 alone writes it (metadata
    ``world_size``).
    """
    _check_arguments(out, embeddings_out, batch_size)
    target = select_device(distributed.rank_device(device))
    ctx = distributed.init(target)
    if isinstance(model_dir, LoadedModel):
        loaded, target = model_dir, model_dir.device
    else:
        loaded = load_checkpoint(model_dir, device=target, trust_code=trust_code)
    data = _manifest_of(manifest, loaded, data_root=data_root, allow_outside_root=allow_outside_root)
    sites = set(data.frame["site"].astype(str))
    unknown = [s for s in external_sites if s not in sites]
    if unknown:
        raise InvalidInputError(
            f"--external-site {unknown[0]!r} is not a site of {str(data.path)!r}; its sites are {sorted(sites)}"
        )
    external = [*loaded.meta.get("training", {}).get("external_sites", []), *external_sites]
    split = resolve_splits(data.frame, loaded.splits, external_sites=external, where=str(data.path))
    size = batch_size or (256 if target.type == "cuda" else 128)
    if ctx.active:  # torchrun: this rank scores its shard only (auditkit.predict_shards)
        from auditkit.predict_shards import infer_sharded

        prob, features = infer_sharded(
            lambda rows: _infer(
                loaded, rows, device=target, batch_size=size, num_workers=num_workers,
                embeddings=embeddings_out is not None,
            ),
            data.frame, ctx=ctx, out=out, batch_size=size, embeddings=embeddings_out is not None,
            key_fields={"model": loaded.sha256, "meta": json.dumps(loaded.meta, sort_keys=True, default=str),
                        "manifest": data.sha256, "batch_size": size},
        )  # fmt: skip
    else:
        prob, features = _infer(
            loaded, data.frame, device=target, batch_size=size, num_workers=num_workers,
            embeddings=embeddings_out is not None,
        )  # fmt: skip
    frame = build_frame(data.frame, prob, split, loaded.classes.classes)
    metadata = table_metadata(loaded, data.root)
    if ctx.is_main:  # rank 0 writes the merged outputs
        _write_outputs(frame, features, out=out, embeddings_out=embeddings_out, metadata=metadata, ctx=ctx)
    written = out is not None and ctx.is_main
    return from_frame(
        frame, metadata, path=Path(out) if out is not None else Path(data.path),
        sha256=sha256_file(out) if written else _table_digest(frame), positive_class=positive_class,
        external_sites=external_sites,
    )  # fmt: skip


def _write_outputs(
    frame: pd.DataFrame, features: np.ndarray | None, *, out: Any, embeddings_out: Any,
    metadata: dict[str, Any], ctx: distributed.Context,
) -> None:  # fmt: skip
    """Write the table (metadata ``world_size`` under torchrun) and the embeddings; drop the shard files."""
    if out is not None:
        if ctx.active:
            metadata = {**metadata, "world_size": ctx.world_size}
        write_predictions(frame, out, metadata=metadata)
    if embeddings_out is not None and features is not None:
        write_embeddings(frame["id"].tolist(), features, embeddings_out)
    if ctx.active and out is not None:
        from auditkit.predict_shards import remove_shards

        remove_shards(out)
