"""Atomic file writes, content hashes and the canonical JSON encoding.

Nothing is lost: every output is written to a temporary file in the target's
folder and renamed over the target, so a crash leaves either the old file or
the new one, never half of one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, TypeVar

import numpy as np

from auditkit.errors import output_path_error

_F = TypeVar("_F", bound=Callable[..., Any])

_CHUNK = 1 << 20


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Return the hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """Return the hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


@contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Yield a handle to a temporary file that replaces ``path`` when the block succeeds.

    The temporary file lives in the target's folder (same filesystem, so the
    final ``os.replace`` is atomic) and is removed if the block raises.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open supports modes 'w' and 'wb', got {mode!r}")
    target = Path(path)
    refuse_input_overwrite(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise output_path_error(target, exc) from None
    try:
        kwargs = {"encoding": "utf-8", "newline": "\n"} if mode == "w" else {}
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600; give the file the mode a plain open() would have
        os.chmod(tmp_name, 0o666 & ~_umask())
        try:
            os.replace(tmp_name, target)
        except OSError as exc:  # e.g. a folder where the file should go
            raise output_path_error(target, exc) from None
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically and return the path."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def to_jsonable(obj: Any) -> Any:
    """Return ``obj`` converted to plain JSON types.

    Dataclasses (or objects with ``to_dict``) become dicts, NumPy scalars and
    arrays become Python numbers and lists, tuples become lists, paths become
    strings, and non-finite floats become ``None`` (JSON has no NaN; a number
    that is undefined carries a ``reason`` next to it instead).
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)) and not isinstance(obj, bool):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        return to_jsonable(obj.to_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(key): to_jsonable(value) for key, value in obj.items()}
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(value) for value in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"cannot encode {type(obj).__name__} as JSON")


def plain_cell(value: Any) -> Any:
    """Return one table cell as a JSON scalar: NumPy scalars unwrapped, missing values None, others as text."""
    import pandas as pd  # only the table readers need pandas; fileio stays light to import

    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return value if isinstance(value, (int, float, bool, str)) else str(value)


def load_json(text: str | bytes) -> Any:
    """Return the parsed JSON ``text``; a document nested too deeply raises json.JSONDecodeError, not RecursionError.

    Every reader of a file someone else may have written (model.json, a
    review, case records) goes through here, so its ``except
    json.JSONDecodeError`` also covers a 100,000-level nesting bomb.
    """
    try:
        return json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", text if isinstance(text, str) else "", 0) from None


def dumps_json(obj: Any) -> str:
    """Return the canonical JSON text of ``obj``: 2-space indent, UTF-8, trailing newline.

    Key order is kept as built (callers build dicts deterministically), so the
    same inputs give the same bytes.
    """
    return json.dumps(to_jsonable(obj), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as canonical JSON to ``path`` atomically and return the path."""
    return atomic_write_text(path, dumps_json(obj))


# --- inputs are never outputs -------------------------------------------------------------
#
# A command registers what it reads (the manifest and the images it names, the model folder,
# results.json, a policy, a config) while the guard is on; every atomic write and every removal
# of an earlier output asks it first, so no output path, however spelled (``..``, a symlink, a
# hard link), can replace or delete an input. One process-wide registry, not a context variable:
# explain writes from worker threads.


@dataclasses.dataclass
class _InputGuard:
    depth: int = 0
    paths: dict[str, str] = dataclasses.field(default_factory=dict)
    inodes: dict[tuple[int, int], str] = dataclasses.field(default_factory=dict)
    folders: dict[str, str] = dataclasses.field(default_factory=dict)


_GUARD = _InputGuard()


def _real(path: str | os.PathLike[str]) -> str | None:
    try:
        return os.path.realpath(os.fspath(path))
    except (OSError, ValueError):  # a NUL byte, a symlink loop on some systems
        return None


def _inode(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return (info.st_dev, info.st_ino)


@contextmanager
def guard_inputs() -> Iterator[None]:
    """Yield while inputs registered with :func:`protect_input` cannot be overwritten or removed.

    Reentrant: a command that calls another (the audit pipeline calls the
    report) shares one registry, cleared when the outermost block ends.
    """
    _GUARD.depth += 1
    try:
        yield
    finally:
        _GUARD.depth -= 1
        if _GUARD.depth == 0:
            _GUARD.paths.clear()
            _GUARD.inodes.clear()
            _GUARD.folders.clear()


def protect_input(path: str | os.PathLike[str] | None, label: str, *, tree: bool = False) -> None:
    """Register ``path`` (named ``label`` in errors, e.g. ``"the manifest"``) as an input of this run.

    With ``tree``, every file already inside the folder is protected too (a
    model folder). A no-op outside :func:`guard_inputs` or for ``None``.
    """
    if _GUARD.depth == 0 or path is None:
        return
    real = _real(path)
    if real is None:
        return
    if tree and os.path.isdir(real):
        _GUARD.folders.setdefault(real, label)
        return
    _GUARD.paths.setdefault(real, label)
    inode = _inode(real)
    if inode is not None:
        _GUARD.inodes.setdefault(inode, label)


def guards_inputs(**labels: str) -> Callable[[_F], _F]:
    """Return a decorator running a function inside :func:`guard_inputs` with its path arguments registered.

    ``labels`` maps argument names to how errors name them (``manifest="the
    manifest"``). The Python API (``predict``, ``explain_manifest``, ``train``)
    then keeps the CLI's promise: no output replaces or deletes an input. A
    folder argument protects every file in it; objects that are not paths (an
    already loaded model or manifest) are left alone.
    """
    import functools
    import inspect

    def decorate(fn: _F) -> _F:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind_partial(*args, **kwargs).arguments
            with guard_inputs():
                for name, label in labels.items():
                    value = bound.get(name)
                    if isinstance(value, (str, os.PathLike)):
                        protect_input(value, label, tree=os.path.isdir(value))
                return fn(*args, **kwargs)

        return guarded  # type: ignore[return-value]

    return decorate


def protect_inputs(paths: Iterable[str | os.PathLike[str]], label: str) -> None:
    """Register many input files (the images a manifest names) under one ``label``."""
    if _GUARD.depth == 0:
        return
    for path in paths:
        real = _real(path)
        if real is not None:
            _GUARD.paths.setdefault(real, label)


def input_at(path: str | os.PathLike[str]) -> str | None:
    """Return the label of the registered input that writing or removing ``path`` would destroy, or None."""
    if _GUARD.depth == 0:
        return None
    real = _real(path)
    if real is None:
        return None
    if real in _GUARD.paths:
        return _GUARD.paths[real]
    inode = _inode(real)
    if inode is not None and inode in _GUARD.inodes:
        return _GUARD.inodes[inode]
    for folder, label in _GUARD.folders.items():
        inside = real == folder or real.startswith(folder.rstrip(os.sep) + os.sep)
        if inside and os.path.lexists(real):
            return f"a file of {label}"
    if os.path.isdir(real):  # removing a folder removes the inputs inside it
        prefix = real.rstrip(os.sep) + os.sep
        for known, label in [*_GUARD.paths.items(), *_GUARD.folders.items()]:
            if known.startswith(prefix):
                return f"a folder holding {label}"
    return None


def refuse_input_overwrite(path: str | os.PathLike[str], *, flag: str = "the output") -> None:
    """Raise OutputPathError when writing ``path`` would replace or delete one of this run's inputs."""
    from auditkit.errors import OutputPathError

    label = input_at(path)
    if label is not None:
        raise OutputPathError(
            f"{flag} {os.fspath(path)!r} is {label}, an input of this run; auditkit never writes "
            "over its inputs: choose another output path"
        )


# --- one run per output folder ------------------------------------------------------------

LOCK_NAME = ".auditkit.lock"
"""The lock file's name inside the output folder in the first version; locks now lie beside the output."""
_HELD: dict[str, list[Any]] = {}


def lock_path(target: str | os.PathLike[str]) -> Path:
    """Return the lock file of the output ``target`` (a folder or a file): ``.NAME.lock`` beside it.

    Beside, not inside: a run may replace its whole output folder, and an empty
    folder must stay empty for the commands that require one.
    """
    real = Path(_real(target) or os.path.abspath(os.fspath(target)))
    return real.parent / f".{real.name or 'root'}.lock"


@contextmanager
def output_lock(target: str | os.PathLike[str], *, flag: str = "--out") -> Iterator[None]:
    """Yield while this process holds the exclusive lock of the output ``target`` (a folder or a file).

    The lock is ``fcntl.flock`` on :func:`lock_path` (the holder's pid inside),
    released by the kernel if the process dies, and removed when the block
    ends. A second run into the same output raises OutputPathError naming it
    and the holder's pid. Reentrant within one process.
    """
    import fcntl

    from auditkit.distributed import env_rank
    from auditkit.errors import OutputPathError

    if env_rank() > 0:  # torchrun: rank 0 holds the lock for the whole job; the others work under it
        yield
        return
    path = lock_path(target)
    key = os.fspath(path)
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield
        finally:
            _HELD[key][1] -= 1
        return
    created = [p for p in (path.parent, *path.parent.parents) if not os.path.lexists(p)]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_path_error(target, exc) from None
    while True:
        try:
            fd = os.open(key, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise output_path_error(target, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                holder = _lock_holder(fd)
            finally:
                os.close(fd)
            raise OutputPathError(
                f"{flag} {os.fspath(target)!r} is in use by another auditkit run (pid {holder}); "
                "wait for it to finish or choose another output"
            ) from None
        # the holder before us may have removed the file after we opened it: lock the live one
        if _inode(key) == (os.fstat(fd).st_dev, os.fstat(fd).st_ino):
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode("ascii"))
    _HELD[key] = [fd, 0]
    try:
        yield
    finally:
        del _HELD[key]
        try:
            os.unlink(key)
            for folder in created:  # a run refused before writing anything leaves no empty folder
                os.rmdir(folder)
        except OSError:
            pass
        os.close(fd)


def _lock_holder(fd: int) -> str:
    """Return the pid the holder of an output lock wrote into it (``"unknown"`` if empty)."""
    return os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"


def refuse_while_written(folder: str | os.PathLike[str], what: str) -> None:
    """Return None when no auditkit run holds the output lock of ``folder``; raise OutputPathError otherwise.

    A reader (the gate reading an audit's results.json) must not judge a
    folder that a running audit is rewriting: the file it reads and the
    report beside it could come from two runs.
    """
    import fcntl

    from auditkit.errors import OutputPathError

    path = lock_path(folder)
    if os.fspath(path) in _HELD:
        return  # this process holds it: an audit that gates its own results
    try:
        fd = os.open(os.fspath(path), os.O_RDONLY)
    except OSError:
        return  # no lock file: nobody is writing
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            holder = _lock_holder(fd)
            raise OutputPathError(
                f"{what} {os.fspath(folder)!r} is being written by another auditkit run "
                f"(pid {holder}); wait for it to finish"
            ) from None
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def write_csv(path: str | os.PathLike[str], frame: Any, *, float_format: str | None = None) -> Path:
    """Write the DataFrame ``frame`` as CSV (no index, ``\\n`` line ends) atomically and return the path.

    Every CSV auditkit writes goes through here, so every text cell is
    neutralised against spreadsheet formulas (:func:`auditkit.textsafe.csv_safe`).
    """
    from auditkit.textsafe import csv_safe

    text = csv_safe(frame).to_csv(index=False, lineterminator="\n", float_format=float_format)
    return atomic_write_text(path, text)
