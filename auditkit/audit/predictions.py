"""The predictions table, re-exported from its home :mod:`auditkit.predictions_table` (and the embeddings reader)."""

from auditkit.embeddings_table import read_embeddings
from auditkit.predictions_table import (
    CSV_SUFFIXES,
    PARQUET_SUFFIXES,
    PASSTHROUGH,
    RESERVED_SITE_NAMES,
    SPLITS,
    SUM_TOLERANCE,
    PredictionsTable,
    from_frame,
    read_predictions,
)

__all__ = [
    "CSV_SUFFIXES",
    "PARQUET_SUFFIXES",
    "PASSTHROUGH",
    "RESERVED_SITE_NAMES",
    "SPLITS",
    "SUM_TOLERANCE",
    "PredictionsTable",
    "from_frame",
    "read_embeddings",
    "read_predictions",
]
