"""Write a large synthetic predictions table: the workload of the statistics-at-scale budget.

Issue 11: a statistics-only audit of a 1,000,000-row table (2 attributes,
3 sites, ``--no-explain --no-report``, 1,000 resamples) must finish on the
2-core machine within 4 GiB peak RSS and 10 minutes. This writes such a
table: binary task, binormal scores (AUROC about 0.8) with a subgroup effect
on the scores, patients with 1-5 images each (so the bootstrap resamples
clusters), sites ``site_a`` (internal: val/test by patient; no training rows, so every row is audited),
``site_b`` and ``site_c`` (external), attributes ``sex`` and ``age_group``.

Run: ``.venv/bin/python benchmarks/make_big_predictions.py --n 1000000 --out /tmp/big.parquet``
then ``auditkit audit --predictions /tmp/big.parquet --attributes sex,age_group
--external-site site_b --external-site site_c --no-explain --no-report --out DIR``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd


def make_table(n: int, *, seed: int = 0, patients: bool = True) -> pd.DataFrame:
    """Return a predictions table of ``n`` rows (id, y_true, score, patient_id, site, split, sex, age_group)."""
    rng = np.random.default_rng(seed)
    if patients:
        per_patient = rng.integers(1, 6, size=n)  # 1-5 images; mean 3
        patient = np.repeat(np.arange(n), per_patient)[:n]
    else:
        patient = np.arange(n)
    n_patients = int(patient[-1]) + 1
    p_site = rng.choice(3, size=n_patients, p=[0.6, 0.2, 0.2])
    p_sex = rng.integers(0, 2, size=n_patients)
    p_age = rng.choice(3, size=n_patients, p=[0.3, 0.4, 0.3])
    p_split = rng.choice(2, size=n_patients, p=[0.25, 0.75])  # val / test at site_a: all audited
    site = np.array(["site_a", "site_b", "site_c"])[p_site[patient]]
    split = np.where(
        p_site[patient] == 0, np.array(["val", "test"])[p_split[patient]], "external"
    )
    sex = np.array(["F", "M"])[p_sex[patient]]
    age = np.array(["18-44", "45-64", "65+"])[p_age[patient]]
    y = (rng.random(n) < 0.25 + 0.05 * p_age[patient]).astype(np.int64)
    shift = np.array([0.0, -0.3, 0.2])[p_site[patient]] + 0.15 * p_sex[patient]
    z = rng.normal(size=n) + (1.2 + shift) * y - 1.0
    score = 1.0 / (1.0 + np.exp(-z))
    return pd.DataFrame(
        {
            "id": np.char.add("img", np.arange(n).astype(str)),
            "y_true": y,
            "score": score,
            "patient_id": np.char.add("p", patient.astype(str)) if patients else None,
            "site": site,
            "split": split,
            "sex": sex,
            "age_group": age,
        }
    ).dropna(axis=1, how="all")


def main() -> None:
    """Write the table given on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-patients", action="store_true", help="one image per patient")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    frame = make_table(args.n, seed=args.seed, patients=not args.no_patients)
    if args.out.suffix == ".csv":
        frame.to_csv(args.out, index=False)
    else:
        frame.to_parquet(args.out, index=False)
    print(f"wrote {len(frame):,} rows, {frame['patient_id'].nunique() if 'patient_id' in frame else len(frame):,} patients to {args.out}")


if __name__ == "__main__":
    main()
