"""The hidden slices' example images, copied into the audit folder so the report can show them.

The report reads only inside the audit folder; :func:`write_slice_examples`
writes each slice's most typical members (grey thumbnails) there and records
their relative paths in results.json (``clinical.slices.test.records[].representative_images``).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from auditkit.predictions_table import PredictionsTable

#: folder (inside the audit folder) of the slices' example images, and their size in pixels.
SLICE_EXAMPLES_DIR = "clinical/slices"
SLICE_EXAMPLE_PX = 128


def write_slice_examples(
    clinical: dict[str, Any], table: PredictionsTable, out_dir: Path, *, data_root: Path | None,
    allow_outside_root: bool = False,
) -> None:  # fmt: skip
    """Write each slice's representative images as PNGs into the audit folder; record their relative paths.

    The report may read only inside the audit folder, so the examples are
    copied there (grey, at most 128 px) as ``clinical/slices/<slice>_<k>.png``
    under ``representative_images``; nothing happens without an ``image`` column.
    """
    block = (clinical.get("slices") or {}).get("test")
    if not block or "image" not in table.frame.columns:
        return
    from PIL import Image

    from auditkit.data.paths import data_root_or, resolve_paths
    from auditkit.data.readers import read_image
    from auditkit.data.transforms import to_luma
    from auditkit.fileio import atomic_write_bytes

    by_id = dict(zip(table.frame["id"].astype(str), table.frame["image"], strict=True))
    root = data_root_or(data_root, table.path.parent)
    folder = out_dir / SLICE_EXAMPLES_DIR
    for rec in block["records"]:
        written = []
        ids = rec.get("representative_ids") or []
        paths = resolve_paths([by_id.get(i) for i in ids], root=root, allow_outside_root=allow_outside_root,
                              where=lambda k, ids=ids: f"{table.path} image of id {ids[k]!r}")  # fmt: skip
        for k, path in enumerate(paths):
            if path is None:
                continue
            img = np.asarray(read_image(path), dtype=np.float32)
            img = to_luma(img[..., :3]) if img.ndim == 3 else img
            pil = Image.fromarray((np.clip(img, 0, 1) * 255).round().astype(np.uint8))
            pil.thumbnail((SLICE_EXAMPLE_PX, SLICE_EXAMPLE_PX))
            buffer = io.BytesIO()
            pil.save(buffer, format="PNG")
            name = f"{SLICE_EXAMPLES_DIR}/slice{rec['slice']}_{k}.png"
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(out_dir / name, buffer.getvalue())
            written.append(name)
        rec["representative_images"] = written
