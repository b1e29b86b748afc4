"""results.json: the versioned, JSON-serialisable audit results and their schema."""

from auditkit.results.document import (
    SCHEMA_VERSION,
    AuditResults,
    ResultsFile,
    get_path,
    load_results,
    read_results_file,
    results_schema,
    save_results,
    validate_results,
)
from auditkit.results.estimate import Estimate, is_estimate_dict

__all__ = [
    "SCHEMA_VERSION",
    "AuditResults",
    "Estimate",
    "ResultsFile",
    "get_path",
    "is_estimate_dict",
    "load_results",
    "read_results_file",
    "results_schema",
    "save_results",
    "validate_results",
]
