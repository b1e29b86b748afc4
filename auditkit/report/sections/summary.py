"""Cover page and summary: identity of the model, the overall verdict per gate rule, key findings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from auditkit.report import formatting as fmt
from auditkit.report.sections.common import Source, rule_text

NOT_RECORDED = "not recorded"


def build_cover(source: Source, *, results_sha256: str | None) -> dict[str, Any]:
    """Return the cover: model identity, audit date, tool version, hashes and the overall verdict."""
    model = source.mapping("model")
    intended = source.mapping("intended_use")
    gate = source.mapping("gate")
    version = model.get("version") or intended.get("device_version")
    identity = [
        ("Model", model.get("name") or NOT_RECORDED),
        ("Version", version or NOT_RECORDED),
        ("Architecture", model.get("arch") or "not available (audit from a predictions table)"),
        ("Weights SHA-256", model.get("sha256") or "not available (audit from a predictions table)"),
        ("Manufacturer", intended.get("manufacturer") or "to be completed by the manufacturer"),
        ("Audit date", source.get("created", NOT_RECORDED)),
        ("Task", _task_text(source)),
        ("Produced by", f"auditkit {source.get('tool.version', '?')} (results schema {source.get('schema_version', '?')})"),
        ("results.json SHA-256", results_sha256 or NOT_RECORDED),
    ]
    if gate:
        version_text = f" version {gate['policy_version']}" if gate.get("policy_version") else ""
        identity.append(("Release policy",
                         f"{gate.get('policy_name') or 'unnamed'}{version_text} (SHA-256 {gate.get('policy_sha256')})"))
    return {
        "title": f"Pre-release audit of {model.get('name') or 'an unnamed model'}",
        "model_name": str(model.get("name") or "unnamed model"),
        "model_version": str(version or "version not recorded"),
        "identity": [{"label": label, "value": fmt.plain(value)} for label, value in identity],
        "verdict": build_verdict(source),
    }


def _task_text(source: Source) -> str:
    classes = source.get("run.classes", [])
    task = source.get("run.task", "binary")
    positive = source.get("run.positive_class")
    text = f"{task} classification of {len(classes)} classes ({', '.join(str(c) for c in classes)})"
    if positive is not None:
        text += f"; positive class: {positive}"
    return text


def build_verdict(source: Source) -> dict[str, Any]:
    """Return the overall verdict and one row per gate rule (or why there is no verdict)."""
    gate = source.mapping("gate")
    if not gate:
        return {
            "available": False,
            "overall": {"text": "NO VERDICT", "css": "verdict-none"},
            "explanation": (
                "No release policy was applied to this audit, so no pass/fail verdict is given. "
                "Apply one with 'auditkit gate results.json --policy POLICY' or 'auditkit audit --policy'."
            ),
            "rules": [],
            "counts": "",
            "n_blocking": 0,
        }
    passed = bool(gate.get("passed"))
    rules = []
    for rule in source.gate_rules():
        value = rule.get("value")
        rules.append(
            {
                "id": str(rule.get("id", "")),
                "metric": str(rule.get("metric", "")),
                "condition": rule_text(rule),
                "severity": str(rule.get("severity") or "error"),
                "blocking": bool(rule.get("blocking")),
                "value": fmt.format_number(value) if isinstance(value, (int, float)) and not isinstance(value, bool)
                else fmt.plain(value),
                "estimate": _rule_estimate(source, rule),
                "verdict": fmt.verdict(rule.get("verdict")),
                "message": str(rule.get("message") or ""),
            }
        )
    tally: dict[str, int] = {}
    for rule in rules:
        tally[rule["verdict"]["text"]] = tally.get(rule["verdict"]["text"], 0) + 1
    counts = ", ".join(f"{n} {word.lower()}" for word, n in tally.items())
    insufficient_note = ""
    overrides = gate.get("overrides") if isinstance(gate.get("overrides"), Mapping) else {}
    if overrides:
        insufficient_note = ("Deviation from the pre-specified policy on the command line: "
                             + ", ".join(f"{k} = {fmt.plain(v)}" for k, v in overrides.items()) + ". ")
    if gate.get("block_on_insufficient") is not None:
        insufficient_note += (
            "Insufficient evidence (a confidence interval straddling a goal) blocks the release "
            "unless a rule says otherwise; each rule's verdict below says whether it blocks."
            if gate.get("block_on_insufficient")
            else "Insufficient evidence does not block the release unless a rule says otherwise; "
            "each rule's verdict below says whether it blocks."
        )
    return {
        "available": True,
        "overall": fmt.verdict("pass" if passed else "fail"),
        "explanation": (
            f"The model {'meets' if passed else 'does not meet'} the release policy "
            f"'{gate.get('policy_name') or 'unnamed'}' ({counts}). {insufficient_note}"
        ).strip(),
        "rules": rules,
        "counts": counts,
        "n_blocking": sum(1 for rule in rules if rule["blocking"]),
    }


def _rule_estimate(source: Source, rule: Any) -> str:
    if rule.get("estimate") is None and rule.get("ci_low") is None:
        return fmt.NOT_REPORTED if rule.get("value") is not None else "not computable"
    return source.est({"estimate": rule.get("estimate"), "ci_low": rule.get("ci_low"),
                       "ci_high": rule.get("ci_high"), "reason": "undefined"})


def build_expected_findings(source: Source) -> list[dict[str, Any]]:
    """Return, per expected finding (e.g. a phantom's planted flaw), its rule's checks and whether it was caught."""
    rows: list[dict[str, Any]] = []
    for item in source.get("expected_findings", []) or []:
        if not isinstance(item, Mapping):
            continue
        checks = [
            {
                "metric": str(check.get("metric", "")),
                "estimate": source.est(check, str(check.get("metric", "")).rsplit(".", 1)[-1]),
                "verdict": fmt.verdict(check.get("verdict")),
            }
            for check in item.get("checks", []) or []
            if isinstance(check, Mapping)
        ]
        caught = bool(item.get("caught"))
        rows.append(
            {
                "name": str(item.get("name", "")),
                "description": str(item.get("description", "")),
                "rule": str(item.get("rule", "")),
                "checks": checks,
                "outcome": {"text": "CAUGHT", "css": "verdict-fail"} if caught
                else {"text": "MISSED", "css": "verdict-insufficient"},
            }
        )
    return rows


def build_findings(source: Source) -> list[dict[str, str]]:
    """Return the caveats the audit recorded (``warnings``), each with where it applies."""
    findings = []
    for item in source.get("warnings", []):
        if isinstance(item, dict):
            findings.append({"code": str(item.get("code", "")), "message": str(item.get("message", "")),
                             "where": str(item.get("where") or "")})
    return findings


def build_key_results(source: Source) -> list[dict[str, str]]:
    """Return the headline numbers: internal and external AUROC, operating-point rates, worst gaps."""
    rows: list[dict[str, str]] = []
    test = source.mapping("discrimination.test")
    for key in ("auroc", "sensitivity", "specificity"):
        if key in test:
            rows.append({"label": f"{fmt.metric_label(key)}, internal test", "value": source.est(test[key], key)})
    for site, block in source.mapping("external").items():
        auroc = (block.get("discrimination") or {}).get("auroc") if isinstance(block, dict) else None
        if auroc is not None:
            rows.append({"label": f"AUROC, external site {site}", "value": source.est(auroc, "auroc")})
    calib = source.mapping("calibration.test")
    for key in ("ece", "slope"):
        if key in calib:
            rows.append({"label": f"{fmt.metric_label(key)}, internal test", "value": source.est(calib[key], key)})
    for attribute, block in source.mapping("fairness").items():
        gap = (block.get("gap") or {}).get("fnr") if isinstance(block, dict) else None
        if gap is not None and not block.get("intersection"):
            groups = gap.get("groups") or []
            between = f" ({' vs '.join(str(g) for g in groups)})" if len(groups) == 2 else ""
            rows.append({"label": f"FNR gap by {attribute}{between}", "value": source.est(gap, "fnr")})
    return rows
