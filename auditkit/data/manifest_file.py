"""Reading a manifest file (CSV, TSV or Parquet) as a table of text cells.

Every cell becomes stripped text or None, whatever the file's types, so the
column checks of :mod:`auditkit.data.manifest_columns` see one kind of value.
Problems raise :class:`auditkit.errors.ManifestError` naming the file and what to do.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from auditkit.errors import ManifestError

#: the table suffixes auditkit reads (manifests and predictions tables alike).
CSV_SUFFIXES: tuple[str, ...] = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES: tuple[str, ...] = (".parquet", ".pq")


def cell_text(value: Any) -> str | None:
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


def read_table(path: Path, display: str) -> pd.DataFrame:
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
    cells = {col: [cell_text(v) for v in raw[col].tolist()] for col in raw.columns}
    return pd.DataFrame(cells, index=pd.RangeIndex(len(raw)), dtype=object, columns=list(raw.columns))


def _header(path: Path, suffix: str) -> list[str]:
    """Return the CSV header exactly as written (pandas renames a repeated name to ``name.1``)."""
    import csv

    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            return next(csv.reader(handle, delimiter="\t" if suffix == ".tsv" else ","), [])
    except (csv.Error, ValueError):  # pandas read it; keep pandas' names then
        return []
