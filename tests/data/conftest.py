"""Fixtures of the data-layer tests; helper functions live in data_helpers.py."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

# --import-mode=importlib keeps test folders off sys.path; the helper module is named uniquely.
sys.path.insert(0, str(Path(__file__).parent))

from data_helpers import write_png


@pytest.fixture
def small_dataset(tmp_path: Path) -> Path:
    """Return a folder with six random 8x10 PNGs under img/ and two 8x10 masks under masks/."""
    rng = np.random.default_rng(0)
    for i in range(6):
        write_png(tmp_path / "img" / f"{i}.png", rng.integers(0, 256, (8, 10), dtype=np.uint8))
    mask = np.zeros((8, 10), dtype=np.uint8)
    mask[2:5, 3:7] = 255
    write_png(tmp_path / "masks" / "1.png", mask)
    write_png(tmp_path / "masks" / "3.png", mask)
    return tmp_path
