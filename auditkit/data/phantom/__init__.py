"""The synthetic multi-site phantom: chest-radiograph-like images with planted, recorded flaws.

The embedded data set of the demo and the tests (real medical data cannot be
downloaded here), and the ground truth later analyses are checked against:
a learnable lesion with its exact mask, a lung region of interest, several
acquisition sites, patients with several images, ``sex`` and ``age_group``,
and switchable flaws (shortcut marker, underdiagnosis, label noise, site
shift; off by default: a hidden slice, and the fragility of lesions drawn as
one-pixel texture), all recorded in ``phantom.json``.

- :mod:`~auditkit.data.phantom.config` -- ``PhantomConfig``, ``Flaws``, ``FlawConfig``, ``SiteConfig``
- :mod:`~auditkit.data.phantom.cohort` -- ``sample_cases`` (the per-image table)
- :mod:`~auditkit.data.phantom.render` -- ``render_cases`` (pure NumPy images and masks)
- :mod:`~auditkit.data.phantom.writer` -- ``generate_phantom`` (PNG, manifest, phantom.json)
"""

from __future__ import annotations

from auditkit.data.phantom.config import (
    AGE_GROUPS,
    FLAW_NAMES,
    LABEL_NAMES,
    SEXES,
    FlawConfig,
    Flaws,
    PhantomConfig,
    SiteConfig,
    build_config,
    default_sites,
)
from auditkit.data.phantom.writer import PhantomResult, generate_phantom

__all__ = [
    "AGE_GROUPS",
    "FLAW_NAMES",
    "LABEL_NAMES",
    "SEXES",
    "FlawConfig",
    "Flaws",
    "PhantomConfig",
    "PhantomResult",
    "SiteConfig",
    "build_config",
    "default_sites",
    "generate_phantom",
]
