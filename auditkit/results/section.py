"""Typed, frozen sections of results.json: what a section builder returns, and its ``to_dict``.

A section is a ``@dataclass(frozen=True)`` subclass of :class:`Section`. Its
fields are its results.json keys, in results.json's order; ``to_dict()``
returns the dict that results.json holds (Estimates kept as
:class:`~auditkit.results.Estimate` objects, which
:func:`auditkit.fileio.to_jsonable` serialises). Mapping fields are stored
read-only (``MappingProxyType``) and lists as tuples, so a built section
cannot change under a later step: an adjusted copy is a new section
(``dataclasses.replace``).

Class-level declarations shape ``to_dict``:

* ``_OPTIONAL``: keys left out of the dict when their value is None (a key
  results.json has only in some cases);
* ``_SPREAD``: mapping fields whose items are written at the section's top
  level (e.g. a block's metric Estimates beside its other keys);
* a field declared with ``metadata={"json": False}`` (e.g. ``caveats``, the
  top-level warnings the section raised) is not written at all.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar


def plain(value: Any) -> Any:
    """Return ``value`` with every Section as its dict, every mapping as a dict and every tuple as a list."""
    if isinstance(value, Section):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def frozen_mapping(value: Mapping[str, Any]) -> Mapping[str, Any]:
    """Return a read-only copy of ``value`` (a mapping proxy over a new dict)."""
    return MappingProxyType(dict(value))


def caveat_field() -> Any:
    """Return the dataclass field of a section's caveats (never written into the section itself)."""
    return dataclasses.field(default=(), metadata={"json": False}, compare=False)


@dataclass(frozen=True)
class Section:
    """Base of the frozen results.json sections (see the module docstring)."""

    _OPTIONAL: ClassVar[frozenset[str]] = frozenset()
    _SPREAD: ClassVar[frozenset[str]] = frozenset()

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Mapping) and not isinstance(value, MappingProxyType):
                object.__setattr__(self, f.name, MappingProxyType(dict(value)))
            elif isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))

    def _items(self) -> Iterator[tuple[str, Any]]:
        for f in dataclasses.fields(self):
            if not f.metadata.get("json", True):
                continue
            value = getattr(self, f.name)
            if value is None and f.name in self._OPTIONAL:
                continue
            if f.name in self._SPREAD:
                yield from (value or {}).items()
            else:
                yield f.name, value

    def to_dict(self) -> dict[str, Any]:
        """Return the section as results.json holds it (Estimates as Estimate objects)."""
        return {key: plain(value) for key, value in self._items()}


@dataclass(frozen=True)
class Caveat(Section):
    """One entry of results.json's top-level ``warnings``: a code, the message and where it applies."""

    code: str
    message: str
    where: str | None = None
