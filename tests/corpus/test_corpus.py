"""Every hostile case of the corpus ends as expected: one clear line (exit 2), no traceback, no payload, no input lost.

The corpus (``tests/corpus/generate.py``) is built once per session in a
temporary folder; each case runs in-process through ``auditkit.cli.run`` with
its stderr captured. The oracle of "clean" is the CLI contract of
DESIGN.md (exit 2 and exactly one ``auditkit: error:`` line); a payload's
marker file (which the payload creates when it runs, shown by
``tests/hardening/test_model_code.py`` for the TorchScript one) must not
exist; every file of the case's folder not named ``out*`` must keep its
bytes. The tally is printed at the end of the run.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from generate import FAMILIES, TALLY, Case, build_corpus

from auditkit.cli import run

FAMILY_NAMES = [f.__name__.removesuffix("_cases") for f in FAMILIES]


class _Hang(BaseException):
    """A case ran past its alarm: a hang is a failure, never an exit code."""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> list[Case]:
    return build_corpus(tmp_path_factory.mktemp("corpus"))


def _snapshot(folder: Path) -> dict[str, str]:
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if rel.parts[0].startswith("out") or path.is_symlink() or not path.is_file():
            continue
        out[str(rel)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _run_case(case: Case) -> tuple[int, str]:
    saved_env = {k: os.environ.get(k) for k in case.env}
    os.environ.update(case.env)
    if case.sys_path:
        sys.path.insert(0, case.sys_path)
    err, out = io.StringIO(), io.StringIO()

    def alarm(signum, frame):
        raise _Hang

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(60)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = run(case.argv)
    except _Hang:
        code = -1
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if case.sys_path:
            sys.path.remove(case.sys_path)
            sys.modules.pop("corpus_payload_nets", None)
    return code, err.getvalue()


def test_corpus_is_large_and_covers_every_entry_point(corpus):
    assert len(corpus) >= 300
    assert {case.family for case in corpus} >= set(FAMILY_NAMES)
    assert len({case.id for case in corpus}) == len(corpus)
    assert sum(case.marker is not None for case in corpus) >= 8  # pickles, TorchScript, YAML tags, a module


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_every_hostile_case_ends_as_expected(corpus, family):
    failures = []
    for case in (c for c in corpus if c.family == family):
        own = _case_folder(case)
        before = _snapshot(own) if own is not None else {}
        code, err = _run_case(case)
        lines = err.strip().splitlines()
        TALLY["cases"] += 1
        problems = []
        if code == 3 or "Traceback" in err or code == -1:
            TALLY["tracebacks"] += 1
            problems.append(f"exit {code} with a traceback or hang: {err.strip()[-300:]}")
        elif code not in case.expect:
            problems.append(f"exit {code}, expected {case.expect}: {err.strip()[-300:]}")
        elif code == 2:
            if len(lines) != 1 or not lines[0].startswith("auditkit: error: "):
                problems.append(f"exit 2 but stderr is {len(lines)} lines: {lines[:3]}")
            elif case.fragment and case.fragment not in lines[0]:
                problems.append(f"the error line lacks {case.fragment!r}: {lines[0][:300]}")
            else:
                TALLY["clean exit 2"] += 1
        else:
            TALLY["expected success"] += 1
        if case.marker and Path(case.marker).exists():
            TALLY["payloads run"] += 1
            problems.append(f"the payload ran: {case.marker} exists")
        if own is not None:
            after = _snapshot(own)
            lost = [name for name, digest in before.items() if after.get(name) != digest]
            if lost:
                TALLY["inputs lost"] += 1
                problems.append(f"inputs changed or removed: {lost[:3]}")
        if problems and not (code == 3 or "Traceback" in err or code == -1):
            TALLY["other failures"] += 1
        if problems:
            failures.append(f"{case.id}: " + "; ".join(problems))
    assert not failures, "\n".join(failures)


def _case_folder(case: Case) -> Path | None:
    marker = case.id.replace("/", "__")
    for arg in case.argv:
        parts = Path(arg.replace("\x00", "")).parts
        if marker in parts:
            return Path(*parts[: parts.index(marker) + 1])
    return None
