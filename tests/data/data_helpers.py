"""Helpers of the data-layer tests (named uniquely: test folders are not packages)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_png(path: Path, array: np.ndarray) -> Path:
    """Write an 8-bit (uint8) or 16-bit (uint16, grayscale) PNG with Pillow; return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    """Write a CSV manifest from a header line and row lines; return its path."""
    path.write_text(header + "\n" + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path
