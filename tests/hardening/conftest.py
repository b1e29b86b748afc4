"""Fixtures of the hardening tests; builders of tiny real inputs live in hardening_builders.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# --import-mode=importlib keeps test folders off sys.path; the helper module is named uniquely.
sys.path.insert(0, str(Path(__file__).parent))

from hardening_builders import write_checkpoint, write_manifest


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """An untrained smallcnn checkpoint (16x16, one channel); copy it before changing it."""
    return write_checkpoint(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def tiny_data(tmp_path) -> Path:
    """A fresh 12-image PNG manifest in the test's tmp_path."""
    return write_manifest(tmp_path / "data")
