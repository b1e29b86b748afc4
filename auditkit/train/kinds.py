"""Model kinds beyond one label on a 2-D image, behind the same commands: 3-D volumes and multi-label findings.

``auditkit train`` with a 3-D architecture (``smallcnn3d``, ``r3d_18``,
``mc3_18``, ``r2plus1d_18``) trains on a manifest of volumes
(:func:`auditkit.train.volumes.train_volumes`); with ``--labels`` (or a
manifest with ``label_<f>`` columns and no ``label``) it trains a sigmoid
head with BCE (:func:`auditkit.train.multilabel.train_multilabel`).
``auditkit predict`` and ``auditkit audit --model --manifest`` read the
checkpoint's ``task.kind`` and score it with the matching predictor, so the
predictions table (single-label for volumes, ``label_<f>``/``score_<f>`` for
multi-label) goes into the audit as any other table does.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from auditkit.errors import InvalidInputError, OutputExistsError
from auditkit.nets import checkpoint as ckpt

VOLUME, MULTILABEL = "volume", "multilabel"


def parse_volume_size(text: str | None, default: int = 32) -> tuple[int, int, int]:
    """Return ``(D, H, W)`` from ``"32"`` or ``"24x32x32"``; InvalidInputError otherwise."""
    if text is None:
        return (default,) * 3
    parts = text.lower().replace("×", "x").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 3) or min(values, default=0) < 1 or max(values) > 1024:
        raise InvalidInputError(f"--input-size {text!r} of a 3-D model must be N or DxHxW voxels (at most 1024)")
    return (values[0], values[-2 if len(values) == 3 else 0], values[-1])


def parse_window(text: str | None) -> tuple[float, float] | None:
    """Return ``(centre, width)`` from ``"-600,1500"``; None when not given."""
    if text is None:
        return None
    try:
        centre, width = (float(v) for v in text.split(","))
    except ValueError:
        raise InvalidInputError(f"--window {text!r} must be CENTRE,WIDTH in the volume's units, e.g. -600,1500") from None
    if not width > 0:
        raise InvalidInputError(f"--window {text!r}: the width must be positive")
    return (centre, width)


def manifest_is_multilabel(manifest: str | os.PathLike[str]) -> bool:
    """Return whether a CSV manifest has ``label_<f>`` columns and no ``label`` column (header only)."""
    path = Path(manifest)
    if path.suffix.lower() not in (".csv", ".tsv") or not path.is_file():
        return False
    try:
        columns = [str(c) for c in pd.read_csv(path, nrows=0, sep="\t" if path.suffix.lower() == ".tsv" else ",")]
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError):
        return False
    return "label" not in columns and any(c.startswith("label_") and len(c) > 6 for c in columns)


def checkpoint_kind(model_dir: str | os.PathLike[str]) -> str | None:
    """Return ``"volume"`` or ``"multilabel"`` for such a checkpoint folder, None for any other."""
    from auditkit.train.multilabel import is_multilabel_checkpoint
    from auditkit.train.volumes import is_volume_checkpoint

    if Path(model_dir).is_dir() and is_volume_checkpoint(model_dir):
        return VOLUME
    if Path(model_dir).is_dir() and is_multilabel_checkpoint(model_dir):
        return MULTILABEL
    return None


def _refuse_existing(out: Path, force: bool) -> None:
    if (out / ckpt.MODEL_JSON).exists() and not force:
        raise OutputExistsError(f"{out} already holds a checkpoint; pass --force to overwrite it or choose another --out")


def train_other_kind(
    manifest: str | os.PathLike[str],
    *,
    arch: str,
    out: str | os.PathLike[str],
    labels: Sequence[str] | None,
    input_size: str | None,
    window: str | None,
    options: dict[str, Any],
) -> Path | None:
    """Return the checkpoint of a 3-D or multi-label training run, or None when ``arch``/manifest is plain 2-D.

    ``options``: ``epochs``, ``batch_size``, ``lr``, ``seed``,
    ``external_sites``, ``fractions``, ``force``.
    """
    from auditkit.nets.nets3d import ARCHITECTURES_3D

    out = Path(out)
    common = {k: options[k] for k in ("epochs", "batch_size", "lr", "seed", "external_sites")}
    if arch in ARCHITECTURES_3D:
        from auditkit.data.volumes import VolumePreprocess
        from auditkit.train.volumes import train_volumes

        _refuse_existing(out, bool(options.get("force")))
        preprocess = VolumePreprocess(size=parse_volume_size(input_size), window=parse_window(window))
        return train_volumes(manifest, out=out, preprocess=preprocess, arch=arch,
                             fractions=options.get("fractions"), **common)  # fmt: skip
    if labels or manifest_is_multilabel(manifest):
        from auditkit.train.multilabel import train_multilabel

        _refuse_existing(out, bool(options.get("force")))
        size = input_size or "32"
        parts = [int(p) for p in size.lower().split("x")] if size.replace("x", "").isdigit() else []
        if len(parts) not in (1, 2):
            raise InvalidInputError(f"--input-size {input_size!r} must be N or HxW in pixels, e.g. 32 or 64x64")
        return train_multilabel(manifest, out=out, findings=labels or None, arch=arch,
                                input_size=(parts[0], parts[-1]), fractions=options.get("fractions"), **common)  # fmt: skip
    return None


def predict_other_kind(
    model_dir: str | os.PathLike[str],
    manifest: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None,
    batch_size: int | None = None,
    external_sites: Sequence[str] = (),
) -> pd.DataFrame | None:
    """Return (and write to ``out``) the predictions table of a 3-D or multi-label checkpoint; None for any other."""
    from auditkit.predictions_table import write_predictions

    kind = checkpoint_kind(model_dir)
    if kind is None:
        return None
    if kind == VOLUME:
        from auditkit.train.volumes import load_volume_model, predict_volumes

        loaded: Any = load_volume_model(model_dir)
        table = predict_volumes(loaded, manifest, batch_size=batch_size or 8, external_sites=external_sites)
        classes = {"classes": list(loaded.classes.classes), "positive_class": loaded.classes.positive_class}
    else:
        from auditkit.train.multilabel import load_multilabel_model, predict_multilabel

        loaded = load_multilabel_model(model_dir)
        table = predict_multilabel(loaded, manifest, batch_size=batch_size or 64, external_sites=external_sites)
        classes = {}
    if out is not None:
        metadata = {**classes, "model_name": str(loaded.meta.get("name") or Path(model_dir).name),
                    "model_sha256": loaded.sha256, "data_root": str(Path(manifest).resolve().parent)}  # fmt: skip
        write_predictions(table, out, metadata=metadata)
    return table


def score_other_kind(config: Any, out_dir: Path) -> Any:
    """Return the audit config with a 3-D or multi-label ``--model --manifest`` run scored into a predictions table.

    The table is written to ``out_dir/predictions.parquet`` and the returned
    config audits it (``predictions`` set, ``model`` and ``manifest`` cleared:
    the explanations of these kinds are not part of the audit yet). Any other
    config is returned unchanged.
    """
    if config.model is None or config.manifest is None or config.predictions is not None:
        return config
    if checkpoint_kind(config.model) is None:
        return config
    from auditkit.progress import status

    target = out_dir / "predictions.parquet"
    predict_other_kind(config.model, config.manifest, out=target, batch_size=config.batch_size,
                       external_sites=config.settings.external_sites)  # fmt: skip
    status(f"scored {config.manifest} with the {checkpoint_kind(config.model)} model {config.model} into {target}")
    return config.model_copy(update={"predictions": target, "model": None, "manifest": None})
