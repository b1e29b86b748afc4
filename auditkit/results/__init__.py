"""results.json: the versioned, JSON-serialisable audit results and their schema."""

from auditkit.results.document import (
    SCHEMA_VERSION,
    AuditResults,
    get_path,
    load_results,
    results_schema,
    save_results,
    validate_results,
)
from auditkit.results.estimate import Estimate, is_estimate_dict

__all__ = [
    "SCHEMA_VERSION",
    "AuditResults",
    "Estimate",
    "get_path",
    "is_estimate_dict",
    "load_results",
    "results_schema",
    "save_results",
    "validate_results",
]
