"""The statistics' typed sections: frozen, and each ``to_dict`` is exactly what results.json holds.

Oracles: the results.json that ``auditkit audit --predictions`` wrote (read
back through the shipped JSON Schema), scikit-learn's AUROC and confusion
matrix and pandas' counts on the test rows, and the schema itself for a
document assembled from the sections alone. (The numbers before and after
the move into sections are compared by ``benchmarks/results_equivalence.py``
against a stored baseline of the pre-refactor tree.)
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import confusion_matrix, roc_auc_score

from auditkit.analysis.sections import (
    CalibrationBlock,
    CalibrationChain,
    CohortSummary,
    DataSection,
    DiscriminationBlock,
    ExternalSite,
    FairnessSection,
    RecalibrationSection,
    StatisticsSections,
)
from auditkit.audit.config import AuditSettings
from auditkit.audit.predictions import read_predictions
from auditkit.audit.statistics import build_statistics
from auditkit.cli import run
from auditkit.errors import ExitCode
from auditkit.fileio import to_jsonable
from auditkit.results import load_results, validate_results
from auditkit.results.section import Section
from auditkit.stats.fairness import FairnessAttribute

from .conftest import make_table

SETTINGS = {"attributes": ["sex"], "intersections": ["sex+age_group"], "n_boot": 60, "seed": 2,
            "fairness_cohorts": ["test", "external"]}  # fmt: skip


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    """(sections, results.json, table frame) of one small binary audit with patients of 2 images."""
    folder = tmp_path_factory.mktemp("sections")
    frame = make_table(800, images_per_patient=2, flaw=1.0)
    csv = folder / "preds.csv"
    frame.to_csv(csv, index=False)
    out = folder / "out"
    args = ["--attributes", "sex", "--intersections", "sex+age_group", "--n-boot", "60", "--seed", "2"]
    config = folder / "audit.yaml"
    config.write_text("fairness_cohorts: [test, external]\n", "utf-8")
    code = run(["--quiet", "audit", "--predictions", str(csv), "--out", str(out), "--config", str(config),
                "--no-report", *args])  # fmt: skip
    assert code == ExitCode.OK
    doc = load_results(out / "results.json")  # validated against the shipped schema
    sections = build_statistics(read_predictions(csv), AuditSettings(**SETTINGS))
    return sections, doc, frame


def _every_section(sections: StatisticsSections):
    """Yield (results.json path, section object) for every typed section inside ``sections``."""
    yield "data", sections.data
    for group in ("cohorts", "discrimination", "calibration", "external"):
        for name, section in getattr(sections, group).items():
            yield f"{group}.{name}", section
    for site, section in sections.external.items():
        yield f"external.{site}.discrimination", section.discrimination
        yield f"external.{site}.calibration", section.calibration
        if section.fairness is not None:
            yield f"external.{site}.fairness", section.fairness
    yield "fairness", sections.fairness
    for name, section in sections.fairness.attributes.items():
        yield f"fairness.{name}", section
    yield "recalibration", sections.recalibration
    yield "calibration_chain", sections.calibration_chain


#: keys the audit adds after the statistics (auditkit.audit.run.failures_section: sizes per split and the
#: internal sites' comparison), so not part of the statistics' data section
ADDED_LATER = {"data": {"subgroups", "site_comparison"}}


def _at(doc, path):
    node = doc
    for part in path.split("."):
        node = node[part]
    return {k: v for k, v in node.items() if k not in ADDED_LATER.get(path, ())}


def test_every_section_is_typed_frozen_and_round_trips_to_results_json(audited):
    sections, doc, _ = audited
    kinds = {type(s) for _, s in _every_section(sections)}
    assert kinds >= {DataSection, CohortSummary, DiscriminationBlock, CalibrationBlock, ExternalSite,
                     FairnessSection, FairnessAttribute, RecalibrationSection, CalibrationChain}  # fmt: skip
    for path, section in _every_section(sections):
        assert isinstance(section, Section), path
        assert to_jsonable(section.to_dict()) == _at(doc, path), path
        field = dataclasses.fields(section)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(section, field, None)
    with pytest.raises(TypeError):  # mapping fields are read-only views
        sections.discrimination["test"].estimates["auroc"] = None  # type: ignore[index]
    statistical = {k: v for k, v in to_jsonable(sections.to_dict()).items() if k != "run_info"}
    assert statistical == {k: _at(doc, k) if k in ADDED_LATER else doc[k] for k in statistical}
    assert {k: doc["run"][k] for k in ("clustered", "cluster_column", "ci_method")} == {
        k: sections.run_info[k] for k in ("clustered", "cluster_column", "ci_method")
    }


def test_a_document_assembled_from_the_sections_passes_the_schema(audited):
    sections, doc, _ = audited
    rebuilt = {**doc, **{k: v for k, v in sections.to_dict().items() if k != "run_info"}}
    validate_results(to_jsonable(rebuilt), source="rebuilt")


def test_the_sections_hold_the_numbers_of_independent_oracles(audited):
    sections, _, frame = audited
    test = frame[frame["split"] == "test"]
    y, s = test["y_true"].to_numpy(), test["score"].to_numpy()
    block = sections.discrimination["test"]
    assert block.estimates["auroc"].estimate == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    threshold = block.confusion_matrix["threshold"]
    tn, fp, fn, tp = confusion_matrix(y, (s >= threshold).astype(int)).ravel()
    assert dict(block.confusion_matrix) == {"tp": tp, "fp": fp, "tn": tn, "fn": fn, "threshold": threshold}
    cohort = sections.cohorts["test"]
    assert (cohort.n_images, cohort.n_patients, cohort.n_positive) == (
        len(test), test["patient_id"].nunique(), int(y.sum())
    )
    female = test[test["sex"] == "F"]
    group = sections.fairness.attributes["sex"].groups["F"]
    assert group["n"] == len(female) and group["n_positive"] == int(female["y_true"].sum())
    assert np.isclose(group["auroc"].estimate, roc_auc_score(female["y_true"], female["score"]))


def test_a_multiclass_audit_round_trips_too(tmp_path):
    """The multi-class shapes (per_class, macro, scope, class counts, no Platt) against results.json."""
    rng = np.random.default_rng(1)
    n, classes = 600, np.array(["normal", "benign", "malignant"])
    y = rng.choice(3, n, p=[0.5, 0.3, 0.2])
    logits = rng.normal(size=(n, 3))
    logits[np.arange(n), y] += 1.5
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    site = rng.choice(["A", "B", "C"], n, p=[0.4, 0.4, 0.2])
    frame = pd.DataFrame({"id": [f"m{i}" for i in range(n)], "y_true": classes[y], "site": site,
                          "split": np.where(site == "C", "external", rng.choice(["val", "test"], n)),
                          "sex": rng.choice(["F", "M"], n)})  # fmt: skip
    for k, name in enumerate(classes):
        frame[f"score_{name}"] = p[:, k]
    csv = tmp_path / "multi.csv"
    frame.to_csv(csv, index=False)
    code = run(["--quiet", "audit", "--predictions", str(csv), "--out", str(tmp_path / "out"), "--attributes", "sex",
                "--n-boot", "50", "--no-report"])  # fmt: skip
    assert code == ExitCode.OK
    doc = load_results(tmp_path / "out" / "results.json")
    sections = build_statistics(read_predictions(csv), AuditSettings(attributes=["sex"], n_boot=50))
    assert sections.discrimination["test"].per_class is not None and sections.recalibration.platt is None
    for path, section in _every_section(sections):
        assert to_jsonable(section.to_dict()) == _at(doc, path), path


def test_adjusted_sections_are_copies(audited):
    """The family's adjusted p-values live in the returned section; the p-values stay the unadjusted ones."""
    sections, _, _ = audited
    gap = sections.fairness.attributes["sex"].gap
    primary = [m for m in AuditSettings(**SETTINGS).fairness_primary_metrics if gap[m].p_value is not None]
    assert primary and all(gap[m].p_adjusted is not None and gap[m].p_adjusted >= gap[m].p_value for m in primary)
    assert sections.fairness.attributes["sex"].multiplicity["family_size"] >= len(primary)
