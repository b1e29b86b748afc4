"""Run the hostile corpus (tests/corpus) and print its tally and the time it takes.

    python benchmarks/hostile_corpus.py

Prints: cases / clean exit 2 / expected success / tracebacks / payloads run /
inputs lost / other failures, per family and in total, plus the wall time of
building the corpus and of running it in-process (the figures recorded in
benchmarks/RESULTS.md). Exits 1 if any case is a traceback, a payload that
ran, an input lost or another failure.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "corpus"))

from generate import build_corpus  # noqa: E402
from test_corpus import _case_folder, _run_case, _snapshot  # noqa: E402


def main() -> int:
    """Build and run the corpus; print the tally; return 1 when a goal of zero is missed."""
    with tempfile.TemporaryDirectory(prefix="auditkit-corpus-") as folder:
        start = time.perf_counter()
        cases = build_corpus(folder)
        built = time.perf_counter() - start
        per_family: dict[str, Counter] = {}
        start = time.perf_counter()
        for case in cases:
            tally = per_family.setdefault(case.family, Counter())
            own = _case_folder(case)
            before = _snapshot(own) if own is not None else {}
            code, err = _run_case(case)
            lines = err.strip().splitlines()
            tally["cases"] += 1
            if code in (3, -1) or "Traceback" in err:
                tally["tracebacks"] += 1
            elif code not in case.expect:
                tally["other failures"] += 1
            elif code == 2 and len(lines) == 1 and (not case.fragment or case.fragment in lines[0]):
                tally["clean exit 2"] += 1
            elif code == 2:
                tally["other failures"] += 1
            else:
                tally["expected success"] += 1
            if case.marker and Path(case.marker).exists():
                tally["payloads run"] += 1
            if own is not None and any(_snapshot(own).get(k) != v for k, v in before.items()):
                tally["inputs lost"] += 1
        ran = time.perf_counter() - start
    columns = ["cases", "clean exit 2", "expected success", "tracebacks", "payloads run", "inputs lost", "other failures"]
    total = sum(per_family.values(), Counter())
    print(f"{'family':<12} " + " ".join(f"{c:>16}" for c in columns))
    for family, tally in [*per_family.items(), ("TOTAL", total)]:
        print(f"{family:<12} " + " ".join(f"{tally[c]:>16}" for c in columns))
    print(f"built in {built:.1f} s, ran {total['cases']} cases in {ran:.1f} s ({1000 * ran / total['cases']:.0f} ms/case)")
    bad = total["tracebacks"] + total["payloads run"] + total["inputs lost"] + total["other failures"]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
