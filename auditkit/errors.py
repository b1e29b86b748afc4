"""Errors a user can cause, and the command line's exit codes.

Every exception raised because of something the user gave us (a file, a row, a
column, a flag) is an :class:`AuditkitError`; its message is one sentence that
names the file, row or field and says what to do. The CLI prints that line and
exits with :attr:`ExitCode.INPUT_ERROR`. Anything else is a bug in auditkit and
exits with :attr:`ExitCode.INTERNAL_ERROR`.
"""

from __future__ import annotations

from enum import IntEnum


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
