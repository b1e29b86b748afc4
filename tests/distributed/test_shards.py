"""Shard arithmetic and shard files, without a process group (hand-computed expectations)."""

from __future__ import annotations

import numpy as np
import pytest

from auditkit.distributed import Context, shard_bounds
from auditkit.predict_shards import read_shard, shard_key, write_shard


@pytest.mark.parametrize(
    ("n", "world", "align", "expected"),
    [
        (120, 2, 16, [(0, 64), (64, 120)]),  # 8 batches: 4 + 4, the last one short
        (100, 3, 10, [(0, 30), (30, 60), (60, 100)]),  # 10 batches: 3 + 3 + 4
        (10, 4, 1, [(0, 2), (2, 5), (5, 7), (7, 10)]),
        (5, 2, 128, [(0, 2), (2, 5)]),  # fewer batches than ranks: rows are dealt
        (0, 2, 8, [(0, 0), (0, 0)]),
    ],
)
def test_shards_are_contiguous_batch_aligned_and_cover_every_row(n, world, align, expected):
    got = [shard_bounds(n, Context(world_size=world, rank=r), align=align) for r in range(world)]
    assert got == expected


def test_a_shard_is_reused_only_under_its_own_key(tmp_path):
    path = tmp_path / "rows-000000000-000000003.npz"
    prob = np.array([[0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])
    key = shard_key(model="a", manifest="b", start=0, stop=3)
    write_shard(path, key, ["x", "y", "z"], prob, None)
    found = read_shard(path, key)
    assert found is not None
    np.testing.assert_array_equal(found[0], prob)
    assert found[1] is None
    assert read_shard(path, shard_key(model="other", manifest="b", start=0, stop=3)) is None
    path.write_bytes(b"truncated")
    assert read_shard(path, key) is None
