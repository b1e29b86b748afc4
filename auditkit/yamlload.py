"""One bounded YAML loader for every YAML file a user gives (gate policies, audit configs).

A YAML file received with a model is untrusted input. ``yaml.safe_load``
constructs no Python objects, but it still accepts a 392-byte "billion laughs"
document whose aliases expand to gigabytes once anything prints it, nesting
deep enough to exhaust the interpreter's stack, integers beyond Python's
digit limit, impossible dates and unhashable keys (each a traceback). This
loader bounds the document before anything is built from it (its size, how
many aliases it uses, how deep it nests), refuses a key repeated in one
mapping instead of keeping the last, and turns every failure into one
sentence naming the file and line, never echoing a whole value.
"""

from __future__ import annotations

from typing import Any

import yaml

from auditkit.errors import AuditkitError

MAX_BYTES = 1 << 20
"""A policy or config is a few kilobytes; a megabyte is not a hand-written file."""
MAX_ALIASES = 64
MAX_DEPTH = 64


class _BoundedLoader(yaml.SafeLoader):
    """A SafeLoader that counts aliases and nesting while composing, before anything is constructed."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise _Refused(f"more than {MAX_ALIASES} aliases (*name)", self.peek_event().start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(f"nesting deeper than {MAX_DEPTH} levels", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _Refused(Exception):
    def __init__(self, problem: str, mark: Any, *, syntax: bool = False) -> None:
        super().__init__(problem)
        self.problem = problem
        self.mark = mark
        self.syntax = syntax


def _construct_unique_mapping(loader: _BoundedLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            repeated = key in seen
        except TypeError:  # a list or mapping as a key
            raise _Refused(
                "a mapping key is a list or mapping, not a name", key_node.start_mark, syntax=True
            ) from None
        if repeated:
            raise _Refused(f"key {_short(key)} appears twice in one mapping", key_node.start_mark, syntax=True)
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_BoundedLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def _line(mark: Any) -> str:
    return f" at line {mark.line + 1}" if mark is not None else ""


def load_yaml(
    data: bytes | str,
    *,
    source: str,
    error: type[AuditkitError],
    what: str = "the file",
) -> Any:
    """Return the plain data (dicts, lists, scalars) of the YAML ``data``; ``error(...)`` names ``source`` otherwise.

    Refused, each with one sentence: more than :data:`MAX_BYTES`, not UTF-8,
    invalid syntax, more than :data:`MAX_ALIASES` aliases, nesting deeper than
    :data:`MAX_DEPTH`, a repeated or unhashable key, a scalar that cannot be
    built (an impossible date, an integer beyond Python's digit limit), a
    document that is not one document.
    """
    size = len(data)
    if size > MAX_BYTES:
        raise error(f"{source}: {size} bytes, more than the {MAX_BYTES} a YAML {what} may have; give the real file")
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise error(f"{source}: not UTF-8 text; save {what} as UTF-8 YAML") from None
    else:
        text = data
    if "\x00" in text:
        raise error(f"{source}: contains a NUL byte, which YAML text cannot; save {what} as UTF-8 YAML")
    loader = None
    try:
        loader = _BoundedLoader(text)  # the reader refuses control characters already here
        return loader.get_single_data()
    except _Refused as exc:
        if exc.syntax:
            raise error(f"{source}: invalid YAML{_line(exc.mark)}: {exc.problem}; fix the syntax") from None
        raise error(f"{source}: refused{_line(exc.mark)}: {exc.problem}; simplify {what}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
        problem = problem if len(problem) <= 120 else f"{problem[:119]}…"
        raise error(f"{source}: invalid YAML{_line(mark)}: {problem}; fix the syntax") from None
    except (ValueError, TypeError, OverflowError) as exc:  # an impossible date, an int beyond the digit limit
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        reason = reason if len(reason) <= 80 else f"{reason[:79]}…"
        raise error(f"{source}: a value cannot be read ({reason}); fix {what}") from None
    except RecursionError:  # pragma: no cover - MAX_DEPTH stops nesting long before the stack
        raise error(f"{source}: nests too deeply; simplify {what}") from None
    finally:
        if loader is not None:
            loader.dispose()
