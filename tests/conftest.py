"""Shared session fixtures: one small phantom, one trained smallcnn, its predictions (CI trains once).

Every fixture is session-scoped, deterministic (fixed seeds, CPU, deterministic
algorithms) and built lazily: a test run that does not ask for them pays nothing.

``quick_phantom`` -> ``auditkit.data.phantom.PhantomResult``
    A 1000-image, 48×48 phantom with every planted flaw on at the phantom's
    calibrated default strengths (``PhantomConfig().flaws``: the shortcut
    marker, underdiagnosis in ``sex == "F"``, label noise in ``age_group ==
    "80+"``, the external site's acquisition shift; ``phantom.json`` records the
    strengths), three sites (``site_A``, ``site_B`` internal;
    ``site_C`` external, ``split=external`` in the manifest), seed 0. Fields: ``manifest_path``, ``truth_path``
    (phantom.json, the planted ground truth), ``out_dir``, ``n_images``.

``trained_smallcnn`` -> ``pathlib.Path``
    The checkpoint folder (``weights.safetensors``, ``model.json``,
    ``splits.csv``, ``history.csv``) of ``smallcnn`` trained on ``quick_phantom``
    at 48×48 for up to 10 epochs without augmentation (seed 0; about 0.9
    internal-test AUROC, about 0.6 at the shifted external site). Its held-out AUROC is above 0.8
    (``tests/train/test_train.py`` checks it with scikit-learn).
    Load it with ``auditkit.nets.load_checkpoint(trained_smallcnn)``.

``quick_predictions`` -> ``pathlib.Path``
    The predictions table (Parquet, with the ``auditkit`` schema metadata) of
    ``trained_smallcnn`` on every row of ``quick_phantom``; its ``split`` column
    comes from the checkpoint (``train``/``val``/``test``/``external``).

``quick_embeddings`` -> ``pathlib.Path``
    The penultimate-layer embeddings (Parquet: ``id``, ``emb_0..emb_127``) of
    the same prediction run, keyed by the predictions table's ``id``.

``phantom_subset`` -> ``callable(per_site: int, name="subset.csv") -> pathlib.Path``
    Writes (into the test's ``tmp_path``) a manifest of the first ``per_site``
    rows of each site of ``quick_phantom``; its image paths stay relative to the
    phantom, so read it with ``data_root=quick_phantom.out_dir``.

Do not modify the files these fixtures return: copy them into ``tmp_path`` first.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

QUICK_PHANTOM_IMAGES = 1000
QUICK_PHANTOM_SIZE = 48
QUICK_EPOCHS = 10


@pytest.fixture(scope="session")
def quick_phantom(tmp_path_factory):
    """A small phantom with every planted flaw at its default strength (see the module docstring)."""
    from auditkit.data.phantom import PhantomConfig, generate_phantom

    config = PhantomConfig(n_images=QUICK_PHANTOM_IMAGES, size=QUICK_PHANTOM_SIZE, seed=0)
    return generate_phantom(tmp_path_factory.mktemp("quick") / "phantom", config)


@pytest.fixture(scope="session")
def trained_smallcnn(quick_phantom, tmp_path_factory) -> Path:
    """The checkpoint folder of a smallcnn trained on ``quick_phantom`` (see the module docstring)."""
    from auditkit.progress import set_quiet
    from auditkit.train import train

    set_quiet(True)
    try:
        result = train(
            quick_phantom.manifest_path,
            arch="smallcnn",
            out=tmp_path_factory.mktemp("models") / "quick_smallcnn",
            epochs=QUICK_EPOCHS,
            batch_size=32,
            lr=3e-3,
            patience=4,
            seed=0,
            device="cpu",
            input_size=(QUICK_PHANTOM_SIZE, QUICK_PHANTOM_SIZE),
            augment=False,
            num_workers=0,
        )
    finally:
        set_quiet(False)
    return result.model_dir


@pytest.fixture(scope="session")
def _quick_prediction_files(trained_smallcnn, quick_phantom, tmp_path_factory) -> tuple[Path, Path]:
    from auditkit.predict import predict
    from auditkit.progress import set_quiet

    folder = tmp_path_factory.mktemp("predictions")
    predictions, embeddings = folder / "predictions.parquet", folder / "embeddings.parquet"
    set_quiet(True)
    try:
        predict(
            trained_smallcnn,
            quick_phantom.manifest_path,
            out=predictions,
            device="cpu",
            embeddings_out=embeddings,
            num_workers=0,
        )
    finally:
        set_quiet(False)
    return predictions, embeddings


@pytest.fixture(scope="session")
def quick_predictions(_quick_prediction_files) -> Path:
    """The predictions table (Parquet) of ``trained_smallcnn`` on ``quick_phantom``."""
    return _quick_prediction_files[0]


@pytest.fixture(scope="session")
def quick_embeddings(_quick_prediction_files) -> Path:
    """The penultimate-layer embeddings (Parquet, keyed by id) of the same prediction run."""
    return _quick_prediction_files[1]


@pytest.fixture
def phantom_subset(quick_phantom, tmp_path):
    """Return a function writing a few-rows-per-site manifest of ``quick_phantom`` (see the module docstring)."""

    def make(per_site: int, name: str = "subset.csv") -> Path:
        frame = pd.read_csv(quick_phantom.manifest_path, dtype=str, keep_default_na=False)
        subset = frame.groupby("site", sort=True).head(per_site).reset_index(drop=True)
        path = tmp_path / name
        subset.to_csv(path, index=False)
        return path

    return make
