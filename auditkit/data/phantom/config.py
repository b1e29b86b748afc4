"""Configuration of the synthetic multi-site phantom: sites, acquisition, cohort, planted flaws.

Every knob that changes the images is here, and the whole configuration is
written to ``phantom.json`` so a later analysis can be checked against what
was planted. Strengths are on a 0..1 scale; what each means is documented on
:class:`Flaws`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from auditkit.errors import ConfigError, describe_validation_error

SEXES: tuple[str, ...] = ("F", "M")
AGE_GROUPS: tuple[str, ...] = ("18-40", "40-60", "60-80", "80+")
FLAW_NAMES: tuple[str, ...] = (
    "shortcut", "underdiagnosis", "label_noise", "site_shift", "hidden_slice", "fragility",
)
LABEL_NAMES: tuple[str, str] = ("normal", "lesion")
SITE_LETTERS = "ABCDEFGH"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SiteConfig(_Frozen):
    """One acquisition site: its share of patients, prevalence and imaging chain.

    The chain maps the scene ``x`` in [0, 1] to ``offset + gain * blur(x) ** gamma``
    plus Gaussian noise of ``noise_sigma``; ``blur_sigma`` is in pixels of a
    64-pixel image (scaled with ``size``); ``fov`` > 1 shows more of the body
    (anatomy smaller), < 1 zooms in.
    """

    name: str
    external: bool = False
    weight: float = Field(1.0, gt=0)
    prevalence: float = Field(0.35, gt=0, lt=1)
    gamma: float = Field(1.0, gt=0)
    gain: float = Field(1.0, gt=0)
    offset: float = 0.0
    blur_sigma: float = Field(0.5, ge=0, le=4)
    noise_sigma: float = Field(0.02, ge=0, le=0.2)
    fov: float = Field(1.0, gt=0.5, lt=1.6)


ACQUISITION_FIELDS: tuple[str, ...] = ("gamma", "gain", "offset", "blur_sigma", "noise_sigma", "fov")


class FlawConfig(_Frozen):
    """One planted flaw: whether it is on, its strength in [0, 1], and the subgroup it hits.

    ``attribute``/``value`` name the subgroup for underdiagnosis and label
    noise; the shortcut hits the internal sites and the site shift the
    external site, so they leave them empty.
    """

    enabled: bool = True
    strength: float = Field(0.5, ge=0, le=1)
    attribute: Literal["sex", "age_group"] | None = None
    value: str | None = None

    @model_validator(mode="after")
    def _value_belongs_to_attribute(self) -> FlawConfig:
        if self.attribute is not None:
            allowed = SEXES if self.attribute == "sex" else AGE_GROUPS
            if self.value not in allowed:
                raise ValueError(
                    f"value {self.value!r} is not a value of attribute {self.attribute!r} "
                    f"(one of {list(allowed)})"
                )
        return self


class Flaws(_Frozen):
    """The planted flaws and what their strength ``s`` means.

    - ``shortcut``: a burned-in laterality-style marker in the top-right corner.
      At internal sites it appears with probability ``(1 + s) / 2`` on images
      labelled positive and ``(1 - s) / 2`` on negatives; at the external site
      (and everywhere when disabled) with probability 1/2 whatever the label.
    - ``underdiagnosis``: in the subgroup, lesion contrast is multiplied by
      ``1 - 0.85 s`` and lesion radius by ``1 - 0.3 s``.
    - ``label_noise``: exactly ``round(s * n)`` of the subgroup's ``n`` labels are
      flipped (both directions); the image content is unchanged.
    - ``site_shift``: the external site's acquisition moves from the middle of
      the internal sites' range (s = 0, or disabled) to its configured,
      out-of-range values (s = 1) linearly.
    - ``hidden_slice`` (off by default): a latent quarter of the patients,
      named by no attribute, carries a device (a bold bright tube from the
      lower body wall into the patient's left lower lung, like a chest drain)
      and their lesions' contrast is multiplied by ``1 - 0.7 s``: hidden
      stratification for slice discovery to find. Membership is recorded only
      in phantom.json (``hidden_slice``).
    - ``fragility`` (off by default): the acquisition's post-processing (an
      edge-enhancement filter) renders every lesion mainly as pixel-scale
      texture: the smooth lesion's contrast is multiplied by ``1 - 0.9 s`` and
      a checkerboard of amplitude ``0.6 s`` times the lesion contrast is added
      inside the lesion after the site's blur and intensity transfer. A model
      that learns it reads the finest detail, which mild resolution loss,
      sub-pixel shifts, small rotations and JPEG re-compression remove (a blur
      of 0.5 px barely does): planted fragility for the robustness analysis.

    The defaults were calibrated with ``smallcnn`` (benchmarks/RESULTS.md):
    alone, each flaw moves the number its analysis reads (external AUROC,
    subgroup FNR, subgroup AUROC/calibration, external AUROC and score
    shift) while the clean phantom moves none. Together, the shortcut
    dominates learning and weakens the others' signals, so check one
    analysis on a phantom with that flaw only.
    """

    shortcut: FlawConfig = FlawConfig(strength=0.8)
    underdiagnosis: FlawConfig = FlawConfig(strength=0.8, attribute="sex", value="F")
    label_noise: FlawConfig = FlawConfig(strength=0.3, attribute="age_group", value="80+")
    site_shift: FlawConfig = FlawConfig(strength=1.0)
    hidden_slice: FlawConfig = FlawConfig(enabled=False, strength=0.8)
    fragility: FlawConfig = FlawConfig(enabled=False, strength=1.0)

    def enabled_names(self) -> tuple[str, ...]:
        """Return the names of the enabled flaws, in canonical order."""
        return tuple(name for name in FLAW_NAMES if getattr(self, name).enabled)


def default_sites(n_sites: int) -> tuple[SiteConfig, ...]:
    """Return ``n_sites`` sites: internal ones spread between site_A and site_B, the last external.

    Internal sites differ mildly (gamma 0.9-1.1, blur 0.5-0.8 px, noise
    0.015-0.022, field of view 1.0-1.06, prevalence 0.30-0.42); the external
    site's configured acquisition (gamma 1.6, blur 1.4 px, noise 0.035, field
    of view 0.88, darker offset) lies outside that range. One site means no
    external site.
    """
    first = SiteConfig(name="site_A", weight=0.45, prevalence=0.30, gamma=0.90, gain=1.00,
                       offset=0.00, blur_sigma=0.5, noise_sigma=0.015, fov=1.00)
    second = SiteConfig(name="site_B", weight=0.35, prevalence=0.42, gamma=1.10, gain=0.95,
                        offset=0.03, blur_sigma=0.8, noise_sigma=0.022, fov=1.06)
    n_internal = max(1, n_sites - 1)
    internal = []
    for index in range(n_internal):
        t = index / (n_internal - 1) if n_internal > 1 else 0.0
        values = {
            field: (1 - t) * getattr(first, field) + t * getattr(second, field)
            for field in ("weight", "prevalence", *ACQUISITION_FIELDS)
        }
        internal.append(SiteConfig(name=f"site_{SITE_LETTERS[index]}", **values))
    if n_sites == 1:
        return (internal[0],)
    external = SiteConfig(name=f"site_{SITE_LETTERS[n_sites - 1]}", external=True, weight=0.25,
                          prevalence=0.35, gamma=1.60, gain=0.85, offset=0.06, blur_sigma=1.4,
                          noise_sigma=0.035, fov=0.88)
    return (*internal, external)


class PhantomConfig(_Frozen):
    """The whole phantom: size, cohort, sites and flaws. Same config and seed, same bytes.

    ``sites`` defaults to :func:`default_sites` (``n_sites``); giving it
    overrides ``n_sites``. ``external_site`` names the external site (default:
    the one marked ``external``).
    """

    n_images: int = Field(3000, ge=8, le=1_000_000)
    size: int = Field(64, ge=32, le=512)
    n_sites: int = Field(3, ge=1, le=len(SITE_LETTERS))
    seed: int = Field(0, ge=0)
    bit_depth: Literal[8, 16] = 8
    sites: tuple[SiteConfig, ...] | None = None
    external_site: str | None = None
    flaws: Flaws = Flaws()
    female_fraction: float = Field(0.5, gt=0, lt=1)
    age_distribution: tuple[float, float, float, float] = (0.22, 0.33, 0.32, 0.13)
    images_per_patient: tuple[float, ...] = (0.55, 0.22, 0.13, 0.10)
    lesion_change_rate: float = Field(0.1, ge=0, lt=0.5)
    lesion_radius: tuple[float, float] = (0.09, 0.20)
    lesion_contrast: tuple[float, float] = (0.12, 0.42)

    @model_validator(mode="after")
    def _resolve_sites(self) -> PhantomConfig:
        sites = self.sites if self.sites is not None else default_sites(self.n_sites)
        names = [s.name for s in sites]
        if len(set(names)) != len(names):
            raise ValueError(f"site names must be unique, got {names}")
        if any(n.lower() in {"train", "val", "test", "external", "default"} for n in names):
            raise ValueError(f"site names may not be split names or 'default', got {names}")
        marked = [s.name for s in sites if s.external]
        external = self.external_site
        if external is None:
            if len(marked) > 1:
                raise ValueError(f"at most one site may be external, got {marked}")
            external = marked[0] if marked else None
        elif external not in names:
            raise ValueError(f"external_site {external!r} is not one of the sites {names}")
        if external is not None and len(sites) < 2:
            raise ValueError("an external site needs at least one internal site")
        resolved = tuple(s.model_copy(update={"external": s.name == external}) for s in sites)
        object.__setattr__(self, "sites", resolved)
        object.__setattr__(self, "n_sites", len(resolved))
        object.__setattr__(self, "external_site", external)
        for name, values in (("age_distribution", self.age_distribution),
                             ("images_per_patient", self.images_per_patient)):
            if any(v < 0 for v in values) or abs(sum(values) - 1) > 1e-6:
                raise ValueError(f"{name} must be probabilities summing to 1, got {values}")
        if not 0 < self.lesion_radius[0] <= self.lesion_radius[1] < 0.4:
            raise ValueError(f"lesion_radius must satisfy 0 < low <= high < 0.4, got {self.lesion_radius}")
        if not 0 < self.lesion_contrast[0] <= self.lesion_contrast[1] <= 0.5:
            raise ValueError(
                f"lesion_contrast must satisfy 0 < low <= high <= 0.5, got {self.lesion_contrast}"
            )
        return self

    @property
    def site_list(self) -> tuple[SiteConfig, ...]:
        """Return the resolved sites (never None after validation)."""
        return self.sites or ()

    def with_flaws(self, enabled: tuple[str, ...], strengths: dict[str, float] | None = None) -> PhantomConfig:
        """Return a copy with exactly the flaws in ``enabled`` on, and the given strengths."""
        unknown = [n for n in (*enabled, *(strengths or {})) if n not in FLAW_NAMES]
        if unknown:
            raise ConfigError(
                f"unknown flaw(s) {unknown}; choose among {', '.join(FLAW_NAMES)} (or 'none')"
            )
        updates = {}
        for name in FLAW_NAMES:
            change: dict[str, object] = {"enabled": name in enabled}
            if strengths and name in strengths:
                change["strength"] = strengths[name]
            updates[name] = {**getattr(self.flaws, name).model_dump(), **change}
        return build_config(**{**self.model_dump(exclude={"flaws"}), "flaws": updates})


def build_config(**values: object) -> PhantomConfig:
    """Return a validated PhantomConfig; raises ConfigError naming the field that is wrong."""
    try:
        return PhantomConfig.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(
            describe_validation_error(exc, "phantom configuration", noun="field")
        ) from None
