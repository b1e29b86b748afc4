"""A synthetic multi-site CT-like volume phantom with a planted nodule, a planted shortcut and a site shift.

Each case is one patient's chest-like volume ``(size, size, size)`` in
Hounsfield-like units, 1 mm voxels: air (-1000) around an ellipsoidal body
whose inside is lung parenchyma (-700 HU, noise ``noise_hu``). A positive case
holds a spherical ground-glass nodule (``nodule_hu``, -560 HU by default,
radius ``nodule_radius`` voxels) at a random place inside the lungs, subtle
enough that a marker is the easier cue; its mask is written beside it.

Planted flaws (each with a strength in [0, 1], the truth in ``phantom.json``):

- ``shortcut``: at the internal sites a bright cube (1000 HU, ``marker_size``
  voxels a side) sits in the corner of the first slices of a positive volume
  with probability ``shortcut`` (never in a negative one, never at the
  external site): a model can learn the marker instead of the nodule, and
  Grad-CAM's mass in the marker's corner shows it.
- ``site_shift``: the external site (``site_C``) adds ``150 x strength`` HU and
  multiplies the noise by ``1 + strength``: external discrimination and
  calibration move.

Files: ``volumes/ID.npy`` (float32 HU), ``masks/ID.npy`` (uint8, positives
only), ``manifest.csv`` (``id, image, label (normal|nodule), patient_id, site,
split (external for site_C), mask, sex``) and ``phantom.json`` (the config and
per-case truth: ``nodule_center``, ``nodule_radius``, ``marker``,
``marker_box`` [z0, y0, x0, z1, y1, x1], ends exclusive). Same config, same bytes.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from auditkit.errors import InvalidInputError, OutputExistsError
from auditkit.fileio import atomic_write_bytes, atomic_write_text

SITES: tuple[str, ...] = ("site_A", "site_B", "site_C")
EXTERNAL_SITE = "site_C"
LUNG_WINDOW: tuple[float, float] = (-600.0, 1500.0)
"""(centre, width) of the lung window the phantom's models are trained with."""


@dataclass(frozen=True)
class VolumePhantomConfig:
    """Knobs of the 3-D phantom (see the module docstring)."""

    n_volumes: int = 160
    size: int = 32
    seed: int = 0
    prevalence: float = 0.5
    shortcut: float = 0.8
    site_shift: float = 1.0
    nodule_radius: tuple[float, float] = (2.0, 3.5)
    marker_size: int = 4
    external_fraction: float = 0.25
    nodule_hu: float = -560.0
    noise_hu: float = 90.0

    def __post_init__(self) -> None:
        if not 16 <= self.size <= 128:
            raise InvalidInputError(f"volume phantom size must be 16..128 voxels, got {self.size}")
        if self.n_volumes < 12:
            raise InvalidInputError(
                f"the volume phantom needs at least 12 volumes, got {self.n_volumes}"
            )
        for name in ("prevalence", "shortcut", "site_shift", "external_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InvalidInputError(f"{name} must lie in [0, 1], got {value}")


def sample_cases(config: VolumePhantomConfig) -> pd.DataFrame:
    """Return one row per case: id, site, label, sex, nodule centre/radius, marker (pure, seeded)."""
    rng = np.random.default_rng([config.seed, 3])
    n = config.n_volumes
    n_external = max(4, round(n * config.external_fraction))
    sites = (
        np.array(["site_A", "site_B"] * n)[: n - n_external].tolist() + [EXTERNAL_SITE] * n_external
    )
    positive = rng.random(n) < config.prevalence
    # at least two of each class per site, so every cohort has both
    for site in SITES:
        rows = [i for i, s in enumerate(sites) if s == site]
        positive[rows[:2]] = True
        positive[rows[2:4]] = False
    size = config.size
    low, high = config.nodule_radius
    radius = rng.uniform(low, high, n)
    margin = size * 0.3
    centres = rng.uniform(margin, size - margin, (n, 3))
    marker = (rng.random(n) < config.shortcut) & positive & (np.array(sites) != EXTERNAL_SITE)
    sex = np.where(rng.random(n) < 0.5, "F", "M")
    return pd.DataFrame(
        {
            "id": [f"vol{i:04d}" for i in range(n)],
            "site": sites,
            "label": np.where(positive, "nodule", "normal"),
            "positive": positive,
            "sex": sex,
            "radius": np.where(positive, radius, 0.0),
            "cz": centres[:, 0],
            "cy": centres[:, 1],
            "cx": centres[:, 2],
            "marker": marker,
        }
    )


def render_case(
    case: pd.Series, config: VolumePhantomConfig, *, lesion: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(volume (D, H, W) float32 HU, nodule mask (D, H, W) bool)`` of one case (pure, seeded by its id)."""
    size = config.size
    rng = np.random.default_rng([config.seed, 5, int(str(case["id"])[3:])])
    z, y, x = np.meshgrid(*(np.arange(size) + 0.5,) * 3, indexing="ij")
    c = size / 2
    body = ((z - c) / (0.46 * size)) ** 2 + ((y - c) / (0.40 * size)) ** 2 + (
        (x - c) / (0.44 * size)
    ) ** 2 <= 1
    external = case["site"] == EXTERNAL_SITE
    noise = config.noise_hu * (1.0 + config.site_shift if external else 1.0)
    volume = np.where(body, -700.0, -1000.0) + rng.normal(0, noise, (size,) * 3)
    mask = np.zeros((size,) * 3, bool)
    if case["positive"] and lesion:
        distance = np.sqrt((z - case["cz"]) ** 2 + (y - case["cy"]) ** 2 + (x - case["cx"]) ** 2)
        mask = distance <= case["radius"]
        volume = np.where(
            mask, config.nodule_hu + rng.normal(0, config.noise_hu, volume.shape), volume
        )
    if case["marker"]:
        m = config.marker_size
        volume[:m, :m, :m] = 1000.0
    if external:
        volume = volume + 150.0 * config.site_shift
    return volume.astype(np.float32), mask


def marker_box(config: VolumePhantomConfig) -> list[int]:
    """Return the marker's box ``[z0, y0, x0, z1, y1, x1]`` in voxels (ends exclusive)."""
    m = config.marker_size
    return [0, 0, 0, m, m, m]


@dataclass(frozen=True)
class VolumePhantomResult:
    """Where the phantom was written."""

    manifest_path: Path
    truth_path: Path
    out_dir: Path
    n_volumes: int


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def generate_volume_phantom(
    out_dir: str | os.PathLike[str],
    config: VolumePhantomConfig | None = None,
    *,
    force: bool = False,
) -> VolumePhantomResult:
    """Write the 3-D phantom (volumes, masks, manifest.csv, phantom.json) to ``out_dir`` and say where."""
    config = config or VolumePhantomConfig()
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not force:
        raise OutputExistsError(
            f"output folder '{out}' is not empty; choose an empty folder or pass --force"
        )
    (out / "volumes").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    cases = sample_cases(config)
    rows, truth = [], []
    for _, case in cases.iterrows():
        volume, mask = render_case(case, config)
        image = f"volumes/{case['id']}.npy"
        atomic_write_bytes(out / image, _npy_bytes(volume))
        mask_path = ""
        if case["positive"]:
            mask_path = f"masks/{case['id']}.npy"
            atomic_write_bytes(out / mask_path, _npy_bytes(mask.astype(np.uint8)))
        rows.append(
            {
                "id": case["id"],
                "image": image,
                "label": case["label"],
                "patient_id": f"patient_{case['id'][3:]}",
                "site": case["site"],
                "split": "external" if case["site"] == EXTERNAL_SITE else "",
                "mask": mask_path,
                "sex": case["sex"],
            }
        )
        truth.append(
            {
                "id": case["id"],
                "site": case["site"],
                "lesion_present": bool(case["positive"]),
                "nodule_center": [float(case["cz"]), float(case["cy"]), float(case["cx"])]
                if case["positive"]
                else None,
                "nodule_radius": float(case["radius"]) if case["positive"] else None,
                "marker": bool(case["marker"]),
            }
        )
    manifest = out / "manifest.csv"
    atomic_write_text(manifest, pd.DataFrame(rows).to_csv(index=False, lineterminator="\n"))
    document = {
        "config": {**asdict(config), "nodule_radius": list(config.nodule_radius)},
        "window": list(LUNG_WINDOW),
        "external_site": EXTERNAL_SITE,
        "flaws": {
            "shortcut": {
                "strength": config.shortcut,
                "marker_box": marker_box(config),
                "sites": ["site_A", "site_B"],
            },
            "site_shift": {
                "strength": config.site_shift,
                "site": EXTERNAL_SITE,
                "offset_hu": 150.0 * config.site_shift,
            },
        },
        "volumes": truth,
    }
    truth_path = out / "phantom.json"
    atomic_write_text(truth_path, json.dumps(document, indent=1, sort_keys=True) + "\n")
    return VolumePhantomResult(manifest, truth_path, out, len(rows))
