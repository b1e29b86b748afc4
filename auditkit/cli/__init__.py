"""The ``auditkit`` command line: parse, call one API function, map errors to exit codes.

Each command lives in a module of this package named for what it drives
(``data``, ``model``, ``explain``, ``audit``, ``report``, ``gate``, ``demo``);
they register themselves on :data:`app`. Heavy libraries (torch, weasyprint)
are imported inside the commands so ``auditkit --help`` stays fast.

Exit codes (:class:`auditkit.errors.ExitCode`): 0 success, 1 gate failed,
2 the input is wrong (one line on stderr, no traceback), 3 internal error.
"""

from __future__ import annotations

import errno
import importlib
import sys
import traceback
from collections.abc import Sequence

import typer
from typer.exceptions import TyperException

from auditkit import __version__
from auditkit.errors import AuditkitError, ExitCode, file_in_the_way
from auditkit.progress import set_quiet

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
    try:
        result = app(args=args, prog_name="auditkit", standalone_mode=False)
    except AuditkitError as exc:
        print(f"auditkit: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except TyperException as exc:  # usage errors: unknown command, bad flag, missing option
        show = getattr(exc, "show", None)
        if callable(show):
            show(file=sys.stderr)
        else:
            print(f"auditkit: error: {exc.format_message()}", file=sys.stderr)
        return int(ExitCode.INPUT_ERROR)
    except OSError as exc:
        if exc.errno not in _USER_PATH_ERRNOS or exc.filename is None:
            return _internal_error()
        # A path the user gave that the system refuses (no permission, a folder where a file
        # must be, a read-only or full disk) is their input, not an auditkit bug. Writes through
        # fileio are already OutputPathErrors; this may be a read, so the wording is neutral.
        blocker = file_in_the_way(exc.filename) if exc.errno == errno.ENOTDIR else None
        reason = f"{blocker!r} is a file, not a folder" if blocker else exc.strerror or type(exc).__name__
        print(f"auditkit: error: {exc.filename!s}: {reason}; check the path and its permissions", file=sys.stderr)
        return int(ExitCode.INPUT_ERROR)
    except (typer.Abort, KeyboardInterrupt):
        print("auditkit: interrupted", file=sys.stderr)
        return 130
    except Exception:
        return _internal_error()
    return int(result) if isinstance(result, int) else int(ExitCode.OK)


_USER_PATH_ERRNOS = frozenset(
    {errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR, errno.EROFS, errno.ENOSPC, errno.ENAMETOOLONG}
)  # fmt: skip


def _internal_error() -> int:
    traceback.print_exc()
    print(
        "auditkit: internal error (a bug in auditkit, not in your input); "
        "please report it with the traceback above",
        file=sys.stderr,
    )
    return int(ExitCode.INTERNAL_ERROR)


def main() -> None:
    """Entry point of the ``auditkit`` console script."""
    sys.exit(run())
