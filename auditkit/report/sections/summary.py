"""Cover page and summary: identity of the model, the overall verdict per gate rule, key findings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from auditkit.report import formatting as fmt
from auditkit.report.sections.common import Source, rule_text

NOT_RECORDED = "not recorded"
ZWSP = "\u200b"


def breakable(path: str) -> str:
    """Return a dotted metric path with a zero-width space after each dot: lines break between its parts only."""
    return path.replace(".", "." + ZWSP)


def model_version(source: Source) -> str:
    """Return the model's version as every page shows it, naming where it came from.

    The checkpoint's own version (model.json) wins; otherwise the device
    version the manufacturer gave in the audit configuration; otherwise it
    says that neither recorded one, never a bare "null".
    """
    recorded = source.get("model.version")
    if recorded not in (None, ""):
        return str(recorded)
    device = source.get("intended_use.device_version")
    if device not in (None, ""):
        return f"{device} (device version from the audit configuration; the checkpoint records none)"
    return "not recorded (neither the checkpoint nor the audit configuration gives a version)"


def model_version_short(source: Source) -> str:
    """Return the version for the running header: the value alone, or ``version not recorded``."""
    recorded = source.get("model.version") or source.get("intended_use.device_version")
    return str(recorded) if recorded not in (None, "") else "version not recorded"


def build_cover(source: Source, *, results_sha256: str | None) -> dict[str, Any]:
    """Return the cover: model identity, audit date, tool version, hashes and the overall verdict."""
    model = source.mapping("model")
    intended = source.mapping("intended_use")
    gate = source.mapping("gate")
    identity = [
        ("Model", model.get("name") or NOT_RECORDED),
        ("Version", model_version(source)),
        ("Architecture", model.get("arch") or "not available (audit from a predictions table)"),
        ("Weights SHA-256", model.get("sha256") or "not available (audit from a predictions table)"),
        ("Manufacturer", intended.get("manufacturer") or "to be provided by the manufacturer"),
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
        "model_version": model_version_short(source),
        "model_version_full": model_version(source),
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
                "metric": breakable(str(rule.get("metric", ""))),
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
    counts, insufficient_note = _verdict_counts(rules)
    overrides = gate.get("overrides") if isinstance(gate.get("overrides"), Mapping) else {}
    if overrides:
        insufficient_note = ("Deviation from the pre-specified policy on the command line: "
                             + ", ".join(f"{k} = {fmt.plain(v)}" for k, v in overrides.items()) + ". "
                             + insufficient_note)
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


def _verdict_counts(rules: list[dict[str, Any]]) -> tuple[str, str]:
    """Return the tally the console's headline gives (blocking checks first) and what insufficient evidence did.

    The count of blocking checks is the one ``auditkit gate`` prints; a
    failed rule of warning severity is counted as such, never as a blocking
    fail. The sentence on insufficient evidence says what happened to each
    such check, from the ``blocking`` flag the gate recorded.
    """
    blocking = [r for r in rules if r["blocking"]]
    ids = list(dict.fromkeys(r["id"] for r in blocking))
    parts = [f"{len(blocking)} blocking check{'s' if len(blocking) != 1 else ''} of {len(rules)}"
             + (f" (rules: {', '.join(ids)})" if ids else "")]
    others: dict[str, int] = {}
    for rule in rules:
        if rule["blocking"]:
            continue
        word = rule["verdict"]["text"].lower()
        if word == "fail":
            word = "failed, not blocking (warning severity)"
        elif word == "insufficient evidence":
            word = "insufficient evidence, not blocking"
        others[word] = others.get(word, 0) + 1
    parts += [f"{n} {word}" for word, n in others.items()]
    insufficient = [r for r in rules if r["verdict"]["css"] == "verdict-insufficient"]
    if not insufficient:
        return "; ".join(parts), ""
    blocked = [r for r in insufficient if r["blocking"]]
    allowed = list(dict.fromkeys(r["id"] for r in insufficient if not r["blocking"]))
    noun = "check" if len(insufficient) == 1 else "checks"
    if not blocked:
        note = (f"{len(insufficient)} {noun} had insufficient evidence (a confidence interval straddling the goal); "
                f"none blocks the release, because {'its rule allows' if len(allowed) == 1 else 'their rules allow'} "
                f"it ({', '.join(allowed)}).")
    else:
        note = (f"{len(insufficient)} {noun} had insufficient evidence (a confidence interval straddling the goal): "
                f"{len(blocked)} block the release"
                + (f"; the others do not, because their rules allow it ({', '.join(allowed)})" if allowed else "")
                + ".")
    return "; ".join(parts), note


def _rule_estimate(source: Source, rule: Any) -> str:
    for key in ("estimate", "value"):
        if isinstance(rule.get(key), bool):  # a yes/no check has an outcome, not an interval
            return f"{'yes' if rule[key] else 'no'} (a yes/no check: no interval)"
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
                "metric": breakable(str(check.get("metric", ""))),
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
    """Return the caveats the audit recorded (``warnings``) and every failed saliency check, with where each applies.

    Saliency evidence that fails (completeness, sanity, deletion/insertion
    against random, a low hit rate) is stated here, first, because a reader
    who skips section 8 must not take the gallery's maps at face value.
    """
    from auditkit.report.sections.explanations import saliency_problems

    methods = {k: v for k, v in source.mapping("saliency").items() if isinstance(v, Mapping)}
    findings = [{"code": problem["code"], "message": problem["message"], "where": f"saliency.{problem['method']}"}
                for problem in saliency_problems(methods)]
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
