"""Does the map point at what the model uses? Deletion and insertion AUC (Petsiuk et al. 2018, RISE, BMVC).

Deletion: remove pixels (replace them by a black substrate) in decreasing
order of saliency and follow the probability of the explained class (the
released model's probability: the checkpoint's calibration, logit offset and
temperature, applied to the logits before the softmax, as ``auditkit
predict`` reports it; :func:`auditkit.nets.scores.calibrated_probabilities`); a
faithful map makes it fall fast, so the area under the curve is LOW.
Insertion: start from a blurred copy of the image and put the original pixels
back in the same order; a faithful map makes the probability rise fast, so the
area is HIGH. Both are compared with the same curves for a random pixel order,
the baseline a map must beat. All steps of several images go through the
model in one forward pass.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from auditkit.errors import InvalidInputError
from auditkit.explain.baselines import make_baselines
from auditkit.explain.guard import borrowed_model, model_device
from auditkit.explain.precision import autocast_context
from auditkit.explain.targets import class_probabilities
from auditkit.nets.scores import calibrated_probabilities


@dataclass(frozen=True)
class PerturbationCurves:
    """Class-probability curves under deletion and insertion, and their areas."""

    fractions: np.ndarray
    """Share of pixels perturbed at each step, (S,) from 0 to 1."""
    deletion: np.ndarray
    """Probability of the explained class as pixels are deleted, (N, S)."""
    insertion: np.ndarray
    """Probability of the explained class as pixels are inserted, (N, S)."""
    deletion_auc: np.ndarray
    """Trapezoidal area under each deletion curve, (N,): lower is better."""
    insertion_auc: np.ndarray
    """Trapezoidal area under each insertion curve, (N,): higher is better."""


def curve_auc(curves: np.ndarray) -> np.ndarray:
    """Return the trapezoidal area of curves (N, S) sampled evenly on [0, 1], (N,)."""
    curves = np.asarray(curves, dtype=np.float64)
    steps = curves.shape[1] - 1
    return (curves.sum(axis=1) - (curves[:, 0] + curves[:, -1]) / 2) / steps


def _orders(maps: np.ndarray, order: str, random_state: int) -> np.ndarray:
    """Return for each image the rank of every pixel in the perturbation order, (N, H*W) int."""
    n, h, w = maps.shape
    flat = maps.reshape(n, h * w)
    rng = np.random.default_rng(random_state)
    if order == "saliency":
        # most salient first; ties (e.g. the zeros after a ReLU) in a seeded random order, not in
        # raster order, which would delete the top rows (where markers sit) before the rest
        sequence = np.stack([np.lexsort((rng.random(h * w), -row)) for row in flat])
    elif order == "random":
        sequence = np.stack([rng.permutation(h * w) for _ in range(n)])
    else:
        raise InvalidInputError(f"order must be 'saliency' or 'random', got {order!r}")
    ranks = np.empty_like(sequence)
    np.put_along_axis(ranks, sequence, np.arange(h * w)[None, :].repeat(n, 0), axis=1)
    return ranks


def perturbation_curves(
    model: nn.Module,
    inputs: torch.Tensor,
    maps: np.ndarray,
    targets: Sequence[int] | np.ndarray,
    *,
    n_steps: int = 20,
    order: str = "saliency",
    deletion_substrate: str = "black",
    insertion_substrate: str = "blurred",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    batch_size: int = 64,
    random_state: int = 0,
    calibration: Mapping[str, Any] | None = None,
    probability: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> PerturbationCurves:
    """Return deletion and insertion curves (N, n_steps + 1) of ``inputs`` (N, C, H, W) along ``maps`` (N, H, W).

    ``order="random"`` gives the random-order baseline (seeded); pixels of equal
    saliency are taken in a seeded random order. Substrates are
    baselines of :mod:`auditkit.explain.baselines` (black through the model's
    normalisation ``mean``/``std``; a blurred image). ``batch_size`` perturbed
    images go through the model per forward pass, all steps of several images
    together. ``calibration`` is the checkpoint record (model.json, with its
    ``calibration`` entry): the curves follow the calibrated probability the
    released model reports; None (a bare model) takes the plain softmax.
    ``probability`` (logits -> probabilities, e.g. ``torch.sigmoid`` for a
    multi-label head, where each output is its own finding) replaces both.
    """
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 3 or maps.shape[0] != inputs.shape[0] or maps.shape[1:] != tuple(inputs.shape[-2:]):
        raise InvalidInputError(
            f"maps must be (N, H, W) matching inputs {tuple(inputs.shape)}, got {maps.shape}; "
            "upsample layer maps to the input size first"
        )
    n, c, h, w = inputs.shape
    n_steps = max(1, int(n_steps))
    targets_t = torch.as_tensor(np.asarray(targets), dtype=torch.long)
    device = model_device(model)
    inputs = inputs.detach().to(device)
    ranks = torch.as_tensor(_orders(maps, order, random_state), device=device).view(n, h, w)
    counts = torch.as_tensor(
        np.round(np.linspace(0, h * w, n_steps + 1)).astype(np.int64), device=device
    )
    black = make_baselines(inputs, deletion_substrate, mean=mean, std=std)
    blurred = make_baselines(inputs, insertion_substrate, mean=mean, std=std)
    per_forward = max(1, int(batch_size) // (n_steps + 1))
    deletion = np.empty((n, n_steps + 1))
    insertion = np.empty((n, n_steps + 1))
    with borrowed_model(model), torch.no_grad():
        for start in range(0, n, per_forward):
            sl = slice(start, min(n, start + per_forward))
            g = sl.stop - sl.start
            # perturbed[k] holds the first counts[k] pixels of the order: (g, S, 1, H, W)
            perturbed = (ranks[sl, None] < counts[None, :, None, None]).unsqueeze(2)
            x = inputs[sl, None]
            deleted = torch.where(perturbed, black[sl, None], x).reshape(-1, c, h, w)
            inserted = torch.where(perturbed, x, blurred[sl, None]).reshape(-1, c, h, w)
            with autocast_context(device):
                outputs = model(torch.cat([deleted, inserted]))
            if probability is not None:
                probs = probability(outputs.float())
            elif calibration is not None:
                probs = calibrated_probabilities(outputs.float(), dict(calibration))
            else:
                probs = class_probabilities(outputs.float())
            steps = n_steps + 1
            chosen = targets_t[sl].to(device).repeat_interleave(steps).repeat(2)
            p = probs.gather(1, chosen[:, None])[:, 0].double().cpu().numpy()
            deletion[sl] = p[: g * steps].reshape(g, steps)
            insertion[sl] = p[g * steps :].reshape(g, steps)
    return PerturbationCurves(
        fractions=counts.cpu().numpy() / (h * w),
        deletion=deletion,
        insertion=insertion,
        deletion_auc=curve_auc(deletion),
        insertion_auc=curve_auc(insertion),
    )
