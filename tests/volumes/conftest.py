"""Shared set-up of the volume and multi-frame tests; helpers live in dicom_helpers.py and volume_helpers.py."""

from __future__ import annotations

import sys
from pathlib import Path

# --import-mode=importlib keeps test folders off sys.path; the helper modules are named uniquely.
sys.path.insert(0, str(Path(__file__).parent))
