"""Sections 8 and 9: explanations (trust evidence and gallery) and failure analysis.

The saliency trust evidence follows Arun et al. (2021) and Adebayo et al.
(2018) for sanity checks, Petsiuk et al. (2018) for deletion/insertion,
Saporta et al. (2022) for localisation and Sundararajan et al. (2017) for IG
completeness. The gallery shows each selected case's image and every
method's overlay side by side, with the ground-truth contour.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any

from auditkit.explain import methods as attribution_methods
from auditkit.explain.overlay import CONTOUR_RGB
from auditkit.progress import track
from auditkit.report import formatting as fmt
from auditkit.report.gallery import Strip, make_strip
from auditkit.report.sections.common import TO_BE_COMPLETED, Source, not_assessed

#: names of the attribution methods: the registry's (auditkit.explain.methods).
METHOD_NAMES = attribution_methods.full_labels()
SHORT_NAMES = attribution_methods.labels()
CATEGORY_TITLES = {
    "worst_false_negative": "Worst false negatives of each cohort (results.json failures; lowest score first)",
    "worst_false_positive": "Worst false positives of each cohort (highest score first)",
    "true_positive": "True positives",
    "false_negative": "False negatives (missed findings)",
    "false_positive": "False positives",
    "true_negative": "True negatives",
}

DISCLAIMER = (
    "Saliency maps show which pixels influenced the score; they are not validated localisation. "
    "Grad-CAM and the other methods fall short of radiologists and of detection or segmentation models at "
    "localising findings (Saporta et al. 2022; Arun et al. 2021), and some fail basic sanity checks "
    "(Adebayo et al. 2018). Do not use these maps to locate disease; where localisation matters, a "
    "detection or segmentation model validated for that purpose is needed."
)

#: What a heatmap's values are, per method (the colour bar's units).
UNITS = attribution_methods.units()
#: colour stops sampled from the colormap for the legend's CSS gradient.
LEGEND_STOPS = 11


def _gradient(cmap: str) -> str:
    """Return a CSS ``linear-gradient`` through ``cmap`` (Matplotlib name), low values on the left."""
    from matplotlib import colormaps

    try:
        colormap = colormaps[cmap]
    except KeyError:
        colormap = colormaps["inferno"]
    stops = []
    for i in range(LEGEND_STOPS):
        r, g, b, _ = colormap(i / (LEGEND_STOPS - 1))
        stops.append(f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x} {100 * i / (LEGEND_STOPS - 1):.0f}%")
    return "linear-gradient(to right, " + ", ".join(stops) + ")"


def _legend(entries: list[Mapping[str, Any]], methods: list[str]) -> list[dict[str, str]]:
    """Return one colour-bar legend per method and distinct scale (the audit shares one scale per method)."""
    legend = []
    for method in methods:
        seen: list[tuple[Any, ...]] = []
        for entry in entries:
            scales = entry.get("overlay_scales") if isinstance(entry.get("overlay_scales"), Mapping) else {}
            scale = scales.get(method) if isinstance(scales.get(method), Mapping) else None
            if scale is None:
                continue
            key = (scale.get("vmin"), scale.get("vmax"), scale.get("cmap"), scale.get("label"))
            if key in seen:
                continue
            seen.append(key)
            legend.append({
                "method": SHORT_NAMES.get(method, method),
                "vmin": fmt.format_number(scale.get("vmin"), digits=3),
                "vmax": fmt.format_number(scale.get("vmax"), digits=3),
                "gradient": _gradient(str(scale.get("cmap") or "inferno")),
                "units": UNITS.get(method, "attribution (units not recorded)"),
                "scale": str(scale.get("label") or ""),
            })
    return legend


def gallery_workers() -> int:
    """Return the number of threads that prepare gallery strips (the cores, at most 4)."""
    return min(4, os.cpu_count() or 1)


#: Strips wider than this print one per row; narrower ones two per row.
WIDE_STRIP_MM = 86.0

LOCALISATION = ("hit_rate", "energy_pointing", "iou_otsu", "dice_otsu", "iou_tuned", "dice_tuned")
FAITHFULNESS = ("deletion_auc", "deletion_auc_random", "insertion_auc", "insertion_auc_random")


def _row(source: Source, label: str, values: list[Any], key: str | None = None) -> dict[str, Any]:
    return {"label": label, "cells": [source.cell(v, key) if isinstance(v, Mapping) or v is None else
                                      {"text": fmt.plain(v), "css": "value"} for v in values]}


def _value_cell(source: Source, value: Any) -> dict[str, str]:
    """Return a cell for an Estimate or a bare number (results.json uses both for SSIM baselines)."""
    if isinstance(value, Mapping):
        return source.cell(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {"text": fmt.format_number(value), "css": "value"}
    return {"text": "\u2014", "css": "absent"}


def _evidence(source: Source, methods: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Return the saliency evidence groups: localisation, faithfulness, sanity, shortcut/stability/completeness."""
    names = list(methods)
    groups = []
    loc_rows = []
    for key in LOCALISATION:
        values = [((methods[m].get("localization") or {}) if isinstance(methods[m].get("localization"), Mapping)
                   else {}).get(key) for m in names]
        if any(v is not None for v in values):
            loc_rows.append(_row(source, fmt.metric_label(key), values, key))
    if loc_rows:
        counts = [fmt.format_count((methods[m].get("localization") or {}).get("n_images"))
                  if isinstance(methods[m].get("localization"), Mapping) else "\u2014" for m in names]
        loc_rows.append({"label": "Images with a ground-truth mask", "cells": [{"text": c, "css": "value"}
                                                                                for c in counts]})
    groups.append({"title": "Localisation against expert masks (Saporta et al. 2022)", "rows": loc_rows,
                   "note": "" if loc_rows else not_assessed("no ground-truth masks or boxes were given")})
    faith_rows = []
    for key in FAITHFULNESS:
        values = [(methods[m].get("faithfulness") or {}).get(key) if isinstance(methods[m].get("faithfulness"), Mapping)
                  else None for m in names]
        if any(v is not None for v in values):
            faith_rows.append(_row(source, fmt.metric_label(key), values, key))
    groups.append({"title": "Faithfulness: deletion and insertion vs random order (Petsiuk et al. 2018)",
                   "rows": faith_rows, "note": "" if faith_rows else not_assessed("not computed in this audit")})
    groups.append(_sanity_group(source, methods, names))
    groups.append(_other_group(source, methods, names))
    return groups


def _sanity_group(source: Source, methods: Mapping[str, Mapping[str, Any]], names: list[str]) -> dict[str, Any]:
    """Return the model-randomisation sanity check rows (verdict, baseline and cascading SSIM)."""
    sanity_rows = []
    verdicts, baselines, cascading, criteria = [], [], [], []
    for m in names:
        sanity = methods[m].get("sanity") if isinstance(methods[m].get("sanity"), Mapping) else None
        if sanity is None:  # not assessed for this method: an absent cell in every row
            verdicts.append({"text": "not assessed", "css": "absent"})
            baselines.append({"text": "\u2014", "css": "absent"})
            cascading.append({"text": "\u2014", "css": "absent"})
            continue
        passed = sanity.get("passed")
        word = fmt.verdict("pass" if passed else "fail" if passed is False else "undefined")
        verdicts.append({"text": word["text"], "css": word["css"]})
        baselines.append(_value_cell(source, sanity.get("baseline_ssim")))
        cascading.append(_value_cell(source, sanity.get("cascading_mean_ssim")))
        if sanity.get("criterion"):
            criteria.append(f"{SHORT_NAMES.get(m, m)}: {sanity['criterion']}")
    if any(c["css"] != "absent" for c in verdicts):
        sanity_rows += [{"label": "Model-randomisation sanity check", "cells": verdicts},
                        {"label": "Baseline SSIM of random map pairs", "cells": baselines}]
        if any(c["text"] != "\u2014" for c in cascading):
            sanity_rows.append({"label": "Mean SSIM, trained vs randomised model", "cells": cascading})
    return {"title": "Sanity check: cascading model randomisation (Adebayo et al. 2018; Arun et al. 2021)",
            "rows": sanity_rows, "note": "; ".join(criteria) if sanity_rows else not_assessed(
                "no randomisation test was run")}


def _other_group(source: Source, methods: Mapping[str, Mapping[str, Any]], names: list[str]) -> dict[str, Any]:
    """Return the shortcut score (overall and per cohort), stability and IG completeness rows."""
    other = []
    values = [methods[m].get("shortcut_score") for m in names]
    if any(v is not None for v in values):
        other.append(_row(source, "Shortcut score (share of attribution in the suspected shortcut region)", values))
    shortcuts = [methods[m].get("shortcut") if isinstance(methods[m].get("shortcut"), Mapping) else {} for m in names]
    for cohort in dict.fromkeys(c for shortcut in shortcuts for c in (shortcut.get("by_cohort") or {})):
        values = [((methods[m].get("shortcut") or {}).get("by_cohort") or {}).get(cohort)
                  if isinstance(methods[m].get("shortcut"), Mapping) else None for m in names]
        other.append(_row(source, f"Shortcut score, {source.cohort_label(cohort)}", values))
    for key in ("noise_ssim", "shift_ssim"):
        values = [(methods[m].get("stability") or {}).get(key) if isinstance(methods[m].get("stability"), Mapping)
                  else None for m in names]
        if any(v is not None for v in values):
            other.append(_row(source, fmt.metric_label(key), values, key))
    completeness = []
    for m in names:
        check = methods[m].get("completeness")
        if isinstance(check, Mapping):
            word = fmt.verdict("pass" if check.get("passed") else "fail")
            completeness.append({"text": f"{word['text']}: max relative gap {fmt.format_number(check.get('max_rel_delta'))}"
                                 f" (tolerance {fmt.format_number(check.get('tolerance'))})", "css": word["css"]})
        else:
            completeness.append({"text": "not applicable", "css": "absent"})
    if any(c["css"] != "absent" for c in completeness):
        other.append({"label": "IG completeness: sum of attributions = F(x) \u2212 F(baseline)", "cells": completeness})
    return {"title": "Shortcut reliance, stability and completeness", "rows": other,
            "note": "" if other else not_assessed("not computed in this audit")}


#: A hit rate whose upper CI bound is below this puts the map's peak outside the lesion in most images.
LOW_HIT_RATE = 0.5


def _estimate_of(block: Any, key: str) -> Mapping[str, Any] | None:
    value = block.get(key) if isinstance(block, Mapping) else None
    return value if isinstance(value, Mapping) and isinstance(value.get("estimate"), (int, float)) else None


def saliency_problems(methods: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Return every failed piece of saliency trust evidence: method, code, message, and whether it is disqualifying.

    Disqualifying (the method is marked untrustworthy): IG completeness
    outside its tolerance (the attributions do not add up to what they
    explain; Sundararajan et al. 2017) and a failed model-randomisation sanity
    check (the maps do not depend on what the model learned; Adebayo et al.
    2018). Reported but not disqualifying: deletion no faster than random
    order, insertion no faster than random (Petsiuk et al. 2018), and a hit
    rate whose upper CI bound is below :data:`LOW_HIT_RATE` (Saporta et al. 2022).
    """
    problems: list[dict[str, Any]] = []
    for method, block in methods.items():
        name = SHORT_NAMES.get(method, method)
        check = block.get("completeness") if isinstance(block.get("completeness"), Mapping) else None
        if check is not None and check.get("passed") is False:
            problems.append({"method": method, "code": "saliency_completeness", "untrustworthy": True, "message": (
                f"{name} is untrustworthy: its completeness check fails (largest relative gap "
                f"{fmt.format_number(check.get('max_rel_delta'))} against a tolerance of "
                f"{fmt.format_number(check.get('tolerance'))}; {fmt.format_count(check.get('n_failed'))} images "
                "outside it), so its attributions do not add up to the score difference they explain.")})
        sanity = block.get("sanity") if isinstance(block.get("sanity"), Mapping) else None
        if sanity is not None and sanity.get("passed") is False:
            problems.append({"method": method, "code": "saliency_sanity", "untrustworthy": True, "message": (
                f"{name} is untrustworthy: its maps barely change when the model's weights are randomised "
                "(model-randomisation sanity check failed), so they do not show what the model learned.")})
        faith = block.get("faithfulness") if isinstance(block.get("faithfulness"), Mapping) else {}
        for kind, better in (("deletion", "lower"), ("insertion", "higher")):
            ours, rand = _estimate_of(faith, f"{kind}_auc"), _estimate_of(faith, f"{kind}_auc_random")
            if ours is None or rand is None:
                continue
            worse = ours["estimate"] > rand["estimate"] if better == "lower" else ours["estimate"] < rand["estimate"]
            if worse:
                problems.append({"method": method, "code": f"saliency_{kind}", "untrustworthy": False, "message": (
                    f"{name}: {kind} in the map's order is worse than in random order ({kind} AUC "
                    f"{fmt.format_number(ours['estimate'])} against {fmt.format_number(rand['estimate'])} at random; "
                    f"{better} is better), so the map does not rank the pixels the score depends on (Petsiuk et al. "
                    "2018).")})
        hit = _estimate_of(block.get("localization"), "hit_rate")
        if hit is not None:
            upper = hit.get("ci_high") if isinstance(hit.get("ci_high"), (int, float)) else hit["estimate"]
            if upper < LOW_HIT_RATE:
                problems.append({"method": method, "code": "saliency_localisation", "untrustworthy": False,
                                 "message": (
                    f"{name}: the map's peak falls inside the ground-truth lesion in "
                    f"{fmt.format_percent(hit['estimate'])} of images (hit rate "
                    f"{fmt.format_number(hit['estimate'])}, upper CI bound {fmt.format_number(upper)}, below "
                    f"{LOW_HIT_RATE:g}): it does not point at the lesion.")})
    return problems


def _trust(method: str, problems: list[dict[str, Any]]) -> dict[str, str]:
    mine = [p for p in problems if p["method"] == method]
    if any(p["untrustworthy"] for p in mine):
        return {"text": "UNTRUSTWORTHY", "css": "verdict-fail"}
    if mine:
        return {"text": "failed evidence: see below", "css": "verdict-warn"}
    return {"text": "no failed check", "css": "verdict-pass"}


def _method_rows(methods: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    problems = saliency_problems(methods)
    for name, block in methods.items():
        shortcut = block.get("shortcut") if isinstance(block.get("shortcut"), Mapping) else {}
        rows.append({
            "method": METHOD_NAMES.get(name, name),
            "target": fmt.plain(block.get("target")),
            "params": fmt.plain(block.get("params")),
            "postprocessing": " \u2192 ".join(str(s) for s in block.get("postprocessing") or []) or "none recorded",
            "n_images": fmt.format_count(block.get("n_images")),
            "region": fmt.plain(shortcut.get("region")) if shortcut.get("region") else "\u2014",
            "trust": _trust(name, problems),
        })
    return rows


def _by_group(source: Source, methods: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for name, block in methods.items():
        for attribute, groups in (block.get("by_group") or {}).items():
            for group, values in (groups or {}).items():
                if isinstance(values, Mapping):
                    rows.append({"method": SHORT_NAMES.get(name, name), "attribute": str(attribute),
                                 "group": str(group),
                                 "shortcut": source.cell(values.get("shortcut_score")),
                                 "hit_rate": source.cell(values.get("hit_rate"), "hit_rate")})
    return rows


def _strip_for(source: Source, entry: Mapping[str, Any], methods: list[str]) -> Strip:
    overlays = entry.get("overlays") if isinstance(entry.get("overlays"), Mapping) else {}
    images = [entry.get("image"), *(overlays.get(m) for m in methods)]
    return make_strip(source.report_dir, images, mask=entry.get("mask"), image_format=source.panel_format)


GalleryJobs = list[tuple[Mapping[str, Any], "Future[Strip]"]]


def start_gallery(source: Source, pool: Executor) -> GalleryJobs:
    """Return the gallery entries in display order, each with its strip being prepared on ``pool``.

    Pillow releases the GIL while decoding, resizing and encoding, so the
    strips are made in threads while the caller builds the other sections.
    """
    methods = [k for k, v in source.mapping("saliency").items() if isinstance(v, Mapping)]
    entries = [e for e in source.get("gallery", []) if isinstance(e, Mapping)]
    order = list(CATEGORY_TITLES)
    entries.sort(key=lambda e: (order.index(e.get("category")) if e.get("category") in order else len(order),
                                e.get("cohort") != "test", str(e.get("cohort")), e.get("worst_rank", 0), str(e.get("id"))))
    return [(entry, pool.submit(_strip_for, source, entry, methods)) for entry in entries]


def _gallery(source: Source, jobs: GalleryJobs) -> list[dict[str, Any]]:
    entries = [entry for entry, _ in jobs]
    strips = list(track((future.result() for _, future in jobs), total=len(jobs),
                        description="report: gallery images"))
    cases = []
    for entry, strip in zip(entries, strips, strict=True):
        attributes = entry.get("attributes") if isinstance(entry.get("attributes"), Mapping) else {}
        score = entry.get("score")
        cases.append({
            "anchor": "case-" + "".join(ch if ch.isalnum() else "-" for ch in str(entry.get("id")))[:60]
            + ("-worst" if entry.get("worst_rank") else ""),
            "id": str(entry.get("id")),
            "category": str(entry.get("category") or "uncategorised"),
            "category_title": CATEGORY_TITLES.get(str(entry.get("category")), str(entry.get("category"))),
            "cohort": source.cohort_label(str(entry.get("cohort") or "")),
            "y_true": fmt.plain(entry.get("y_true")),
            "score": fmt.format_number(score, digits=3) if isinstance(score, (int, float)) else fmt.plain(score),
            "attributes": "; ".join(f"{k}: {v}" for k, v in attributes.items()) or "\u2014",
            "mask": "ground-truth contour shown" if entry.get("mask") and not any(
                p.startswith("mask not drawn") for p in strip.problems) else "no ground-truth contour",
            "src": source.assets.add(strip.data, strip.mime),
            "width_mm": f"{strip.width_mm:.2f}",
            "wide": strip.width_mm > WIDE_STRIP_MM,
            "problems": list(strip.problems),
        })
    return cases


def build_explanations(source: Source, gallery_jobs: GalleryJobs | None = None) -> dict[str, Any]:
    """Return the saliency section: methods, trust evidence per method, per-group scores and the gallery.

    ``gallery_jobs`` are strips already started by :func:`start_gallery`;
    without them the strips are made here.
    """
    methods = {k: v for k, v in source.mapping("saliency").items() if isinstance(v, Mapping)}
    if gallery_jobs is None:
        with ThreadPoolExecutor(max_workers=gallery_workers()) as pool:
            gallery_jobs = start_gallery(source, pool)
            gallery = _gallery(source, gallery_jobs)
    else:
        gallery = _gallery(source, gallery_jobs)
    groups: list[dict[str, Any]] = []
    current = None
    for case in gallery:
        if current is None or current["category"] != case["category"]:
            current = {"category": case["category"], "title": case["category_title"], "cases": []}
            groups.append(current)
        current["cases"].append(case)
    return {
        "available": bool(methods),
        "not_assessed": not_assessed(
            "no attributions were computed (explanations need the model checkpoint and were not requested or not "
            "possible for a predictions-only audit)"),
        "disclaimer": DISCLAIMER,
        "methods": _method_rows(methods),
        "method_headers": [SHORT_NAMES.get(m, m) for m in methods],
        "evidence": _evidence(source, methods) if methods else [],
        "problems": [p["message"] for p in saliency_problems(methods)],
        "by_group": _by_group(source, methods),
        "gallery": groups,
        "gallery_panels": ", ".join(["image", *(SHORT_NAMES.get(m, m) for m in methods)]),
        "legend": _legend([e for e in source.get("gallery", []) if isinstance(e, Mapping)], list(methods)),
        "contour_colour": "#{:02x}{:02x}{:02x}".format(*CONTOUR_RGB),
        "gallery_note": "" if gallery else not_assessed("results.json names no gallery images"),
        "clinical_review": TO_BE_COMPLETED,
    }


def build_failures(source: Source, gallery_groups: list[dict[str, Any]]) -> dict[str, Any]:
    """Return confusion matrices per cohort at the operating point and the worst cases from the gallery."""
    classes = [str(c) for c in source.get("run.classes", [])]
    positive = source.get("run.positive_class")
    negative = next((c for c in classes if c != positive), "negative") if positive is not None else "negative"
    matrices = []
    blocks: list[tuple[str, Any]] = list(source.mapping("discrimination").items())
    blocks += [(site, (b or {}).get("discrimination")) for site, b in source.mapping("external").items()]
    for cohort, block in blocks:
        cm = block.get("confusion_matrix") if isinstance(block, Mapping) else None
        if not isinstance(cm, Mapping):
            continue
        if "matrix" in cm:
            labels = [str(x) for x in cm.get("labels") or classes]
            # rows are the true class, columns the predicted class (scikit-learn's convention)
            matrices.append({"cohort": source.cohort_label(cohort), "kind": "multiclass",
                             "labels": [f"predicted {label}" for label in labels],
                             "rows": [{"label": f"true {labels[i]}" if i < len(labels) else str(i),
                                       "cells": [fmt.format_count(v) for v in row]}
                                      for i, row in enumerate(cm.get("matrix") or [])],
                             "threshold": "", "decision": str(cm.get("decision") or "")})
        else:
            matrices.append({
                "cohort": source.cohort_label(cohort), "kind": "binary",
                "labels": [f"true {positive if positive is not None else 'positive'}", f"true {negative}"],
                "decision": "",
                "rows": [{"label": f"predicted {positive if positive is not None else 'positive'}",
                          "cells": [fmt.format_count(cm.get("tp")), fmt.format_count(cm.get("fp"))]},
                         {"label": f"predicted {negative}",
                          "cells": [fmt.format_count(cm.get("fn")), fmt.format_count(cm.get("tn"))]}],
                "threshold": fmt.format_number(cm.get("threshold"), digits=4) if cm.get("threshold") is not None else "",
            })
    worst, worst_note = _worst_cases(source, gallery_groups)
    return {
        "available": bool(matrices),
        "not_assessed": not_assessed("no confusion matrix was recorded"),
        "matrices": matrices,
        "worst": worst,
        "worst_note": worst_note,
        "interpretation": TO_BE_COMPLETED,
    }


def _worst_cases(source: Source, gallery_groups: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """Return the worst false negatives and positives per cohort (from ``failures``) and a note.

    The list is over every image of the cohort (results.json ``failures``),
    not the gallery's sample; a case that is also in the gallery links to its
    panel (and its page). Older results without ``failures`` fall back to the
    gallery's misclassified cases, said so.
    """
    in_gallery = {c["id"]: c["anchor"] for g in reversed(gallery_groups) for c in g["cases"]}  # worst panels win
    failures = source.mapping("failures")
    tables = []
    by_cohort = failures.get("cohorts") if isinstance(failures.get("cohorts"), Mapping) else {}
    # the internal test first, then the external sites in the order the audit wrote them
    for cohort, block in sorted(by_cohort.items(), key=lambda item: item[0] != "test"):
        if not isinstance(block, Mapping):
            continue
        for category in ("false_negative", "false_positive"):
            part = block.get(category) if isinstance(block.get(category), Mapping) else {}
            cases = [c for c in part.get("worst") or [] if isinstance(c, Mapping)]
            n = part.get("n")
            rows = []
            for rank, case in enumerate(cases, start=1):
                attributes = case.get("attributes") if isinstance(case.get("attributes"), Mapping) else {}
                rows.append({
                    "rank": str(rank),
                    "id": str(case.get("id")),
                    "patient": fmt.plain(case.get("patient_id")) if case.get("patient_id") is not None else "—",
                    "score": fmt.format_number(case.get("score"), digits=3),
                    "attributes": "; ".join(f"{k}: {v}" for k, v in attributes.items()) or "—",
                    "anchor": in_gallery.get(str(case.get("id"))),
                })
            order = "lowest score first" if category == "false_negative" else "highest score first"
            tables.append({
                "title": f"{source.cohort_label(str(cohort))}: {CATEGORY_TITLES[category].lower()}",
                "summary": (f"{fmt.format_count(n)} in this cohort; the {len(rows)} worst shown, {order}."
                            if isinstance(n, int) else ""),
                "cases": rows,
            })
    if failures:
        threshold = fmt.format_number(failures.get("threshold"), digits=4)
        note = (f"Every image of each cohort at the operating point (threshold {threshold}; a score at or above "
                "it is called positive), not only the gallery's sample. A case shown in the gallery links to its "
                "saliency panel.")
        return tables, note if tables else not_assessed("no misclassified case at the operating point")
    for group in gallery_groups:  # results.json written before the audit recorded its worst cases
        if group["category"] not in ("false_negative", "false_positive"):
            continue
        rows = [{"rank": "", "id": c["id"], "patient": "—", "score": c["score"], "attributes": c["attributes"],
                 "anchor": c["anchor"], "cohort": c["cohort"]} for c in group["cases"]]
        rows.sort(key=lambda r: float(r["score"]) if _is_number(r["score"]) else 0.0,
                  reverse=group["category"] == "false_positive")
        tables.append({"title": f"{group['title']} (gallery sample only)", "summary": "", "cases": rows})
    note = ("This results.json records no worst cases over the whole cohort: the rows below are the gallery's "
            "sample, not necessarily the worst. Re-run the audit to list the worst cases.")
    return tables, note if tables else not_assessed("the gallery holds no misclassified cases")


def _is_number(text: str) -> bool:
    return text.replace(".", "", 1).removeprefix("-").isdigit()  # format_number's output: digits, one point
