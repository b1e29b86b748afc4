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
from pathlib import Path

from auditkit.errors import PathEscapeError


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
    raw = Path(value)
    candidate = raw if raw.is_absolute() else root / raw
    # resolve() follows every symlink on the way, so a link inside the root that
    # points out of it is caught as well as "../" and foreign absolute paths.
    resolved = candidate.resolve(strict=False)
    if not allow_outside_root and not resolved.is_relative_to(root):
        raise PathEscapeError(
            f"{where}: path {value!r} resolves to '{resolved}', outside the data root "
            f"'{root}'; move the file under the root, point --data-root at a folder that "
            "holds it, or pass --allow-outside-root if reading it is intended"
        )
    return resolved


def resolve_root(manifest_path: Path, data_root: str | os.PathLike[str] | None) -> Path:
    """Return the absolute, resolved data root: ``data_root`` if given, else the manifest's folder."""
    base = Path(data_root) if data_root is not None else Path(manifest_path).parent
    return base.expanduser().resolve(strict=False)
