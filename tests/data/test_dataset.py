"""ImageDataset and make_loader: hand-computed inputs, cache equivalence, loader settings."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import torch
from data_helpers import write_png

from auditkit.data.dataset import ImageDataset, default_num_workers, make_loader
from auditkit.data.transforms import Preprocess
from auditkit.errors import InvalidInputError

MEAN, STD = 0.4, 0.2


@pytest.fixture
def frame(tmp_path) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    paths, arrays = [], []
    for i in range(10):
        array = rng.integers(0, 256, (16, 16), dtype=np.uint8)
        paths.append(str(write_png(tmp_path / f"{i}.png", array)))
        arrays.append(array)
    frame = pd.DataFrame({"image": paths, "y_true": [i % 2 for i in range(10)]})
    frame.attrs["arrays"] = arrays
    return frame


def test_item_is_the_normalised_image_by_hand(frame):
    dataset = ImageDataset(frame, Preprocess((16, 16), 1, (MEAN,), (STD,)))
    x, y, index = dataset[3]
    expected = (frame.attrs["arrays"][3] / 255.0 - MEAN) / STD
    assert x.shape == (1, 16, 16) and x.dtype == torch.float32
    np.testing.assert_allclose(x[0].numpy(), expected, atol=1e-5)
    assert (y, index) == (1, 3)
    assert len(dataset) == 10


def test_cache_gives_the_same_items(frame):
    pre = Preprocess((12, 12), 3, (MEAN,), (STD,))
    plain, cached = ImageDataset(frame, pre), ImageDataset(frame, pre, cache=True)
    assert cached.cached and not plain.cached
    for i in range(len(frame)):
        assert torch.equal(plain[i][0], cached[i][0])
    # the cache survives the files going away: nothing is read after preloading
    for path in frame["image"]:
        os.remove(path)
    assert torch.equal(cached[4][0], plain.preprocess.finish(cached._cache[4]))


def test_cache_refuses_beyond_its_limit(frame):
    with pytest.raises(InvalidInputError, match="cache limit"):
        ImageDataset(frame, Preprocess((16, 16)), cache=True, cache_limit_bytes=1000)


def test_missing_columns_are_refused(frame):
    with pytest.raises(InvalidInputError, match="'y_true'"):
        ImageDataset(frame.drop(columns="y_true"), Preprocess((16, 16)))


def test_loader_batches_and_seeded_order(frame):
    dataset = ImageDataset(frame, Preprocess((16, 16)))
    first = [b[2].tolist() for b in make_loader(dataset, batch_size=4, shuffle=True, device="cpu", seed=1)]
    again = [b[2].tolist() for b in make_loader(dataset, batch_size=4, shuffle=True, device="cpu", seed=1)]
    assert first == again
    assert sorted(i for batch in first for i in batch) == list(range(10))
    x, y, index = next(iter(make_loader(dataset, batch_size=4, shuffle=False, device="cpu")))
    assert x.shape == (4, 1, 16, 16) and y.tolist() == [0, 1, 0, 1] and index.tolist() == [0, 1, 2, 3]


def test_loader_settings_follow_the_device(frame):
    dataset = ImageDataset(frame, Preprocess((16, 16)))
    cpu = make_loader(dataset, batch_size=4, shuffle=False, device="cpu", num_workers=0)
    assert cpu.pin_memory is False and cpu.persistent_workers is False
    cuda = make_loader(dataset, batch_size=4, shuffle=False, device="cuda", num_workers=2)
    assert cuda.pin_memory is True and cuda.persistent_workers is True and cuda.num_workers == 2
    cached = ImageDataset(frame, Preprocess((16, 16)), cache=True)
    assert default_num_workers(cached, "cuda") == 0


def test_loader_with_worker_processes_yields_the_same_batches(frame):
    dataset = ImageDataset(frame, Preprocess((16, 16)))
    in_process = list(make_loader(dataset, batch_size=5, shuffle=False, device="cpu", num_workers=0))
    workers = list(make_loader(dataset, batch_size=5, shuffle=False, device="cpu", num_workers=2))
    for a, b in zip(in_process, workers, strict=True):
        assert torch.equal(a[0], b[0]) and torch.equal(a[2], b[2])
