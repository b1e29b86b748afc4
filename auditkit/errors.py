"""Errors a user can cause, and the command line's exit codes.

Every exception raised because of something the user gave us (a file, a row, a
column, a flag) is an :class:`AuditkitError`; its message is one sentence that
names the file, row or field and says what to do. The CLI prints that line and
exits with :attr:`ExitCode.INPUT_ERROR`. Anything else is a bug in auditkit and
exits with :attr:`ExitCode.INTERNAL_ERROR`.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterable
from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class ExitCode(IntEnum):
    """Exit codes of the ``auditkit`` command: a public contract."""

    OK = 0
    """Success; for ``auditkit gate``: every blocking rule holds."""
    GATE_FAILED = 1
    """``auditkit gate`` (or ``audit --policy``): at least one blocking rule failed."""
    INPUT_ERROR = 2
    """The input is wrong: one line on stderr names what and where."""
    INTERNAL_ERROR = 3
    """A bug in auditkit: please report it with the traceback."""


class AuditkitError(Exception):
    """An error caused by the user's input; its message is one actionable sentence."""

    exit_code: ExitCode = ExitCode.INPUT_ERROR


class ManifestError(AuditkitError):
    """The manifest (CSV/Parquet of images) is malformed: names file, row and column."""


class PathEscapeError(AuditkitError):
    """A path in a manifest resolves outside its allowed root."""


class ImageReadError(AuditkitError):
    """An image (PNG/JPEG/TIFF/DICOM/NumPy) cannot be read or decoded."""


class CheckpointError(AuditkitError):
    """A model checkpoint is missing, malformed or fails its integrity check."""


class PredictionsError(AuditkitError):
    """The predictions table breaks its contract (columns, values, ids)."""


class InvalidInputError(AuditkitError):
    """An argument to a public function is out of its domain (shape, range, type)."""


class ConfigError(AuditkitError):
    """An audit configuration file or flag combination is invalid."""


class PolicyError(AuditkitError):
    """A gate policy is malformed or refers to a metric path that does not exist."""


class ResultsError(AuditkitError):
    """A results.json file is missing, malformed or of an unsupported schema version."""


class OutputExistsError(AuditkitError):
    """An output would overwrite an existing report and ``--force`` was not given."""


class OutputPathError(AuditkitError):
    """An output cannot be written where it was asked: no permission, a file in the way, a full disk."""


def short_repr(value: object, limit: int = 60) -> str:
    """Return ``repr(value)`` cut to ``limit`` characters: an error names a value, it never echoes a whole input."""
    if isinstance(value, (list, tuple, dict, set)) and len(value) > 8:
        return f"a {type(value).__name__} of {len(value)} items"
    try:
        text = repr(value)
    except (RecursionError, ValueError):  # a structure too deep, an int beyond the digit limit
        return f"a {type(value).__name__}"
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def file_in_the_way(path: object) -> str | None:
    """Return the nearest existing ancestor of ``path`` when it is a file (so no folder can be made there)."""
    ancestor = os.path.abspath(str(path))
    while ancestor and not os.path.lexists(ancestor):
        parent = os.path.dirname(ancestor)
        if parent == ancestor:
            return None
        ancestor = parent
    return ancestor if ancestor and not os.path.isdir(ancestor) else None


def output_path_error(path: object, exc: OSError) -> OutputPathError:
    """Return the one-sentence error for writing the output ``path``, which the system refused with ``exc``."""
    # os.replace names the temporary source in exc.filename: the user's path is the one given
    where = str(path)
    reason = exc.strerror or type(exc).__name__
    if exc.errno in (errno.EEXIST, errno.ENOTDIR):
        # mkdir reports "File exists" for a file standing where a folder must go: name that file.
        ancestor = file_in_the_way(where)
        if ancestor is not None:
            return OutputPathError(
                f"cannot write {where!r}: {ancestor!r} is a file, not a folder; choose another output path"
            )
    if exc.errno == errno.EISDIR or (os.path.isdir(where) and exc.errno != errno.EACCES):
        return OutputPathError(f"cannot write {where!r}: it is a folder; give a file name there")
    return OutputPathError(
        f"cannot write {where!r} ({reason}); choose an output path in a folder you can write to"
    )


# pydantic adds the member of a union it tried (``str``, ``list[str]``,
# ``function-after[...]``) to an error's location; the user never wrote it.
_UNION_TAG = re.compile(r"[\w-]+\[.*\]|str|int|float|bool|bytes|none")


def describe_validation_error(
    exc: ValidationError,
    source: str,
    *,
    noun: str = "setting",
    allowed: Iterable[str] | None = None,
    fix: str = "fix the value",
    skip: int = 0,
) -> str:
    """Return one user-facing sentence for the first error of a pydantic ``ValidationError``.

    The sentence starts with ``source`` (the file or input, e.g. ``audit.yaml``
    or ``policy.yaml: rule 2 (id 'auroc')``), names the field by its dotted
    path as the user wrote it, says what was expected and the value received,
    and ends with ``fix``; an unknown field lists ``allowed`` when given.
    ``noun`` is what a field is called (``setting``, ``field``); ``skip`` drops
    that many leading location parts, those already named by ``source``::

        audit.yaml: setting 'n_boot': expected greater than or equal to 50 (got 3); fix the value
        audit.yaml: unknown setting 'bootstraps' (allowed: n_boot, seed); fix or remove it
        policy.yaml: missing the required field 'name'; add it
    """
    error = exc.errors()[0]
    loc = tuple(error.get("loc", ()))[skip:]
    path = ".".join(
        str(part)
        for i, part in enumerate(loc)
        if i == 0 or not (isinstance(part, str) and _UNION_TAG.fullmatch(part))
    )
    kind = error.get("type")
    if kind == "extra_forbidden":
        listed = f" (allowed: {', '.join(allowed)})" if allowed is not None else ""
        return f"{source}: unknown {noun} {path!r}{listed}; fix or remove it"
    if kind == "missing":
        return f"{source}: missing the required {noun} {path!r}; add it"
    message = str(error.get("msg", "")).removeprefix("Value error, ")
    message = message.replace("Input should be", "expected")
    if kind == "string_type":
        message = "expected a string: quote it in the YAML"
    elif kind == "too_short" and error.get("ctx", {}).get("min_length") == 1:
        message = "expected at least one entry"
    # a validator's message names the value itself
    received = f" (got {short_repr(error['input'])})" if "input" in error and kind != "value_error" else ""
    if not path:
        return f"{source}: {message}{received}; {fix}"
    return f"{source}: {noun} {path!r}: {message}{received}; {fix}"
