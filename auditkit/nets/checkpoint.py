"""Checkpoints: ``weights.safetensors`` + ``model.json`` (+ ``splits.csv``, ``history.csv``).

A checkpoint folder ``models/NAME/`` holds

- ``weights.safetensors``: the state dict (no pickle, nothing executable);
- ``model.json``: architecture, classes, output convention, input size and
  channels, preprocessing (normalisation), Grad-CAM target layer, training
  data fingerprint, metrics at the chosen epoch, library versions, seed,
  training settings, and the SHA-256 of the weights file;
- ``splits.csv`` (``patient_id,split``): the patient → split assignment, so
  prediction can never score a training patient as test;
- ``history.csv``: per-epoch ``epoch,train_loss,val_loss,val_auroc,lr``;
- for a TorchScript architecture, the archive itself
  (``architecture.torchscript.pt``, with its own SHA-256 in model.json).

Every file is written atomically and model.json last, so a folder whose
model.json exists is complete. Loading verifies the SHA-256 of the weights
(and of a TorchScript archive) before reading them and never unpickles.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
from torch import nn

from auditkit.data.splits import SPLITS
from auditkit.errors import AuditkitError, CheckpointError, InvalidInputError, short_repr
from auditkit.fileio import (
    atomic_write_bytes,
    sha256_bytes,
    sha256_file,
    write_csv,
    write_json,
)
from auditkit.labels import ClassSpec
from auditkit.nets import custom
from auditkit.nets.device import memory_format, select_device
from auditkit.nets.weights import read_safetensors, sniff_format
from auditkit.nets.zoo import ARCHITECTURES, build_model
from auditkit.textsafe import csv_unquote

if TYPE_CHECKING:
    from auditkit.data.transforms import Preprocess

FORMAT = "auditkit-checkpoint"
FORMAT_VERSION = 1
MODEL_JSON = "model.json"
WEIGHTS_FILE = "weights.safetensors"
TORCHSCRIPT_FILE = "architecture.torchscript.pt"
SPLITS_FILE = "splits.csv"
HISTORY_FILE = "history.csv"
HISTORY_COLUMNS = ("epoch", "train_loss", "val_loss", "val_auroc", "lr")
SPLIT_VALUES = SPLITS

_REQUIRED_KEYS = ("arch", "classes", "input_size", "in_channels", "preprocess", "target_layer", "weights")


def library_versions() -> dict[str, str]:
    """Return the versions of Python, auditkit and the libraries a model's numbers depend on."""
    import numpy
    import safetensors
    import torchvision

    from auditkit import __version__

    versions = {
        "python": platform.python_version(),
        "auditkit": __version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "pandas": pd.__version__,
        "safetensors": safetensors.__version__,
    }
    if torch.version.cuda:
        versions["cuda"] = str(torch.version.cuda)
    if torch.backends.cudnn.is_available():
        versions["cudnn"] = str(torch.backends.cudnn.version())
    return versions


def state_dict_bytes(model: nn.Module) -> bytes:
    """Return the safetensors encoding of ``model.state_dict()`` (CPU copies, contiguous)."""
    from safetensors.torch import save

    tensors = {
        name: tensor.detach().to("cpu").contiguous().clone()
        for name, tensor in model.state_dict().items()
    }
    return save(tensors)


def save_checkpoint(out_dir: str | os.PathLike[str], model: nn.Module, meta: dict[str, Any]) -> Path:
    """Write ``model``'s weights and ``meta`` as a checkpoint in ``out_dir`` and return the model.json path.

    ``meta`` must hold at least ``arch``, ``classes`` (``ClassSpec.to_dict()``),
    ``input_size``, ``in_channels``, ``preprocess`` (``Preprocess.to_dict()``) and
    ``target_layer``; the weights entry and SHA-256 are added here. For
    ``arch == "torchscript"``, ``meta["torchscript_source"]`` names the archive
    to copy into the folder. Files are written atomically, model.json last.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    missing = [key for key in _REQUIRED_KEYS if key not in meta and key != "weights"]
    if missing:
        raise ValueError(f"checkpoint meta lacks {missing}")
    payload = state_dict_bytes(model)
    digest = sha256_bytes(payload)
    atomic_write_bytes(out / WEIGHTS_FILE, payload)
    record = dict(meta)
    if record["arch"] == custom.TORCHSCRIPT:
        source = Path(record.pop("torchscript_source"))
        target = out / TORCHSCRIPT_FILE
        if source.resolve() != target.resolve():
            atomic_write_bytes(target, source.read_bytes())
        record["torchscript"] = {"file": TORCHSCRIPT_FILE, "sha256": sha256_file(target)}
    record["format"] = FORMAT
    record["format_version"] = FORMAT_VERSION
    record["weights"] = {"file": WEIGHTS_FILE, "sha256": digest, "format": "safetensors"}
    record["sha256"] = digest
    record["n_parameters"] = int(sum(p.numel() for p in model.parameters()))
    record.setdefault("library_versions", library_versions())
    return write_json(out / MODEL_JSON, record)


def write_splits(out_dir: str | os.PathLike[str], assignment: pd.DataFrame) -> Path:
    """Write the ``patient_id,split`` table (one row per patient, sorted) to ``out_dir/splits.csv``."""
    table = assignment.loc[:, ["patient_id", "split"]].astype(str).drop_duplicates()
    clash = table["patient_id"].duplicated(keep=False)
    if clash.any():
        raise ValueError(f"patients in two splits: {sorted(table.loc[clash, 'patient_id'])[:5]}")
    table = table.sort_values("patient_id", kind="stable").reset_index(drop=True)
    return write_csv(Path(out_dir) / SPLITS_FILE, table)


def read_splits(model_dir: str | os.PathLike[str]) -> pd.DataFrame | None:
    """Return the checkpoint's ``patient_id,split`` table (strings), or None if it has none."""
    path = Path(model_dir) / SPLITS_FILE
    if not path.is_file():
        return None
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False).map(csv_unquote)
    except Exception as exc:
        raise CheckpointError(f"{str(path)!r} is not a readable CSV ({exc}); retrain or restore it") from None
    if list(table.columns) != ["patient_id", "split"]:
        raise CheckpointError(
            f"{str(path)!r} must have the columns patient_id,split, found {list(table.columns)}"
        )
    bad = ~table["split"].isin(SPLIT_VALUES)
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise CheckpointError(
            f"{str(path)!r} row {row + 1}, column 'split': expected one of {list(SPLIT_VALUES)}, "
            f"got {table['split'].iloc[row]!r}"
        )
    return table


def write_history(out_dir: str | os.PathLike[str], history: list[dict[str, float]]) -> Path:
    """Write per-epoch rows ``epoch,train_loss,val_loss,val_auroc,lr`` to ``out_dir/history.csv``."""
    frame = pd.DataFrame(list(history), columns=list(HISTORY_COLUMNS))
    return write_csv(Path(out_dir) / HISTORY_FILE, frame, float_format="%.10g")


def read_history(model_dir: str | os.PathLike[str]) -> list[dict[str, float]]:
    """Return the per-epoch history rows of a checkpoint (empty if it has none)."""
    path = Path(model_dir) / HISTORY_FILE
    if not path.is_file():
        return []
    frame = pd.read_csv(path)
    rows = []
    for record in frame.to_dict(orient="records"):
        row = {key: (None if pd.isna(value) else float(value)) for key, value in record.items()}
        row["epoch"] = int(record["epoch"])
        rows.append(row)
    return rows


@dataclass(frozen=True)
class LoadedModel:
    """A checkpoint loaded for inference: the model (eval mode, on ``device``) and its record."""

    model: nn.Module
    meta: dict[str, Any]
    name: str
    arch: str
    classes: ClassSpec
    preprocess: Preprocess
    target_layer: str
    sha256: str
    path: Path
    splits: pd.DataFrame | None
    device: torch.device

    @property
    def input_size(self) -> tuple[int, int]:
        """Return the model's input size ``(h, w)``."""
        h, w = self.meta["input_size"]
        return int(h), int(w)

    @property
    def in_channels(self) -> int:
        """Return the number of input channels."""
        return int(self.meta["in_channels"])

    @property
    def embedding_layer(self) -> str | None:
        """Return the dotted name of the linear head whose input is the penultimate embedding."""
        return self.meta.get("embedding_layer")


def read_model_json(model_json: Path) -> dict[str, Any]:
    """Return the validated contents of a checkpoint's model.json (CheckpointError naming the field if not)."""
    return _read_meta(model_json)


MAX_INPUT_SIDE = 8192
"""The largest input height or width a checkpoint may declare: loading probes the network with a
batch of that size, so a forged ``input_size`` of 40000x40000 would allocate gigabytes first."""


def _is_positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _is_side(value: Any) -> bool:
    return _is_positive_int(value) and value <= MAX_INPUT_SIDE


def _check_fields(meta: dict[str, Any], where: str) -> None:
    """Raise CheckpointError naming the first field of ``meta`` whose type or value is wrong."""
    size = meta["input_size"]
    problems = [
        ("arch", isinstance(meta["arch"], str) and meta["arch"] != "", "a non-empty string"),
        (
            "input_size",
            isinstance(size, list) and len(size) == 2 and all(_is_side(v) for v in size),
            f"two positive integers [height, width] of at most {MAX_INPUT_SIDE}",
        ),
        ("in_channels", _is_positive_int(meta["in_channels"]) and meta["in_channels"] <= 64, "a positive integer (at most 64)"),
        ("classes", isinstance(meta["classes"], dict), "a mapping"),
        ("preprocess", isinstance(meta["preprocess"], dict), "a mapping"),
        ("target_layer", isinstance(meta["target_layer"], str), "a string"),
        (
            "weights",
            isinstance(meta["weights"], dict) and isinstance(meta["weights"].get("sha256"), str),
            "a mapping with 'file' and 'sha256'",
        ),
    ]
    optional = [
        ("training", meta.get("training") is None or isinstance(meta.get("training"), dict), "a mapping"),
        (
            "embedding_layer",
            meta.get("embedding_layer") is None or isinstance(meta.get("embedding_layer"), str),
            "a module name",
        ),
        (
            "torchscript",
            meta["arch"] != "torchscript" or isinstance(meta.get("torchscript"), dict),
            "a mapping with 'file' and 'sha256'",
        ),
    ]
    for field_name, ok, expected in [*problems, *optional]:
        if not ok:
            raise CheckpointError(
                f"{where!r} field {field_name!r} should be {expected}, got {short_repr(meta.get(field_name))}; "
                "restore the checkpoint or retrain"
            )
    try:
        ClassSpec.from_dict(meta["classes"])
    except (KeyError, TypeError, ValueError, AuditkitError) as exc:
        raise CheckpointError(f"{where!r} field 'classes' is malformed ({exc}); restore it or retrain") from None


def _read_meta(model_json: Path) -> dict[str, Any]:
    try:
        meta = json.loads(model_json.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:120]
        raise CheckpointError(
            f"{str(model_json)!r} is not valid JSON ({reason}); restore the checkpoint or retrain"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{str(model_json)!r} is not an auditkit model.json (field 'format' should be {FORMAT!r}); "
            "give a folder written by auditkit train"
        )
    missing = [key for key in _REQUIRED_KEYS if key not in meta]
    if missing:
        raise CheckpointError(
            f"{str(model_json)!r} lacks the field(s) {missing}; restore the checkpoint or retrain"
        )
    version = meta.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise CheckpointError(
            f"{str(model_json)!r} field 'format_version' should be an integer, got {version!r}; "
            "restore the checkpoint or retrain"
        )
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{str(model_json)!r} has format_version {meta['format_version']}, newer than this "
            f"auditkit understands ({FORMAT_VERSION}); upgrade auditkit"
        )
    _check_fields(meta, str(model_json))
    return meta


def _fenced_file(model_dir: Path, name: object, *, what: str) -> Path:
    """Return ``model_dir / name`` when it stays inside the checkpoint folder; CheckpointError otherwise."""
    where = str(model_dir / MODEL_JSON)
    text = str(name)
    if not isinstance(name, str) or not name or "\x00" in text or os.path.isabs(text):
        raise CheckpointError(
            f"{where!r} names its {what} by an absolute or invalid path; a checkpoint's files "
            "must lie inside its folder: restore model.json or retrain"
        )
    path = model_dir / text
    try:
        inside = path.resolve().is_relative_to(model_dir.resolve())
    except (OSError, RuntimeError):  # a symlink loop
        inside = False
    if not inside:
        raise CheckpointError(
            f"{where!r} names its {what} outside the checkpoint folder; a checkpoint's files "
            "must lie inside its folder: restore model.json or retrain"
        )
    return path


def verified_file(model_dir: Path, entry: dict[str, Any], *, what: str) -> Path:
    """Return the path of a checkpoint file after checking it lies inside ``model_dir``, exists and matches its SHA-256."""
    path = _fenced_file(model_dir, entry.get("file", ""), what=what) if entry.get("file") else model_dir
    if not entry.get("file") or not path.is_file():
        raise CheckpointError(
            f"the {what} {str(path)!r} named in {str(model_dir / MODEL_JSON)!r} is missing; "
            "restore it or retrain"
        )
    actual = sha256_file(path)
    if actual != entry.get("sha256"):
        # neither hash is printed: a prefix of the file's hash says something about a file
        # that model.json may have pointed at on purpose
        raise CheckpointError(
            f"the {what} {str(path)!r} does not match the SHA-256 that model.json records; "
            "the file was modified or replaced, so auditkit refuses it: restore the original file or retrain"
        )
    return path


def build_architecture(meta: dict[str, Any], *, model_dir: Path, trust_code: bool = False) -> nn.Module:
    """Return the untrained network that ``meta`` (the model.json in ``model_dir``) describes, in train mode.

    A ``module:factory`` architecture is rebuilt by importing that Python
    module, which runs its code, and a TorchScript archive is a program whose
    operators run on every forward: both are refused unless ``trust_code``,
    because a model folder received from someone else must not execute
    anything when it is merely audited.
    """
    arch = str(meta["arch"])
    where = str(model_dir / MODEL_JSON)
    classes = ClassSpec.from_dict(meta["classes"])
    in_channels = int(meta["in_channels"])
    input_size = (int(meta["input_size"][0]), int(meta["input_size"][1]))
    if arch in ARCHITECTURES:
        return build_model(arch, in_channels=in_channels, num_classes=classes.n_classes, input_size=input_size)
    if arch == custom.TORCHSCRIPT:
        if "torchscript" not in meta:
            raise CheckpointError(f"{where!r} names a TorchScript architecture but no archive; retrain")
        if not trust_code:
            # TorchScript is a program: its forward may call any operator (aten::from_file
            # writes files), so a received archive is code, like a module:factory
            raise CheckpointError(
                f"{where!r} is a TorchScript model, a program whose forward can run any operator "
                "(including writing files); pass --trust-model-code (trust_code=True) if you trust its source"
            )
        archive = verified_file(model_dir, meta["torchscript"], what="TorchScript archive")
        return custom.load_torchscript(archive)
    if custom.is_factory_spec(arch):
        if not trust_code:
            raise CheckpointError(
                f"{where!r} rebuilds its network by importing the Python code {arch!r}, which would "
                "run that code; pass --trust-model-code (trust_code=True) if you trust its source"
            )
        try:
            return custom.build_factory_model(arch, in_channels=in_channels, num_classes=classes.n_classes)
        except InvalidInputError as exc:
            raise CheckpointError(f"{where!r}: the architecture cannot be rebuilt: {exc}") from None
    raise CheckpointError(
        f"{where!r} names the architecture {arch!r}, which this auditkit does not know; "
        f"known: {sorted(ARCHITECTURES)}, a 'module:factory' or 'torchscript'"
    )


def _resolve_model_json(path: Path) -> Path:
    if path.is_dir():
        candidate = path / MODEL_JSON
        if not candidate.is_file():
            raise CheckpointError(
                f"model folder {str(path)!r} has no {MODEL_JSON}; give a folder written by "
                "auditkit train (models/NAME)"
            )
        return candidate
    if path.is_file() and path.name == MODEL_JSON:
        return path
    raise CheckpointError(
        f"model {str(path)!r} does not exist; give a folder written by auditkit train (models/NAME)"
    )


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    device: str | torch.device | None = None,
    trust_code: bool = False,
) -> LoadedModel:
    """Return the checkpoint at ``path`` (a folder or its model.json) loaded in eval mode on ``device``.

    Refuses (CheckpointError, exit code 2) a missing folder or file, an
    unknown architecture, a weights file that is not safetensors (never
    unpickled), any file whose SHA-256 differs from model.json, and a
    ``module:factory`` architecture (which imports Python code) or a
    TorchScript one (a program) unless ``trust_code``.
    """
    from auditkit.data.transforms import Preprocess

    model_json = _resolve_model_json(Path(path))
    model_dir = model_json.parent
    meta = _read_meta(model_json)
    weights_entry = meta["weights"]
    weights_path = _fenced_file(model_dir, weights_entry.get("file", WEIGHTS_FILE), what="weights file")
    if weights_path.is_file() and sniff_format(weights_path) != "safetensors":
        raise CheckpointError(
            f"weights file {str(weights_path)!r} is not safetensors (it looks like "
            f"{sniff_format(weights_path)}); auditkit never unpickles a model file: restore the "
            "original weights.safetensors"
        )
    weights_path = verified_file(model_dir, weights_entry, what="weights file")
    target = select_device(device)
    model = build_architecture(meta, model_dir=model_dir, trust_code=trust_code)
    state = read_safetensors(weights_path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[0]
        raise CheckpointError(
            f"weights file {str(weights_path)!r} does not fit the architecture {meta['arch']!r} "
            f"({reason}); restore the checkpoint or retrain"
        ) from None
    model = model.to(target, memory_format=memory_format(target)).eval()
    try:
        preprocess = Preprocess.from_dict(meta["preprocess"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(
            f"{str(model_json)!r} field 'preprocess' is malformed ({exc}); restore it or retrain"
        ) from None
    return LoadedModel(
        model=model,
        meta=meta,
        name=str(meta.get("name") or model_dir.name),
        arch=str(meta["arch"]),
        classes=ClassSpec.from_dict(meta["classes"]),
        preprocess=preprocess,
        target_layer=str(meta["target_layer"]),
        sha256=str(weights_entry["sha256"]),
        path=model_dir,
        splits=read_splits(model_dir),
        device=target,
    )
