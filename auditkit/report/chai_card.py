"""The CHAI Applied Model Card (v0.2 XML) of an audited model, built from the FDA-layout model card.

The Coalition for Health AI's Applied Model Card (github.com/coalition-for-health-ai/mc-schema,
schema v0.2, namespace ``https://mc.chai.org/v0.2/schema.xsd``) is an XML
document whose root ``AppliedModelCard`` holds, in this order: BasicInfo,
ReleaseInfo, ModelSummary, UsesAndDirections, Warnings, TrustIngredients
(AISystemFacts, TransparencyInformation), KeyMetrics (Usefulness /
Fairness / Safety, each a goal, results, interpretation, test type, testing
data and validation process), Resources and Bibliography. A metric result
is a label and a ``ValueJson`` string; CHAI's examples write an estimate with
its interval as ``{"kind": "estimate_ci", "estimate", "lower", "upper",
"level", "unit"}`` and a single number as ``{"kind": "single", "value"}``.

Every entry comes from the FDA-layout card (:func:`auditkit.report.model_card.build_model_card`)
or results.json; what only the manufacturer knows (developer, contact,
release stage, funding, stakeholders, clinical risk level...) is written
"To be provided by the manufacturer." and never invented.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any
from xml.etree import ElementTree as ET

from auditkit.report.model_card import PERFORMANCE_METRICS, TO_BE_PROVIDED
from auditkit.report.sections.common import Source
from auditkit.stats import metrics as metric_registry

NAMESPACE = "https://mc.chai.org/v0.2/schema.xsd"
CHAI_CARD_NAME = "model_card_chai.xml"
#: the order of AppliedModelCard's children in the v0.2 schema (an xs:sequence: order matters).
ROOT_SEQUENCE = (
    "BasicInfo", "ReleaseInfo", "ModelSummary", "UsesAndDirections", "Warnings", "TrustIngredients",
    "KeyMetrics", "Resources", "Bibliography",
)  # fmt: skip
#: the gated fairness gaps and calibration numbers reported under Fairness and Safety.
FAIRNESS_GAPS = ("fnr", "fpr", "auroc")
SAFETY_METRICS = ("ece_l1_debiased", "intercept", "slope")


def _text(value: Any) -> str:
    if value in (None, "", [], {}):
        return TO_BE_PROVIDED
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return "; ".join(_text(v) for v in value)
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _sentence(text: Any) -> str:
    text = str(text).strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def _sites(sites: Any) -> str | None:
    if not isinstance(sites, Mapping) or not sites:
        return None
    parts = []
    for site, splits in sites.items():
        inner = ", ".join(f"{k} {v}" for k, v in splits.items()) if isinstance(splits, Mapping) else str(splits)
        parts.append(f"{site} ({inner} images)")
    return "; ".join(parts)


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def value_json(estimate: Any, level: float) -> str | None:
    """Return CHAI's ``ValueJson`` of a results.json estimate (None when it has no value)."""
    if not isinstance(estimate, Mapping) or not _finite(estimate.get("estimate")):
        return None
    lo, hi = estimate.get("ci_low"), estimate.get("ci_high")
    if _finite(lo) and _finite(hi):
        out = {"kind": "estimate_ci", "estimate": estimate["estimate"], "lower": lo, "upper": hi,
               "level": round(100 * float(level), 6), "unit": ""}  # fmt: skip
    else:
        out = {"kind": "single", "value": estimate["estimate"]}
    return json.dumps(out, separators=(",", ":"))


_CONTAINER = object()


def _add(parent: ET.Element, tag: str, value: Any = _CONTAINER) -> ET.Element:
    """Return a new child element; with ``value`` (None included: not recorded) it holds that text."""
    child = ET.SubElement(parent, f"{{{NAMESPACE}}}{tag}")
    if value is not _CONTAINER:
        child.text = _text(value)
    return child


def _results(parent: ET.Element, rows: list[tuple[str, Any]], level: float) -> None:
    results = _add(parent, "Results")
    written = 0
    for label, estimate in rows:
        text = value_json(estimate, level)
        if text is None:
            continue
        result = _add(results, "MetricResult")
        _add(result, "Label", label)
        _add(result, "ValueJson", text)
        written += 1
    if not written:  # the schema needs at least one MetricResult
        result = _add(results, "MetricResult")
        _add(result, "Label", "not assessed by this audit")
        _add(result, "ValueJson", json.dumps({"kind": "single", "value": None}))


def _key_metric(
    parent: ET.Element, tag: str, *, goal: str, rows: list[tuple[str, Any]], level: float,
    interpretation: str, test_type: str, data: str, validation: str,
) -> None:  # fmt: skip
    block = _add(parent, tag)
    _add(block, "MetricGoal", goal)
    _results(block, rows, level)
    _add(block, "Interpretation", interpretation)
    _add(block, "TestType", test_type)
    _add(block, "TestingDataDescription", data)
    _add(block, "ValidationProcessAndJustification", validation)


def _sizes(card: Mapping[str, Any]) -> str:
    parts = []
    for name, counts in (card.get("data", {}).get("splits") or {}).items():
        if isinstance(counts, Mapping):
            patients = counts.get("n_patients")
            who = f"{patients} patients, " if patients is not None else ""
            parts.append(f"{name} ({counts.get('role', '')}): {who}{counts.get('n_images')} images, "
                         f"{counts.get('n_positive')} positive")
    return "; ".join(parts) or TO_BE_PROVIDED


def _performance_rows(card: Mapping[str, Any]) -> list[tuple[str, Any]]:
    rows = []
    for cohort, block in (card.get("performance", {}).get("overall") or {}).items():
        where = "internal test" if cohort == "internal_test" else cohort.replace("external:", "external site ")
        for m in PERFORMANCE_METRICS:
            rows.append((f"{metric_registry.label(m)} ({where})", (block or {}).get(m)))
    return rows


def _fairness_rows(source: Source) -> list[tuple[str, Any]]:
    rows = []
    for attribute, block in source.mapping("fairness").items():
        gaps = block.get("gap") if isinstance(block, Mapping) else None
        if not isinstance(gaps, Mapping):
            continue
        for m in FAIRNESS_GAPS:
            rows.append((f"{metric_registry.label(m)} gap across {attribute} (highest minus lowest group)", gaps.get(m)))
    return rows


def _safety_rows(source: Source) -> list[tuple[str, Any]]:
    rows = [(f"{metric_registry.label(m)} (internal test)", source.get(f"calibration.test.{m}")) for m in SAFETY_METRICS]
    for site, block in source.mapping("external").items():
        delta = (block or {}).get("delta") if isinstance(block, Mapping) else None
        if isinstance(delta, Mapping):
            rows.append((f"AUROC, external site {site} minus internal test", delta.get("auroc")))
    return rows


def _biases(card: Mapping[str, Any], source: Source) -> str:
    absent = [r["variable"] for r in card.get("data", {}).get("requested_subgroups") or [] if
              str(r.get("status", "")).startswith("absent")]
    parts = []
    analysed = sorted(source.mapping("fairness"))
    parts.append(f"Subgroup performance was analysed across: {', '.join(analysed)}." if analysed
                 else "No subgroup attribute was analysed by this audit.")
    if absent:
        parts.append(f"Not available in the audited data, so not assessed: {', '.join(absent)}.")
    return " ".join(parts)


def build_chai_card(card: Mapping[str, Any], source: Source) -> ET.Element:
    """Return the CHAI Applied Model Card (v0.2) element of an FDA-layout card and its results.json."""
    ET.register_namespace("", NAMESPACE)
    root = ET.Element(f"{{{NAMESPACE}}}AppliedModelCard")
    for part in (_basic_and_release, _summary_and_uses, _warnings, _trust_ingredients, _key_metrics, _resources):
        part(root, card, source)  # the XSD's sequence order
    return root


def _outputs(card: Mapping[str, Any]) -> tuple[Mapping[str, Any], Any]:
    description = card.get("description", {})
    outputs = description.get("outputs") if isinstance(description.get("outputs"), Mapping) else {}
    return outputs, outputs.get("positive_class")


def _basic_and_release(root: ET.Element, card: Mapping[str, Any], source: Source) -> None:
    device, intended = card.get("device_information", {}), source.mapping("intended_use")
    basic = _add(root, "BasicInfo")
    _add(basic, "ModelName", device.get("name"))
    _add(basic, "ModelDeveloper", intended.get("manufacturer"))
    _add(basic, "DeveloperContact", intended.get("contact"))

    release = _add(root, "ReleaseInfo")
    _add(release, "ReleaseStage", intended.get("release_stage"))
    _add(release, "ReleaseDate", intended.get("release_date"))
    _add(release, "ReleaseVersion", device.get("version"))
    _add(release, "GlobalAvailability", intended.get("global_availability"))
    _add(release, "RegulatoryApproval", card.get("regulatory_status"))


def _summary_and_uses(root: ET.Element, card: Mapping[str, Any], source: Source) -> None:
    device, description = card.get("device_information", {}), card.get("description", {})
    intended = source.mapping("intended_use")
    _, positive = _outputs(card)
    summary = _add(root, "ModelSummary")
    _add(summary, "Summary", (
        f"{device.get('model_architecture')} image classifier"
        + (f" for the finding '{positive}'" if positive else "")
        + f"; intended use: {_text(description.get('intended_use'))} "
        "Performance below is from an independent auditkit audit (standalone, retrospective)."
    ))  # fmt: skip
    keywords = _add(summary, "Keywords")
    for word in ("medical imaging", "image classification", *([str(positive)] if positive else [])):
        _add(keywords, "Keyword", word)

    uses = _add(root, "UsesAndDirections")
    _add(uses, "IntendedUseAndWorkflow", f"{_text(description.get('intended_use'))} Workflow phase: "
         f"{_text(description.get('workflow_phase'))}")
    _add(uses, "PrimaryIntendedUsers", description.get("intended_users"))
    _add(uses, "HowToUse", description.get("instructions_for_use"))
    _add(uses, "TargetedPatientPopulation", description.get("indications"))
    _add(uses, "CautionedOutOfScopeSettings", intended.get("out_of_scope"))


def _warnings(root: ET.Element, card: Mapping[str, Any], source: Source) -> None:
    warnings = _add(root, "Warnings")
    _add(warnings, "KnownRisksAndLimitations", " ".join(_sentence(x) for x in card.get("limitations") or []) or None)
    _add(warnings, "KnownBiasesOrEthicalConsiderations", _biases(card, source))
    _add(warnings, "ClinicalRiskLevel", source.mapping("intended_use").get("clinical_risk_level"))


def _trust_ingredients(root: ET.Element, card: Mapping[str, Any], source: Source) -> None:
    device, description = card.get("device_information", {}), card.get("description", {})
    intended, model = source.mapping("intended_use"), source.mapping("model")
    outputs, positive = _outputs(card)
    trust = _add(root, "TrustIngredients")
    facts = _add(trust, "AISystemFacts")
    point = description.get("operating_point") if isinstance(description.get("operating_point"), Mapping) else {}
    _add(facts, "OutcomesAndOutputs", (
        f"Class probabilities over {', '.join(map(str, outputs.get('classes') or [])) or 'the classes'}; a case is "
        f"called positive when the probability of '{positive}' reaches the frozen threshold "
        + (f"{point['threshold']:.3g}" if _finite(point.get("threshold")) else "(not recorded)")
        + (" (temperature-scaled at training)" if isinstance(description.get("output_calibration"), Mapping) else "")
    ))  # fmt: skip
    _add(facts, "ModelType", f"{device.get('model_architecture')} convolutional neural network"
         + (f", {device.get('parameters')} parameters" if device.get("parameters") else ""))
    if model.get("pretrained"):
        _add(facts, "FoundationModels", model.get("pretrained"))
    _add(facts, "InputDataSource", f"Sites in the audited data: {_text(_sites(source.get('data.sites')))}")
    inputs = description.get("inputs") or {}
    _add(facts, "OutputAndInputDataTypes", f"Input: images resized to {inputs.get('input_size')} pixels, "
         f"{inputs.get('channels')} channel(s). Output: class probabilities and a binary call at the threshold.")
    _add(facts, "DevelopmentDataCharacterization", _sizes(card))
    _add(facts, "BiasMitigationApproaches", intended.get("bias_mitigation"))
    _add(facts, "OngoingMaintenance", intended.get("maintenance"))
    transparency = _add(trust, "TransparencyInformation")
    _add(transparency, "FundingSource", intended.get("funding_source"))
    _add(transparency, "StakeholdersConsulted", intended.get("stakeholders_consulted"))


def _key_metrics(root: ET.Element, card: Mapping[str, Any], source: Source) -> None:
    level = float(source.ci_level)
    key = _add(root, "KeyMetrics")
    ci = f"{round(100 * level)}% confidence intervals"
    method = source.get("run.ci_method")
    validation = (f"Two-sided {ci} ({method or 'bootstrap'}; patient-clustered when patients have several images); "
                  "a release rule compares an interval bound with a pre-specified goal (auditkit gate policy).")
    data_text = _sizes(card)
    _key_metric(key, "UsefulnessUsabilityEfficacy",
                goal="Standalone discrimination of the finding at the frozen operating point, on the internal "
                     "test split and each external site.",
                rows=_performance_rows(card), level=level,
                interpretation="Estimates with their intervals; see the audit report for the gate's verdict.",
                test_type="Retrospective standalone evaluation on held-out data (auditkit audit).",
                data=data_text, validation=validation)
    _key_metric(key, "FairnessEquity",
                goal="Differences in performance between the groups of each recorded patient attribute.",
                rows=_fairness_rows(source), level=level,
                interpretation="Gaps are the highest minus the lowest group (0 = equal); their intervals "
                               "are simultaneous over the groups' pairwise differences.",
                test_type="Retrospective subgroup analysis of the internal test split.",
                data=_biases(card, source), validation=validation)
    _key_metric(key, "SafetyReliability",
                goal="Calibration of the released probabilities and the change of performance at external sites.",
                rows=_safety_rows(source), level=level,
                interpretation="ECE (L1, debiased): 0 is perfect calibration; intercept 0 and slope 1 are ideal; "
                               "an external minus internal AUROC below 0 means the model degrades off-site.",
                test_type="Retrospective evaluation of calibration and of external validity.",
                data=data_text, validation=validation)


def _resources(root: ET.Element, card: Mapping[str, Any], source: Source) -> None:
    intended = source.mapping("intended_use")
    resources = _add(root, "Resources")
    _add(resources, "EvaluationReferences", f"auditkit audit report (report.pdf) and results.json "
         f"(schema {source.get('schema_version')}), created {source.get('created')}.")
    _add(resources, "PeerReviewedPublications", intended.get("publications"))
    _add(resources, "PatientConsentOrDisclosure", intended.get("patient_disclosure"))
    _add(root, "Bibliography", "Coalition for Health AI, Applied Model Card v0.2; FDA draft guidance "
         "'AI-Enabled Device Software Functions' (2025), Appendix E.")


def chai_card_bytes(card: Mapping[str, Any], source: Source) -> bytes:
    """Return the CHAI Applied Model Card as UTF-8 XML bytes (declaration, indented)."""
    root = build_chai_card(card, source)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"
