"""Reading and validating a manifest: the CSV/Parquet table that lists a data set's images.

The contract (DESIGN.md, docs/architecture.md): required ``image`` and
``label``; optional ``id``, ``patient_id``, ``split``, ``site``, ``mask``,
``roi``, ``frame``, ``bbox_x0..bbox_y1``; every other column is a candidate subgroup
attribute, kept as text. Every problem raises :class:`auditkit.errors.ManifestError`
(or a :class:`~auditkit.errors.PathEscapeError`) whose message names the file,
the 1-based data row and the column, says what was expected and received, and
what to do, e.g. ``data/manifest.csv row 17, column 'image': file 'img/17.png'
does not exist; ...``.

This module needs pandas and Pillow/pydicom headers only: the statistics
engine reads manifests without torch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from auditkit.data.manifest_columns import (
    BBOX_COLUMNS,
    COMPUTED_COLUMNS,
    CONTRACT_COLUMNS,
    DEFAULT_SITE,
    PATH_COLUMNS,
    REQUIRED_COLUMNS,
    RESERVED_SITE_NAMES,
    SPLIT_VALUES,
    Where,
    check_columns,
    check_unique_ids,
    encode_label_column,
    parse_bboxes,
    parse_frames,
    parse_sites,
    parse_split,
    require_cells,
)
from auditkit.data.manifest_file import CSV_SUFFIXES, PARQUET_SUFFIXES, read_table
from auditkit.data.paths import resolve_paths, resolve_root
from auditkit.data.readers import frame_count, image_shape
from auditkit.errors import AuditkitError, ManifestError
from auditkit.fileio import sha256_file
from auditkit.labels import ClassSpec

__all__ = [
    "BBOX_COLUMNS",
    "COMPUTED_COLUMNS",
    "CONTRACT_COLUMNS",
    "CSV_SUFFIXES",
    "DEFAULT_SITE",
    "PARQUET_SUFFIXES",
    "PATH_COLUMNS",
    "REQUIRED_COLUMNS",
    "RESERVED_SITE_NAMES",
    "SPLIT_VALUES",
    "Manifest",
    "read_manifest",
]

_PROGRESS_FROM_ROWS = 2000


@dataclass(frozen=True)
class Manifest:
    """A validated manifest: one row per image, paths resolved, labels encoded.

    ``frame`` columns: ``id``, ``image`` (absolute resolved path), ``label`` (as
    given), ``y_true`` (int class index), ``patient_id`` (falls back to ``id``),
    ``site`` (``"default"`` when absent), ``split`` (as given, lower-case, or
    missing), ``mask`` and ``roi`` (absolute paths or missing), ``frame`` (only when the
    manifest has it: the 0-based frame of a multi-frame DICOM/TIFF, nullable Int64),
    ``bbox_x0..bbox_y1`` (float or NaN), then the attribute columns as text. ``frame.index`` is
    ``0..n-1``: data row ``i + 1`` of the file.
    """

    frame: pd.DataFrame
    classes: ClassSpec
    path: Path
    root: Path
    sha256: str
    attribute_columns: tuple[str, ...]
    has_masks: bool
    warnings: tuple[str, ...] = ()
    """Problems that do not stop the run but a person must see (printed on stderr when read)."""

    @property
    def has_roi(self) -> bool:
        """Return whether any row names an anatomical region-of-interest mask."""
        return bool(self.frame["roi"].notna().any())

    @property
    def has_boxes(self) -> bool:
        """Return whether any row gives a lesion bounding box."""
        return bool(self.frame["bbox_x0"].notna().any())

    def __len__(self) -> int:
        return len(self.frame)


def _shared_images(frame: pd.DataFrame, ctx: Where) -> tuple[str, ...]:
    """Return warnings for one image file (and frame) listed under several ids, or several patients.

    The same scan under two ids is counted twice; under two patients it can sit
    in train and test at once (leakage), which the patient-level split cannot see.
    """
    keys = frame["image"].astype(str)
    if "frame" in frame.columns:
        keys = keys + "#" + frame["frame"].astype(str)
    repeated = keys.duplicated(keep=False)
    if not repeated.any():
        return ()
    groups = frame.loc[repeated].groupby(keys[repeated], sort=False)
    _, rows = next(iter(groups.groups.items()))
    listed = [int(i) + 1 for i in rows[:3]]
    patients = frame.loc[repeated].groupby(keys[repeated])["patient_id"].nunique()
    out = [
        f"manifest '{ctx.display}': {int(groups.ngroups)} image file(s) appear in more than one row "
        f"(e.g. rows {listed}); each copy is counted as a separate image"
    ]
    if (patients > 1).any():
        out.append(
            f"manifest '{ctx.display}': {int((patients > 1).sum())} image file(s) belong to more than "
            "one patient_id, so one scan can land in both training and test (leakage); fix the ids"
        )
    return tuple(out)


def _resolve_column(
    values: list[str | None],
    column: str,
    ctx: Where,
    *,
    root: Path,
    allow_outside_root: bool,
    check_files: bool,
) -> list[str | None]:
    out = resolve_paths(
        values, root=root, allow_outside_root=allow_outside_root, where=lambda row: ctx.at(row, column)
    )
    for row, (value, resolved) in enumerate(zip(values, out, strict=True)):
        if check_files and resolved is not None and not Path(resolved).is_file():
            raise ManifestError(
                f"{ctx.at(row, column)}: file {value!r} does not exist (looked for '{resolved}'); "
                "fix the path or remove the row"
            )
    return out


def _check_images(
    table: pd.DataFrame,
    paths: dict[str, list[str | None]],
    boxes: np.ndarray,
    ctx: Where,
    written: dict[str, list[str | None]],
    frames: list[int | None],
) -> None:
    """Read every image/mask/roi header: readable, frames exist, masks the image's size, boxes inside."""
    from auditkit.progress import track

    rows: Sequence[int] = range(len(table))
    if len(table) >= _PROGRESS_FROM_ROWS:
        rows = track(rows, total=len(table), description="checking manifest files")
    for row in rows:
        try:
            shape = image_shape(paths["image"][row])  # type: ignore[arg-type]
        except AuditkitError as exc:
            raise ManifestError(f"{ctx.at(row, 'image')}: {exc}") from None
        if frames[row] is not None:
            try:
                count = frame_count(paths["image"][row])  # type: ignore[arg-type]
            except AuditkitError as exc:
                raise ManifestError(f"{ctx.at(row, 'image')}: {exc}") from None
            if frames[row] >= count:  # type: ignore[operator]
                raise ManifestError(
                    f"{ctx.at(row, 'frame')}: frame {frames[row]} does not exist, the image "
                    f"{written['image'][row]!r} has {count} frame(s) (0..{count - 1}); fix the number"
                )
        for column in ("mask", "roi"):
            target = paths[column][row]
            if target is None:
                continue
            try:
                other = image_shape(target)
            except AuditkitError as exc:
                raise ManifestError(f"{ctx.at(row, column)}: {exc}") from None
            if other != shape:
                raise ManifestError(
                    f"{ctx.at(row, column)}: {column} {written[column][row]!r} is "
                    f"{other[0]}x{other[1]} pixels but its image is {shape[0]}x{shape[1]}; give a "
                    f"{column} of the image's size"
                )
        if not np.isnan(boxes[row, 0]):
            x0, y0, x1, y1 = boxes[row]
            if x1 > shape[1] or y1 > shape[0]:
                raise ManifestError(
                    f"{ctx.at(row, 'bbox_x1' if x1 > shape[1] else 'bbox_y1')}: box "
                    f"({x0:g}, {y0:g}, {x1:g}, {y1:g}) extends beyond the {shape[1]}x{shape[0]} "
                    "(width x height) image; fix the box"
                )


def read_manifest(
    path: str | os.PathLike[str],
    *,
    data_root: str | os.PathLike[str] | None = None,
    allow_outside_root: bool = False,
    positive_class: str | None = None,
    class_spec: ClassSpec | None = None,
    check_files: bool = True,
) -> Manifest:
    """Return the validated :class:`Manifest` of a CSV or Parquet file.

    Relative paths are taken from ``data_root`` (default: the manifest's
    folder) and must stay inside it unless ``allow_outside_root``. Labels are
    encoded under ``class_spec`` when given (a checkpoint's classes), else a
    ClassSpec is inferred (``positive_class`` names a binary task's positive).
    ``check_files`` also opens every image/mask header: files exist and are
    readable, masks match their image's size, boxes lie inside the image.
    """
    manifest_path = Path(path)
    display = os.fspath(path)
    ctx = Where(display)
    table = read_table(manifest_path, display)
    columns = list(table.columns)
    check_columns(columns, ctx)
    if len(table) == 0:
        raise ManifestError(
            f"manifest '{display}' has a header but no rows; add one row per image"
        )
    labels = _column(table, "label")
    ids = _checked_ids(table, labels, ctx)
    spec, y_true = encode_label_column(labels, ctx, positive_class, class_spec)  # type: ignore[arg-type]
    data: dict[str, Any] = {
        "id": ids,
        "label": labels,
        "y_true": np.asarray(y_true, dtype=np.int64),
        "split": parse_split(_column(table, "split"), ctx),
        "site": parse_sites(_column(table, "site"), ctx),
    }
    boxes = parse_bboxes(table, ctx)
    frames = parse_frames(_column(table, "frame"), ctx)
    data["patient_id"] = [
        p if p is not None else i for p, i in zip(_column(table, "patient_id"), ids, strict=True)
    ]
    root = resolve_root(manifest_path, data_root)
    written = {name: _column(table, name) for name in PATH_COLUMNS}
    resolved = {
        name: _resolve_column(
            written[name],
            name,
            ctx,
            root=root,
            allow_outside_root=allow_outside_root,
            check_files=check_files,
        )
        for name in PATH_COLUMNS
    }
    if check_files:
        _check_images(table, resolved, boxes, ctx, written, frames)
    data.update(resolved)
    attributes = tuple(c for c in columns if c not in CONTRACT_COLUMNS)
    frame = _manifest_frame(table, data, frames, boxes, attributes)
    warnings = _shared_images(frame, ctx)
    for warning in warnings:
        from auditkit.progress import status

        status(f"warning: {warning}")
    return Manifest(
        warnings=warnings,
        frame=frame,
        classes=spec,
        path=manifest_path.resolve(),
        root=root,
        sha256=sha256_file(manifest_path),
        attribute_columns=attributes,
        has_masks=bool(frame["mask"].notna().any()),
    )


def _column(table: pd.DataFrame, name: str) -> list[str | None]:
    """Return a column's cells, or one None a row when the manifest has no such column."""
    return table[name].tolist() if name in table.columns else [None] * len(table)


def _checked_ids(table: pd.DataFrame, labels: list[str | None], ctx: Where) -> list[str]:
    """Return each row's id (the ``id`` column, else the image path), after the required cells."""
    images = _column(table, "image")
    require_cells(images, "image", ctx, "image path")
    require_cells(labels, "label", ctx, "label")
    if "id" in table.columns:
        ids = _column(table, "id")
        require_cells(ids, "id", ctx, "id")
        check_unique_ids(ids, ctx, "id")  # type: ignore[arg-type]
    else:
        ids = list(images)
        check_unique_ids(ids, ctx, "image")  # type: ignore[arg-type]
    return ids  # type: ignore[return-value]


def _manifest_frame(
    table: pd.DataFrame,
    data: dict[str, Any],
    frames: list[int | None],
    boxes: np.ndarray,
    attributes: tuple[str, ...],
) -> pd.DataFrame:
    """Return the Manifest's frame: the contract's columns in their order, then the attributes."""
    order = ("id", "image", "label", "y_true", "patient_id", "site", "split", "mask", "roi")
    columns: dict[str, Any] = {name: data[name] for name in order}
    if "frame" in table.columns:
        columns["frame"] = pd.array(frames, dtype="Int64")
    for index, name in enumerate(BBOX_COLUMNS):
        columns[name] = boxes[:, index]
    for name in attributes:
        columns[name] = _column(table, name)
    return pd.DataFrame(columns, index=pd.RangeIndex(len(table)))
