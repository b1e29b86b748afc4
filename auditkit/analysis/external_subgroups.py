"""results.json's ``external.<site>.subgroups``: each external site's performance per subgroup, with CIs.

FDA's draft guidance (2025, §X) asks for subgroup results of the test data,
clinical site included: "acceptable performance in certain subgroups may mask
lower performance in other subgroups". The full subgroup analysis (gaps,
tests, multiplicity) runs on the cohorts named by ``fairness_cohorts``
(internal test by default). This block adds, for every external site and
every single attribute, each group's size and rates with the run's intervals
(the audit's resamples, patient-clustered when patients have several images;
Clopper–Pearson at 0 or 1), so that a failing subgroup at a site is visible
even when the site's fairness is not analysed. It is descriptive: no test,
no comparison family, nothing gated.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from auditkit.analysis.context import AnalysisContext
from auditkit.results import Estimate
from auditkit.stats import metrics as metric_registry
from auditkit.stats.fairness import MISSING, group_labels

#: the rates shown per site and subgroup (FDA App. C binary-output measures and AUROC).
SUBGROUP_METRICS = ("auroc", "sensitivity", "specificity", "ppv", "npv")


def external_subgroups(ctx: AnalysisContext, site: str, rows: np.ndarray) -> dict[str, Any]:
    """Return ``{attribute: {group: {n, n_patients, n_positive, <metric>: Estimate | reason}}}`` for one site.

    A group below the run's minimum group size (or the missing-value group)
    gets its sizes and an undefined Estimate with the reason, never a number.
    """
    settings = ctx.settings
    analyzer = ctx.analyzer
    if not ctx.binary:  # multi-class subgroup rates are the fairness analysis's (macro) job
        return {}
    patients = ctx.patients
    out: dict[str, Any] = {}
    for attribute in settings.attributes:
        labels = group_labels(ctx.frame.iloc[rows], [attribute]).to_numpy()
        groups: dict[str, Any] = {}
        for value in sorted(set(labels), key=lambda v: (v == MISSING, v)):
            g_rows = rows[labels == value]
            n_pos, n_neg = analyzer.counts(g_rows)
            block: dict[str, Any] = {
                "n": len(g_rows),
                "n_patients": len(np.unique(patients[g_rows])) if patients is not None else len(g_rows),
                "n_positive": int(n_pos),
            }
            if value == MISSING or len(g_rows) < settings.min_group_size:
                reason = (
                    f"no value for {attribute!r}" if value == MISSING
                    else f"group has {len(g_rows)} cases, below the minimum group size of {settings.min_group_size}"
                )  # fmt: skip
                block.update({m: Estimate.undefined(reason) for m in SUBGROUP_METRICS})
            else:
                dists = analyzer.metrics(g_rows, fits=False, names=list(SUBGROUP_METRICS))
                for m in SUBGROUP_METRICS:
                    reason = metric_registry.undefined_reason(m, n_positive=n_pos, n_negative=n_neg)
                    block[m] = analyzer.estimate(g_rows, m, dists[m], reason=reason)
            groups[str(value)] = block
        out[attribute] = {"cohort": site, "groups": groups}
    return out
