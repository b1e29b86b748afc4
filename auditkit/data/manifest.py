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

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from auditkit.data.paths import resolve_paths, resolve_root
from auditkit.data.readers import frame_count, image_shape
from auditkit.errors import AuditkitError, ManifestError
from auditkit.fileio import sha256_file
from auditkit.labels import ClassSpec, LabelError, encode_labels, infer_class_spec

REQUIRED_COLUMNS: tuple[str, ...] = ("image", "label")
BBOX_COLUMNS: tuple[str, ...] = ("bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1")
PATH_COLUMNS: tuple[str, ...] = ("image", "mask", "roi")
CONTRACT_COLUMNS: tuple[str, ...] = (
    "id",
    "image",
    "label",
    "patient_id",
    "split",
    "site",
    "mask",
    "roi",
    "frame",
    *BBOX_COLUMNS,
)
COMPUTED_COLUMNS: tuple[str, ...] = ("y_true",)
SPLIT_VALUES: tuple[str, ...] = ("train", "val", "test", "external")
RESERVED_SITE_NAMES: frozenset[str] = frozenset(SPLIT_VALUES)
DEFAULT_SITE = "default"
CSV_SUFFIXES: frozenset[str] = frozenset({".csv", ".tsv", ".txt"})
PARQUET_SUFFIXES: frozenset[str] = frozenset({".parquet", ".pq"})
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


def _cell_text(value: Any) -> str | None:
    """Return a cell as stripped text, or None when it is empty/missing."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(float(value)):
            return None
        # integer-valued floats come from Parquet int columns with gaps: 45.0 means "45"
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    text = str(value).strip()
    return text or None


def _read_table(path: Path, display: str) -> pd.DataFrame:
    """Return the raw manifest as a DataFrame of text-or-None cells (object dtype)."""
    if not path.is_file():
        raise ManifestError(f"manifest '{display}' does not exist; check the path")
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        try:
            raw = pd.read_csv(
                path,
                dtype=str,
                keep_default_na=False,
                encoding="utf-8-sig",
                sep="\t" if suffix == ".tsv" else ",",
            )
        except pd.errors.EmptyDataError:
            raise ManifestError(
                f"manifest '{display}' is empty (no header row); write a header with at least "
                "the columns 'image' and 'label', then one row per image"
            ) from None
        except UnicodeDecodeError as exc:  # a ValueError too: caught first
            raise ManifestError(
                f"manifest '{display}' is not UTF-8 text ({exc.reason} at byte {exc.start}); "
                "save it as UTF-8"
            ) from None
        except (pd.errors.ParserError, ValueError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ManifestError(
                f"manifest '{display}' cannot be parsed as CSV ({reason}); check quoting and "
                "that every row has as many fields as the header"
            ) from None
    elif suffix in PARQUET_SUFFIXES:
        try:
            raw = pd.read_parquet(path)
        except Exception as exc:
            raise ManifestError(
                f"manifest '{display}' cannot be read as Parquet ({type(exc).__name__}: {exc}); "
                "write it again with pandas.DataFrame.to_parquet"
            ) from None
    else:
        raise ManifestError(
            f"manifest '{display}' has suffix {suffix or '(none)'!r}; give a .csv, .tsv or "
            ".parquet file"
        )
    names = _header(path, suffix) if suffix in CSV_SUFFIXES else list(raw.columns)
    if len(names) != len(raw.columns):
        names = list(raw.columns)
    raw.columns = [str(c).strip() for c in names]
    repeated = sorted({c for c in raw.columns if list(raw.columns).count(c) > 1})
    if repeated:
        # pandas would silently rename the second 'label' to 'label.1'
        raise ManifestError(
            f"manifest '{display}': column {repeated[0]!r} appears more than once in the header "
            "(spaces around names are ignored); keep one column of each name"
        )
    cells = {col: [_cell_text(v) for v in raw[col].tolist()] for col in raw.columns}
    return pd.DataFrame(cells, index=pd.RangeIndex(len(raw)), dtype=object, columns=list(raw.columns))


def _header(path: Path, suffix: str) -> list[str]:
    """Return the CSV header exactly as written (pandas renames a repeated name to ``name.1``)."""
    import csv

    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            return next(csv.reader(handle, delimiter="\t" if suffix == ".tsv" else ","), [])
    except (csv.Error, ValueError):  # pandas read it; keep pandas' names then
        return []


class _Context:
    """Where-strings for one manifest: ``<file> row <r>, column '<c>'``."""

    def __init__(self, display: str) -> None:
        self.display = display

    def at(self, row: int, column: str) -> str:
        return f"{self.display} row {row + 1}, column '{column}'"

    def column(self, column: str) -> str:
        return f"{self.display}, column '{column}'"


def _check_columns(columns: Sequence[str], ctx: _Context) -> None:
    for required in REQUIRED_COLUMNS:
        if required not in columns:
            near = [c for c in columns if c.lower() == required]
            hint = f" (found {near[0]!r}: column names are case-sensitive)" if near else ""
            raise ManifestError(
                f"manifest '{ctx.display}': required column '{required}' is missing{hint}; "
                f"columns found: {', '.join(map(repr, columns)) or 'none'}; add it"
            )
    for computed in COMPUTED_COLUMNS:
        if computed in columns:
            raise ManifestError(
                f"manifest '{ctx.display}': column '{computed}' is reserved (auditkit computes it "
                "from 'label'); rename or drop it"
            )
    present = [c for c in BBOX_COLUMNS if c in columns]
    if present and len(present) != len(BBOX_COLUMNS):
        missing = [c for c in BBOX_COLUMNS if c not in columns]
        raise ManifestError(
            f"manifest '{ctx.display}': bounding-box columns {present} are present but {missing} "
            "are missing; give all four (bbox_x0, bbox_y0, bbox_x1, bbox_y1) or none"
        )


def _require_cells(values: list[str | None], column: str, ctx: _Context, what: str) -> None:
    for row, value in enumerate(values):
        if value is None:
            raise ManifestError(f"{ctx.at(row, column)}: the {what} is empty; give every row one")


def _check_unique_ids(ids: list[str], ctx: _Context, column: str) -> None:
    seen: dict[str, int] = {}
    for row, value in enumerate(ids):
        if value in seen:
            raise ManifestError(
                f"{ctx.at(row, column)}: id {value!r} repeats row {seen[value] + 1}; ids must be "
                "unique (give an 'id' column, or list each image once)"
            )
        seen[value] = row


def _encode(labels: list[str], ctx: _Context, positive_class: str | None, class_spec: ClassSpec | None):
    where = ctx.column("label")
    if class_spec is not None:
        if positive_class is not None and class_spec.positive_class not in (None, str(positive_class)):
            raise ManifestError(
                f"{where}: --positive-class {positive_class!r} differs from the model's positive "
                f"class {class_spec.positive_class!r}; drop the flag (the model's classes apply)"
            )
        spec = class_spec
    else:
        spec = infer_class_spec(labels, positive_class=positive_class, where=where)
    first_row = {}
    for row, value in enumerate(labels):
        first_row.setdefault(value, row)
    for value, row in first_row.items():
        try:
            encode_labels([value], spec)
        except LabelError:
            raise ManifestError(
                f"{ctx.at(row, 'label')}: label {value!r} is not one of the classes "
                f"{list(spec.classes)} (names or indices 0..{spec.n_classes - 1}); fix the label "
                "or drop the row"
            ) from None
    return spec, encode_labels(labels, spec, where=where)


def _parse_split(values: list[str | None], ctx: _Context) -> list[str | None]:
    out: list[str | None] = []
    for row, value in enumerate(values):
        if value is None:
            out.append(None)
            continue
        lowered = value.lower()
        if lowered not in SPLIT_VALUES:
            raise ManifestError(
                f"{ctx.at(row, 'split')}: unknown split {value!r}; use one of "
                f"{', '.join(SPLIT_VALUES)}, or leave the cell empty to assign it by patient"
            )
        out.append(lowered)
    return out


def _parse_sites(values: list[str | None], ctx: _Context) -> list[str]:
    out = []
    for row, value in enumerate(values):
        site = DEFAULT_SITE if value is None else value
        if site.lower() in RESERVED_SITE_NAMES:
            raise ManifestError(
                f"{ctx.at(row, 'site')}: site name {value!r} is reserved (it names a split); "
                "rename the site"
            )
        out.append(site)
    return out


def _parse_frames(values: list[str | None], ctx: _Context) -> list[int | None]:
    """Return each row's 0-based frame number of a multi-frame image, or None (single frame)."""
    out: list[int | None] = []
    for row, value in enumerate(values):
        if value is None:
            out.append(None)
            continue
        try:
            number = int(value)
        except ValueError:
            number = -1
        if number < 0:
            raise ManifestError(
                f"{ctx.at(row, 'frame')}: expected a frame number (an integer >= 0, counted from "
                f"0), got {value!r}; fix it or leave the cell empty for a single-frame image"
            )
        out.append(number)
    return out


def _parse_bboxes(table: pd.DataFrame, ctx: _Context) -> np.ndarray:
    n = len(table)
    boxes = np.full((n, 4), np.nan)
    if BBOX_COLUMNS[0] not in table.columns:
        return boxes
    for row in range(n):
        cells = [table.at[row, c] for c in BBOX_COLUMNS]
        if all(c is None for c in cells):
            continue
        for column, cell in zip(BBOX_COLUMNS, cells, strict=True):
            if cell is None:
                raise ManifestError(
                    f"{ctx.at(row, column)}: the box is incomplete (this cell is empty); give "
                    "all four of bbox_x0, bbox_y0, bbox_x1, bbox_y1 or leave all four empty"
                )
            try:
                value = float(cell)
            except ValueError:
                value = math.nan
            if not math.isfinite(value) or value < 0:
                raise ManifestError(
                    f"{ctx.at(row, column)}: expected a pixel coordinate (a number >= 0), got "
                    f"{cell!r}; fix the box"
                )
            boxes[row, BBOX_COLUMNS.index(column)] = value
        x0, y0, x1, y1 = boxes[row]
        if not (x1 > x0 and y1 > y0):
            raise ManifestError(
                f"{ctx.at(row, 'bbox_x1')}: malformed box (x0={x0:g}, y0={y0:g}, x1={x1:g}, "
                f"y1={y1:g}); expected x1 > x0 and y1 > y0 (top-left, then bottom-right corner)"
            )
    return boxes


def _shared_images(frame: pd.DataFrame, ctx: _Context) -> tuple[str, ...]:
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
    ctx: _Context,
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
    ctx: _Context,
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
    ctx = _Context(display)
    table = _read_table(manifest_path, display)
    columns = list(table.columns)
    _check_columns(columns, ctx)
    if len(table) == 0:
        raise ManifestError(
            f"manifest '{display}' has a header but no rows; add one row per image"
        )
    n = len(table)

    def column(name: str) -> list[str | None]:
        return table[name].tolist() if name in table.columns else [None] * n

    images_written = column("image")
    _require_cells(images_written, "image", ctx, "image path")
    labels = column("label")
    _require_cells(labels, "label", ctx, "label")
    if "id" in table.columns:
        ids = column("id")
        _require_cells(ids, "id", ctx, "id")
        _check_unique_ids(ids, ctx, "id")  # type: ignore[arg-type]
    else:
        ids = list(images_written)
        _check_unique_ids(ids, ctx, "image")  # type: ignore[arg-type]

    spec, y_true = _encode(labels, ctx, positive_class, class_spec)  # type: ignore[arg-type]
    splits = _parse_split(column("split"), ctx)
    sites = _parse_sites(column("site"), ctx)
    boxes = _parse_bboxes(table, ctx)
    frames = _parse_frames(column("frame"), ctx)
    patients = [p if p is not None else i for p, i in zip(column("patient_id"), ids, strict=True)]

    root = resolve_root(manifest_path, data_root)
    written = {name: column(name) for name in PATH_COLUMNS}
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

    attributes = tuple(c for c in columns if c not in CONTRACT_COLUMNS)
    data: dict[str, Any] = {
        "id": ids,
        "image": resolved["image"],
        "label": labels,
        "y_true": np.asarray(y_true, dtype=np.int64),
        "patient_id": patients,
        "site": sites,
        "split": splits,
        "mask": resolved["mask"],
        "roi": resolved["roi"],
    }
    if "frame" in table.columns:
        data["frame"] = pd.array(frames, dtype="Int64")
    for index, name in enumerate(BBOX_COLUMNS):
        data[name] = boxes[:, index]
    for name in attributes:
        data[name] = column(name)
    frame = pd.DataFrame(data, index=pd.RangeIndex(n))
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
