"""Print the hostile corpus's tally at the end of a run that included it."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from generate import TALLY


def pytest_terminal_summary(terminalreporter) -> None:
    if not TALLY["cases"]:
        return
    terminalreporter.write_line(
        f"hostile corpus: {TALLY['cases']} cases / {TALLY['clean exit 2']} clean exit 2 / "
        f"{TALLY['expected success']} expected success / {TALLY['tracebacks']} tracebacks / "
        f"{TALLY['payloads run']} payloads run / {TALLY['inputs lost']} inputs lost / "
        f"{TALLY['other failures']} other failures"
    )
    target = os.environ.get("AUDITKIT_CORPUS_TALLY")
    if target:  # benchmarks/ records it
        Path(target).write_text(json.dumps(dict(TALLY), indent=1) + "\n")
