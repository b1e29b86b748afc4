"""What the viewer page shows, read from a report folder: results.json and the explanation step's cases.json.

Nothing is recomputed: the payload is the case records the saliency step
wrote (``explain/cases.json``, :mod:`auditkit.explain.cases`) with the
report's identity from results.json. Strings stay strings here; the page puts
them into the document only as text (never as markup), and
:func:`json_for_script` makes the JSON safe inside a ``<script>`` element.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from auditkit.errors import InvalidInputError, ResultsError
from auditkit.fileio import load_json, sha256_bytes

CASES_FILE = "explain/cases.json"
READABLE_CASES_VERSIONS = ("1",)


def report_folder(path: str | Path) -> Path:
    """Return the report folder of ``path`` (the folder itself, or the folder of a results.json given)."""
    folder = Path(path)
    if folder.is_file() and folder.name == "results.json":
        folder = folder.parent
    if not folder.is_dir():
        raise InvalidInputError(f"{path}: no such report folder; give the folder that holds results.json")
    if not (folder / "results.json").is_file():
        raise InvalidInputError(f"{folder}: no results.json in this folder; run `auditkit audit --out {folder}` first")
    return folder.resolve()


def _cases_pointer(folder: Path, results: Any = None) -> tuple[Path, str | None]:
    """Return (path, expected SHA-256) of the case records results.json names (the fixed path, None, if it names none).

    An audit by this auditkit records ``artifacts.cases`` (path and SHA-256);
    an older results.json has none, and its records are read at the fixed
    path unverified. The recorded path must stay inside the report folder.
    ``results``: results.json already parsed by the caller (read here if None).
    """
    if results is None:
        try:
            results = load_json((folder / "results.json").read_bytes())
        except (OSError, json.JSONDecodeError):
            return folder / CASES_FILE, None
    artifacts = results.get("artifacts") if isinstance(results, Mapping) else None
    entry = artifacts.get("cases") if isinstance(artifacts, Mapping) else None
    if not isinstance(entry, Mapping):
        return folder / CASES_FILE, None
    relative, sha = entry.get("path"), entry.get("sha256")
    path = folder / str(relative)
    try:
        inside = path.resolve().is_relative_to(folder.resolve())
    except (OSError, ValueError):  # a NUL byte, a symlink loop: not a file inside the folder either
        inside = False
    if not isinstance(relative, str) or Path(relative).is_absolute() or not inside:
        raise ResultsError(
            f"{folder / 'results.json'}: artifacts.cases.path {relative!r} is not a file inside the report folder; "
            "re-run the audit"
        )
    return path, sha if isinstance(sha, str) else None


def load_cases(folder: Path, results: Any = None) -> dict[str, Any]:
    """Return the parsed case records results.json names (ResultsError when missing, unreadable or changed since).

    ``results``: the folder's results.json when the caller has parsed it already.
    """
    path, sha = _cases_pointer(folder, results)
    if not path.is_file():
        raise ResultsError(
            f"{path}: no case records; this audit was run without explanations or by an older auditkit "
            "(re-run `auditkit audit` with --model so the saliency step writes them)"
        )
    try:
        raw = path.read_bytes()
        document = load_json(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ResultsError(f"{path}: cannot be read as JSON ({error}); re-run the audit") from None
    if sha is not None and sha256_bytes(raw) != sha:
        raise ResultsError(
            f"{path}: these case records are not the ones {folder / 'results.json'} recorded (SHA-256 differs: "
            "another run or an edit changed them); re-run the audit so records and results match"
        )
    version = document.get("schema_version") if isinstance(document, Mapping) else None
    if version not in READABLE_CASES_VERSIONS:
        raise ResultsError(
            f"{path}: schema_version is {version!r}, this auditkit reads {', '.join(READABLE_CASES_VERSIONS)}; "
            "re-run the audit or upgrade auditkit"
        )
    if not isinstance(document.get("cases"), list):
        raise ResultsError(f"{path}: 'cases' is not a list; re-run the audit")
    return document


def build_payload(folder: str | Path) -> dict[str, Any]:
    """Return the data the viewer page reads: report identity, methods, attributes, flag rules and cases."""
    folder = report_folder(folder)
    raw = (folder / "results.json").read_bytes()
    try:
        results = load_json(raw)
    except json.JSONDecodeError as error:
        raise ResultsError(f"{folder / 'results.json'}: not valid JSON ({error})") from None
    cases = load_cases(folder, results)
    model = results.get("model") if isinstance(results.get("model"), Mapping) else {}
    calibration = model.get("calibration") if isinstance(model.get("calibration"), Mapping) else None
    attributes: dict[str, list[str]] = {}
    for name in cases.get("attributes", []):
        values = {str(c["attributes"].get(name)) for c in cases["cases"] if c.get("attributes", {}).get(name) is not None}
        attributes[str(name)] = sorted(values)
    cohorts = sorted({str(c.get("cohort")) for c in cases["cases"] if c.get("cohort") is not None})
    sites = sorted({str(c.get("site")) for c in cases["cases"] if c.get("site") is not None})
    return {
        "report": {
            "folder": folder.name,
            "results_sha256": sha256_bytes(raw),
            "created": results.get("created"),
            "model": {"name": model.get("name"), "arch": model.get("arch"), "sha256": model.get("sha256")},
            "calibrated": calibration is not None,
            "calibration": None if calibration is None else calibration.get("method"),
        },
        "classes": cases.get("classes", []),
        "positive_class": cases.get("positive_class"),
        "operating_point": cases.get("operating_point", {}),
        "methods": cases.get("methods", {}),
        "flag_rules": cases.get("flag_rules", {}),
        "attributes": attributes,
        "cohorts": cohorts,
        "sites": sites,
        "cases": [_case(c) for c in cases["cases"]],
    }


def _case(case: Mapping[str, Any]) -> dict[str, Any]:
    """Return the fields of one case record the page uses (the source path stays out of the page)."""
    keep = ("id", "stem", "cohort", "split", "site", "outcome", "label", "predicted", "score", "error",
            "attributes", "image", "shape", "mask", "maps", "metrics", "flags")  # fmt: skip
    out = {k: case.get(k) for k in keep}
    volume = case.get("volume")
    if isinstance(volume, Mapping):  # a volume: every slice's files, opened on the representative slice
        keep = ("depth", "slice", "slice_shape", "sprites", "lesion_slices", "metrics_of")
        out["volume"] = {k: volume.get(k) for k in keep}
    return out


def image_paths(payload: Mapping[str, Any]) -> list[str]:
    """Return every file (relative to the report folder) the page shows, in case order."""
    out: list[str] = []
    for case in payload["cases"]:
        out.append(case["image"])
        out.extend((case.get("maps") or {}).values())
        if case.get("mask"):
            out.append(case["mask"])
        sprites = (case.get("volume") or {}).get("sprites") or {}
        if sprites:
            out.append(sprites["image"])
            out.extend((sprites.get("maps") or {}).values())
            if sprites.get("mask"):
                out.append(sprites["mask"])
    return out


def json_for_script(value: Any) -> str:
    """Return ``value`` as JSON that cannot end or break out of an HTML ``<script>`` element.

    ``<``, ``>`` and ``&`` are written as ``\\u003c``, ``\\u003e``, ``\\u0026``
    (so ``</script>`` or ``<!--`` in a site name stays data), and the line
    separators U+2028/U+2029 are escaped for older JavaScript parsers.
    """
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):  # fmt: skip
        text = text.replace(char, escaped)
    return text
