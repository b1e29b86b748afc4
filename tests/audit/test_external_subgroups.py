"""external.<site>.subgroups: each external site's per-subgroup rates, checked against scikit-learn."""

from __future__ import annotations

import pytest
from sklearn.metrics import recall_score, roc_auc_score

from auditkit.audit.config import AuditSettings
from auditkit.audit.predictions import read_predictions
from auditkit.audit.statistics import build_statistics
from auditkit.fileio import to_jsonable

from .conftest import make_table


def test_external_site_subgroup_rates_match_sklearn_and_small_groups_say_why(tmp_path):
    frame = make_table(900, seed=3)
    csv = tmp_path / "preds.csv"
    frame.to_csv(csv, index=False)
    ext = frame[frame["split"] == "external"]
    smallest = ext["age_group"].value_counts()
    minimum = int(smallest.min()) + 1  # the smallest age group at site C falls below it, the sex groups do not
    settings = AuditSettings(attributes=["sex", "age_group"], n_boot=60, seed=1, min_group_size=minimum)
    sections = build_statistics(read_predictions(csv), settings)
    site = sections.external["C"]
    threshold = sections.discrimination["test"].confusion_matrix["threshold"]
    for value in ("F", "M"):
        g = ext[ext["sex"] == value]
        block = site.subgroups["sex"]["groups"][value]
        assert (block["n"], block["n_positive"]) == (len(g), int(g["y_true"].sum()))
        sens = block["sensitivity"]
        assert sens.estimate == pytest.approx(recall_score(g["y_true"], g["score"] >= threshold), abs=1e-12)
        assert sens.ci_low <= sens.estimate <= sens.ci_high
        assert block["auroc"].estimate == pytest.approx(roc_auc_score(g["y_true"], g["score"]), abs=1e-12)
    small = site.subgroups["age_group"]["groups"][smallest.idxmin()]
    assert small["n"] == smallest.min() and small["sensitivity"].estimate is None
    assert f"below the minimum group size of {minimum}" in small["sensitivity"].reason
    assert site.subgroups["sex"]["cohort"] == "C"
    assert "subgroups" in to_jsonable(site.to_dict())  # written to results.json (schema: external.*.subgroups)
