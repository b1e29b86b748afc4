"""Reading state dicts from files a user gave us, without ever running their pickles.

Two formats are accepted: safetensors (a JSON header and raw tensor bytes,
nothing executable) and, for the ImageNet weights torchvision distributes as
``.pth``, ``torch.load(weights_only=True)``, whose restricted unpickler only
rebuilds tensors and plain containers and refuses any other global.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import torch

from auditkit.errors import CheckpointError

_ZIP_MAGIC = b"PK\x03\x04"


def sniff_format(path: str | os.PathLike[str]) -> str:
    """Return ``"safetensors"``, ``"zip"`` (torch.save / TorchScript archive), ``"pickle"`` or ``"unknown"``.

    Decided from the first bytes, never from the file name: safetensors files
    start with an 8-byte little-endian header length (that fits the file)
    followed by ``{``, checked first; a legacy ``torch.save``/pickle file
    starts with the PROTO opcode ``0x80``.
    """
    with open(path, "rb") as handle:
        head = handle.read(9)
        size = os.fstat(handle.fileno()).st_size
    # structure first: a safetensors header length whose low byte is 0x80 (1 file in ~32)
    # also starts like a pickle's PROTO opcode
    if len(head) == 9 and head[8:9] == b"{":
        (header_len,) = struct.unpack("<Q", head[:8])
        if 0 < header_len <= size - 8:
            return "safetensors"
    if head[:4] == _ZIP_MAGIC:
        return "zip"
    if head[:1] == b"\x80":
        return "pickle"
    return "unknown"


def read_safetensors(path: str | os.PathLike[str], *, what: str = "weights file") -> dict[str, torch.Tensor]:
    """Return the tensors of a safetensors file (on CPU); CheckpointError names the file otherwise."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} {str(path)!r} does not exist; check the path")
    kind = sniff_format(path)
    if kind != "safetensors":
        raise CheckpointError(
            f"{what} {str(path)!r} is not a safetensors file (it looks like {kind}); auditkit never "
            "unpickles a model file: convert it with safetensors.torch.save_file(model.state_dict(), ...)"
        )
    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise CheckpointError(
            f"{what} {str(path)!r} is a damaged safetensors file ({exc}); re-export it"
        ) from None


def read_state_dict(path: str | os.PathLike[str], *, what: str = "weights file") -> dict[str, torch.Tensor]:
    """Return the state dict stored in a safetensors file or a ``torch.save`` file of tensors.

    ``torch.save`` files are read with ``weights_only=True``; anything that
    needs more than tensors and plain containers is refused. A dict that wraps
    the state dict under ``"state_dict"`` or ``"model"`` is unwrapped.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} {str(path)!r} does not exist; check the path")
    kind = sniff_format(path)
    if kind == "safetensors":
        return read_safetensors(path, what=what)
    if kind not in ("zip", "pickle"):
        raise CheckpointError(
            f"{what} {str(path)!r} is neither safetensors nor a torch.save file; "
            "give a .safetensors or torchvision .pth weights file"
        )
    try:
        loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(
            f"{what} {str(path)!r} could not be read as tensors only ({reason}); "
            "save it as safetensors or as a plain state_dict"
        ) from None
    if isinstance(loaded, dict):
        for key in ("state_dict", "model"):
            if isinstance(loaded.get(key), dict):
                loaded = loaded[key]
                break
    if not isinstance(loaded, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()
    ):
        raise CheckpointError(
            f"{what} {str(path)!r} does not hold a state dict of named tensors; "
            "save model.state_dict()"
        )
    return loaded
