"""The manifest's column contract and the checks of its columns and cells.

Which columns the contract names (required ``image`` and ``label``; optional
``id``, ``patient_id``, ``split``, ``site``, ``mask``, ``roi``, ``frame``,
``bbox_x0..bbox_y1``; any other column is a subgroup attribute), and one
parser per column that turns text cells into values or raises a
:class:`auditkit.errors.ManifestError` naming the file, the 1-based data row
and the column (:class:`Where`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from auditkit.data.splits import SPLITS
from auditkit.errors import ManifestError
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
SPLIT_VALUES: tuple[str, ...] = SPLITS
RESERVED_SITE_NAMES: frozenset[str] = frozenset(SPLIT_VALUES)
DEFAULT_SITE = "default"


class Where:
    """Where-strings for one manifest: ``<file> row <r>, column '<c>'``."""

    def __init__(self, display: str) -> None:
        self.display = display

    def at(self, row: int, column: str) -> str:
        """Return ``<file> row <row + 1>, column '<column>'`` (``row`` is 0-based)."""
        return f"{self.display} row {row + 1}, column '{column}'"

    def column(self, column: str) -> str:
        """Return ``<file>, column '<column>'``."""
        return f"{self.display}, column '{column}'"


def check_columns(columns: Sequence[str], ctx: Where) -> None:
    """Return None when the header has the required columns, no computed one, and 0 or 4 box columns."""
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


def require_cells(values: list[str | None], column: str, ctx: Where, what: str) -> None:
    """Return None when no cell of ``column`` is empty (``what`` names its content)."""
    for row, value in enumerate(values):
        if value is None:
            raise ManifestError(f"{ctx.at(row, column)}: the {what} is empty; give every row one")


def check_unique_ids(ids: list[str], ctx: Where, column: str) -> None:
    """Return None when every id is unique (``column`` is where the ids came from)."""
    seen: dict[str, int] = {}
    for row, value in enumerate(ids):
        if value in seen:
            raise ManifestError(
                f"{ctx.at(row, column)}: id {value!r} repeats row {seen[value] + 1}; ids must be "
                "unique (give an 'id' column, or list each image once)"
            )
        seen[value] = row


def encode_label_column(
    labels: list[str], ctx: Where, positive_class: str | None, class_spec: ClassSpec | None
) -> tuple[ClassSpec, np.ndarray]:
    """Return (class spec, class index per row): ``class_spec`` when given, else inferred."""
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


def parse_split(values: list[str | None], ctx: Where) -> list[str | None]:
    """Return each row's split in lower case, or None (assigned later by patient)."""
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


def parse_sites(values: list[str | None], ctx: Where) -> list[str]:
    """Return each row's site (``DEFAULT_SITE`` when empty); split names are refused."""
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


def parse_frames(values: list[str | None], ctx: Where) -> list[int | None]:
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


def parse_bboxes(table: pd.DataFrame, ctx: Where) -> np.ndarray:
    """Return the (n, 4) boxes x0, y0, x1, y1 in pixels, NaN rows where a row has none."""
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
