"""Progress bars on stderr for long work, silenced by ``--quiet``.

Library code wraps long loops in :func:`track`; the CLI decides whether bars
show (``set_quiet``). Output goes to stderr so stdout stays parseable.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")

_state = {"quiet": False}


def set_quiet(quiet: bool) -> None:
    """Silence (or restore) progress bars and status lines for this process."""
    _state["quiet"] = bool(quiet)


def is_quiet() -> bool:
    """Return whether progress output is silenced."""
    return _state["quiet"]


def stderr_console() -> Console:
    """Return a rich console that writes to stderr (for status lines and tables)."""
    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


def status(message: str) -> None:
    """Print a one-line status message on stderr unless quiet."""
    if not is_quiet():
        stderr_console().print(message)


def make_progress() -> Progress:
    """Return a rich Progress with bar, count, elapsed and remaining time, on stderr."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr_console(),
        transient=False,
        disable=is_quiet(),
    )


def track(iterable: Iterable[T], *, total: int | None = None, description: str = "working") -> Iterator[T]:
    """Yield from ``iterable`` while drawing a progress bar on stderr (unless quiet)."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    with make_progress() as progress:
        task = progress.add_task(description, total=total)
        for item in iterable:
            yield item
            progress.advance(task)
