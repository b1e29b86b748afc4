"""Loading, validating, saving and addressing results.json documents."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from auditkit.errors import ResultsError, short_repr
from auditkit.fileio import atomic_write_text, dumps_json, sha256_bytes, to_jsonable

SCHEMA_VERSION = "1.0"


@functools.lru_cache(maxsize=1)
def results_schema() -> dict[str, Any]:
    """Return the JSON Schema of results.json shipped with the package."""
    text = resources.files("auditkit.results").joinpath("schema.json").read_text("utf-8")
    return json.loads(text)


def validate_results(data: Mapping[str, Any], *, source: str = "results.json") -> None:
    """Check ``data`` against the shipped schema; raises ResultsError naming the first bad path."""
    import jsonschema

    version = data.get("schema_version") if isinstance(data, Mapping) else None
    if version != SCHEMA_VERSION:
        raise ResultsError(
            f"{source}: schema_version is {short_repr(version)}, this auditkit reads {SCHEMA_VERSION!r}; "
            "re-run the audit with this version"
        )
    validator = jsonschema.Draft202012Validator(results_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = ".".join(str(p) for p in first.absolute_path) or "(top level)"
        message = first.message if len(first.message) <= 160 else f"{first.message[:159]}…"  # never a whole value
        raise ResultsError(f"{source}: field {where[:120]} is invalid: {message}")


@dataclass(frozen=True)
class ResultsFile:
    """A results.json read from disk: its path, its exact bytes and the validated document.

    The bytes are the ones parsed and validated, so a hash of them (the
    report's fingerprint, the gate's record) describes exactly what was read.
    """

    path: Path
    raw: bytes = field(repr=False)
    data: dict[str, Any] = field(repr=False)

    @property
    def sha256(self) -> str:
        """Return the hex SHA-256 of the bytes read."""
        return sha256_bytes(self.raw)


def read_results_file(path: str | os.PathLike[str]) -> ResultsFile:
    """Return the results.json at ``path`` (a folder means its results.json), parsed and validated.

    Raises :class:`~auditkit.errors.ResultsError` when the file is missing,
    is not UTF-8 JSON, is not a JSON object, or fails the shipped schema.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        raise ResultsError(
            f"{path}: no such results file; run 'auditkit audit' first or give its path"
        )
    raw = path.read_bytes()
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError, an int beyond the digit limit
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:120]
        raise ResultsError(f"{path}: not valid JSON ({reason}); re-run the audit") from None
    except RecursionError:
        raise ResultsError(f"{path}: nested too deeply to be a results.json; re-run the audit") from None
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: the top level must be a JSON object; re-run the audit")
    try:
        if sha256_bytes(raw) not in _VALIDATED:
            validate_results(data, source=str(path))
    except RecursionError:
        raise ResultsError(f"{path}: nested too deeply to be a results.json; re-run the audit") from None
    return ResultsFile(path, raw, data)


def _refuse_constant(name: str) -> Any:
    # JSON has no NaN or Infinity; auditkit writes null with a reason, so a literal means a forged file
    raise ValueError(f"the literal {name} is not JSON (an undefined number is null with a reason)")


def load_results(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Return the validated results.json at ``path`` (a folder means its results.json) as a dict."""
    return read_results_file(path).data


def save_results(path: str | os.PathLike[str], results: Mapping[str, Any]) -> Path:
    """Validate ``results`` and write them atomically as canonical JSON; return the path."""
    data = to_jsonable(results)
    validate_results(data, source=str(path))
    text = dumps_json(data)
    written = atomic_write_text(path, text)
    _VALIDATED.add(sha256_bytes(text.encode("utf-8")))
    return written


#: SHA-256 of every results.json this process validated and wrote: reading exactly those bytes back
#: (the report and the gate of the same audit) does not run the schema a second time.
_VALIDATED: set[str] = set()


_MISSING = object()


def _lookup(node: Any, parts: list[str]) -> Any:
    """Resolve dotted parts, letting a key itself contain dots (e.g. a group named '1.5')."""
    if not parts:
        return node
    if isinstance(node, Mapping):
        for width in range(len(parts), 0, -1):
            key = ".".join(parts[:width])
            if key in node:
                found = _lookup(node[key], parts[width:])
                if found is not _MISSING:
                    return found
        return _MISSING
    if isinstance(node, list) and parts[0].isdigit():
        index = int(parts[0])
        return _lookup(node[index], parts[1:]) if index < len(node) else _MISSING
    return _MISSING


def get_path(results: Mapping[str, Any], path: str, default: Any = _MISSING) -> Any:
    """Return the value at dotted ``path`` in ``results`` (KeyError if absent and no default)."""
    found = _lookup(results, path.split(".")) if path else results
    if found is _MISSING:
        if default is _MISSING:
            raise KeyError(path)
        return default
    return found


@dataclass(frozen=True)
class AuditResults:
    """The outcome of an audit: the results.json document (JSON-ready) and where it was written."""

    data: Mapping[str, Any]
    path: Path | None = field(default=None, compare=False)

    def get(self, path: str, default: Any = _MISSING) -> Any:
        """Return the value at dotted ``path`` (see :func:`get_path`)."""
        return get_path(self.data, path, default)

    def to_json(self) -> str:
        """Return the canonical JSON text of the document."""
        return dumps_json(self.data)
