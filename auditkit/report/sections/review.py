"""Section 10, clinician review: the reader's verdicts on the saliency maps, as evidence beside the metrics.

A reviewer pages through the explained cases in ``auditkit view`` and records
per case whether the map "looks at the finding", "looks elsewhere" or
"cannot tell"; the viewer exports those verdicts as JSON
(``format: auditkit-review``). ``auditkit report --review review.json`` joins
them with the case records of the explanation step (``explain/cases.json``:
outcome, cohort, subgroups, saliency flags) by case id and reports the
fraction judged "looks elsewhere" among the cases with a definite verdict
(looks at / looks elsewhere; "cannot tell" is counted apart), per outcome, per
cohort and per subgroup, with Wilson score intervals
(:func:`auditkit.stats.proportions.proportion`), and how the reader's verdict
agrees with each automatic saliency flag: the "looks elsewhere" fraction among
flagged and unflagged cases and their difference (Newcombe's hybrid score
interval from the two Wilson intervals; Pearson chi-square test,
:func:`auditkit.stats.proportions.compare_proportions`).
Nothing from results.json is recomputed; the verdicts are the new data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from auditkit.errors import InvalidInputError
from auditkit.fileio import load_json
from auditkit.report.sections.common import Source, not_assessed
from auditkit.results.format import format_p_value
from auditkit.stats.proportions import compare_proportions, proportion, wilson_interval

VERDICTS = ("looks_at_finding", "looks_elsewhere", "cannot_tell")
VERDICT_LABELS = {"looks_at_finding": "looks at the finding", "looks_elsewhere": "looks elsewhere",
                  "cannot_tell": "cannot tell"}  # fmt: skip
FLAG_LABELS = {"shortcut_suspected": "Shortcut suspected", "peak_outside_lesion": "Peak outside the lesion",
               "low_localisation": "Low localisation"}  # fmt: skip
OUTCOMES = ("TP", "FN", "FP", "TN")


def read_review(path: str | Path) -> dict[str, Any]:
    """Return the review document at ``path`` (the viewer's JSON export), checked; InvalidInputError names what is wrong."""
    path = Path(path)
    try:
        document = load_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInputError(f"{path}: no such review file; export it from `auditkit view` (Export verdicts, JSON)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidInputError(f"{path}: not a JSON review file ({error}); export it again from `auditkit view`") from None
    if not isinstance(document, Mapping) or document.get("format") != "auditkit-review":
        raise InvalidInputError(f"{path}: 'format' is not 'auditkit-review'; give the JSON the viewer exports, not the CSV")
    verdicts = document.get("verdicts")
    if not isinstance(verdicts, list):
        raise InvalidInputError(f"{path}: 'verdicts' must be a list of {{id, verdict, note}}")
    for k, item in enumerate(verdicts, start=1):
        if not isinstance(item, Mapping) or not isinstance(item.get("id"), str):
            raise InvalidInputError(f"{path}: verdict {k} has no string 'id'")
        if item.get("verdict") not in (*VERDICTS, None):
            raise InvalidInputError(
                f"{path}: verdict {k} ({item['id']!r}) is {item.get('verdict')!r}; use one of {', '.join(VERDICTS)}"
            )
    return {"path": str(path), **document}


def _rate(elsewhere: Sequence[bool], source: Source) -> dict[str, Any]:
    y = np.asarray(elsewhere, dtype=float)
    if y.size == 0:
        return {"n": "0", "k": "0", "fraction": "n/a"}
    p = proportion(y, level=float(source.ci_level))
    estimate = {"estimate": p.estimate, "ci_low": p.ci_low, "ci_high": p.ci_high}
    return {"n": str(y.size), "k": str(int(y.sum())), "fraction": source.est(estimate)}


def newcombe_difference(k1: int, n1: int, k2: int, n2: int, *, level: float = 0.95) -> tuple[float, float, float]:
    """Return p1 - p2 with Newcombe's hybrid score interval (Newcombe 1998, method 10, from Wilson limits).

    Unlike the Wald interval it stays inside [-1, 1] and does not collapse to a
    point when a proportion is 0 or 1 (a reader who calls every flagged case
    "looks elsewhere").
    """
    p1, p2 = k1 / n1, k2 / n2
    (l1, l2), (u1, u2) = wilson_interval(np.array([k1, k2], float), np.array([n1, n2], float), level=level)
    d = p1 - p2
    return d, d - float(np.hypot(p1 - l1, u2 - p2)), d + float(np.hypot(u1 - p1, p2 - l2))


def _joined(review: Mapping[str, Any], cases: Sequence[Mapping[str, Any]]) -> tuple[list[tuple[Mapping, str]], int]:
    by_id = {str(c.get("id")): c for c in cases}
    rows, unknown = [], 0
    for item in review.get("verdicts", []):
        if not item.get("verdict"):
            continue
        case = by_id.get(item["id"])
        if case is None:
            unknown += 1
            continue
        rows.append((case, item["verdict"]))
    return rows, unknown


def build_review(source: Source, review: Mapping[str, Any] | None, *, results_sha256: str | None = None) -> dict[str, Any]:
    """Return the context of the clinician-review section (``available: False`` without a review)."""
    if review is None:
        return {"available": False, "not_assessed": not_assessed(
            "no reviewer verdicts were given; record them in `auditkit view` and render with `auditkit report --review review.json`")}  # fmt: skip
    from auditkit.viewer.data import load_cases

    try:
        document = load_cases(source.report_dir)
    except Exception as error:
        return {"available": False, "not_assessed": not_assessed(f"the case records cannot be read ({error})")}
    rows, unknown = _joined(review, document["cases"])
    if not rows:
        return {"available": False, "not_assessed": not_assessed(
            f"the review file {review.get('path', '')} names no case of this audit with a verdict")}  # fmt: skip
    counts = {v: sum(1 for _, verdict in rows if verdict == v) for v in VERDICTS}
    definite = [(c, v) for c, v in rows if v != "cannot_tell"]
    tables = _tables(source, rows, definite, document.get("attributes", []))
    agreement = _agreement(source, definite, document.get("methods", {}))
    notes = []
    if unknown:
        notes.append(f"{unknown} verdicts name cases that are not in this audit's case records and are left out.")
    recorded = review.get("results_sha256")
    if recorded and results_sha256 and recorded != results_sha256:
        notes.append("The verdicts were recorded on another results.json (SHA-256 "
                     f"{recorded[:12]}…) than this report's; cases are matched by id.")  # fmt: skip
    return {
        "available": True,
        "not_assessed": "",
        "reviewer": str(review.get("reviewer") or "not named"),
        "exported": str(review.get("exported") or "not recorded"),
        "file": Path(str(review.get("path", "review.json"))).name,
        "n_reviewed": str(len(rows)),
        "n_cases": str(len(document["cases"])),
        "counts": [{"verdict": VERDICT_LABELS[v], "n": str(counts[v])} for v in VERDICTS],
        "tables": tables,
        "agreement": agreement,
        "notes": notes,
        "method_text": (
            f"Fraction of cases judged \u201clooks elsewhere\u201d among those with a definite verdict, with "
            f"{source.ci_label} Wilson score intervals; \u201ccannot tell\u201d is counted apart. Agreement: the same "
            "fraction among cases an automatic flag marks and among the others, their difference with Newcombe's hybrid "
            "score interval and the Pearson chi-square p-value. One reader's verdicts are an opinion, not ground truth; "
            "the cases reviewed may not be a random sample of the audit's."
        ),
    }


def _tables(
    source: Source, rows: list[tuple[Mapping[str, Any], str]], definite: list[tuple[Mapping[str, Any], str]],
    attributes: Sequence[str],
) -> list[dict[str, Any]]:
    """Return the "looks elsewhere" rates by outcome, by cohort and by each attribute."""

    def table(key: Any, values: Sequence[str], label: str) -> dict[str, Any]:
        out = []
        for value in values:
            chosen = [v == "looks_elsewhere" for c, v in definite if key(c) == value]
            if not chosen and not any(key(c) == value for c, _ in rows):
                continue
            unsure = sum(1 for c, v in rows if key(c) == value and v == "cannot_tell")
            out.append({"group": str(value), "cannot_tell": str(unsure), **_rate(chosen, source)})
        return {"title": label, "rows": out}

    tables = [table(lambda c: c.get("outcome"), [o for o in OUTCOMES if any(c.get("outcome") == o for c, _ in rows)]
                    or sorted({str(c.get("outcome")) for c, _ in rows}), "By outcome at the operating point")]  # fmt: skip
    cohorts = sorted({str(c.get("cohort")) for c, _ in rows})
    cohort_table = table(lambda c: str(c.get("cohort")), cohorts, "By cohort (internal test, external sites)")
    for row in cohort_table["rows"]:
        row["group"] = source.cohort_label(row["group"])
    tables.append(cohort_table)
    for attribute in attributes:
        values = sorted({str((c.get("attributes") or {}).get(attribute)) for c, _ in rows})
        tables.append(table(lambda c, a=attribute: str((c.get("attributes") or {}).get(a)), values, f"By {attribute}"))
    return tables


def _agreement(
    source: Source, definite: list[tuple[Mapping[str, Any], str]], methods: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Return, per automatic flag and method, the "looks elsewhere" rate among flagged and other cases."""
    agreement = []
    for flag, flag_label in FLAG_LABELS.items():
        for method in methods:
            flagged = [(((c.get("metrics") or {}).get(method) or {}).get("flags") or {}).get(flag) for c, _ in definite]
            if not any(f is not None for f in flagged):
                continue
            y = np.array([v == "looks_elsewhere" for _, v in definite], dtype=float)
            mask = np.array([bool(f) for f in flagged])
            on, off = _rate(y[mask], source), _rate(y[~mask], source)
            row = {"flag": flag_label, "method": str(methods[method].get("label", method)), "flagged": on, "unflagged": off,
                   "difference": "n/a", "p_value": "n/a"}  # fmt: skip
            if mask.any() and (~mask).any():
                d, low, high = newcombe_difference(int(y[mask].sum()), int(mask.sum()), int(y[~mask].sum()),
                                                   int((~mask).sum()), level=float(source.ci_level))  # fmt: skip
                row["difference"] = source.est({"estimate": d, "ci_low": low, "ci_high": high})
                row["p_value"] = format_p_value(compare_proportions(y[mask], y[~mask]).p_value)
            agreement.append(row)
    return agreement
