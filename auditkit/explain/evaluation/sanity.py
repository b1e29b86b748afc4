"""Does the map depend on what the model learned? Model-parameter randomisation (Adebayo et al. 2018).

On a DEEP COPY of the model (the caller's is never touched), blocks of
parameters are re-initialised from the output down (*cascading*: the top
block, then the top two, ...) and one at a time (*independent*), the maps are
recomputed for the same images and classes, and compared with the trained
model's maps (SSIM, Spearman with and without absolute values, HOG
similarity). A method that explains the model must produce different maps
once the model is destroyed; an edge detector does not.

Verdict (Arun et al. 2021, Radiology: AI): the baseline is the mean SSIM of
random pairs of the trained model's maps of *different* images (up to 50
pairs). The method passes when the mean SSIM between trained and
cascading-randomised maps, averaged over the cascading steps, falls below that
baseline.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from auditkit.errors import InvalidInputError
from auditkit.explain.evaluation.bootstrap import bootstrap_mean
from auditkit.explain.evaluation.similarity import map_ssim, pairwise
from auditkit.progress import track
from auditkit.results import Estimate

ExplainFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], np.ndarray]
"""(model, inputs (N, C, H, W), targets (N,)) -> maps (N, H, W): the method under test."""

CRITERION = (
    "passes when the mean SSIM between the trained model's maps and the maps after cascading "
    "randomisation, averaged over the cascading steps, is below the mean SSIM of random pairs of "
    "the trained model's maps (Arun et al. 2021)"
)
N_PAIRS = 50


@dataclass(frozen=True)
class StepSimilarity:
    """Similarity of maps before and after randomising one step's parameters, per image (N,) each."""

    layer: str
    ssim: np.ndarray
    spearman: np.ndarray
    spearman_abs: np.ndarray
    hog: np.ndarray


@dataclass(frozen=True)
class SanityResult:
    """The randomisation test of one method: per-step similarities, the baseline and the verdict."""

    passed: bool | None
    """None when it could not be decided (fewer than two images)."""
    criterion: str
    baseline_ssim: np.ndarray
    """SSIM of random pairs of trained-model maps (P,)."""
    cascading: list[StepSimilarity]
    independent: list[StepSimilarity]

    def to_dict(
        self,
        *,
        n_boot: int = 1000,
        random_state: int = 0,
        ci_level: float = 0.95,
        clusters: Sequence[Hashable] | np.ndarray | None = None,
        ci_method: str = "percentile",
    ) -> dict:
        """Return the results.json form: Estimates with bootstrap CIs over images.

        ``clusters`` (N,): the patient of each image the check ran on; a
        patient's images are resampled together in the per-step intervals
        (the baseline is over random pairs of images and resamples pairs).
        """

        def step(s: StepSimilarity) -> dict:
            return {
                "layer": s.layer,
                **{
                    name: bootstrap_mean(
                        getattr(s, name),
                        clusters=clusters,
                        n_boot=n_boot,
                        ci_level=ci_level,
                        ci_method=ci_method,
                        random_state=random_state,
                    ).to_dict()
                    for name in ("ssim", "spearman", "spearman_abs", "hog")
                },
            }

        baseline = bootstrap_mean(
            self.baseline_ssim, n_boot=n_boot, ci_level=ci_level, ci_method=ci_method,
            random_state=random_state,
        )  # fmt: skip
        return {
            "passed": self.passed,
            "criterion": self.criterion,
            "margin": self.margin(ci_level=ci_level).to_dict(),
            "baseline_ssim": baseline.to_dict(),
            "cascading_mean_ssim": _mean_of_steps(self.cascading),
            "cascading": [step(s) for s in self.cascading],
            "independent": [step(s) for s in self.independent],
        }


    def margin(self, *, ci_level: float = 0.95) -> Estimate:
        """Return the test's statistic: baseline SSIM minus the cascading mean SSIM (> 0 passes), with a CI.

        The two means are over independent units (random image pairs, and
        images averaged over the cascading steps), so the interval is the
        normal one on √(s²_b/n_b + s²_c/n_c) (Welch). This is the number a
        passed or failed sanity row shows.
        """
        from scipy.special import ndtri

        b = self.baseline_ssim[np.isfinite(self.baseline_ssim)]
        per_image = (
            np.nanmean(np.stack([s.ssim for s in self.cascading]), axis=0)
            if self.cascading
            else np.zeros(0)
        )
        c = per_image[np.isfinite(per_image)]
        if b.size == 0 or c.size == 0:
            return Estimate.undefined("no baseline pairs or no randomised maps: the test could not run")
        point = float(b.mean() - c.mean())
        method = "baseline mean SSIM minus cascading mean SSIM; CI: Welch normal interval"
        if b.size < 2 or c.size < 2:
            return Estimate(point, method=method, reason="fewer than two images: no confidence interval")
        se = float(np.sqrt(b.var(ddof=1) / b.size + c.var(ddof=1) / c.size))
        half = float(ndtri(0.5 + ci_level / 2.0)) * se
        return Estimate(point, point - half, point + half, method=method)


def _mean_of_steps(steps: Sequence[StepSimilarity]) -> float | None:
    values = [float(np.nanmean(s.ssim)) for s in steps if np.isfinite(s.ssim).any()]
    return float(np.mean(values)) if values else None


def randomization_blocks(model: nn.Module, *, max_blocks: int | None = None) -> list[str]:
    """Return the names of the parameter blocks of ``model`` from the output down.

    Blocks are the model's children that hold parameters; a container child
    (without parameters of its own) holding several such children is opened
    one level (``features`` of a VGG/DenseNet-like model becomes its blocks).
    ``max_blocks`` keeps the top ones. Order is the reverse of registration,
    which is the forward order for torchvision and auditkit networks.
    """
    def has_params(m: nn.Module) -> bool:
        return any(True for _ in m.parameters())

    blocks: list[str] = []
    for name, child in model.named_children():
        if not has_params(child):
            continue
        inner = [(n, c) for n, c in child.named_children() if has_params(c)]
        own = any(True for _ in child.parameters(recurse=False))
        if len(inner) >= 2 and not own:
            blocks.extend(f"{name}.{n}" for n, _ in inner)
        else:
            blocks.append(name)
    if any(True for _ in model.parameters(recurse=False)):
        blocks.append("")  # parameters held by the model itself
    blocks.reverse()
    if not blocks:
        raise InvalidInputError("the model has no parameters to randomise for the sanity check")
    return blocks[:max_blocks] if max_blocks else blocks


def randomize_block(model: nn.Module, name: str, *, generator_seed: int) -> None:
    """Re-initialise, in place, every parameter of block ``name`` of ``model`` (a copy!).

    Modules with ``reset_parameters`` use their own default initialisation;
    a parameter held elsewhere is redrawn from N(0, s^2) with s its current
    standard deviation (1 if it is a scalar or constant).
    """
    block = model.get_submodule(name) if name else model
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(generator_seed)
        handled: set[int] = set()
        for module in block.modules() if name else [model]:
            reset = getattr(module, "reset_parameters", None)
            if callable(reset) and any(True for _ in module.parameters(recurse=False)):
                reset()
                handled.update(id(p) for p in module.parameters(recurse=False))
        params = block.parameters() if name else block.parameters(recurse=False)
        with torch.no_grad():
            for param in params:
                if id(param) in handled:
                    continue
                scale = float(param.std()) if param.numel() > 1 and float(param.std()) > 0 else 1.0
                param.copy_(torch.randn(param.shape, dtype=param.dtype) * scale)


def random_pair_ssim(maps: np.ndarray, *, n_pairs: int = N_PAIRS, random_state: int = 0) -> np.ndarray:
    """Return the SSIM of up to ``n_pairs`` random pairs of different maps from (N, H, W), (P,)."""
    n = len(maps)
    if n < 2:
        return np.empty(0)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    rng = np.random.default_rng(random_state)
    chosen = rng.choice(len(pairs), size=min(n_pairs, len(pairs)), replace=False)
    return np.array([map_ssim(maps[pairs[k][0]], maps[pairs[k][1]]) for k in sorted(chosen)])


def _similarity(layer: str, reference: np.ndarray, maps: np.ndarray) -> StepSimilarity:
    sims = pairwise(reference, maps)
    return StepSimilarity(layer, sims["ssim"], sims["spearman"], sims["spearman_abs"], sims["hog"])


def sanity_check(
    model: nn.Module,
    explain: ExplainFn,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    blocks: Sequence[str] | None = None,
    max_blocks: int | None = 6,
    independent: bool = True,
    n_pairs: int = N_PAIRS,
    random_state: int = 0,
) -> SanityResult:
    """Return the cascading and independent randomisation test of ``explain`` on ``inputs`` (N, C, H, W).

    ``explain(model, inputs, targets)`` computes the maps (N, H, W) of the
    method under test. Each randomised model is a deep copy; ``model`` itself
    is only passed to ``explain`` for the trained maps. The same ``targets``
    (N,) are explained before and after randomisation.
    """
    names = list(blocks) if blocks is not None else randomization_blocks(model, max_blocks=max_blocks)
    reference = np.asarray(explain(model, inputs, targets), dtype=np.float64)
    baseline = random_pair_ssim(reference, n_pairs=n_pairs, random_state=random_state)

    cascading: list[StepSimilarity] = []
    singles: list[StepSimilarity] = []
    cascade = copy.deepcopy(model)
    steps = [("cascading", k, name) for k, name in enumerate(names)]
    if independent:
        steps += [("independent", k, name) for k, name in enumerate(names)]
    for kind, k, name in track(steps, total=len(steps), description="randomisation sanity check"):
        if kind == "cascading":
            randomize_block(cascade, name, generator_seed=random_state + k)
            cascading.append(_similarity(name, reference, explain(cascade, inputs, targets)))
        else:
            single = copy.deepcopy(model)
            randomize_block(single, name, generator_seed=random_state + k)
            singles.append(_similarity(name, reference, explain(single, inputs, targets)))
            del single
    del cascade

    cascade_ssim = _mean_of_steps(cascading)
    if baseline.size == 0 or cascade_ssim is None:
        passed = None
    else:
        passed = bool(cascade_ssim < float(np.mean(baseline)))
    return SanityResult(
        passed=passed,
        criterion=CRITERION,
        baseline_ssim=baseline,
        cascading=cascading,
        independent=singles,
    )
