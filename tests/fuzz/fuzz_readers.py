"""Coverage-guided fuzzing (atheris) of the readers a received file reaches: ``make fuzz``.

    python tests/fuzz/fuzz_readers.py TARGET [libFuzzer flags, e.g. -max_total_time=60]

TARGET is ``policy``, ``config``, ``results`` or ``manifest``. Each input is
handed to that reader; it must return its object or raise an
``AuditkitError`` with a one-line message, so any other exception (or a
message with a newline) is a crash that libFuzzer reports with the input
that caused it. Not part of ``make test``: it needs the optional ``fuzz``
extra (``pip install -e '.[fuzz]'``) and runs for as long as it is told.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["auditkit"]):  # only our code: fast start, useful coverage
    from auditkit.audit.config import build_settings, read_config_file
    from auditkit.data.manifest import read_manifest
    from auditkit.errors import AuditkitError
    from auditkit.gate.policy import parse_policy
    from auditkit.results import read_results_file

_FOLDER = Path(tempfile.mkdtemp(prefix="auditkit-fuzz-"))
(_FOLDER / "img").mkdir()
(_FOLDER / "img" / "0.png").write_bytes(
    bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010800000000")
    + bytes.fromhex("3a7e9b550000000a49444154789c6360000000020001e221bc330000000049454e44ae426082")
)


def _policy(data: bytes) -> None:
    parse_policy(data, source="policy.yaml")


def _config(data: bytes) -> None:
    path = _FOLDER / "audit.yaml"
    path.write_bytes(data)
    read_config_file(path)
    build_settings(config_path=path)


def _results(data: bytes) -> None:
    path = _FOLDER / "results.json"
    path.write_bytes(data)
    read_results_file(path)


def _manifest(data: bytes) -> None:
    path = _FOLDER / "m.csv"
    path.write_bytes(b"image,label,id,patient_id,split,bbox_x0,bbox_y0,bbox_x1,bbox_y1\n" + data
                     if data[:1] == b"\x00" else data)
    read_manifest(path)


TARGETS = {"policy": _policy, "config": _config, "results": _results, "manifest": _manifest}


def main() -> None:
    """Fuzz the reader named by the first argument until libFuzzer's limits stop it."""
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        print(f"usage: {sys.argv[0]} {{{','.join(TARGETS)}}} [libFuzzer flags]", file=sys.stderr)
        raise SystemExit(2)
    target = TARGETS[sys.argv.pop(1)]

    def one_input(data: bytes) -> None:
        try:
            target(data)
        except AuditkitError as exc:
            if "\n" in str(exc):
                raise AssertionError(f"a multi-line error: {str(exc)[:200]!r}") from None

    os.environ.setdefault("AUDITKIT_FUZZ", "1")
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
