"""Hidden stratification: candidate slices from embeddings (and metadata), and the ones that underperform.

An average can hide a subset the model fails on that no attribute names
(Oakden-Rayner et al. 2020, "Hidden stratification"; chest drains explaining
a performance gap). Candidate slices are clusters of the model's
penultimate-layer embeddings, standardised and reduced by PCA, optionally
joined with one-hot metadata (k-means, Eyuboglu et al. 2022 "Domino" uses a
richer mixture model; k-means keeps it deterministic and cheap). Each slice is
compared with the rest of its cohort on AUROC (prevalence-free) and on the
error rate at the operating point, the differences bootstrapped with the
run's patient-clustered resamples, and the AUROC gaps form one family
adjusted by Holm (or Benjamini–Hochberg): a flagged slice is a testable
hypothesis for a reviewer, not a finding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from auditkit.errors import InvalidInputError
from auditkit.results import Estimate
from auditkit.stats.bootstrap import bootstrap_z_test
from auditkit.stats.engine import Engine
from auditkit.stats.multiplicity import adjust_p_values
from auditkit.stats.views import BinaryView, LinearView

#: a slice needs this many images of each class for its AUROC to be compared.
MIN_PER_CLASS = 5


def candidate_slices(
    embeddings: np.ndarray,
    *,
    n_slices: int,
    metadata: np.ndarray | None = None,
    n_components: int = 16,
    metadata_weight: float = 1.0,
    random_state: int = 0,
) -> np.ndarray:
    """Return each image's candidate slice (int64 ``(n,)``, 0..n_slices-1) from k-means on its embedding.

    Embeddings ``(n, D)`` are standardised and projected on their first
    ``n_components`` principal components; ``metadata`` ``(n, m)`` (e.g.
    one-hot attributes) is appended, scaled by ``metadata_weight``.
    Deterministic for a given ``random_state``.
    """
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or len(x) < n_slices:
        raise InvalidInputError(
            f"slice discovery needs (n, D) embeddings with n >= n_slices={n_slices}, got shape {x.shape}"
        )
    if n_slices < 2:
        raise InvalidInputError(f"n_slices must be at least 2, got {n_slices}")
    sd = x.std(axis=0)
    z = (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    k = int(min(n_components, z.shape[1], len(z) - 1))
    reduced = PCA(n_components=k, random_state=random_state).fit_transform(z) if k >= 1 else z
    # scale so the components together have unit variance per image, like one metadata column
    reduced = reduced / max(np.sqrt((reduced**2).sum(axis=1).mean()), 1e-12)
    if metadata is not None:
        m = np.asarray(metadata, dtype=np.float64)
        if m.shape[0] != len(x):
            raise InvalidInputError(f"metadata has {m.shape[0]} rows, embeddings {len(x)}")
        reduced = np.hstack([reduced, metadata_weight * m])
    km = KMeans(n_clusters=n_slices, n_init=4, random_state=random_state)
    return km.fit_predict(reduced).astype(np.int64)


def representatives(
    embeddings: np.ndarray, members: np.ndarray, *, k: int = 4
) -> np.ndarray:
    """Return up to ``k`` member indices closest to the members' mean embedding (most typical first)."""
    members = np.asarray(members, dtype=np.int64)
    if members.size == 0:
        return members
    x = np.asarray(embeddings, dtype=np.float64)[members]
    d = ((x - x.mean(axis=0)) ** 2).sum(axis=1)
    return members[np.argsort(d, kind="stable")[:k]]


@dataclass(frozen=True)
class SliceSettings:
    """How slices are compared: the operating point, minimum sizes, multiplicity, significance."""

    threshold: float | None = None
    min_size: int = 20
    multiplicity: str = "holm"
    alpha: float = 0.05


def _auroc(batch):  # type: ignore[no-untyped-def]
    return {"auroc": batch.auroc()}


def _error_statistic(sums: np.ndarray) -> dict[str, np.ndarray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"error_rate": sums[:, 1] / sums[:, 0]}


def _adjust_family(records: list[dict[str, Any]], key: str, settings: SliceSettings, *, worse: int) -> list[bool]:
    """Set each record's ``key`` gap p-value adjusted across the slices; return whether each is credibly worse.

    ``worse`` is the sign of a worse slice (-1: a lower AUROC, +1: a higher
    error rate). The AUROC gaps and the error gaps are two families: the
    error gap is the one comparison a slice holding a single class still has
    (its AUROC is undefined), so a cluster of healthy images the model calls
    positive shows there, not in the AUROC gaps.
    """
    gaps = [r.get(key) for r in records]
    p = [g.p_value if g is not None and g.p_value is not None else np.nan for g in gaps]
    adjusted = adjust_p_values(p, method=settings.multiplicity) if np.isfinite(p).any() else p
    flags = []
    for rec, gap, p_adj in zip(records, gaps, adjusted, strict=True):
        defined = gap is not None and gap.defined
        if defined:
            rec[key] = Estimate(
                gap.estimate, gap.ci_low, gap.ci_high, gap.p_value,
                float(p_adj) if np.isfinite(p_adj) else None, method=gap.method,
            )  # fmt: skip
        flags.append(bool(defined and worse * gap.estimate > 0 and np.isfinite(p_adj) and p_adj < settings.alpha))
    return flags


def slice_report(
    engine: Engine,
    rows: np.ndarray,
    y_true: np.ndarray,
    y_score: np.ndarray,
    slices: np.ndarray,
    *,
    settings: SliceSettings | None = None,
) -> list[dict[str, Any]]:
    """Return one record per slice: n, prevalence, AUROC and error rate in and out, gaps with CIs and p.

    ``rows`` are the table rows (the engine's resamples cover them);
    ``y_true``, ``y_score`` (positive-class score) and ``slices`` are aligned
    with ``rows``. ``auroc_gap`` = slice − rest (negative: the slice is
    worse); its p-values across slices are adjusted together
    (``p_adjusted``); ``flagged`` is True when the slice is worse and the
    adjusted p-value is below ``alpha``. Sorted by AUROC gap, worst first.
    """
    settings = settings or SliceSettings()
    rows = np.asarray(rows, dtype=np.int64)
    y = np.asarray(y_true, dtype=np.int64)
    s = np.asarray(y_score, dtype=np.float64)
    labels = np.asarray(slices, dtype=np.int64)
    records: list[dict[str, Any]] = []
    for c in np.unique(labels):
        inside = labels == c
        n_in = int(inside.sum())
        rec: dict[str, Any] = {
            "slice": int(c),
            "n": n_in,
            "n_positive": int(y[inside].sum()),
            "prevalence": float(y[inside].mean()) if n_in else None,
            "members": np.flatnonzero(inside),
        }
        enough = (
            n_in >= settings.min_size
            and min(y[inside].sum(), (1 - y[inside]).sum()) >= MIN_PER_CLASS
            and min(y[~inside].sum(), (1 - y[~inside]).sum()) >= MIN_PER_CLASS
        )
        if enough:
            d_in = engine.evaluate(BinaryView.from_arrays(rows[inside], y[inside], s[inside]), _auroc)["auroc"]
            d_out = engine.evaluate(BinaryView.from_arrays(rows[~inside], y[~inside], s[~inside]), _auroc)["auroc"]
            rec["auroc"] = engine.estimate(d_in)
            rec["auroc_rest"] = engine.estimate(d_out)
            diff = d_in - d_out
            rec["auroc_gap"] = engine.estimate(diff, p_value=bootstrap_z_test(diff))
        else:
            reason = (
                f"slice of {n_in} images with {int(y[inside].sum())} positives: fewer than "
                f"{settings.min_size} images or {MIN_PER_CLASS} of a class"
            )
            for key in ("auroc", "auroc_rest", "auroc_gap"):
                rec[key] = Estimate.undefined(reason)
        if settings.threshold is not None and n_in >= settings.min_size:
            err = ((s >= settings.threshold).astype(np.int64) != y).astype(np.float64)
            feats = np.vstack([np.ones(len(rows)), err])
            e_in = engine.evaluate(LinearView(rows[inside], np.ascontiguousarray(feats[:, inside])), _error_statistic)
            e_out = engine.evaluate(
                LinearView(rows[~inside], np.ascontiguousarray(feats[:, ~inside])), _error_statistic
            )
            rec["error_rate"] = engine.estimate(e_in["error_rate"])
            rec["error_rate_rest"] = engine.estimate(e_out["error_rate"])
            diff = e_in["error_rate"] - e_out["error_rate"]
            rec["error_gap"] = engine.estimate(diff, p_value=bootstrap_z_test(diff))
        records.append(rec)
    for rec, flag in zip(records, _adjust_family(records, "auroc_gap", settings, worse=-1), strict=True):
        rec["flagged"] = flag
    if any(r.get("error_gap") is not None for r in records):
        for rec, flag in zip(records, _adjust_family(records, "error_gap", settings, worse=1), strict=True):
            rec["error_flagged"] = flag
    records.sort(key=lambda r: (r["auroc_gap"].estimate if r["auroc_gap"].defined else np.inf))
    return records
