"""One finding's saliency evidence in the multi-label section: a table per method and a small gallery of strips.

Reads ``findings.<f>.saliency.<method>`` (the finding's own logit explained:
localisation against its masks, the corner and declared-region shortcut
shares, the sanity check) and ``findings.<f>.gallery`` (overlays under
``explain/<f>/``), drawn as the 2-D gallery's strips
(:func:`auditkit.report.gallery.make_strip`: the lesion outline once per
panel, in the image's pixel grid).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from auditkit.report import formatting as fmt
from auditkit.report.gallery import make_strip
from auditkit.report.sections.common import Source
from auditkit.report.sections.explanations import CATEGORY_TITLES, SHORT_NAMES

#: gallery strips shown per finding, one per category in this order (results.json keeps them all).
SHOWN = ("worst_false_negative", "worst_false_positive", "true_positive", "false_negative", "false_positive",
         "true_negative")  # fmt: skip
MAX_STRIPS = 4
#: the worst cases of a finding are ranked over its own cohort at its own operating point (not results.json failures).
TITLES = {**CATEGORY_TITLES, "worst_false_negative": "Worst false negative (lowest score of the cohort's misses)",
          "worst_false_positive": "Worst false positive (highest score of the cohort's false alarms)"}  # fmt: skip


def _block(methods: Mapping[str, Any], method: str, *keys: str) -> Any:
    node: Any = methods.get(method)
    for key in keys:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node


def _rows(source: Source, methods: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return the evidence rows: label, then one cell per method."""
    names = list(methods)

    def row(label: str, key: str | None, *path: str) -> dict[str, Any]:
        return {"label": label, "cells": [source.cell(_block(methods, m, *path), key) for m in names]}

    rows = [
        row(fmt.metric_label("hit_rate"), "hit_rate", "localization", "hit_rate"),
        row(fmt.metric_label("energy_pointing"), "energy_pointing", "localization", "energy_pointing"),
        {"label": "Images with a lesion mask", "cells": [
            {"text": fmt.format_count(_block(methods, m, "localization", "n_images")), "css": "value"} for m in names]},
        row("Corner shortcut share (all sampled images)", None, "shortcut_score"),
        row("Deletion AUC, saliency order (lower = more faithful)", None, "faithfulness", "deletion_auc"),
        row("Deletion AUC, random order", None, "faithfulness", "deletion_auc_random"),
        row("Insertion AUC, saliency order (higher = more faithful)", None, "faithfulness", "insertion_auc"),
        row("Insertion AUC, random order", None, "faithfulness", "insertion_auc_random"),
        row("Map SSIM under input noise", None, "stability", "noise_ssim"),
    ]  # fmt: skip
    cohorts: list[str] = []
    for m in names:
        for cohort in _block(methods, m, "shortcut", "declared_region", "positives_by_cohort") or {}:
            if cohort not in cohorts:
                cohorts.append(cohort)
    for cohort in cohorts:
        rows.append(row(f"Share in the declared shortcut region, positives, {source.cohort_label(cohort)}", None,
                        "shortcut", "declared_region", "positives_by_cohort", cohort))  # fmt: skip
    if cohorts:
        diffuse = _block(methods, names[0], "shortcut", "declared_region", "diffuse_map_share")
        rows.append({"label": "Same share for a diffuse map (the region's area)",
                     "cells": [{"text": fmt.format_number(diffuse), "css": "value"} for _ in names]})
    sanity = []
    for m in names:
        passed = _block(methods, m, "sanity", "passed")
        sanity.append({"text": "\u2014" if passed is None else ("passed" if passed else "failed"), "css": "value"})
    rows.append({"label": "Model-randomisation sanity check", "cells": sanity})
    return rows


def _gallery(source: Source, entries: list[Mapping[str, Any]], methods: list[str]) -> list[dict[str, Any]]:
    """Return up to :data:`MAX_STRIPS` strips, one per category in :data:`SHOWN` order (internal test first)."""
    chosen = []
    for category in SHOWN:
        pool = [e for e in entries if e.get("category") == category]
        pool.sort(key=lambda e: (e.get("cohort") != "test", e.get("worst_rank", 0), str(e.get("id"))))
        if pool:
            chosen.append(pool[0])
        if len(chosen) == MAX_STRIPS:
            break
    out = []
    for entry in chosen:
        overlays = entry.get("overlays") if isinstance(entry.get("overlays"), Mapping) else {}
        strip = make_strip(source.report_dir, [entry.get("image"), *(overlays.get(m) for m in methods)],
                           mask=entry.get("mask"), image_format=source.panel_format)  # fmt: skip
        score = entry.get("score")
        out.append({
            "id": str(entry.get("id")), "title": TITLES.get(str(entry.get("category")), "Case"),
            "cohort": source.cohort_label(str(entry.get("cohort") or "")),
            "score": fmt.format_number(score, digits=3) if isinstance(score, (int, float)) else "\u2014",
            "y_true": fmt.plain(entry.get("y_true")),
            "mask": "finding's mask outlined" if entry.get("mask") else "no mask (finding absent)",
            "src": source.assets.add(strip.data, strip.mime), "width_mm": f"{strip.width_mm:.2f}",
            "problems": list(strip.problems),
        })  # fmt: skip
    return out


def build_finding_saliency(source: Source, name: str, section: Mapping[str, Any]) -> dict[str, Any]:
    """Return one finding's saliency context (``available`` False when the finding was not explained)."""
    methods = {k: v for k, v in (section.get("saliency") or {}).items() if isinstance(v, Mapping)}
    if not methods:
        return {"available": False}
    entries = [e for e in section.get("gallery") or [] if isinstance(e, Mapping)]
    first = next(iter(methods.values()))
    return {
        "available": True,
        "headers": [SHORT_NAMES.get(m, m) for m in methods],
        "rows": _rows(source, methods),
        "target": str(first.get("target") or ""),
        "n_images": fmt.format_count(first.get("n_images")),
        "panels": ", ".join(["image", *(SHORT_NAMES.get(m, m) for m in methods)]),
        "gallery": _gallery(source, entries, list(methods)),
        "n_gallery": len(entries),
        "faithfulness": str((first.get("faithfulness") or {}).get("score") or "not computed"),
    }
