"""The audit on a real trained model's predictions: the shared phantom fixtures (tests/conftest.py).

Planted truth: the phantom's external site ``site_C`` has a site shift
(acquisition outside the internal range), so its embeddings are separable
from the internal test images and the model loses discrimination there.
Oracles: scikit-learn on the same rows for the per-group values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import recall_score, roc_auc_score

from auditkit.audit.config import AuditSettings
from auditkit.audit.predictions import read_embeddings, read_predictions
from auditkit.audit.statistics import compute_statistics
from auditkit.progress import set_quiet


@pytest.mark.slow
def test_phantom_audit_detects_the_planted_site_shift(quick_predictions, quick_embeddings):
    set_quiet(True)
    try:
        table = read_predictions(quick_predictions)
        embeddings = read_embeddings(quick_embeddings, table.frame["id"].tolist())
        sections = compute_statistics(
            table,
            AuditSettings(attributes=["sex"], n_boot=200, mmd_permutations=200),
            embeddings=embeddings,
        )
    finally:
        set_quiet(False)
    assert table.classes.positive_class == "lesion" and len(table.model["sha256"]) == 64
    shift = sections["external"]["site_C"]["shift"]
    assert shift["domain_auroc"].ci_low > 0.8
    assert shift["mmd"]["p_value"] < 0.05
    assert sections["external"]["site_C"]["delta"]["auroc"].ci_high < 0

    frame = pd.read_parquet(quick_predictions)
    test = frame[frame["split"] == "test"]
    threshold = sections["operating_point"]["threshold"]
    assert sections["discrimination"]["test"]["auroc"].estimate == pytest.approx(
        roc_auc_score(test["y_true"], test["score"]), abs=1e-12
    )
    groups = sections["fairness"]["sex"]["groups"]
    assert set(groups) == set(test["sex"])  # every group is checked, none skipped
    for sex, block in groups.items():
        rows = test[test["sex"] == sex]
        assert block["n"] == len(rows)
        assert rows["y_true"].sum() > 0  # the phantom has positives in each group: sensitivity is defined
        expected = recall_score(rows["y_true"], rows["score"] >= threshold)
        assert block["sensitivity"].estimate == pytest.approx(expected, abs=1e-12)
    assert np.isfinite(sections["fairness"]["sex"]["gap"]["fnr"].estimate)
