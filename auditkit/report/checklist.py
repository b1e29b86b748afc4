"""The reporting-guideline checklist: which report section answers each item, or who must.

The 56 items follow the report checklist in the shared reference
(regulatory-and-methods.md, items A-J), each tagged AUTO (computed by
auditkit), MIXED (auditkit drafts, a person confirms) or HUMAN (only the
manufacturer can answer), with the guideline items it covers: CLAIM 2024
(Tejani et al., Radiol AI 2024), TRIPOD+AI (Collins et al., BMJ 2024),
STARD-AI (Nat Med 2025), FDA's 2025 draft guidance on AI-enabled device
software functions and EU AI Act Annex IV. An item is marked answered only
when the section that answers it has data in this audit; each points at the
heading of the content it names (a sub-section where one exists), and an
item auditkit cannot answer says "To be provided by the manufacturer.".
The FDA and Annex IV mappings list each submission section / Annex IV point
with the items that answer it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TO_BE_COMPLETED = "To be provided by the manufacturer."

GUIDELINES: tuple[tuple[str, str], ...] = (("C", "CLAIM 2024"), ("T", "TRIPOD+AI"), ("S", "STARD-AI 2025"))

#: Places inside sections the items point at: anchor -> the heading printed there.
SUBSECTIONS = {
    "card-device": "Device information and regulatory status",
    "card-data": "Training and test data: sizes and demographics per split",
    "card-power": "Sample size: what each gated comparison could detect",
    "card-limitations": "Known limitations, biases and failure modes",
    "data-sites": "Sites and acquisition",
    "data-attributes": "Subgroup attributes per cohort",
    "repro-fingerprints": "Fingerprints",
    "worst-cases": "Worst cases",
}

#: FDA draft guidance (7 Jan 2025) on AI-enabled device software functions: submission sections and
#: appendices, each answered by checklist items.
FDA_MAP: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("Device description; Appendix E model card", (1, 3, 4, 54)),
    ("\u00a7VIII Data management: sizes per split, sites, demographics, independence of test data", (7, 8, 9, 10, 11, 15)),
    ("\u00a7VIII Reference standard and data annotation", (12, 13)),
    ("\u00a7VIII Synthetic and real-world data", (16,)),
    ("\u00a7IX Model description: inputs, outputs, operating point, training, output calibration", (5, 17, 18)),
    ("\u00a7X Validation: tested vs released version", (6,)),
    ("\u00a7X Validation: overall and subgroup performance with uncertainty", (20, 21, 23, 29, 30, 31, 32)),
    ("\u00a7X Validation: robustness and precision", (25, 26)),
    ("\u00a7X / App. C Study protocol and SAP: goals, sample size, acceptance on the CI bound", (19, 22, 33, 35)),
    ("App. C Clustered data, QC rejects and worst-case analysis", (27, 28)),
    ("\u00a7X Human-device team performance; App. D usability", (48, 49)),
    ("\u00a7XI Device performance monitoring", (39, 51)),
    ("\u00a7XII Cybersecurity", (53,)),
    ("PCCP (final guidance, Dec 2024)", (52,)),
)

#: EU AI Act (Regulation 2024/1689) Annex IV technical documentation, point by point (and Art. 10).
AIA_MAP: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("1 General description: intended purpose, provider, version", (1, 3, 6)),
    ("2(a)-(c) Development methods, design choices, architecture", (5, 17, 18)),
    ("2(d) Data sheets: training data provenance, scope, characteristics, labelling, cleaning", (7, 10, 12, 13, 14)),
    ("2(e) Human oversight and interpretation of outputs", (42, 47, 48)),
    ("2(f) Pre-determined changes", (52,)),
    ("2(g) Validation and testing: data, metrics, discriminatory impacts, dated and signed test logs",
     (20, 21, 23, 29, 30, 36, 56)),
    ("2(h) Cybersecurity", (53,)),
    ("3 Capabilities and limitations, accuracy for groups of persons", (29, 50)),
    ("4 Appropriateness of the performance metrics", (19, 34)),
    ("5 Risk management system (Art. 9)", (50,)),
    ("9 Post-market monitoring plan (Art. 72)", (51,)),
    ("Art. 10 Data governance: representativeness, examination for bias", (11, 15, 31, 32)),
)


@dataclass(frozen=True)
class Item:
    """One checklist item: what is asked, who can answer, where the report answers it."""

    number: int
    group: str
    text: str
    kind: str
    refs: tuple[str, ...]
    section: str | None = None
    needs: str | None = None
    """Availability key that must be true for the section to answer it; ``never`` when auditkit cannot."""
    reason: str = ""
    """Why the item is not assessed when ``needs`` is false (or ``never``)."""


GROUPS = {
    "A": "Identification and intended use",
    "B": "Data provenance and management",
    "C": "Model development",
    "D": "Performance validation",
    "E": "Subgroup and fairness analysis",
    "F": "External validation and dataset shift",
    "G": "Explainability",
    "H": "Human\u2013AI team and usability",
    "I": "Risk, monitoring, change control, security",
    "J": "Transparency and traceability",
}

ITEMS: tuple[Item, ...] = (
    Item(1, "A", "Model identity: name, version, weights SHA-256, date, architecture", "AUTO",
         ("FDA App. E", "AIA 1(a)", "C22"), "card-device", "model_identity", "the model checkpoint was not available"),
    Item(2, "A", "Software environment: library versions, auditkit version, seeds", "AUTO",
         ("C23", "AIA 1(c)"), "sec-reproducibility", "environment", "no library versions were recorded"),
    Item(3, "A", "Intended use, indications, target population, intended users", "HUMAN",
         ("FDA App. E", "T3b", "S15d", "AIA 1(a)"), "sec-intended-use", "human:intended_use"),
    Item(4, "A", "Regulatory status", "HUMAN", ("FDA App. E",), "sec-intended-use", "human:regulatory_status"),
    Item(5, "A", "Inputs, outputs, pre-processing; operating point and how it was chosen", "MIXED",
         ("FDA \u00a7IX", "T7", "T15", "S15c"), "sec-model", "operating_point", "no operating point was recorded"),
    Item(6, "A", "Tested version vs released version (hashes)", "MIXED", ("FDA \u00a7X", "AIA 1(a)"),
         "repro-fingerprints", "model_identity", "the model checkpoint was not available"),
    Item(7, "B", "Dataset per split: patients, images, prevalence, hashes", "AUTO",
         ("FDA \u00a7VIII", "C19", "C35", "T20a", "T21", "S11", "S15b"), "sec-data", "data", "no data section"),
    Item(8, "B", "Partition disjointness (patient overlap across splits)", "AUTO",
         ("FDA \u00a7VIII", "GMLP 4", "C20"), "sec-data", "disjointness", "no disjointness check was recorded"),
    Item(9, "B", "Site inventory per split (acquisition devices and software versions: from the manufacturer)", "MIXED",
         ("FDA \u00a7VIII", "S13", "S14", "C13"), "data-sites", "sites", "no site information was recorded"),
    Item(10, "B", "Baseline characteristics per split, training included, in patients and images", "AUTO",
         ("C36", "T20b", "T20c", "S25", "FDA \u00a7VIII", "AIA 2(d)"), "card-data", "attributes",
         "no subgroup attributes were given"),
    Item(11, "B", "Missing demographic fields and their justification", "MIXED", ("FDA \u00a7VIII", "AIA Art. 10"),
         "card-data", "always"),
    Item(12, "B", "Reference standard: definition, rationale, uncertainty", "HUMAN",
         ("FDA \u00a7VIII", "C14", "C15", "S16a", "S16b", "S16c")),
    Item(13, "B", "Annotators: number, qualifications, blinding, inter-rater agreement", "MIXED",
         ("FDA \u00a7VIII", "C16", "C17", "C18", "S12"), None, "never",
         "auditkit received no multi-reader labels"),
    Item(14, "B", "Exclusions and inclusion flow diagram", "MIXED", ("C35", "S24", "T20a"), "sec-data", "flow",
         "no inclusion flow was recorded"),
    Item(15, "B", "Representativeness; number of test sites (FDA: three or more)", "MIXED",
         ("FDA \u00a7VIII", "S28", "T5a", "AIA Art. 10"), "sec-data", "sites", "no site information was recorded"),
    Item(16, "B", "Synthetic or real-world data use and its justification", "HUMAN", ("FDA \u00a7VIII",)),
    Item(17, "C", "Training details and loss-convergence curves", "MIXED",
         ("FDA \u00a7IX", "C24", "C25", "C26", "C27", "T12c", "T13"), "sec-model", "training",
         "no training record (predictions-only audit)"),
    Item(18, "C", "Output calibration method and the split it was fitted on", "AUTO", ("FDA \u00a7IX", "T12f"),
         "sec-model", "recalibration", "no recalibration was fitted"),
    Item(19, "D", "Pre-specified statistical analysis plan and performance goals", "MIXED",
         ("FDA App. C", "T10", "C21", "S22"), "sec-summary", "gate", "no release policy was applied"),
    Item(20, "D", "Discrimination: AUROC with 95% CI, AUPRC, ROC curve", "AUTO",
         ("C28", "C29", "C38", "T12e", "T23a", "FDA App. C"), "sec-discrimination", "discrimination",
         "no discrimination results"),
    Item(21, "D", "Operating-point metrics with CIs and the confusion matrix", "AUTO",
         ("FDA App. C", "C38", "C39", "S30", "S31"), "sec-discrimination", "discrimination",
         "no discrimination results"),
    Item(22, "D", "Acceptance test on the CI bound, not the point estimate", "AUTO", ("FDA App. C",),
         "sec-summary", "gate", "no release policy was applied"),
    Item(23, "D", "Calibration: in-the-large, slope, curve, Brier, ECE with binning", "AUTO",
         ("T12e", "FDA App. C"), "sec-calibration", "calibration", "no calibration results"),
    Item(24, "D", "Clinical utility: decision curve / net benefit", "AUTO", ("FDA App. C", "T12e"),
         "sec-decision-curve", "decision_curve", "no decision-curve analysis (binary tasks only)"),
    Item(25, "D", "Robustness under foreseeable input perturbations", "AUTO", ("FDA \u00a7X", "C30"), "sec-robustness",
         "robustness", "the robustness run was not enabled (clinical.robustness) or the audit had no model"),
    Item(26, "D", "Precision: repeatability and reproducibility of the output", "MIXED", ("FDA App. C",),
         "sec-robustness", "precision", "no robustness run and no repeat acquisitions (repeat_group) were supplied"),
    Item(27, "D", "Input quality-control rejects and worst-case analysis", "AUTO", ("FDA App. C",), None, "never",
         "auditkit runs no input quality-control algorithm"),
    Item(28, "D", "Failure analysis: worst false negatives and false positives", "MIXED", ("C39", "S23"),
         "worst-cases", "failures", "no confusion matrix or gallery was recorded"),
    Item(29, "E", "Per-subgroup performance at the global operating point", "AUTO",
         ("FDA \u00a7X", "T8a", "T23a", "C37", "AIA 3"), "sec-fairness", "fairness",
         "no subgroup attributes were analysed"),
    Item(30, "E", "Gap metrics with CIs, tests and multiplicity correction", "AUTO", ("FDA \u00a7X",),
         "sec-fairness", "fairness", "no subgroup attributes were analysed"),
    Item(31, "E", "Intersectional subgroups with minimum-size flags", "AUTO", (), "sec-fairness", "intersection",
         "no intersection of attributes was analysed"),
    Item(32, "E", "Prevalence-adjusted comparison of groups", "AUTO", (), "sec-fairness", "prevalence_adjusted",
         "no prevalence-adjusted re-analysis was recorded"),
    Item(33, "E", "Power / sample-size statement per gated comparison", "AUTO", ("FDA \u00a7X",), "card-power",
         "power", "the audit recorded no sample-size statement"),
    Item(34, "E", "Fairness rationale: which criterion governs and why", "HUMAN",
         ("T3c", "T14", "T25", "S23", "S35")),
    Item(35, "E", "Release-gate verdict against pre-registered, CI-aware thresholds", "MIXED", ("FDA App. C",),
         "sec-summary", "gate", "no release policy was applied"),
    Item(36, "F", "Internal vs external performance per site, with tests", "AUTO",
         ("T12d", "T16", "T20c", "T23b", "S29", "C33"), "sec-external", "external", "no external site was declared"),
    Item(37, "F", "Events-count adequacy per external set", "AUTO", (), "sec-external", "external",
         "no external site was declared"),
    Item(38, "F", "Shortcut / site-leakage probe", "AUTO", (), "sec-external", "domain_probe",
         "no domain classifier was run (needs model embeddings)"),
    Item(39, "F", "Dataset-shift tests between development and external data", "AUTO", (), "sec-external", "shift",
         "no external site was declared"),
    Item(40, "F", "Recalibration reported as model updating", "AUTO", ("T12f", "T24"), "sec-calibration",
         "recalibration", "no recalibration was fitted"),
    Item(41, "F", "How the external data differ (setting, devices, prevalence)", "MIXED", ("S29", "T16"),
         "sec-external", "external", "no external site was declared"),
    Item(42, "G", "Saliency method specification (target layer, baseline, post-processing)", "AUTO", ("C31",),
         "sec-explanations", "explanations", "no attributions were computed"),
    Item(43, "G", "Saliency sanity checks (model randomisation)", "AUTO", (), "sec-explanations", "sanity",
         "no randomisation test was run"),
    Item(44, "G", "Saliency faithfulness (deletion / insertion)", "AUTO", (), "sec-explanations", "faithfulness",
         "no faithfulness test was run"),
    Item(45, "G", "Saliency localisation against expert masks", "AUTO", (), "sec-explanations", "localization",
         "no ground-truth masks were given"),
    Item(46, "G", "Saliency repeatability across seeds and architectures", "AUTO", (), None, "never",
         "a single model was audited"),
    Item(47, "G", "Clinical review of saliency and the limitations statement", "HUMAN", ("FDA App. D", "AIA 2(e)"),
         "sec-review"),
    Item(48, "H", "Reader study / human\u2013AI team performance", "HUMAN", ("GMLP 7", "FDA \u00a7X")),
    Item(49, "H", "Usability and human-factors evaluation", "HUMAN", ("FDA App. D",)),
    Item(50, "I", "Known biases, failure modes and limitations", "MIXED", ("FDA App. E", "AIA 3"),
         "card-limitations", "always"),
    Item(51, "I", "Performance-monitoring plan", "MIXED", ("FDA \u00a7XI", "GMLP 10", "AIA 9"), "sec-robustness",
         "monitoring_plan", "no clinical-validation section: auditkit monitor and its policy can still be used"),
    Item(52, "I", "Predetermined change control plan", "HUMAN", ("AIA 2(f)", "FDA PCCP")),
    Item(53, "I", "Cybersecurity evidence", "HUMAN", ("FDA \u00a7XII", "AIA 2(h)")),
    Item(54, "J", "Model card (FDA App. E layout), also as model_card.json and CHAI model_card_chai.xml", "MIXED", ("FDA App. E",),
         "sec-model-card", "always"),
    Item(55, "J", "Data and code availability, funding, conflicts of interest, registration, ethics", "HUMAN",
         ("T17", "T18", "T19", "S6", "S36", "S37", "S38", "S39", "S40a", "C34", "C42", "C43", "C44")),
    Item(56, "J", "Signed, dated test log with hashes", "MIXED", ("S40b", "AIA 2(g)"), "sec-signoff", "always"),
)


def _status(item: Item, available: Mapping[str, bool]) -> tuple[str, str]:
    """Return (status text, css class) of one item given what this audit holds."""
    needs = item.needs or ""
    if needs.startswith("human:"):
        if available.get(needs):
            return "Provided by the manufacturer (not verified by auditkit).", "human-given"
        return TO_BE_COMPLETED, "human"
    if item.kind == "HUMAN":
        return TO_BE_COMPLETED, "human"
    if needs == "never" or (needs not in ("", "always") and not available.get(needs, False)):
        text = f"Not assessed in this audit: {item.reason}."
        if item.kind == "MIXED":
            text += " " + TO_BE_COMPLETED
        return text, "not-assessed"
    if item.kind == "MIXED":
        return "Drafted by auditkit; to be confirmed by the manufacturer.", "mixed"
    return "Answered by auditkit.", "auto"


def build_checklist(available: Mapping[str, bool], section_titles: Mapping[str, str]) -> dict[str, Any]:
    """Return the checklist rows grouped A-J and an index per guideline (CLAIM 2024, TRIPOD+AI, STARD-AI).

    ``available`` maps availability keys (``discrimination``, ``external``,
    ``human:intended_use``...) to whether this audit holds those data;
    ``section_titles`` maps section anchors to their titles.
    """
    titles = {**SUBSECTIONS, **section_titles}
    groups: dict[str, list[dict[str, Any]]] = {}
    answered_by: dict[str, list[dict[str, Any]]] = {}
    rows_by_number: dict[int, dict[str, Any]] = {}
    for item in ITEMS:
        status, css = _status(item, available)
        where = None
        if item.section and (css not in ("not-assessed", "human") or item.kind == "HUMAN"):
            # a HUMAN item with a section names where the manufacturer completes it (e.g. the review section)
            where = {"anchor": item.section, "title": titles.get(item.section, item.section)}
        row = {"number": item.number, "text": item.text, "kind": item.kind, "refs": ", ".join(item.refs),
               "status": status, "css": css, "where": where}
        rows_by_number[item.number] = row
        groups.setdefault(item.group, []).append(row)
        for ref in item.refs:
            answered_by.setdefault(ref, []).append(row)
    index = []
    for prefix, name in GUIDELINES:
        refs = [r for r in answered_by if r[:1] == prefix and r[1:2].isdigit()]
        refs.sort(key=_ref_key)
        entries = []
        for ref in refs:
            rows = answered_by[ref]
            places = [r["where"] for r in rows if r["where"] is not None]
            unique = list({p["anchor"]: p for p in places}.values())
            entries.append({"item": f"{name} {ref[1:]}", "checklist": ", ".join(str(r["number"]) for r in rows),
                            "places": unique, "status": "" if unique else TO_BE_COMPLETED})
        index.append({"guideline": name, "entries": entries})
    regulatory = []
    for name, mapping in (("FDA draft guidance 2025 (AI-enabled device software functions)", FDA_MAP),
                          ("EU AI Act Annex IV (technical documentation) and Art. 10", AIA_MAP)):
        entries = []
        for point, numbers in mapping:
            rows = [rows_by_number[n] for n in numbers]
            places = list({r["where"]["anchor"]: r["where"] for r in rows
                           if r["where"] is not None and r["css"] not in ("human", "not-assessed")}.values())
            open_items = [str(r["number"]) for r in rows if r["css"] in ("human", "not-assessed", "mixed")]
            status = (TO_BE_COMPLETED if not places else
                      f"Items {', '.join(open_items)}: {TO_BE_COMPLETED.lower()}" if open_items else "")
            entries.append({"item": point, "checklist": ", ".join(str(n) for n in numbers), "places": places,
                            "status": status})
        regulatory.append({"guideline": name, "entries": entries})
    return {
        "groups": [{"letter": letter, "title": GROUPS[letter], "rows": rows} for letter, rows in groups.items()],
        "index": index,
        "regulatory": regulatory,
        "counts": {kind: sum(1 for i in ITEMS if i.kind == kind) for kind in ("AUTO", "MIXED", "HUMAN")},
        "note": ("Items of each guideline not listed in the index are outside what auditkit measures. "
                 + TO_BE_COMPLETED),
    }


def _ref_key(ref: str) -> tuple[int, str]:
    digits = ""
    for ch in ref[1:]:
        if not ch.isdigit():
            break
        digits += ch
    return int(digits or 0), ref
