"""The statistics engine reads manifests without torch: the torch-free modules must not import it."""

from __future__ import annotations

import subprocess
import sys


def test_manifest_splits_readers_and_phantom_do_not_import_torch():
    code = (
        "import sys\n"
        "import auditkit.data\n"
        "from auditkit.data import read_manifest, assign_splits, read_image, generate_phantom\n"
        "import auditkit.data.dicom, auditkit.data.paths\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_lazy_exports_resolve_to_their_modules():
    import auditkit.data as data
    from auditkit.data.dataset import ImageDataset
    from auditkit.data.transforms import Preprocess

    assert data.Preprocess is Preprocess and data.ImageDataset is ImageDataset
    assert set(data.__all__) >= {"read_manifest", "assign_splits", "generate_phantom", "make_loader"}
