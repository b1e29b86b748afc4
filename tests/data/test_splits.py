"""Patient-level splits: disjoint, stratified, deterministic, respecting given and external splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditkit.data.splits import allocate, assign_splits
from auditkit.errors import InvalidInputError


def _frame(patients, labels, sites, split=None) -> pd.DataFrame:
    data = {"patient_id": patients, "y_true": labels, "site": sites}
    if split is not None:
        data["split"] = split
    return pd.DataFrame(data)


@st.composite
def cohorts(draw):
    n_patients = draw(st.integers(1, 60))
    rows = []
    for p in range(n_patients):
        site = draw(st.sampled_from(["A", "B", "C"]))
        for _ in range(draw(st.integers(1, 4))):
            rows.append((f"p{p}", draw(st.integers(0, 1)), site))
    order = draw(st.permutations(range(len(rows))))
    rows = [rows[i] for i in order]
    return _frame(*zip(*rows, strict=True))


@settings(max_examples=60, deadline=None)
@given(frame=cohorts(), seed=st.integers(0, 2**16), external=st.sampled_from([(), ("C",)]))
def test_no_patient_spans_two_splits(frame, seed, external):
    external = tuple(s for s in external if s in set(frame["site"]))
    split = assign_splits(frame, seed=seed, external_sites=external)
    assert split.index.equals(frame.index)
    assert set(split) <= {"train", "val", "test", "external"}
    per_patient = split.groupby(frame["patient_id"]).nunique()
    assert (per_patient == 1).all()
    # external rows are exactly the external site's rows
    assert ((split == "external") == frame["site"].isin(external)).all()


@settings(max_examples=30, deadline=None)
@given(frame=cohorts(), seed=st.integers(0, 2**16))
def test_same_seed_same_splits_regardless_of_row_order(frame, seed):
    first = assign_splits(frame, seed=seed)
    shuffled = frame.sample(frac=1.0, random_state=1)
    second = assign_splits(shuffled, seed=seed)
    pd.testing.assert_series_equal(first, second.loc[first.index])


def test_stratified_so_val_and_test_get_positives():
    # 40 patients, 4 of them positive: an unstratified 15% draw misses positives often
    patients = [f"p{i}" for i in range(40)]
    labels = [1 if i < 4 else 0 for i in range(40)]
    for seed in range(25):
        split = assign_splits(_frame(patients, labels, ["A"] * 40), seed=seed)
        for name in ("val", "test"):
            assert (np.asarray(labels)[split.to_numpy() == name] == 1).any()


def test_fractions_follow_largest_remainder():
    # hand computation: 1000 patients -> 700/150/150; per stratum of 500: 350/75/75
    patients = [f"p{i}" for i in range(1000)]
    labels = [i % 2 for i in range(1000)]
    split = assign_splits(_frame(patients, labels, ["A"] * 1000), seed=3)
    assert split.value_counts().to_dict() == {"train": 700, "val": 150, "test": 150}
    assert allocate(7, {"train": 0.7, "val": 0.15, "test": 0.15}) == {"train": 5, "val": 1, "test": 1}
    assert allocate(3, {"train": 0.7, "val": 0.15, "test": 0.15}) == {"train": 1, "val": 1, "test": 1}
    assert allocate(10, {"train": 0.8, "val": 0.2}) == {"train": 8, "val": 2, "test": 0}


def test_the_frame_is_not_changed():
    frame = _frame(["a", "a", "b", "c"], [0, 1, 0, 1], ["A", "A", "B", "B"], split=[None, None, "test", None])
    before = frame.copy()
    assign_splits(frame, seed=0)
    pd.testing.assert_frame_equal(frame, before)


def test_different_seeds_differ():
    patients = [f"p{i}" for i in range(200)]
    frame = _frame(patients, [i % 3 == 0 for i in range(200)], ["A"] * 200)
    assert not assign_splits(frame, seed=0).equals(assign_splits(frame, seed=1))


def test_given_split_column_is_respected_and_gaps_filled_by_patient():
    frame = _frame(
        ["a", "a", "b", "c", "c", "d"],
        [0, 1, 0, 1, 0, 1],
        ["A"] * 6,
        split=["test", None, "train", None, None, "val"],
    )
    split = assign_splits(frame, seed=0)
    assert split.tolist()[:3] == ["test", "test", "train"]
    assert split.tolist()[5] == "val"
    assert split[3] == split[4]


def test_patient_spanning_given_splits_is_refused():
    frame = _frame(["a", "a"], [0, 1], ["A", "A"], split=["train", "test"])
    with pytest.raises(InvalidInputError, match="patient 'a' spans splits"):
        assign_splits(frame, seed=0)


def test_external_site_rows_cannot_be_train():
    frame = _frame(["a", "b"], [0, 1], ["A", "C"], split=["train", "train"])
    with pytest.raises(InvalidInputError, match="declared external"):
        assign_splits(frame, seed=0, external_sites=["C"])


def test_external_split_marks_its_site_external():
    frame = _frame(["a", "b", "c"], [0, 1, 1], ["A", "C", "C"], split=[None, "external", None])
    split = assign_splits(frame, seed=0)
    assert split.tolist()[1:] == ["external", "external"]


def test_unknown_external_site_is_refused():
    with pytest.raises(InvalidInputError, match="not sites of the data"):
        assign_splits(_frame(["a"], [0], ["A"]), seed=0, external_sites=["site_Z"])


def test_patient_at_external_and_internal_site_is_refused():
    frame = _frame(["a", "a", "b"], [0, 1, 0], ["A", "C", "A"])
    with pytest.raises(InvalidInputError, match="patient 'a' has images at external"):
        assign_splits(frame, seed=0, external_sites=["C"])


def test_bad_fractions_are_refused():
    frame = _frame(["a"], [0], ["A"])
    with pytest.raises(InvalidInputError, match="sum to 1"):
        assign_splits(frame, seed=0, fractions={"train": 0.5, "val": 0.2})
    with pytest.raises(InvalidInputError, match="unknown split"):
        assign_splits(frame, seed=0, fractions={"train": 0.5, "holdout": 0.5})
