"""A multi-label phantom: small chest-like images with three independent findings and flaws planted per finding.

Findings (each present independently, prevalence ``prevalence``):

- ``opacity``: a large soft bright disc somewhere in the lung field;
- ``nodule``: a small bright dot. Planted subgroup gap: in women its contrast is
  ``nodule_contrast_female`` (faint) instead of ``nodule_contrast`` (the
  model misses women's nodules: a false-negative-rate gap in ``nodule`` only);
- ``effusion``: a bright band along the bottom edge, faint (``effusion_contrast``).
  Planted shortcut: a bright corner marker on ``marker_rate`` of the internal
  sites' effusion-positive images and never at the external site, so
  ``effusion``'s internal AUROC leans on the marker and drops externally while the
  other two findings transfer.

Writes ``images/ID.png`` (8-bit), ``masks/ID_<finding>.png`` (the planted
region of each finding present: the opacity's and the nodule's disc within its
nominal radius, the effusion's band; 255 inside), ``manifest.csv`` (``id, image,
patient_id, site, split, sex, label_opacity, label_nodule, label_effusion``: 1,
0, -1 for an uncertain label at ``uncertain_rate``, blank for an unlabelled one
at ``blank_rate``; then ``mask_<finding>``, blank when the finding is absent,
which the audit's saliency per finding localises against; ``shortcut_effusion``,
``masks/marker_region.png``, the marker's box: the declared shortcut region
whose share of effusion's saliency the audit reports) and ``phantom.json``
(config, flaws with the marker's pixel box, per-image truth: the true finding
states whatever the label cell says, the marker). Same config, same bytes.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from auditkit.errors import OutputExistsError
from auditkit.fileio import write_csv, write_json

FINDINGS: tuple[str, ...] = ("opacity", "nodule", "effusion")
EXTERNAL_SITE = "site_C"
SITES: tuple[str, ...] = ("site_A", "site_B", EXTERNAL_SITE)


@dataclass(frozen=True)
class MultilabelPhantomConfig:
    """The multi-label phantom's knobs (sizes in pixels, contrasts in [0, 1] intensity)."""

    n_images: int = 900
    size: int = 32
    seed: int = 0
    prevalence: float = 0.4
    external_fraction: float = 0.3
    nodule_contrast: float = 0.45
    nodule_contrast_female: float = 0.08
    effusion_contrast: float = 0.04
    marker_rate: float = 0.9
    uncertain_rate: float = 0.03
    blank_rate: float = 0.02
    noise_sigma: float = 0.05


@dataclass(frozen=True)
class MultilabelPhantom:
    """Where the phantom was written."""

    out_dir: Path
    manifest_path: Path
    truth_path: Path
    n_images: int


#: a disc's planted region: within its nominal radius (the Gaussian's value there, sigma = radius / 1.5).
DISC_EDGE = float(np.exp(-(1.5**2) / 2))


def _disc(size: int, cy: float, cx: float, radius: float) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    d2 = (yy - cy) ** 2 + (xx - cx) ** 2
    return np.exp(-d2 / (2 * (radius / 1.5) ** 2))


def _cases(config: MultilabelPhantomConfig, rng: np.random.Generator) -> pd.DataFrame:
    n = config.n_images
    site = np.where(rng.random(n) < config.external_fraction, EXTERNAL_SITE,
                    rng.choice(SITES[:2], n))  # fmt: skip
    cases = pd.DataFrame({
        "id": [f"ml{i:05d}" for i in range(n)], "patient_id": [f"p{i:05d}" for i in range(n)],
        "site": site, "sex": rng.choice(["F", "M"], n),
    })  # fmt: skip
    for finding in FINDINGS:
        cases[finding] = rng.random(n) < config.prevalence
    cases["marker"] = cases["effusion"] & (site != EXTERNAL_SITE) & (rng.random(n) < config.marker_rate)
    return cases


def _render(case: pd.Series, config: MultilabelPhantomConfig,
            rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Return the image in [0, 1] and the planted region of each finding present (``(s, s)`` bool)."""
    s = config.size
    yy, xx = np.mgrid[0:s, 0:s] / max(1, s - 1)
    image = 0.35 + 0.1 * np.cos(np.pi * (xx - 0.5)) - 0.05 * yy  # a soft chest-like gradient
    inner = lambda: rng.uniform(0.3 * s, 0.7 * s)  # noqa: E731 - a lung-field coordinate
    regions: dict[str, np.ndarray] = {}
    if case["opacity"]:
        disc = _disc(s, inner(), inner(), 0.22 * s)
        image = image + 0.35 * disc
        regions["opacity"] = disc >= DISC_EDGE  # inside the disc's nominal radius
    if case["nodule"]:
        contrast = config.nodule_contrast_female if case["sex"] == "F" else config.nodule_contrast
        dot = _disc(s, inner(), inner(), max(1.5, 0.06 * s))
        image = image + contrast * dot
        regions["nodule"] = dot >= DISC_EDGE
    if case["effusion"]:
        image[int(0.85 * s) :, :] += config.effusion_contrast
        regions["effusion"] = np.zeros((s, s), bool)
        regions["effusion"][int(0.85 * s) :, :] = True
    if case["marker"]:
        y0, x0, y1, x1 = marker_box(s)
        image[y0:y1, x0:x1] = 1.0
    if case["site"] == EXTERNAL_SITE:
        image = 0.9 * image + 0.06  # another scanner: a little brighter, lower contrast
    image = image + rng.normal(0, config.noise_sigma, image.shape)
    return np.clip(image, 0, 1), regions


def marker_box(size: int) -> tuple[int, int, int, int]:
    """Return the shortcut marker's pixel box ``(y0, x0, y1, x1)`` (end exclusive) in a ``size``-pixel image."""
    m = max(2, size // 10)
    return (1, 1, 1 + m, 1 + m)


def _label_cells(present: np.ndarray, config: MultilabelPhantomConfig, rng: np.random.Generator) -> list:
    draw = rng.random(len(present))
    cells: list = [1 if p else 0 for p in present]
    for row, u in enumerate(draw):
        if u < config.uncertain_rate:
            cells[row] = -1
        elif u < config.uncertain_rate + config.blank_rate:
            cells[row] = ""
    return cells


def generate_multilabel_phantom(
    out_dir: str | os.PathLike[str], config: MultilabelPhantomConfig | None = None, *, force: bool = False
) -> MultilabelPhantom:
    """Write the multi-label phantom into ``out_dir`` and return where its manifest and truth are."""
    from PIL import Image

    config = config or MultilabelPhantomConfig()
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not force:
        raise OutputExistsError(f"{out} is not empty; pass force=True or choose another folder")
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(config.seed)
    cases = _cases(config, rng)
    render_rng = np.random.default_rng([config.seed, 1])
    (out / "masks").mkdir(exist_ok=True)
    mask_cells: dict[str, list[str]] = {f: [] for f in FINDINGS}
    for _, case in cases.iterrows():
        image, regions = _render(case, config, render_rng)
        pixels = (image * 255).round().astype(np.uint8)
        Image.fromarray(pixels).save(out / "images" / f"{case['id']}.png", optimize=False)
        for finding in FINDINGS:  # the finding's planted region, whatever its label cell says; blank when absent
            rel = ""
            if finding in regions:
                rel = f"masks/{case['id']}_{finding}.png"
                Image.fromarray(regions[finding].astype(np.uint8) * 255).save(out / rel, optimize=False)
            mask_cells[finding].append(rel)
    label_rng = np.random.default_rng([config.seed, 2])
    manifest = pd.DataFrame({
        "id": cases["id"], "image": [f"images/{i}.png" for i in cases["id"]],
        "patient_id": cases["patient_id"], "site": cases["site"],
        "split": np.where(cases["site"] == EXTERNAL_SITE, "external", ""), "sex": cases["sex"],
    })  # fmt: skip
    for finding in FINDINGS:
        manifest[f"label_{finding}"] = _label_cells(cases[finding].to_numpy(), config, label_rng)
    for finding in FINDINGS:
        manifest[f"mask_{finding}"] = mask_cells[finding]
    # where the effusion shortcut's marker sits (on the images that carry it): the region the audit checks
    y0, x0, y1, x1 = marker_box(config.size)
    region = np.zeros((config.size, config.size), np.uint8)
    region[y0:y1, x0:x1] = 255
    Image.fromarray(region).save(out / "masks" / "marker_region.png", optimize=False)
    manifest["shortcut_effusion"] = "masks/marker_region.png"
    manifest_path = write_csv(out / "manifest.csv", manifest)
    truth = {
        "config": asdict(config),
        "findings": list(FINDINGS),
        "flaws": {
            "nodule_underdiagnosis": {"finding": "nodule", "attribute": "sex", "value": "F",
                                      "contrast": config.nodule_contrast_female,
                                      "contrast_others": config.nodule_contrast},
            "effusion_shortcut": {"finding": "effusion", "marker_rate": config.marker_rate,
                                  "external_site": EXTERNAL_SITE,
                                  "n_marked": int(cases["marker"].sum()),
                                  "marker_box": list(marker_box(config.size))},
        },
        "images": [
            {"id": r["id"], "site": r["site"], "sex": r["sex"], "marker": bool(r["marker"]),
             **{f: bool(r[f]) for f in FINDINGS}}
            for _, r in cases.iterrows()
        ],
    }
    truth_path = write_json(out / "phantom.json", truth)
    return MultilabelPhantom(out, Path(manifest_path), Path(truth_path), len(cases))
