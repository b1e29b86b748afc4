"""Choosing the device and the mixed-precision settings that go with it.

CUDA first, then Apple's MPS, then the CPU; ``--device`` overrides, and a
device that is asked for but absent is an input error (never a silent CPU
fallback, which would turn a one-minute job into an hour without a word).

Mixed precision (Micikevicius et al., ICLR 2018): on CUDA, autocast to
bfloat16 when the card supports it (no loss scaling needed: bf16 has fp32's
exponent range), else float16 with a ``GradScaler``; channels-last memory
format on CUDA (faster convolutions on tensor cores). On MPS, float16
autocast. On the CPU nothing changes by default: CPU autocast is slower than
fp32 for these convolution shapes and would only cost accuracy.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from auditkit.errors import InvalidInputError


class DeviceUnavailableError(InvalidInputError):
    """A device was requested with ``--device`` that this machine does not have."""


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def select_device(requested: str | torch.device | None = None) -> torch.device:
    """Return the device to run on: ``requested`` if available, else CUDA, then MPS, then CPU.

    ``requested`` is ``None``/``"auto"`` or a torch device string (``"cpu"``,
    ``"cuda"``, ``"cuda:1"``, ``"mps"``). A malformed or unavailable device
    raises DeviceUnavailableError (exit code 2).
    """
    if requested is None or (isinstance(requested, str) and requested.strip().lower() in ("", "auto")):
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(requested.strip() if isinstance(requested, str) else requested)
    except (RuntimeError, TypeError):
        raise DeviceUnavailableError(
            f"--device {requested!r} is not a device name; use auto, cpu, cuda, cuda:N or mps"
        ) from None
    if device.type == "cpu":
        return torch.device("cpu")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(
                f"--device {requested!r} was requested but CUDA is not available on this machine; "
                "use --device cpu or --device auto"
            )
        index = device.index if device.index is not None else torch.cuda.current_device()
        if index >= torch.cuda.device_count():
            raise DeviceUnavailableError(
                f"--device {requested!r} was requested but this machine has "
                f"{torch.cuda.device_count()} CUDA device(s); use cuda:0..cuda:{torch.cuda.device_count() - 1}"
            )
        return torch.device("cuda", index)
    if device.type == "mps":
        if not _mps_available():
            raise DeviceUnavailableError(
                f"--device {requested!r} was requested but MPS is not available on this machine; "
                "use --device cpu or --device auto"
            )
        return torch.device("mps")
    raise DeviceUnavailableError(
        f"--device {requested!r} is not supported; use auto, cpu, cuda, cuda:N or mps"
    )


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """Return the autocast dtype for ``device``: bf16 on CUDA if supported, else fp16; fp16 on MPS; None on CPU."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return None


@contextlib.contextmanager
def autocast(device: torch.device, enabled: bool = True) -> Iterator[None]:
    """Yield inside ``torch.autocast`` with :func:`autocast_dtype` (a no-op on CPU or when disabled)."""
    dtype = autocast_dtype(device) if enabled else None
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def needs_grad_scaler(device: torch.device) -> bool:
    """Return whether training on ``device`` needs loss scaling (fp16 autocast on CUDA)."""
    return device.type == "cuda" and autocast_dtype(device) == torch.float16


def make_grad_scaler(device: torch.device, *, enabled: bool = True) -> torch.amp.GradScaler:
    """Return a ``GradScaler`` that scales only where :func:`needs_grad_scaler` (else a pass-through)."""
    active = enabled and needs_grad_scaler(device)
    return torch.amp.GradScaler("cuda" if active else "cpu", enabled=active)


def memory_format(device: torch.device) -> torch.memory_format:
    """Return ``torch.channels_last`` on CUDA, else ``torch.contiguous_format``."""
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


def describe_device(device: torch.device) -> str:
    """Return a human-readable name of ``device`` (the GPU's name on CUDA)."""
    if device.type == "cuda":
        return f"cuda:{device.index or 0} ({torch.cuda.get_device_name(device)})"
    return str(device)
