"""Safe resolution of the file paths a manifest names.

A manifest is data a user was given, so the paths in it are untrusted: a row
that says ``../../etc/passwd`` or ``/home/someone/else.png``, or a symlink in
the data folder that points elsewhere, must not make auditkit read (and later
copy into a report) a file outside the folder the user meant to audit.
Relative paths are taken from the data root (the manifest's folder unless
``--data-root`` names another) and every path, symlinks followed, must resolve
inside that root unless the user passes ``--allow-outside-root``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd

from auditkit.errors import InvalidInputError, PathEscapeError
from auditkit.fileio import protect_inputs


def resolve_path(
    value: str,
    *,
    root: Path,
    allow_outside_root: bool = False,
    where: str = "path",
) -> Path:
    """Return the absolute, symlink-resolved path that ``value`` names.

    ``value`` is relative to ``root`` unless absolute; ``root`` must already be
    absolute and resolved. Raises PathEscapeError, naming ``where`` (file, row
    and column), when the result lies outside ``root`` and
    ``allow_outside_root`` is false. The file need not exist.
    """
    if "\x00" in value:
        raise InvalidInputError(f"{where}: the path contains a NUL byte, which no file name can; fix the cell")
    raw = Path(value)
    candidate = raw if raw.is_absolute() else root / raw
    # resolve() follows every symlink on the way, so a link inside the root that
    # points out of it is caught as well as "../" and foreign absolute paths.
    try:
        resolved = candidate.resolve(strict=False)
    except (RuntimeError, OSError) as exc:  # a symlink loop (RuntimeError before Python 3.13)
        reason = "a symlink loop" if isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == 40 else (
            exc.strerror or type(exc).__name__
        )
        raise InvalidInputError(f"{where}: path {value!r} cannot be resolved ({reason}); fix the link or the cell") from None
    if not allow_outside_root and not resolved.is_relative_to(root):
        raise PathEscapeError(
            f"{where}: path {value!r} resolves to '{resolved}', outside the data root "
            f"'{root}'; move the file under the root, point --data-root at a folder that "
            "holds it, or pass --allow-outside-root if reading it is intended"
        )
    return resolved


def resolve_root(manifest_path: Path, data_root: str | os.PathLike[str] | None) -> Path:
    """Return the absolute, resolved data root: ``data_root`` if given, else the manifest's folder."""
    return data_root_or(data_root, Path(manifest_path).parent)


def data_root_or(data_root: str | os.PathLike[str] | None, default: Path) -> Path:
    """Return the absolute, resolved data root: ``data_root`` if given (it must be a folder), else ``default``."""
    if data_root is None:
        return Path(default).expanduser().resolve(strict=False)
    root = Path(data_root).expanduser().resolve(strict=False)
    if not root.is_dir():
        raise InvalidInputError(f"data root '{os.fspath(data_root)}' is not a folder; check --data-root")
    return root


def resolve_paths(
    values: Iterable[object],
    *,
    root: Path,
    allow_outside_root: bool,
    where: Callable[[int], str],
) -> list[str | None]:
    """Return each path of a column resolved inside ``root`` (None where empty); ``where(row)`` names a refused one."""
    out: list[str | None] = []
    for row, value in enumerate(values):
        if value is None or pd.isna(value) or str(value) == "":
            out.append(None)  # None, NaN/NA or "": no file in this row
            continue
        resolved = resolve_path(str(value), root=root, allow_outside_root=allow_outside_root, where=where(row))
        out.append(os.fspath(resolved))
    # what a manifest names is an input: no output of this run may replace it
    protect_inputs((p for p in out if p is not None), "an image or mask the manifest names")
    return out
