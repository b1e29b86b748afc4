"""Text that came from a user's files, made inert before it goes into Markdown or a CSV.

Attribute values, site and class names, model and policy names and ids are
data someone else wrote. Put raw into summary.md or the gate's Markdown (a
GitHub step summary, a PR comment), ``<img src=x onerror=...>`` becomes HTML,
``[x](javascript:...)`` a link and a backtick run breaks out of a code span;
put raw into a CSV, ``=HYPERLINK(...)`` or ``@SUM(...)`` runs as a formula
when the file is opened in a spreadsheet (OWASP "CSV Injection"). Every
Markdown writer and every CSV writer in auditkit passes its text through
these three functions.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

# only what can start markup: a tag or autolink (<x, </, <!, <?), an entity (&name;), a link or
# image ([...](...)), a code span, a table cell; "<= 0.1" and "a_b" stay as written
_MD_SPECIAL = re.compile(r"([\\`\[\]|])")
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")
_ENTITY = re.compile(r"&(?=#?\w+;)")
_BACKTICKS = re.compile(r"`+")
#: OWASP: a cell starting with one of these is a formula to Excel, LibreOffice or Google Sheets
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n")


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def md_text(text: object) -> str:
    """Return ``text`` as inert inline Markdown: HTML and Markdown syntax escaped, on one line."""
    line = _MD_SPECIAL.sub(r"\\\1", _one_line(text))
    return _TAG_START.sub("&lt;", _ENTITY.sub("&amp;", line))


def md_code(text: object) -> str:
    """Return ``text`` as a Markdown code span that no backtick run inside it can close (table-safe)."""
    line = _one_line(text).replace("|", "\\|")  # GFM splits table cells on '|' even in code spans
    longest = max((len(run) for run in _BACKTICKS.findall(line)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if line.startswith("`") or line.endswith("`") or longest else ""
    return f"{fence}{pad}{line}{pad}{fence}"


def csv_text(value: Any) -> Any:
    """Return a CSV text cell with a formula prefix neutralised by a leading apostrophe; other values as given."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of ``frame`` whose text cells (and column names) cannot run as spreadsheet formulas."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column].dtype):
            out[column] = out[column].map(csv_text)
    out.columns = [csv_text(c) if isinstance(c, str) else c for c in out.columns]
    return out


def csv_unquote(value: Any) -> Any:
    """Return a text cell as it was before :func:`csv_text` neutralised it (for auditkit reading its own CSV)."""
    if isinstance(value, str) and value.startswith("'") and value[1:2] and value[1] in FORMULA_PREFIXES:
        return value[1:]
    return value
