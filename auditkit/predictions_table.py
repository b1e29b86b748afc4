"""The predictions table's one home: its columns, splits and formats, the validating constructor, read and write.

The waist between any model and the statistics. ``auditkit predict`` builds
it (:func:`build_frame`) and writes it (:func:`write_predictions`); the audit
validates a model run's table in memory (:func:`from_frame`) or a user's
file (:func:`read_predictions`) with the same checks, once.

One row per image: ``id`` (unique), ``y_true`` (class index or name), and
either ``score`` (binary: probability of the positive class) or one
``score_<class>`` column per class (probabilities summing to 1). Passthrough
columns: ``patient_id``, ``site``, ``split`` (train|val|test|external),
``image``, ``mask``, ``roi``, ``bbox_*``; every other column is a candidate
subgroup attribute. Parquet files written by ``auditkit predict`` carry
``{"auditkit": {classes, positive_class, model_name, model_sha256, data_root}}`` in
their schema metadata. Every problem names the file, row (1-based, as in a
spreadsheet without its header) and column.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from auditkit.data.manifest_file import CSV_SUFFIXES, PARQUET_SUFFIXES
from auditkit.data.splits import SPLITS
from auditkit.errors import PredictionsError
from auditkit.fileio import sha256_file
from auditkit.labels import ClassSpec, encode_labels, infer_class_spec

ID = "id"
Y_TRUE = "y_true"
LABEL = "label"
SCORE = "score"
SCORE_PREFIX = "score_"
#: key of the schema metadata ``auditkit predict`` writes into a Parquet table.
METADATA_KEY = "auditkit"
#: a site may not be named like a split (its cohort would collide with the split's).
RESERVED_SITE_NAMES = SPLITS
PASSTHROUGH = (
    "patient_id",
    "site",
    "split",
    "image",
    "frame",
    "mask",
    "roi",
    "bbox_x0",
    "bbox_y0",
    "bbox_x1",
    "bbox_y1",
)
_NOT_ATTRIBUTES = {"id", "y_true", "label", "score", "y_pred", "prediction", *PASSTHROUGH}
#: a row of multi-class probabilities may differ from 1 by this much (float32 softmax outputs).
SUM_TOLERANCE = 1e-3


@dataclass(frozen=True, eq=False)
class PredictionsTable:
    """A validated predictions table.

    ``frame`` columns: ``id`` (str), ``y_true`` (int class index), ``label``
    (y_true as given), the score column(s) as given, ``patient_id`` (str, or
    absent), ``site`` (str, or absent), ``split`` (normalised, or absent),
    and the attribute columns.
    """

    frame: pd.DataFrame
    classes: ClassSpec
    path: Path
    sha256: str
    model: dict[str, Any] | None
    probs: np.ndarray = field(repr=False)
    """(n, K) float64 class probabilities (binary: column 1 is the positive class)."""
    score_columns: tuple[str, ...] = ()

    @property
    def attribute_columns(self) -> tuple[str, ...]:
        """Return the columns that may serve as subgroup attributes."""
        return tuple(
            c
            for c in self.frame.columns
            if c not in _NOT_ATTRIBUTES and not str(c).startswith(("score_", "bbox_"))
        )

    @property
    def has_patients(self) -> bool:
        """Return whether a ``patient_id`` column is present."""
        return "patient_id" in self.frame.columns

    def __len__(self) -> int:
        return len(self.frame)


def _plain(value: Any) -> Any:
    """Return a NumPy scalar as the Python value, for messages."""
    return value.item() if isinstance(value, np.generic) else value


def _read_frame(path: Path) -> tuple[pd.DataFrame, dict[str, Any] | None]:
    suffix = path.suffix.lower()
    if not path.is_file():
        raise PredictionsError(
            f"{path}: no such predictions file; run 'auditkit predict' or export your model's scores"
        )
    text_columns = {"id": str, "patient_id": str, "site": str, "split": str}
    if suffix in PARQUET_SUFFIXES:
        import pyarrow.parquet as pq

        try:
            schema = pq.read_schema(path)
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for a corrupt file
            raise PredictionsError(
                f"{path}: not a readable Parquet file ({exc}); re-export the predictions"
            ) from None
        raw = (schema.metadata or {}).get(METADATA_KEY.encode("utf-8"))
        meta = None
        if raw:
            try:
                meta = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError):
                raise PredictionsError(
                    f"{path}: the 'auditkit' schema metadata is not valid JSON; re-run 'auditkit predict'"
                ) from None
            _check_meta(path, meta)
        for column in ("id", "patient_id", "site", "split"):
            if column in frame.columns:
                frame[column] = frame[column].map(
                    lambda v: v if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
                )
        return frame, meta
    if suffix in CSV_SUFFIXES:
        try:
            frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=text_columns)
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
            raise PredictionsError(
                f"{path}: not a readable CSV file ({exc}); check its format"
            ) from None
        from auditkit.textsafe import csv_unquote

        for column in frame.columns:  # undo auditkit's own formula guard on text cells
            if pd.api.types.is_object_dtype(frame[column]) or pd.api.types.is_string_dtype(frame[column]):
                frame[column] = frame[column].map(csv_unquote)
        return frame, None
    raise PredictionsError(
        f"{path}: unsupported predictions file type {suffix!r}; give a .csv or .parquet file"
    )


def _check_meta(path: Path, meta: Any) -> None:
    """Raise PredictionsError unless the 'auditkit' metadata has the types ``auditkit predict`` writes."""
    from auditkit.errors import AuditkitError

    fix = "re-run 'auditkit predict' or drop the metadata"
    if not isinstance(meta, dict):
        raise PredictionsError(f"{path}: the 'auditkit' schema metadata is not a JSON object; {fix}")
    for key in ("model_name", "model_sha256", "data_root"):
        if meta.get(key) is not None and not isinstance(meta[key], str):
            raise PredictionsError(f"{path}: the 'auditkit' schema metadata field {key!r} is not a string; {fix}")
    if meta.get("classes"):
        try:
            ClassSpec.from_dict(meta)
        except (KeyError, TypeError, ValueError, AuditkitError):
            raise PredictionsError(f"{path}: the 'auditkit' schema metadata field 'classes' is malformed; {fix}") from None


def _class_spec(
    path: Path,
    frame: pd.DataFrame,
    meta: dict[str, Any] | None,
    score_cols: list[str],
    positive_class: str | None,
) -> ClassSpec:
    where = f"{path} column 'y_true'"
    if meta and meta.get("classes"):
        spec = ClassSpec.from_dict(meta)
        if positive_class is not None and spec.positive_class not in (None, str(positive_class)):
            raise PredictionsError(
                f"{path}: --positive-class {positive_class!r} contradicts the model's positive class "
                f"{spec.positive_class!r} recorded in the file; drop the flag"
            )
        return spec
    if score_cols == ["score"]:
        spec = infer_class_spec(frame["y_true"], positive_class=positive_class, where=where)
        numeric = pd.to_numeric(frame["y_true"], errors="coerce")
        if spec.n_classes != 2 and numeric.notna().all():
            row = int(np.flatnonzero(~numeric.isin((0, 1)).to_numpy())[0])
            raise PredictionsError(
                f"{where}: row {row + 1} has label {_plain(frame['y_true'].iloc[row])!r}; with a single 'score' "
                "column the labels must be 0/1 (give score_<class> columns for a multi-class task)"
            )
        if spec.n_classes != 2:
            raise PredictionsError(
                f"{path}: a single 'score' column is for binary tasks, but y_true has {spec.n_classes} "
                "classes; give one score_<class> column per class"
            )
        return spec
    names = [c[len("score_") :] for c in score_cols]
    if len(names) == 2:
        return infer_class_spec(names, positive_class=positive_class, where=f"{path} score columns")
    if positive_class is not None:
        raise PredictionsError(
            f"{path}: --positive-class applies to binary tasks, but there are {len(names)} score columns"
        )
    try:
        as_int = sorted(int(n) for n in names)
        if as_int == list(range(len(names))):
            return ClassSpec(tuple(str(i) for i in range(len(names))))
    except ValueError:
        pass
    return ClassSpec(tuple(sorted(names)))


def _check_scores(path: Path, frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    values = np.empty((len(frame), len(columns)))
    for j, column in enumerate(columns):
        numeric = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(numeric)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise PredictionsError(
                f"{path}: row {row + 1}, column {column!r} is {_plain(frame[column].iloc[row])!r}; every score must be a "
                "finite probability in [0, 1] (fix or remove that row)"
            )
        out = (numeric < 0.0) | (numeric > 1.0)
        if out.any():
            row = int(np.flatnonzero(out)[0])
            raise PredictionsError(
                f"{path}: row {row + 1}, column {column!r} is {float(numeric[row])!r}, outside [0, 1]; scores must be "
                "probabilities (apply a sigmoid or softmax to logits)"
            )
        values[:, j] = numeric
    return values


def read_predictions(
    path: str | os.PathLike[str],
    *,
    positive_class: str | None = None,
    external_sites: Sequence[str] = (),
) -> PredictionsTable:
    """Return the validated predictions table at ``path`` (CSV or Parquet).

    ``external_sites``: sites declared external; each must appear in the
    ``site`` column, and none may have rows in the ``train`` or ``val``
    split. Their ``test`` rows become ``external``.
    """
    path = Path(path)
    frame, meta = _read_frame(path)
    return from_frame(
        frame, meta, path=path, sha256=sha256_file(path), positive_class=positive_class,
        external_sites=external_sites,
    )  # fmt: skip


def from_frame(
    frame: pd.DataFrame,
    meta: dict[str, Any] | None,
    *,
    path: Path,
    sha256: str,
    positive_class: str | None = None,
    external_sites: Sequence[str] = (),
) -> PredictionsTable:
    """Return the validated table of ``frame`` (as read, or as ``auditkit predict`` built it).

    ``meta`` is the ``auditkit`` metadata (classes, model name and SHA-256,
    data root) or None; ``path`` and ``sha256`` name the file the table is
    (or was written to), for messages and the results' fingerprints.
    """
    frame = frame.reset_index(drop=True)
    score_cols = _score_columns_of(path, frame)
    frame["id"] = _checked_ids(path, frame["id"])
    spec = _class_spec(path, frame, meta, score_cols, positive_class)
    frame["label"] = frame["y_true"]
    frame["y_true"] = encode_labels(frame["y_true"], spec, where=f"{path} column 'y_true'")
    probs = _probabilities(path, frame, score_cols, spec)
    _normalise_passthrough(path, frame)
    _apply_external_sites(path, frame, external_sites)
    model = None
    if meta:
        model = {"name": meta.get("model_name"), "sha256": meta.get("model_sha256")}
        if meta.get("data_root"):
            model["data_root"] = meta["data_root"]
    return PredictionsTable(
        frame=frame, classes=spec, path=path, sha256=sha256, model=model, probs=probs,
        score_columns=tuple(score_cols),
    )  # fmt: skip


def _score_columns_of(path: Path, frame: pd.DataFrame) -> list[str]:
    """Return the score columns after checking the required columns and rows are there."""
    for column in ("id", "y_true"):
        if column not in frame.columns:
            raise PredictionsError(
                f"{path}: required column {column!r} is missing (columns: {list(frame.columns)[:12]}); "
                "the table needs id, y_true and score or score_<class>"
            )
    if len(frame) == 0:
        raise PredictionsError(f"{path}: the table has no rows")
    score_cols = [c for c in frame.columns if str(c).startswith("score_")]
    if "score" in frame.columns and score_cols:
        raise PredictionsError(
            f"{path}: give either one 'score' column (binary) or score_<class> columns, not both"
        )
    if "score" in frame.columns:
        score_cols = ["score"]
    if not score_cols:
        raise PredictionsError(
            f"{path}: no score column; add 'score' (probability of the positive class) or one score_<class> per class"
        )
    return score_cols


def _checked_ids(path: Path, ids: pd.Series) -> pd.Series:
    """Return the ids as text after checking that none is empty and none repeats."""
    if ids.isna().any():
        row = int(np.flatnonzero(ids.isna().to_numpy())[0])
        raise PredictionsError(
            f"{path}: row {row + 1}, column 'id' is empty; give every row a unique id"
        )
    ids = ids.astype(str)
    dup = ids.duplicated(keep=False)
    if dup.any():
        rows = np.flatnonzero(dup.to_numpy())[:2]
        raise PredictionsError(
            f"{path}: column 'id' has duplicate value {ids.iloc[rows[0]]!r} (rows {rows[0] + 1} and {rows[1] + 1}); "
            "ids must be unique, one row per image"
        )
    return ids


def _probabilities(path: Path, frame: pd.DataFrame, score_cols: list[str], spec: ClassSpec) -> np.ndarray:
    """Return the (n, K) class probabilities of the score columns (multi-class rows renormalised)."""
    values = _check_scores(path, frame, score_cols)
    if score_cols == ["score"]:
        return np.column_stack([1.0 - values[:, 0], values[:, 0]])
    names = [c[len("score_") :] for c in score_cols]
    missing = [c for c in spec.classes if c not in names]
    if missing:
        raise PredictionsError(
            f"{path}: no score column for class {missing[0]!r}; give score_<class> for every class {list(spec.classes)}"
        )
    probs = values[:, [names.index(c) for c in spec.classes]]
    sums = probs.sum(axis=1)
    off = np.abs(sums - 1.0) > SUM_TOLERANCE
    if off.any():
        row = int(np.flatnonzero(off)[0])
        raise PredictionsError(
            f"{path}: row {row + 1}: the score_<class> columns sum to {sums[row]:.6g}, not 1; give class "
            "probabilities (softmax outputs)"
        )
    return probs / sums[:, None]


def _normalise_passthrough(path: Path, frame: pd.DataFrame) -> None:
    """Check and normalise ``patient_id`` (text, none empty), ``site`` (text) and ``split`` (lower-case), in place."""
    if "patient_id" in frame.columns:
        missing_pid = frame["patient_id"].isna()
        if missing_pid.any():
            row = int(np.flatnonzero(missing_pid.to_numpy())[0])
            raise PredictionsError(
                f"{path}: row {row + 1}, column 'patient_id' is empty; give every row a patient id or drop the column"
            )
        frame["patient_id"] = frame["patient_id"].astype(str)
    if "site" in frame.columns:
        frame["site"] = frame["site"].astype(str).where(frame["site"].notna(), "default")
    if "split" in frame.columns:
        split = frame["split"].astype(str).str.strip().str.lower()
        bad = ~split.isin(SPLITS)
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise PredictionsError(
                f"{path}: row {row + 1}, column 'split' is {frame['split'].iloc[row]!r}; expected one of "
                f"{list(SPLITS)}"
            )
        frame["split"] = split


def _apply_external_sites(path: Path, frame: pd.DataFrame, external_sites: Sequence[str]) -> None:
    sites = list(dict.fromkeys(str(s) for s in external_sites))
    if not sites:
        return
    if "site" not in frame.columns:
        raise PredictionsError(
            f"{path}: --external-site {sites[0]!r} needs a 'site' column, and the table has none"
        )
    present = sorted(set(frame["site"]))
    for site in sites:
        if site not in present:
            raise PredictionsError(
                f"{path}: --external-site {site!r} is not in column 'site' (sites: {present[:20]}); check the name"
            )
        if site in RESERVED_SITE_NAMES:
            raise PredictionsError(
                f"{path}: a site may not be named {site!r}; rename it in column 'site'"
            )
    if "split" not in frame.columns:
        return
    at_site = frame["site"].isin(sites)
    used = at_site & frame["split"].isin(("train", "val"))
    if used.any():
        row = int(np.flatnonzero(used.to_numpy())[0])
        raise PredictionsError(
            f"{path}: row {row + 1}: site {frame['site'].iloc[row]!r} is declared external but the row is in "
            f"split {frame['split'].iloc[row]!r}; an external site must not be used for training or validation"
        )
    frame.loc[at_site, "split"] = "external"


# --------------------------------------------------------------------------- building and writing


def score_columns(classes: Sequence[str]) -> list[str]:
    """Return the score column names of a task: ``score`` (binary) or ``score_<class>`` per class."""
    return [SCORE] if len(classes) == 2 else [f"{SCORE_PREFIX}{name}" for name in classes]


def build_frame(frame: pd.DataFrame, prob: np.ndarray, split: pd.Series, classes: Sequence[str]) -> pd.DataFrame:
    """Return the table a model writes: ``id``, ``y_true``, score column(s), pass-through columns, attributes.

    ``frame`` is a manifest's frame, ``prob`` (n, K) the class probabilities and
    ``split`` each row's split.
    """
    table = pd.DataFrame({ID: frame["id"].astype(str).to_numpy(), Y_TRUE: frame["y_true"].to_numpy(dtype=np.int64)})
    names = score_columns(classes)
    if len(names) == 1:
        table[SCORE] = prob[:, 1]
    else:
        for k, column in enumerate(names):
            table[column] = prob[:, k]
    for column in PASSTHROUGH:
        if column == "split":
            table["split"] = split.to_numpy()
        elif column in frame.columns:
            table[column] = frame[column].to_numpy()
    skip = {LABEL, Y_TRUE, ID, *PASSTHROUGH}
    for column in frame.columns:
        if column not in skip and column not in table.columns:
            table[column] = frame[column].to_numpy()
    return table


def table_metadata(loaded: Any, data_root: str | os.PathLike[str]) -> dict[str, Any]:
    """Return the ``auditkit`` metadata of a table ``loaded`` (a LoadedModel) wrote from a manifest under ``data_root``."""
    return {
        "classes": list(loaded.classes.classes),
        "positive_class": loaded.classes.positive_class,
        "model_name": loaded.name,
        "model_sha256": loaded.sha256,
        # the fence the manifest's image paths were checked against; the audit's saliency
        # step reuses it for this table's (absolute) paths
        "data_root": str(data_root),
    }


def write_predictions(table: pd.DataFrame, path: str | os.PathLike[str], *, metadata: dict[str, Any]) -> Path:
    """Write the predictions table to Parquet (with ``auditkit`` schema metadata) or CSV, atomically."""
    import io
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from auditkit.errors import InvalidInputError
    from auditkit.fileio import atomic_write_bytes, write_csv

    target = Path(path)
    suffix = target.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        arrow = pa.Table.from_pandas(table, preserve_index=False)
        merged = dict(arrow.schema.metadata or {})
        merged[METADATA_KEY.encode("utf-8")] = json.dumps(metadata, sort_keys=True).encode("utf-8")
        arrow = arrow.replace_schema_metadata(merged)
        buffer = io.BytesIO()
        pq.write_table(arrow, buffer)
        return atomic_write_bytes(target, buffer.getvalue())
    if suffix == ".csv":
        return write_csv(target, table)
    raise InvalidInputError(
        f"--out {str(target)!r} must end in .parquet or .csv (the predictions table format)"
    )
