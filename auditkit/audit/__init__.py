"""Orchestration: runs the analyses an audit asks for and writes results.json.

``run_audit(config) -> AuditResults`` is the pipeline (:mod:`auditkit.audit.run`);
``compute_statistics(table, settings)`` the statistics step on its own
(:mod:`auditkit.audit.statistics`); ``read_predictions`` reads the table any
model can produce (:mod:`auditkit.audit.predictions`).
"""

from auditkit.audit.config import AuditConfig, AuditSettings, build_settings
from auditkit.audit.predictions import PredictionsTable, read_embeddings, read_predictions
from auditkit.audit.run import run_audit
from auditkit.audit.statistics import compute_statistics

__all__ = [
    "AuditConfig",
    "AuditSettings",
    "PredictionsTable",
    "build_settings",
    "compute_statistics",
    "read_embeddings",
    "read_predictions",
    "run_audit",
]
