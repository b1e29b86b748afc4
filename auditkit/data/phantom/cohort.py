"""The phantom's cohort: patients, demographics, findings, planted label noise and markers.

:func:`sample_cases` turns a :class:`PhantomConfig` into one table row per image
holding everything the renderer needs and everything a test may check
(lesion present, observed label, flipped or not, marker or not, lesion
geometry and contrast). Each aspect draws from its own child of the seed
(``numpy.random.SeedSequence.spawn``), so switching a flaw on or off changes
only what that flaw touches: the same seed gives the same patients, anatomy
and lesions with and without flaws, which makes clean/flawed comparisons
paired.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from auditkit.data.phantom.config import AGE_GROUPS, SEXES, PhantomConfig

MARKER_BASE_RATE = 0.5
"""Probability of the burned-in marker where it carries no label information."""

# appended streams keep the earlier ones unchanged (SeedSequence.spawn children are indexed)
_STREAMS = ("patients", "anatomy", "lesions", "findings", "label_noise", "marker", "hidden")
#: share of patients in the latent slice of the ``hidden_slice`` flaw.
HIDDEN_SLICE_SHARE = 0.25


def _streams(seed: int) -> dict[str, np.random.Generator]:
    children = np.random.SeedSequence(seed).spawn(len(_STREAMS))
    return {name: np.random.default_rng(child) for name, child in zip(_STREAMS, children, strict=True)}


def _uniform(rng: np.random.Generator, low: float, high: float, n: int) -> np.ndarray:
    return rng.uniform(low, high, n)


def _patient_counts(rng: np.random.Generator, config: PhantomConfig) -> np.ndarray:
    """Return images per patient, summing exactly to ``n_images`` (the last patient truncated)."""
    choices = np.arange(1, len(config.images_per_patient) + 1)
    counts = rng.choice(choices, size=config.n_images, p=np.asarray(config.images_per_patient))
    total = np.cumsum(counts)
    last = int(np.searchsorted(total, config.n_images))
    counts = counts[: last + 1].copy()
    counts[-1] -= int(total[last] - config.n_images)
    return counts


def _anatomy(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Return per-patient anatomy in normalised coordinates (u right, v down, half-size = 1)."""
    lung_y = _uniform(rng, -0.12, -0.02, n)
    lung_ry = _uniform(rng, 0.45, 0.56, n)
    return {
        "body_w": _uniform(rng, 0.80, 0.95, n),
        "lung_dx": _uniform(rng, 0.33, 0.40, n),
        "lung_y": lung_y,
        "lung_rx": _uniform(rng, 0.22, 0.28, n),
        "lung_ry": lung_ry,
        "lung_tilt": _uniform(rng, 0.05, 0.15, n),
        "heart_x": 0.10 + _uniform(rng, -0.03, 0.03, n),
        "heart_y": lung_y + 0.55 * lung_ry,
        "heart_rx": _uniform(rng, 0.22, 0.28, n),
        "heart_ry": _uniform(rng, 0.17, 0.22, n),
        "rib_freq": _uniform(rng, 4.5, 6.0, n),
        "rib_phase": _uniform(rng, 0.0, 1.0, n),
        "rib_amp": _uniform(rng, 0.03, 0.06, n),
        "rib_curv": _uniform(rng, 0.5, 0.9, n),
        "tissue_level": _uniform(rng, 0.50, 0.58, n),
        "lung_level": _uniform(rng, 0.19, 0.25, n),
    }


def _lesions(rng: np.random.Generator, anatomy: dict[str, np.ndarray], config: PhantomConfig) -> dict[str, np.ndarray]:
    """Return each patient's would-be lesion: centre inside a lung, radii, angle, contrast."""
    n = len(anatomy["lung_dx"])
    tries = 8
    side = np.where(rng.random((n, tries)) < 0.5, -1.0, 1.0)
    radius = 0.65 * np.sqrt(rng.random((n, tries)))
    phi = rng.uniform(0, 2 * np.pi, (n, tries))

    def per_patient(key: str) -> np.ndarray:
        return anatomy[key][:, None]

    cx = side * per_patient("lung_dx") + radius * np.cos(phi) * per_patient("lung_rx")
    cy = per_patient("lung_y") + radius * np.sin(phi) * per_patient("lung_ry")
    heart = ((cx - per_patient("heart_x")) / per_patient("heart_rx")) ** 2 + (
        (cy - per_patient("heart_y")) / per_patient("heart_ry")
    ) ** 2
    # a lesion behind the heart would be clipped to a sliver of visible lung: take the first
    # candidate centre well clear of the heart (rejection sampling), else the lateral lung
    clear = heart > 1.5
    first = np.argmax(clear, axis=1)
    rows = np.arange(n)
    fallback = ~clear.any(axis=1)
    cx = np.where(fallback, side[:, 0] * (anatomy["lung_dx"] + 0.3 * anatomy["lung_rx"]), cx[rows, first])
    cy = np.where(fallback, anatomy["lung_y"], cy[rows, first])
    low, high = config.lesion_radius
    size = np.exp(rng.uniform(np.log(low), np.log(high), n))
    aspect = rng.uniform(0.7, 1.3, n)
    c_low, c_high = config.lesion_contrast
    return {
        "lesion_cx": cx,
        "lesion_cy": cy,
        "lesion_rx": size * np.sqrt(aspect),
        "lesion_ry": size / np.sqrt(aspect),
        "lesion_angle": rng.uniform(0, np.pi, n),
        "lesion_contrast_base": rng.uniform(c_low, c_high, n),
    }


def _subgroup(frame: pd.DataFrame, attribute: str | None, value: str | None) -> np.ndarray:
    if attribute is None:
        return np.zeros(len(frame), dtype=bool)
    return (frame[attribute] == value).to_numpy()


def sample_cases(config: PhantomConfig) -> pd.DataFrame:
    """Return the per-image table of the phantom (one row per image, ``n_images`` rows).

    Columns: ``id``, ``patient_id``, ``patient_index``, ``visit``, ``site``,
    ``external``, ``sex``, ``age_group``, ``lesion`` (truth), ``label_true``,
    ``label`` (observed, after label noise), ``label_flipped``, ``marker``,
    the site's acquisition parameters, per-patient anatomy, per-image pose
    jitter, lesion geometry (normalised coordinates) and ``lesion_contrast``
    (after the underdiagnosis factor, before the site's intensity transfer).
    """
    rng = _streams(config.seed)
    frame, patients = _patients(rng, config)
    jitter = _findings(rng["findings"], frame, patients["disease"], config)
    _lesion_columns(rng["hidden"], frame, patients, jitter, config)
    _labels(rng["label_noise"], frame, config)
    _markers(rng["marker"], frame, config)
    return frame


def _patients(rng: dict[str, np.random.Generator], config: PhantomConfig) -> tuple[pd.DataFrame, dict]:
    """Return the one-row-per-image frame of patients, sites, demographics, acquisition and anatomy.

    Also the per-patient draws later steps need: ``disease``, ``lesion``
    (each patient's would-be lesion), ``patient_of`` (image -> patient) and
    ``n_patients``.
    """
    sites = config.site_list
    counts = _patient_counts(rng["patients"], config)
    n_patients = len(counts)
    weights = np.array([s.weight for s in sites])
    site_index = rng["patients"].choice(len(sites), size=n_patients, p=weights / weights.sum())
    sex = np.asarray(SEXES)[(rng["patients"].random(n_patients) >= config.female_fraction).astype(int)]
    age = rng["patients"].choice(len(AGE_GROUPS), size=n_patients, p=np.asarray(config.age_distribution))
    prevalence = np.array([s.prevalence for s in sites])[site_index]
    change = config.lesion_change_rate
    # patient-level disease chosen so the image-level prevalence is the site's on average:
    # P(lesion) = p (1 - change) + (1 - p) change
    p_disease = np.clip((prevalence - change) / (1 - 2 * change), 0.0, 1.0)
    disease = rng["findings"].random(n_patients) < p_disease
    anatomy = _anatomy(rng["anatomy"], n_patients)
    lesion = _lesions(rng["lesions"], anatomy, config)

    patient_of = np.repeat(np.arange(n_patients), counts)
    visit = np.concatenate([np.arange(c) for c in counts])
    n = config.n_images
    width = max(5, len(str(n - 1)))
    frame = pd.DataFrame(
        {
            "id": [f"img{i:0{width}d}" for i in range(n)],
            "patient_id": [f"P{p:0{width}d}" for p in patient_of],
            "patient_index": patient_of,
            "visit": visit,
            "site": np.asarray([s.name for s in sites], dtype=object)[site_index[patient_of]],
            "external": np.asarray([s.external for s in sites])[site_index[patient_of]],
            "sex": sex[patient_of],
            "age_group": np.asarray(AGE_GROUPS, dtype=object)[age[patient_of]],
        }
    )
    for field in ("gamma", "gain", "offset", "blur_sigma", "noise_sigma", "fov"):
        frame[field] = acquisition(config, field)[site_index[patient_of]]
    for key, values in anatomy.items():
        frame[key] = values[patient_of]
    return frame, {"disease": disease, "lesion": lesion, "patient_of": patient_of, "n_patients": n_patients}


def _findings(rng: np.random.Generator, frame: pd.DataFrame, disease: np.ndarray, config: PhantomConfig) -> np.ndarray:
    """Set ``lesion`` (the patient's disease, changed between visits) and the pose jitter; return the lesion jitter."""
    n = len(frame)
    changed = rng.random(n) < config.lesion_change_rate
    frame["lesion"] = disease[frame["patient_index"].to_numpy()] ^ changed
    # pose jitter between a patient's images (positioning, breathing)
    frame["shift_u"] = rng.uniform(-0.03, 0.03, n)
    frame["shift_v"] = rng.uniform(-0.03, 0.03, n)
    frame["rotation"] = rng.uniform(-0.03, 0.03, n)
    frame["scale"] = rng.uniform(0.97, 1.03, n)
    return rng.uniform(-1.0, 1.0, (n, 4))


def _lesion_columns(
    rng: np.random.Generator, frame: pd.DataFrame, patients: dict, jitter: np.ndarray, config: PhantomConfig
) -> None:
    """Set each image's lesion geometry and contrast, with the underdiagnosis and hidden-slice factors."""
    flaws = config.flaws
    patient_of, lesion = patients["patient_of"], patients["lesion"]
    under = flaws.underdiagnosis
    hit = _subgroup(frame, under.attribute, under.value) & under.enabled
    contrast_factor = np.where(hit, 1.0 - 0.85 * under.strength, 1.0)
    hidden = flaws.hidden_slice
    in_slice = (rng.random(patients["n_patients"]) < HIDDEN_SLICE_SHARE)[patient_of] & hidden.enabled
    contrast_factor = contrast_factor * np.where(in_slice, 1.0 - 0.7 * hidden.strength, 1.0)
    frame["hidden_slice"] = in_slice
    # one side for every patient (a drain on the patient's left): one device, so one slice to find
    frame["device_side"] = np.ones(len(frame))
    size_factor = np.where(hit, 1.0 - 0.3 * under.strength, 1.0)
    frame["lesion_cx"] = lesion["lesion_cx"][patient_of] + 0.02 * jitter[:, 0]
    frame["lesion_cy"] = lesion["lesion_cy"][patient_of] + 0.02 * jitter[:, 1]
    frame["lesion_rx"] = lesion["lesion_rx"][patient_of] * (1 + 0.08 * jitter[:, 2]) * size_factor
    frame["lesion_ry"] = lesion["lesion_ry"][patient_of] * (1 + 0.08 * jitter[:, 2]) * size_factor
    frame["lesion_angle"] = lesion["lesion_angle"][patient_of]
    frame["lesion_contrast"] = (
        lesion["lesion_contrast_base"][patient_of] * (1 + 0.08 * jitter[:, 3]) * contrast_factor
    )
    frame["underdiagnosed"] = hit & frame["lesion"].to_numpy()
    fragility = flaws.fragility
    # no random draw: the flaw changes how every lesion looks, not which images have one
    frame["fine_texture"] = fragility.strength if fragility.enabled else 0.0


def _labels(rng: np.random.Generator, frame: pd.DataFrame, config: PhantomConfig) -> None:
    """Set ``label_true``, the observed ``label`` and ``label_flipped`` (the planted label noise)."""
    label_true = frame["lesion"].to_numpy().astype(np.int64)
    flipped = np.zeros(len(frame), dtype=bool)
    noise = config.flaws.label_noise
    members = np.flatnonzero(_subgroup(frame, noise.attribute, noise.value))
    order = rng.permutation(members)
    if noise.enabled:
        # a prefix of one fixed permutation: a stronger flaw flips a superset of the labels
        flipped[order[: round(noise.strength * len(members))]] = True
    frame["label_true"] = label_true
    frame["label"] = np.where(flipped, 1 - label_true, label_true)
    frame["label_flipped"] = flipped


def _markers(rng: np.random.Generator, frame: pd.DataFrame, config: PhantomConfig) -> None:
    """Set ``marker`` (the burned-in letter, label-dependent at internal sites under the shortcut) and its jitter."""
    n = len(frame)
    shortcut = config.flaws.shortcut
    draw = rng.random(n)
    p_marker = np.full(n, MARKER_BASE_RATE)
    if shortcut.enabled:
        internal = ~frame["external"].to_numpy()
        positive = frame["label"].to_numpy() == 1
        p_marker = np.where(internal & positive, (1 + shortcut.strength) / 2, p_marker)
        p_marker = np.where(internal & ~positive, (1 - shortcut.strength) / 2, p_marker)
    frame["marker"] = draw < p_marker
    frame["marker_jitter_x"] = rng.integers(-1, 2, n)
    frame["marker_jitter_y"] = rng.integers(-1, 2, n)


def acquisition(config: PhantomConfig, field: str) -> np.ndarray:
    """Return one acquisition parameter per site (site order), with the site shift applied.

    The external site's value is ``mid + s * (configured - mid)``, ``mid`` the
    middle of the internal sites' range and ``s`` the site-shift strength (0
    when the flaw is disabled), so a clean phantom's external site images like
    an internal one.
    """
    sites = config.site_list
    values = np.array([getattr(s, field) for s in sites], dtype=float)
    internal = np.array([not s.external for s in sites])
    if internal.all():
        return values
    shift = config.flaws.site_shift
    strength = shift.strength if shift.enabled else 0.0
    mid = 0.5 * (values[internal].min() + values[internal].max())
    return np.where(internal, values, mid + strength * (values - mid))
