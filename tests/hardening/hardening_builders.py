"""Tiny real inputs for the hardening tests: a PNG manifest, an untrained checkpoint, a TorchScript payload."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

SIZE = 16


def write_manifest(folder: Path, n: int = 12, *, name: str = "manifest.csv") -> Path:
    """Write ``n`` random 16x16 grayscale PNGs and a manifest naming them; return the manifest path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "img").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        rel = f"img/{i:03d}.png"
        Image.fromarray(rng.integers(0, 255, (SIZE, SIZE), dtype=np.uint8)).save(folder / rel)
        rows.append(
            {
                "image": rel,
                "label": i % 2,
                "patient_id": f"p{i:03d}",
                "site": "A" if i < n // 2 else "B",
                "split": "test",
                "sex": "FM"[i % 2],
            }
        )
    path = folder / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def write_checkpoint(folder: Path) -> Path:
    """Write an untrained smallcnn checkpoint (1 channel, 16x16, classes normal/lesion); return its folder."""
    import torch

    from auditkit.nets import save_checkpoint
    from auditkit.nets.smallcnn import SmallCNN

    torch.manual_seed(0)
    save_checkpoint(folder, SmallCNN(1, 2).eval(), _meta("smallcnn"))
    return folder


def _meta(arch: str) -> dict:
    from auditkit.data.transforms import Preprocess

    return {
        "name": "tiny",
        "arch": arch,
        "classes": {"classes": ["normal", "lesion"], "positive_class": "lesion"},
        "input_size": [SIZE, SIZE],
        "in_channels": 1,
        "preprocess": Preprocess(input_size=(SIZE, SIZE), in_channels=1, mean=(0.5,), std=(0.25,)).to_dict(),
        "target_layer": "features.3",
    }


def write_torchscript_payload(folder: Path, marker: Path) -> Path:
    """Write a TorchScript checkpoint whose forward creates ``marker`` via aten::from_file; return its folder.

    The payload is real: ``tests/hardening/test_model_code.py`` runs it once with
    ``--trust-model-code`` and sees the marker appear, so its absence elsewhere proves it did not run.
    """
    import warnings

    import torch
    from torch import nn

    from auditkit.nets import save_checkpoint

    target = str(marker)

    class Payload(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU())
            self.head = nn.Linear(4, 2)
            self.target = target

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            written = torch.from_file(self.target, shared=True, size=8, dtype=torch.uint8)
            written.fill_(65)
            # the output depends on the write, so TorchScript cannot drop it as dead code
            return self.head(self.features(x).mean(dim=(2, 3))) + written[0].float() * 0.0

    torch.manual_seed(0)
    eager = Payload().eval()
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder.parent / f"{folder.name}.source.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(eager).save(str(archive))
    meta = {**_meta("torchscript"), "torchscript_source": str(archive), "target_layer": "features.3"}
    save_checkpoint(folder, eager, meta)
    archive.unlink()
    return folder
