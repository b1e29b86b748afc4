"""The end-to-end audit: results.json, then the release gate, then the report.

``auditkit audit`` calls :func:`run_pipeline`. The analysis
(:func:`auditkit.audit.run.run_audit`) writes results.json; when a policy is
given, the gate (:mod:`auditkit.gate`) judges it and its verdict is stored in
results.json's ``gate`` section (with the policy's exact bytes copied beside
it, so the change-control record is complete); last, the report
(:mod:`auditkit.report`) renders the PDF and HTML from results.json alone.
This module sits above both the analysis and the presentation layers.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditkit.audit.config import AuditConfig
from auditkit.audit.run import RESULTS_NAME, run_audit, write_outputs
from auditkit.errors import ConfigError, OutputExistsError
from auditkit.fileio import atomic_write_bytes, atomic_write_text, input_at, sha256_file
from auditkit.progress import status
from auditkit.results import AuditResults

POLICY_NAME = "policy.yaml"
GATE_JSON = "gate.json"
GATE_JUNIT = "gate-junit.xml"
GATE_SUMMARY = "gate-summary.md"
REPORT_PDF = "report.pdf"
REPORT_HTML = "report.html"

#: What an earlier audit left in its folder that a new run with --force must not leave behind
#: (a stale gate.json or report beside new results would contradict them). ``explain/cache``
#: stays: its maps are keyed by model, image and parameters, so a rerun resumes from it.
PREVIOUS_OUTPUTS = (
    "results.json", "summary.md", POLICY_NAME, GATE_JSON, GATE_JUNIT, GATE_SUMMARY, REPORT_PDF,
    REPORT_HTML, "predictions.parquet", "embeddings.parquet",
)  # fmt: skip
PREVIOUS_FOLDERS = ("explain/images", "explain/overlays", "explain/masks")


@dataclass(frozen=True, eq=False)
class PipelineOutcome:
    """What an end-to-end audit produced: the results, the gate outcome (if any) and the files."""

    results: AuditResults
    gate: Any | None
    """:class:`auditkit.gate.GateOutcome`, or None without a policy."""
    files: dict[str, Path]

    @property
    def passed(self) -> bool | None:
        """Return the gate's verdict, or None when no policy was applied."""
        return None if self.gate is None else bool(self.gate.passed)


def judge_expected_findings(expected: Sequence[Any], outcome: Any) -> list[dict[str, Any]]:
    """Return, per expected finding, the checks of its rule and whether the rule caught it.

    A finding is caught when a check of its rule (on its metric, if one is
    named) ends with a blocking verdict: the gate would stop the release for
    exactly the reason the finding was planted.
    """
    judged = []
    for finding in expected:
        checks = [
            c for c in outcome.checks
            if c.id == finding.rule and (finding.metric is None or c.metric == finding.metric)
        ]  # fmt: skip
        judged.append(
            {
                "name": finding.name,
                "description": finding.description,
                "rule": finding.rule,
                "metric": finding.metric,
                "checks": [
                    {k: c.to_dict()[k] for k in ("metric", "verdict", "estimate", "ci_low", "ci_high", "blocking")}
                    for c in checks
                ],
                "caught": any(c.blocking and c.verdict != "pass" for c in checks),
            }
        )
    return judged


def apply_gate(
    results: AuditResults,
    policy: Any,
    out_dir: Path,
    *,
    allow_insufficient: bool = False,
    expected: Sequence[Any] = (),
) -> tuple[AuditResults, Any, dict[str, Path]]:
    """Return the results with their ``gate`` section, the outcome, and the gate files written.

    ``policy``: a loaded :class:`auditkit.gate.Policy`, or a shipped name or
    path for :func:`auditkit.gate.load_policy`. Writes ``policy.yaml`` (the policy's exact bytes), ``gate.json``,
    ``gate-junit.xml`` and ``gate-summary.md`` into ``out_dir`` and rewrites
    results.json (and summary.md) with the gate section, and with
    ``expected_findings`` judged against the outcome when any are declared.
    """
    from auditkit.gate import Policy, evaluate, load_policy
    from auditkit.gate import write_outputs as write_gate_outputs

    if not isinstance(policy, Policy):  # a shipped name or a path
        policy = load_policy(policy)
    policy_path = out_dir / POLICY_NAME
    if input_at(policy_path) is None:  # the policy given may be the one kept in the audit folder
        atomic_write_bytes(policy_path, policy.raw)
    if sha256_file(policy_path) != policy.sha256:  # pragma: no cover - defends the record
        raise RuntimeError("the copied policy's hash differs from the policy evaluated")
    outcome = evaluate(results.data, policy, block_on_insufficient=False if allow_insufficient else None)
    data = {**results.data, "gate": outcome.to_results_section()}
    if expected:
        data["expected_findings"] = judge_expected_findings(expected, outcome)
    path = write_outputs(out_dir, data)
    outcome = dataclasses.replace(
        outcome, results_source=str(path), results_sha256=sha256_file(path)
    )
    files = dict(
        zip(
            ("gate_json", "gate_junit", "gate_summary"),
            write_gate_outputs(
                outcome,
                json_path=out_dir / GATE_JSON,
                junit_path=out_dir / GATE_JUNIT,
                summary_path=out_dir / GATE_SUMMARY,
            ),
            strict=True,
        )
    )
    files["policy"] = policy_path
    return AuditResults(data, path), outcome, files


def earlier_outputs(out_dir: Path) -> dict[Path, tuple[int, int, int]]:
    """Return the files an earlier audit left in ``out_dir``, each with its (device, inode, mtime) identity."""
    found: dict[Path, tuple[int, int, int]] = {}
    candidates = [out_dir / name for name in PREVIOUS_OUTPUTS]
    for name in PREVIOUS_FOLDERS:
        folder = out_dir / name
        if folder.is_dir() and not folder.is_symlink():
            candidates.extend(p for p in sorted(folder.rglob("*")) if p.is_file())
    for path in candidates:
        try:
            info = path.lstat()
        except OSError:
            continue
        if path.is_file() and not path.is_symlink():
            found[path] = (info.st_dev, info.st_ino, info.st_mtime_ns)
    return found


def remove_stale_outputs(out_dir: Path, earlier: dict[Path, tuple[int, int, int]]) -> list[Path]:
    """Return the earlier outputs removed because this run did not write them again (never an input).

    Called once the new run has succeeded: an output this run rewrote has a
    new inode (atomic rename), one it did not is stale (a gate.json beside
    results of a run without a policy) and goes. Until then every earlier
    file stays, so an input refused half-way costs nothing.
    """
    removed = []
    for path, identity in earlier.items():
        try:
            info = path.lstat()
        except OSError:
            continue
        if (info.st_dev, info.st_ino, info.st_mtime_ns) == identity and input_at(path) is None:
            path.unlink()
            removed.append(path)
    for name in PREVIOUS_FOLDERS:
        folder = out_dir / name
        if folder.is_dir() and not any(p.is_file() for p in folder.rglob("*")):
            shutil.rmtree(folder)
    return removed


def protect_audit_inputs(config: AuditConfig) -> None:
    """Register every input of the audit ``config`` with :func:`auditkit.fileio.protect_input`."""
    from auditkit.fileio import protect_input

    protect_input(config.predictions, "the predictions table (--predictions)")
    protect_input(config.embeddings, "the embeddings (--embeddings)")
    protect_input(config.manifest, "the manifest (--manifest)")
    protect_input(config.model, "the model folder (--model)", tree=True)
    protect_input(config.config_path, "the audit config (--config)")
    if config.policy is not None and Path(config.policy).is_file():
        protect_input(config.policy, "the policy (--policy)")


def _check_inputs_exist(config: AuditConfig) -> None:
    for flag, path in (
        ("--predictions", config.predictions), ("--manifest", config.manifest),
        ("--embeddings", config.embeddings), ("--model", config.model),
    ):  # fmt: skip
        if path is not None and not Path(path).exists():
            raise ConfigError(f"{flag} {str(path)!r} does not exist; check the path (nothing was removed)")


def run_pipeline(config: AuditConfig) -> PipelineOutcome:
    """Return the outcome of the whole audit ``config`` describes: analysis, gate, report.

    The output folder is locked for the whole run (a second audit into it
    exits 2 naming this one's pid), no input can be overwritten, and the
    policy is loaded before any work so a malformed policy fails fast. With
    ``force`` the earlier run's outputs that this run does not write again
    are removed only once it has succeeded (:func:`remove_stale_outputs`).
    """
    from auditkit.fileio import guard_inputs, output_lock

    out_dir = Path(config.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputExistsError(f"--out {str(out_dir)!r} is a file; give a folder for the audit outputs")
    from auditkit import distributed

    with guard_inputs(), output_lock(out_dir):
        protect_audit_inputs(config)
        if distributed.env_rank() > 0:
            return _helper_rank(config, out_dir)
        return _run_locked(config, out_dir)


def _helper_rank(config: AuditConfig, out_dir: Path) -> PipelineOutcome:
    """Return once this torchrun rank (not rank 0) has scored and explained its shards.

    The model run (:mod:`auditkit.predict_shards`) and the saliency maps
    (:func:`auditkit.audit.saliency.run_saliency` with rank 0's settings, its
    shard of the sampled cases into the shared map cache) are the audit's
    distributed steps; rank 0 computes the statistics, the saliency evidence,
    the gate and the report alone.
    """
    from auditkit.audit.inference import EMBEDDINGS_NAME, PREDICTIONS_NAME, load_model
    from auditkit.data.manifest import read_manifest
    from auditkit.predict import predict

    if config.model is not None and config.manifest is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        loaded = load_model(config)
        manifest = read_manifest(
            config.manifest, data_root=config.data_root, allow_outside_root=config.allow_outside_root,
            class_spec=loaded.classes,
        )  # fmt: skip
        table = predict(  # the same call as rank 0's auditkit.audit.inference.score_manifest
            loaded, manifest, out=out_dir / PREDICTIONS_NAME, batch_size=config.batch_size,
            embeddings_out=out_dir / EMBEDDINGS_NAME if loaded.embedding_layer else None,
            external_sites=config.settings.external_sites, positive_class=config.settings.positive_class,
        )  # fmt: skip
        if config.explain:  # rank 0 calls run_saliency whenever it has a model and explain is on
            from auditkit.audit.saliency import run_saliency

            run_saliency(loaded, table, out_dir=out_dir)
    results = out_dir / RESULTS_NAME
    return PipelineOutcome(results=AuditResults({}, results), gate=None, files={"results": results})


RUN_MARKER = ".auditkit-run.json"
"""Written when an audit starts and removed when it ends: its presence means a run was interrupted."""


def _fingerprint(config: AuditConfig) -> str:
    """Return the text that identifies an audit's request: what was asked (not ``force``, not the defaults)."""
    return config.model_dump_json(exclude={"force"}, exclude_defaults=True)


def _run_locked(config: AuditConfig, out_dir: Path) -> PipelineOutcome:
    marker = out_dir / RUN_MARKER
    fingerprint = _fingerprint(config)
    try:
        resuming = marker.is_file() and marker.read_text("utf-8") == fingerprint
    except (OSError, UnicodeDecodeError):
        resuming = False
    try:
        if resuming and not config.force:
            # the same audit was killed part-way (e.g. during the PDF): finish it, no --force needed
            status(f"resuming the interrupted audit in {out_dir}")
            config = config.model_copy(update={"force": True})
            outcome = _run_checked(config, out_dir, sweep=False)
        else:
            outcome = _run_checked(config, out_dir, sweep=config.force, marker_text=fingerprint)
    except Exception:
        # a refused input is not an interruption: the next run must not take it for one
        if not resuming:
            marker.unlink(missing_ok=True)
        raise
    marker.unlink(missing_ok=True)
    return outcome


def _run_checked(
    config: AuditConfig, out_dir: Path, *, sweep: bool, marker_text: str | None = None
) -> PipelineOutcome:
    if not config.force:
        for name in (RESULTS_NAME, REPORT_PDF, REPORT_HTML):
            if (out_dir / name).exists():
                raise OutputExistsError(
                    f"{out_dir / name} already exists; pass --force to overwrite it or choose another --out"
                )
    policy = None
    if config.policy is not None:
        from auditkit.gate import load_policy

        policy = load_policy(config.policy)  # before any work, so a bad policy fails fast
    earlier: dict[Path, tuple[int, int, int]] = {}
    if config.force:
        _check_inputs_exist(config)
    if sweep:
        earlier = earlier_outputs(out_dir)
    if marker_text is not None:
        atomic_write_text(out_dir / RUN_MARKER, marker_text)
    results = run_audit(config)
    files: dict[str, Path] = {"results": out_dir / RESULTS_NAME, "summary": out_dir / "summary.md"}
    outcome = None
    if config.policy is not None:
        results, outcome, gate_files = apply_gate(
            results,
            policy,
            out_dir,
            allow_insufficient=config.allow_insufficient,
            expected=config.settings.expected_findings,
        )
        files.update(gate_files)
    if config.report:
        from auditkit.report import render_report

        pdf, html, card, chai = render_report(
            out_dir / RESULTS_NAME,
            out_pdf=out_dir / REPORT_PDF,
            out_html=out_dir / REPORT_HTML,
            force=True,
            policy=files.get("policy"),
        )
        files.update(report_pdf=pdf, report_html=html, model_card=card, model_card_chai=chai)
        status(f"report: {pdf}")
    remove_stale_outputs(out_dir, earlier)
    return PipelineOutcome(results, outcome, files)
