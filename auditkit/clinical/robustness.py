"""The batched robustness runner: every declared perturbation and severity through the model, once per batch.

For each batch of images (read and resized once, :meth:`Preprocess.prepare`)
the runner builds every perturbed copy on the model's device, normalises
them (:meth:`Preprocess.finish`) and sends them through the model in
forward passes of up to ``forward_batch`` images, so the model, not the
reader, bounds the time: the benchmark (benchmarks/robustness.py) compares
images/s with plain inference x the number of conditions. Noise is drawn on
the CPU from a generator seeded by (seed, batch, condition), so the same seed
gives the same scores on any device.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from auditkit.clinical.perturbations import Perturbation
from auditkit.data.transforms import Preprocess
from auditkit.nets.device import autocast
from auditkit.progress import track

Forward = Callable[[torch.Tensor], torch.Tensor]
"""normalised batch (B, C, h, w) on the device -> class probabilities (B, K)."""


@dataclass(frozen=True)
class Condition:
    """One perturbation at one severity."""

    perturbation: str
    severity: int
    value: float

    @property
    def key(self) -> str:
        """Return ``name@severity``, the condition's key in results."""
        return f"{self.perturbation}@{self.severity}"


@dataclass(frozen=True, eq=False)
class PerturbedScores:
    """Class probabilities of every image, unperturbed and under each condition."""

    base: np.ndarray
    """(n, K) float64."""
    perturbed: dict[str, np.ndarray]
    """condition key -> (n, K) float64."""
    conditions: tuple[Condition, ...]
    seconds: float
    device: str
    n_images: int = field(default=0)


def conditions_of(perturbations: Sequence[Perturbation], severities: Sequence[int] = (1, 2, 3)) -> list[Condition]:
    """Return the conditions (perturbation x severity) in declaration order."""
    return [
        Condition(p.name, s, float(p.severities[s - 1]))
        for p in perturbations
        for s in severities
        if 1 <= s <= len(p.severities)
    ]


def image_batches(
    paths: Sequence[str | Path], preprocess: Preprocess, *, batch_size: int
) -> Iterator[torch.Tensor]:
    """Yield the images at ``paths`` read and resized, in batches ``(B, C', h, w)`` in [0, 1]."""
    from auditkit.data.readers import read_image

    for start in range(0, len(paths), batch_size):
        chunk = paths[start : start + batch_size]
        yield torch.stack([preprocess.prepare(read_image(p)) for p in chunk])


def model_forward(model: torch.nn.Module, meta: dict | None = None) -> Forward:
    """Return the forward of a checkpoint's model: softmax of its calibrated logits (as ``auditkit predict``)."""
    from auditkit.train.calibrate import calibrate_logits
    from auditkit.train.loop import split_outputs

    def forward(x: torch.Tensor) -> torch.Tensor:
        logits, _ = split_outputs(model(x))
        logits = logits.float()
        if meta is not None:
            logits = calibrate_logits(logits, meta)
        return torch.softmax(logits, dim=1)

    return forward


def run_perturbations(
    forward: Forward,
    batches: Iterable[torch.Tensor],
    preprocess: Preprocess,
    perturbations: Sequence[Perturbation],
    *,
    severities: Sequence[int] = (1, 2, 3),
    seed: int = 0,
    device: torch.device | str = "cpu",
    forward_batch: int = 512,
    n_batches: int | None = None,
    model: torch.nn.Module | None = None,
) -> PerturbedScores:
    """Return the probabilities of every image unperturbed and under every condition.

    ``batches`` yields prepared images (:func:`image_batches`). ``model``,
    when given, is put in eval mode for the run and restored afterwards.
    """
    device = torch.device(device)
    by_name = {p.name: p for p in perturbations}
    conds = conditions_of(perturbations, severities)
    base_parts: list[np.ndarray] = []
    parts: dict[str, list[np.ndarray]] = {c.key: [] for c in conds}
    was_training = model.training if model is not None else False
    if model is not None:
        model.eval()
    t0 = time.perf_counter()
    n = 0
    try:
        with torch.inference_mode():
            for b, x in enumerate(track(batches, description="robustness", total=n_batches)):
                x = x.to(device)
                n += x.shape[0]
                copies = [x]
                for j, c in enumerate(conds):
                    gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + b * 1009 + j)
                    copies.append(by_name[c.perturbation].apply(x, c.severity, gen))
                big = torch.cat(copies)
                with autocast(device):  # mixed precision on a GPU, as auditkit predict runs it
                    probs = torch.cat(
                        [forward(preprocess.finish(big[i : i + forward_batch])).double().cpu()
                         for i in range(0, big.shape[0], forward_batch)]
                    ).numpy()  # fmt: skip
                m = x.shape[0]
                base_parts.append(probs[:m])
                for j, c in enumerate(conds, start=1):
                    parts[c.key].append(probs[j * m : (j + 1) * m])
    finally:
        if model is not None:
            model.train(was_training)
    seconds = time.perf_counter() - t0
    k = base_parts[0].shape[1] if base_parts else 0
    return PerturbedScores(
        base=np.concatenate(base_parts) if base_parts else np.zeros((0, k)),
        perturbed={key: np.concatenate(v) if v else np.zeros((0, k)) for key, v in parts.items()},
        conditions=tuple(conds),
        seconds=seconds,
        device=str(device),
        n_images=n,
    )
