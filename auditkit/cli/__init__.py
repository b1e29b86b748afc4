"""The ``auditkit`` command line: parse, call one API function, map errors to exit codes.

Each command lives in a module of this package named for what it drives
(``data``, ``model``, ``explain``, ``audit``, ``report``, ``gate``, ``demo``);
they register themselves on :data:`app`. Heavy libraries (torch, weasyprint)
are imported inside the commands so ``auditkit --help`` stays fast.

Exit codes (:class:`auditkit.errors.ExitCode`): 0 success, 1 gate failed,
2 the input is wrong (one line on stderr, no traceback), 3 internal error.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import logging
import sys
import traceback
import warnings
from collections.abc import Iterator, Sequence

import typer
from typer.exceptions import TyperException

from auditkit import __version__
from auditkit.errors import AuditkitError, ExitCode, file_in_the_way
from auditkit.progress import is_quiet, set_quiet

app = typer.Typer(
    name="auditkit",
    help="Audit a medical-imaging classifier: explain it, measure it, report it, gate it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"auditkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Silence progress bars and status lines."),
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version."
    ),
) -> None:
    set_quiet(quiet)


_COMMAND_MODULES = ("demo", "data", "model", "explain", "audit", "report", "gate", "view", "export_dicom", "monitor")
for _name in _COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_name}")


def run(argv: Sequence[str] | None = None) -> int:
    """Return the exit code of running the command line ``argv`` (default: sys.argv[1:])."""
    args = list(sys.argv[1:] if argv is None else argv)
    # --quiet belongs to this command: a caller running several in one process (tests, notebooks)
    # gets its own setting back afterwards
    was_quiet = is_quiet()
    try:
        return _run(args)
    finally:
        set_quiet(was_quiet)


def _run(args: list[str]) -> int:
    """Return the exit code of one command line, every user mistake mapped to one stderr line."""
    from auditkit.fileio import guard_inputs

    with _quiet_libraries():
        try:
            with guard_inputs():  # no output of this command may replace or delete one of its inputs
                result = app(args=args, prog_name="auditkit", standalone_mode=False)
        except AuditkitError as exc:
            return _input_error(str(exc), int(exc.exit_code))
        except typer.Exit as exc:
            return int(exc.exit_code)
        except TyperException as exc:  # usage errors: unknown command, bad flag, missing option
            return _input_error(_usage_line(exc))
        except OSError as exc:
            if exc.errno not in _USER_PATH_ERRNOS or exc.filename is None:
                return _internal_error()
            # A path the user gave that the system refuses (no permission, a folder where a file
            # must be, a read-only or full disk) is their input, not an auditkit bug. Writes through
            # fileio are already OutputPathErrors; this may be a read, so the wording is neutral.
            blocker = file_in_the_way(exc.filename) if exc.errno == errno.ENOTDIR else None
            reason = f"{blocker!r} is a file, not a folder" if blocker else exc.strerror or type(exc).__name__
            return _input_error(f"{exc.filename!s}: {reason}; check the path and its permissions")
        except ValueError as exc:
            if "null byte" not in str(exc):
                return _internal_error()
            # os and open() refuse a path holding NUL before any file is touched
            return _input_error("a path given contains a NUL byte, which no file name can; fix the argument")
        except typer.Abort as exc:
            if isinstance(exc.__cause__, EOFError):  # click turns a leaked EOFError into Abort
                return _internal_error(exc.__cause__)
            print("auditkit: interrupted", file=sys.stderr)
            return 130
        except KeyboardInterrupt:
            print("auditkit: interrupted", file=sys.stderr)
            return 130
        except Exception:
            return _internal_error()
    return int(result) if isinstance(result, int) else int(ExitCode.OK)


def _input_error(message: str, code: int = int(ExitCode.INPUT_ERROR)) -> int:
    """Print ``message`` as exactly one line on stderr and return ``code``."""
    # a library's multi-line message (pydicom, pyarrow) inside an error stays on one line
    print(f"auditkit: error: {' '.join(message.split())}", file=sys.stderr)
    return code


def _usage_line(exc: TyperException) -> str:
    """Return click's usage error as one sentence naming the command, instead of its Usage/Try/Error block."""
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    command = getattr(getattr(exc, "ctx", None), "command_path", None) or "auditkit"
    return f"{command}: {message.rstrip('.')}; see '{command} --help'"


@contextlib.contextmanager
def _quiet_libraries() -> Iterator[None]:
    """Silence library warnings and log records while a command runs: stderr carries auditkit's lines only."""
    root = logging.getLogger()
    sink = logging.NullHandler()  # with a handler on the root, logging's last-resort stderr printer stays quiet
    root.addHandler(sink)
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)
        root.removeHandler(sink)


_USER_PATH_ERRNOS = frozenset(
    {errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR, errno.EROFS, errno.ENOSPC, errno.ENAMETOOLONG,
     errno.ENOENT, errno.ELOOP, errno.EEXIST, errno.EINVAL}
)  # fmt: skip


def _internal_error(cause: BaseException | None = None) -> int:
    if cause is None:
        traceback.print_exc()
    else:
        traceback.print_exception(cause)
    print(
        "auditkit: internal error (a bug in auditkit, not in your input); "
        "please report it with the traceback above",
        file=sys.stderr,
    )
    return int(ExitCode.INTERNAL_ERROR)


def main() -> None:
    """Entry point of the ``auditkit`` console script."""
    sys.exit(run())
