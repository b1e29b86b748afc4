"""Metric paths in a results document: wildcard expansion, the multi-label prefix, hints.

A policy rule names a dotted path with ``*`` segments
(``fairness.*.gap.fnr``); :func:`expand_pattern` turns it into the concrete
paths present in a results.json document, and :func:`deepest_hint` says,
where a path matches nothing, which keys the document has at the point it
stops matching.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from auditkit.gate.policy import WILDCARD


def expand_pattern(results: Mapping[str, Any], pattern: str) -> list[tuple[str, Any]]:
    """Return ``[(concrete_path, value), ...]`` for every match of ``pattern`` in document order.

    Each ``*`` segment matches every key of a mapping (or index of a list);
    literal segments resolve greedily like :func:`auditkit.results.get_path`,
    so keys that contain dots (a group named ``1.5``) still match. A branch
    where the rest of the path does not exist is not a match.
    """
    return [(".".join(keys), value) for keys, value in _expand(results, pattern.split("."), [])]


def _expand(node: Any, parts: list[str], prefix: list[str]) -> list[tuple[list[str], Any]]:
    if not parts:
        return [(prefix, node)]
    if parts[0] == WILDCARD:
        if isinstance(node, Mapping):
            items = [(str(key), value) for key, value in node.items()]
        elif isinstance(node, list):
            items = [(str(index), value) for index, value in enumerate(node)]
        else:
            return []
        found: list[tuple[list[str], Any]] = []
        for key, value in items:
            found.extend(_expand(value, parts[1:], [*prefix, key]))
        return found
    if isinstance(node, Mapping):
        literal = parts.index(WILDCARD) if WILDCARD in parts else len(parts)
        # Widest key first, falling back to narrower ones (as get_path does).
        for width in range(literal, 0, -1):
            key = ".".join(parts[:width])
            if key in node:
                found = _expand(node[key], parts[width:], [*prefix, key])
                if found:
                    return found
        return []
    if isinstance(node, list) and parts[0].isdigit() and int(parts[0]) < len(node):
        return _expand(node[int(parts[0])], parts[1:], [*prefix, parts[0]])
    return []


def per_finding(data: Mapping[str, Any], pattern: str) -> str:
    """Return ``pattern`` under ``findings.*.`` when a multi-label document has no such top-level section.

    A multi-label audit nests the single-label sections per finding, so the
    default policy's ``discrimination.test.auroc`` judges every finding's.
    """
    run = data.get("run") if isinstance(data.get("run"), Mapping) else {}
    if run.get("task") != "multilabel" or pattern.split(".", 1)[0] in data:
        return pattern
    return f"findings.*.{pattern}"


def _metric_hint(pattern: str) -> str:
    """Return "'x' is not a registered metric (did you mean 'y'?)" for an unknown last segment, else ''."""
    import difflib

    from auditkit.stats import metrics as metric_registry

    last = pattern.split(".")[-1]
    if last == WILDCARD or metric_registry.get(last) is not None:
        return ""
    known = [m.key for m in metric_registry.all_metrics()]
    close = difflib.get_close_matches(last, known, n=1, cutoff=0.75)
    if not close:
        return ""
    return f"; '{last}' is not a registered metric, did you mean '{close[0]}'?"


def deepest_hint(results: Mapping[str, Any], pattern: str) -> str:
    """Return a hint naming the keys available where ``pattern`` stops matching (and a metric-name hint)."""
    return _available_keys(results, pattern) + _metric_hint(pattern)


def _available_keys(results: Mapping[str, Any], pattern: str) -> str:
    parts = pattern.split(".")
    for cut in range(len(parts) - 1, -1, -1):
        prefix = ".".join(parts[:cut])
        nodes = _expand(results, parts[:cut], []) if cut else [([], results)]
        mappings = [value for _, value in nodes if isinstance(value, Mapping)]
        if mappings:
            keys = sorted({str(key) for node in mappings for key in node})
            shown = ", ".join(keys[:12]) + (", ..." if len(keys) > 12 else "")
            where = f"'{prefix}'" if prefix else "the top level"
            return f"{where} has: {shown or '(nothing)'}"
        if cut and nodes:
            return f"'{prefix}' is not an object"
    return ""
