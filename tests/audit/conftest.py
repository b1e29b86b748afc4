"""Synthetic predictions tables for the audit tests (any model's CSV/Parquet)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def make_table(
    n: int = 1200,
    *,
    seed: int = 0,
    flaw: float = 0.0,
    images_per_patient: int = 1,
    external: bool = True,
) -> pd.DataFrame:
    """Return a binary predictions table: val/test at sites A and B, external site C, sex and age_group.

    ``flaw`` lowers the scores of female positives (planted underdiagnosis).
    """
    rng = np.random.default_rng(seed)
    n_patients = n // images_per_patient
    pid = np.repeat(np.arange(n_patients), images_per_patient)
    n = len(pid)
    site = np.where(
        rng.random(n_patients) < (0.25 if external else 0.0),
        "C",
        np.where(rng.random(n_patients) < 0.5, "A", "B"),
    )[pid]
    split = np.where(
        site == "C",
        "external",
        rng.choice(["train", "val", "test"], n_patients, p=[0.2, 0.4, 0.4])[pid],
    )
    y = (rng.random(n_patients) < 0.35).astype(int)[pid]
    sex = np.where(rng.random(n_patients) < 0.5, "F", "M")[pid]
    age = rng.choice(["<40", "40-60", "60+"], n_patients)[pid]
    z = rng.normal(size=n) + 2.0 * y - 1.0 - flaw * y * (sex == "F") + 0.4 * (site == "C")
    return pd.DataFrame(
        {
            "id": [f"img{i:05d}" for i in range(n)],
            "y_true": y,
            "score": 1 / (1 + np.exp(-z)),
            "patient_id": [f"p{p}" for p in pid],
            "site": site,
            "split": split,
            "sex": sex,
            "age_group": age,
        }
    )


@pytest.fixture
def predictions_csv(tmp_path):
    path = tmp_path / "preds.csv"
    make_table().to_csv(path, index=False)
    return path
