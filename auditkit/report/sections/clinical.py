"""Clinical validation beyond accuracy in the report: decision curves, conformal sets, slices, robustness.

Each builder reads results.json's ``clinical`` section only and returns the
formatted context of one sub-section, placed where a reviewer expects it:
decision curves after discrimination (4), conformal coverage after
calibration (5), hidden slices after subgroup fairness (6), robustness and
the monitoring plan after external validation (7).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib

from auditkit.report import figures
from auditkit.report import formatting as fmt
from auditkit.report.sections.common import Source, gate_marks, not_assessed

#: anchors and titles of the sub-sections (for the checklist appendix).
CLINICAL_TITLES = {
    "sec-decision-curve": "Decision-curve analysis (clinical utility)",
    "sec-conformal": "Conformal prediction sets and their coverage",
    "sec-slices": "Hidden stratification: discovered slices",
    "sec-robustness": "Robustness, precision and the monitoring plan",
}


def clinical_availability(results: Mapping[str, Any]) -> dict[str, bool]:
    """Return the checklist availability keys of the clinical analyses."""
    c = results.get("clinical") if isinstance(results.get("clinical"), Mapping) else {}
    rob = c.get("robustness") if isinstance(c.get("robustness"), Mapping) else {}
    return {
        "decision_curve": any(k not in ("settings", "method", "not_applicable") for k in (c.get("decision_curve") or {})),
        "conformal": bool(c.get("conformal")),
        "slices": bool((c.get("slices") or {}).get("test")),
        "robustness": bool(rob.get("effects")),
        "precision": bool(rob.get("precision")) or bool(c.get("repeatability")),
        "monitoring_plan": bool(c),
    }


def _clinical(source: Source) -> Mapping[str, Any]:
    return source.mapping("clinical")


def _dca_svg(blocks: list[tuple[str, Mapping[str, Any]]]) -> str:
    with matplotlib.rc_context(figures._RC):
        fig = figures._figure(6.6, 3.0, left=0.08, right=0.98, bottom=0.15, top=0.9, wspace=0.25)
        for i, (label, curve) in enumerate(blocks[:2]):
            ax = fig.add_subplot(1, min(2, len(blocks)), i + 1)
            t = figures._floats(curve["thresholds"])
            model = figures._floats(curve["model"])
            ax.fill_between(t, figures._floats(curve["model_low"]), figures._floats(curve["model_high"]),
                            color=figures.PALETTE[0], alpha=0.18, linewidth=0)  # fmt: skip
            ax.plot(t, model, color=figures.PALETTE[0], label="model")
            ax.plot(t, figures._floats(curve["treat_all"]), color=figures.PALETTE[1], linestyle="--", label="treat all")
            ax.axhline(0.0, color="#555555", linewidth=0.8, linestyle=":", label="treat none")
            top = max([v for v in model if v == v] + [0.01])
            ax.set_ylim(-0.05 * max(top, 0.05), top * 1.15 + 0.01)
            ax.set_xlim(t[0], t[-1])
            ax.grid(True)
            figures._few_ticks(ax)
            ax.set_xlabel("threshold probability")
            ax.set_ylabel("net benefit")
            ax.set_title(figures.safe_label(label))
            ax.legend(loc="upper right", frameon=False)
        return figures._to_svg(fig)


def build_decision_curves(source: Source) -> dict[str, Any]:
    """Return the decision-curve sub-section: figure, net benefit at the key thresholds, subgroups."""
    dca = _clinical(source).get("decision_curve")
    if isinstance(dca, Mapping) and dca.get("not_applicable"):
        return {"available": False, "not_assessed": not_assessed(str(dca["not_applicable"]))}
    if not isinstance(dca, Mapping) or not any(k not in ("settings", "method") for k in dca):
        return {"available": False, "not_assessed": not_assessed("no decision-curve analysis (binary tasks only)")}
    cohorts = [(k, v) for k, v in dca.items() if k not in ("settings", "method") and isinstance(v, Mapping)]
    rows = []
    for name, block in cohorts:
        for t, at in (block.get("at") or {}).items():
            rows.append({
                "cohort": source.cohort_label(name), "threshold": fmt.plain(at.get("threshold", t)),
                "model": source.cell(at.get("net_benefit"), "net_benefit"),
                "all": source.cell(at.get("net_benefit_all"), "net_benefit"),
                "advantage": source.cell(at.get("advantage"), "net_benefit"),
                "gate": gate_marks(source, f"clinical.decision_curve.{name}.at.{t}.advantage"),
            })  # fmt: skip
    groups = []
    test = dict(cohorts).get("test") or (cohorts[0][1] if cohorts else {})
    for attr, values in (test.get("groups") or {}).items():
        for value, rec in values.items():
            for t, at in (rec.get("at") or {}).items():
                groups.append({"group": f"{attr} = {value}", "n": fmt.format_count(rec.get("n")),
                               "threshold": fmt.plain(at.get("threshold", t)),
                               "advantage": source.cell(at.get("advantage"), "net_benefit")})  # fmt: skip
    settings = dca.get("settings") or {}
    svg = _dca_svg([(source.cohort_label(k), v["curve"]) for k, v in cohorts if isinstance(v.get("curve"), Mapping)])
    return {
        "available": True,
        "figure": source.assets.svg(svg),
        "rows": rows,
        "groups": groups,
        "range": f"{settings.get('range', ['?', '?'])[0]} to {settings.get('range', ['?', '?'])[1]}",
        "method": str(dca.get("method", "")),
    }


def build_conformal(source: Source) -> dict[str, Any]:
    """Return the conformal sub-section: coverage and set size per method, cohort and subgroup."""
    conf = _clinical(source).get("conformal")
    if not isinstance(conf, Mapping):
        return {"available": False, "not_assessed": not_assessed("no validation split to calibrate conformal sets on")}
    target, tol = float(conf.get("target", 0.9)), float(conf.get("tolerance", 0.05))
    tables = []
    for method in ("split", "mondrian"):
        block = conf.get(method)
        if not isinstance(block, Mapping):
            continue
        rows = []
        for cohort, rec in block.items():
            if not isinstance(rec, Mapping) or "overall" not in rec:
                continue
            entries = [("all images", rec["overall"])]
            for attr, values in (rec.get("groups") or {}).items():
                entries += [(f"{attr} = {v}", r) for v, r in values.items()]
            for label, r in entries:
                cov = r.get("coverage") or {}
                short = isinstance(cov, Mapping) and cov.get("ci_high") is not None and cov["ci_high"] < target - tol
                rows.append({"cohort": source.cohort_label(cohort), "group": label, "n": fmt.format_count(r.get("n")),
                             "coverage": source.cell(cov, "coverage"),
                             "size": source.cell(r.get("mean_set_size"), "mean_set_size"),
                             "flag": "below target" if short else ""})  # fmt: skip
        tables.append({"method": "split (marginal)" if method == "split" else "class-conditional (Mondrian)",
                       "rows": rows, "n_calibration": block.get("n_calibration"),
                       "gate": gate_marks(source, f"clinical.conformal.{method}.test.min_group_coverage")})  # fmt: skip
    return {"available": True, "alpha": conf.get("alpha"), "target": f"{target:.0%}", "tolerance": f"{tol:.0%}",
            "tables": tables}  # fmt: skip


def _strip(source: Source, images: list[str]) -> str | None:
    """Return the asset URL of a slice's example images side by side (read inside the audit folder only)."""
    if not images:
        return None
    from auditkit.report.gallery import make_strip

    strip = make_strip(source.report_dir, images, panel_px=96, image_format="png")
    return source.assets.add(strip.data, strip.mime)


def build_slices(source: Source) -> dict[str, Any]:
    """Return the hidden-stratification sub-section: every candidate slice, flagged ones first."""
    slices = _clinical(source).get("slices")
    if isinstance(slices, Mapping) and slices.get("not_applicable"):
        return {"available": False, "not_assessed": not_assessed(str(slices["not_applicable"]))}
    block = slices.get("test") if isinstance(slices, Mapping) else None
    if not isinstance(block, Mapping):
        return {"available": False,
                "not_assessed": not_assessed("slice discovery needs the model's embeddings of the internal test split")}
    rows = []
    for rec in block.get("records", []):
        attrs = ", ".join(f"{a} {v['value']} ({v['share']:.0%})" for a, v in (rec.get("dominant_attributes") or {}).items())
        gap = rec.get("auroc_gap") or {}
        auroc, rest, gap_cell = (source.cell(rec.get(k), "auroc") for k in ("auroc", "auroc_rest", "auroc_gap"))
        if gap.get("estimate") is None:  # the reason once, not three times: the slice is too small or one class
            n_pos, n = rec.get("n_positive"), rec.get("n")
            auroc = {"text": f"no AUROC: {n_pos} of {n} images positive (too few of a class)", "css": "undefined"}
            rest = gap_cell = {"text": "\u2014", "css": "undefined"}
        rows.append({
            "slice": rec.get("slice"), "n": fmt.format_count(rec.get("n")),
            "prevalence": "n/a" if rec.get("prevalence") is None else f"{rec['prevalence']:.2f}",
            "auroc": auroc, "rest": rest, "gap": gap_cell,
            "p": fmt.format_test(gap, correction=block.get("multiplicity")) if gap.get("p_value") is not None else "",
            "error_gap": source.cell(rec.get("error_gap"), "error_rate"),
            "flagged": bool(rec.get("flagged")), "error_flagged": bool(rec.get("error_flagged")),
            "attributes": attrs or "",
            "examples": ", ".join(rec.get("representative_ids") or []),
            "examples_short": ", ".join((rec.get("representative_ids") or [])[:3]),
            "strip": _strip(source, rec.get("representative_images") or []),
        })  # fmt: skip
    return {"available": True, "rows": rows, "n_flagged": block.get("n_flagged", 0),
            "n_error_flagged": block.get("n_error_flagged", 0), "n_without_auroc": block.get("n_without_auroc", 0),
            "features": block.get("features", ""), "n_slices": block.get("n_slices"),
            "gate": gate_marks(source, "clinical.slices.test.worst_auroc_gap")
            + gate_marks(source, "clinical.slices.test.worst_error_gap")}  # fmt: skip


def _robustness_svg(conditions: list[Mapping[str, Any]], effects: Mapping[str, Any]) -> str:
    with matplotlib.rc_context(figures._RC):
        fig = figures._figure(6.6, 2.8, left=0.09, right=0.78, bottom=0.16, top=0.92)
        ax = fig.add_subplot()
        names = list(dict.fromkeys(c["perturbation"] for c in conditions))
        for i, name in enumerate(names):
            pts = [(c["severity"], (effects.get(c["key"]) or {}).get("auroc_drop") or {}) for c in conditions
                   if c["perturbation"] == name]  # fmt: skip
            xs = [p[0] + (i - len(names) / 2) * 0.03 for p in pts]
            ys = [e.get("estimate") if e.get("estimate") is not None else float("nan") for _, e in pts]
            lo = [y - (e.get("ci_low") if e.get("ci_low") is not None else y) for y, (_, e) in zip(ys, pts, strict=True)]
            hi = [(e.get("ci_high") if e.get("ci_high") is not None else y) - y for y, (_, e) in zip(ys, pts, strict=True)]
            ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", markersize=3, capsize=2,
                        color=figures.PALETTE[i % len(figures.PALETTE)], label=figures.safe_label(name))  # fmt: skip
        ax.axhline(0, color="#555555", linewidth=0.8, linestyle=":")
        ax.set_xticks([1, 2, 3])
        ax.set_xlabel("severity")
        ax.set_ylabel("AUROC drop")
        ax.grid(True)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        return figures._to_svg(fig)


def build_robustness(source: Source) -> dict[str, Any]:
    """Return the robustness sub-section: per-condition table and figure, precision, repeatability, monitoring."""
    c = _clinical(source)
    rob = c.get("robustness") if isinstance(c.get("robustness"), Mapping) else None
    monitoring = (
        "Post-deployment monitoring (a pre-specified plan for a PCCP): run `auditkit monitor --baseline "
        "<this audit folder> --predictions new.parquet --out DIR` on each batch of new predictions and check "
        "DIR/monitor.json with `auditkit gate --policy monitor`: label-free accuracy estimates (ATC, CBPE), "
        "score and embedding drift tests against this audit's internal test split, and a prevalence-shift "
        "warning (the label-free estimates are biased under prevalence shift)."
    )
    out: dict[str, Any] = {"available": False, "monitoring": monitoring, "repeatability": None}
    rep = c.get("repeatability")
    if isinstance(rep, Mapping):
        out["repeatability"] = (
            f"Test-retest over {rep.get('n_groups')} repeat groups ({rep.get('n_images')} images): within-subject SD "
            f"{rep.get('within_subject_sd', 0):.4f}, repeatability coefficient {rep.get('repeatability_coefficient', 0):.4f}"
            + (f", calls disagree in {rep['call_disagreement']:.1%} of groups" if rep.get("call_disagreement") is not None else "")
            + " (Bland & Altman 1999)."
        )  # fmt: skip
    if not rob or not rob.get("effects"):
        reason = (rob or {}).get("not_assessed") or (rob or {}).get("not_applicable") or "the robustness run is off (clinical.robustness.enabled) or the audit had no model"
        out["not_assessed"] = not_assessed(reason)
        return out
    effects = rob["effects"]
    rows = []
    for cond in rob.get("conditions", []):
        e = effects.get(cond["key"]) or {}
        rows.append({"perturbation": cond.get("label", cond["perturbation"]), "severity": cond["severity"],
                     "value": f"{cond.get('parameter', '')} {fmt.plain(cond.get('value'))}",
                     "auroc": source.cell(e.get("auroc"), "auroc"), "drop": source.cell(e.get("auroc_drop"), "auroc"),
                     "sens_drop": source.cell(e.get("sensitivity_drop"), "sensitivity"),
                     "flip": source.cell(e.get("flip_rate"), "flip_rate")})  # fmt: skip
    prec = rob.get("precision") or {}
    worst = (rob.get("worst") or {}).get("auroc_drop") or {}
    mild = ((rob.get("worst_by_severity") or {}).get("s1") or {}).get("auroc_drop") or {}

    def num(key: str, digits: int = 4) -> str:
        v = prec.get(key)
        return "n/a" if v is None else f"{v:.{digits}f}"

    out.update({
        "available": True, "rows": rows, "n_images": rob.get("n_images"), "cohort": source.cohort_label(rob.get("cohort", "test")),
        "reference": source.cell((effects.get("none") or {}).get("auroc"), "auroc"),
        "figure": source.assets.svg(_robustness_svg(rob.get("conditions", []), effects)),
        "worst": (f"{(worst.get('groups') or ['?'])[0]}: AUROC drop {source.est(worst, 'auroc')}" if worst else "")
        + (f"; at the mildest severity, {(mild.get('groups') or ['?'])[0]}: AUROC drop {source.est(mild, 'auroc')}"
           if mild else ""),
        "precision": (f"Per-image score SD over the unperturbed image and its {prec.get('n_conditions', 1) - 1} mildest "
                      f"perturbations: median {num('sd_median')}, 95th percentile {num('sd_p95')}; %CV median "
                      f"{num('cv_percent_median', 1)}%, 95th percentile {num('cv_percent_p95', 1)}%."),
        "gate": gate_marks(source, "clinical.robustness.worst.auroc_drop")
        + gate_marks(source, "clinical.robustness.worst_by_severity.s1.auroc_drop"),
    })  # fmt: skip
    return out


def build_clinical(source: Source) -> dict[str, Any]:
    """Return the four clinical sub-sections keyed ``dca``, ``conformal``, ``slices``, ``robustness``."""
    if not _clinical(source):
        reason = not_assessed("this audit has no clinical-validation section")
        return {k: {"available": False, "not_assessed": reason, "monitoring": "", "repeatability": None}
                for k in ("dca", "conformal", "slices", "robustness")}  # fmt: skip
    return {"dca": build_decision_curves(source), "conformal": build_conformal(source),
            "slices": build_slices(source), "robustness": build_robustness(source)}  # fmt: skip
