"""Read the embeddings a model run wrote (or a user exported), aligned with the predictions table's ids."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from auditkit.errors import PredictionsError
from auditkit.predictions_table import CSV_SUFFIXES, PARQUET_SUFFIXES


def read_embeddings(path: str | os.PathLike[str], ids: Sequence[str]) -> np.ndarray:
    """Return the embeddings (len(ids), D) float64 of these ids from a file keyed by id.

    Accepted: Parquet or CSV with an ``id`` column and numeric feature columns
    (``auditkit predict --embeddings`` writes ``id, emb_0..``), or a structured
    ``.npy`` with fields ``id`` and ``embedding`` (loaded without pickle).
    Every id must be present.
    """
    path = Path(path)
    if not path.is_file():
        raise PredictionsError(f"{path}: no such embeddings file; check --embeddings")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        from auditkit.data.readers import npy_header
        from auditkit.errors import ImageReadError

        try:
            npy_header(path)  # the declared size must fit the file before anything is allocated
        except ImageReadError as exc:
            raise PredictionsError(str(exc).replace("image file", "embeddings file")) from None
        try:
            record = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:  # EOFError: an empty file
            reason = (str(exc).splitlines() or [type(exc).__name__])[0][:120]
            raise PredictionsError(
                f"{path}: not a plain .npy array ({reason}); pickled files are refused"
            ) from None
        if record.dtype.names is None or not {"id", "embedding"} <= set(record.dtype.names):
            raise PredictionsError(
                f"{path}: a .npy embeddings file needs fields 'id' and 'embedding'"
            )
        keys = [str(i) for i in record["id"]]
        try:
            values = np.asarray(record["embedding"], dtype=np.float64).reshape(len(keys), -1)
        except (ValueError, TypeError) as exc:
            raise PredictionsError(f"{path}: the 'embedding' field is not numeric ({exc}); re-export it") from None
    elif suffix in PARQUET_SUFFIXES or suffix in CSV_SUFFIXES:
        try:
            frame = (
                pd.read_parquet(path)
                if suffix in PARQUET_SUFFIXES
                else pd.read_csv(path, dtype={"id": str})
            )
        except Exception as exc:  # pyarrow and pandas raise many types for a corrupt or empty file
            reason = (str(exc).splitlines() or [type(exc).__name__])[0][:120]
            raise PredictionsError(f"{path}: not a readable embeddings table ({reason}); re-export it") from None
        if "id" not in frame.columns:
            raise PredictionsError(f"{path}: the embeddings table needs an 'id' column")
        features = [c for c in frame.columns if c != "id"]
        numeric = frame[features].apply(pd.to_numeric, errors="coerce")
        if numeric.isna().any().any() or not features:
            bad = next((c for c in features if numeric[c].isna().any()), None)
            raise PredictionsError(
                f"{path}: embedding column {bad!r} has non-numeric or empty values; every feature must be a number"
            )
        keys = frame["id"].astype(str).tolist()
        values = numeric.to_numpy(dtype=np.float64)
    else:
        raise PredictionsError(f"{path}: embeddings must be .parquet, .csv or .npy, got {suffix!r}")
    if not np.isfinite(values).all():
        raise PredictionsError(f"{path}: embeddings contain NaN or infinite values")
    position = {k: i for i, k in enumerate(keys)}
    missing = [i for i in ids if i not in position]
    if missing:
        raise PredictionsError(
            f"{path}: id {missing[0]!r} of the predictions table has no embedding ({len(missing)} missing); "
            "export embeddings for every image"
        )
    return values[[position[i] for i in ids]]
