"""Multi-label findings' label columns: the ``label_<f>``/``score_<f>`` names and the uncertain-label policy.

Label cells are ``1`` (present), ``0`` (absent), blank (unlabelled) or ``-1``
(uncertain, as CheXpert's labeller writes). The policy for ``-1`` is declared
(CheXpert, Irvin et al. AAAI 2019): ``ignore`` (the row is left out of that
finding), ``zeros`` (absent) or ``ones`` (present); a blank is always left out.
Used by training (:mod:`auditkit.train.multilabel`) and the audit
(:mod:`auditkit.audit.multilabel`), so it lives below both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from auditkit.errors import PredictionsError

LABEL_PREFIX = "label_"
SCORE_PREFIX = "score_"
UNCERTAIN_POLICIES: tuple[str, ...] = ("ignore", "zeros", "ones")


def finding_names(columns: Sequence[str], labels: Sequence[str] | None = None) -> list[str]:
    """Return the findings of a table: ``labels`` if given (``--labels a,b``), else every ``label_<f>`` column's ``f``."""
    if labels:
        return [str(f).strip() for f in labels if str(f).strip()]
    return [
        c[len(LABEL_PREFIX) :]
        for c in columns
        if c.startswith(LABEL_PREFIX) and len(c) > len(LABEL_PREFIX)
    ]


def encode_finding(
    values: Sequence[Any], *, policy: str = "ignore", where: str = "label"
) -> np.ndarray:
    """Return one finding's labels as float (n,): 1.0, 0.0 or NaN (left out), under the uncertainty ``policy``."""
    if policy not in UNCERTAIN_POLICIES:
        raise PredictionsError(
            f"uncertain-label policy must be one of {', '.join(UNCERTAIN_POLICIES)}, got {policy!r}"
        )
    out = np.full(len(values), np.nan)
    for row, value in enumerate(values):
        if (
            value is None
            or (isinstance(value, float) and np.isnan(value))
            or str(value).strip() == ""
        ):
            continue
        try:
            number = float(value)
        except ValueError:
            number = np.nan
        if number == 1.0:
            out[row] = 1.0
        elif number == 0.0:
            out[row] = 0.0
        elif number == -1.0:
            out[row] = {"ignore": np.nan, "zeros": 0.0, "ones": 1.0}[policy]
        else:
            raise PredictionsError(
                f"{where}: row {row + 1} has {value!r}; a finding's label is 1, 0, -1 (uncertain) or blank"
            )
    return out
