"""The on-disk map cache: keys, atomic entries, and a run killed mid-way that resumes to identical maps."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from auditkit.explain.cache import FAULT_ENV, CachedMap, MapCache, cache_key, input_digest
from auditkit.explain.runner import explain_inputs

# The script builds the same tiny model and inputs in every process (seeded), explains them with
# IG through the cache in batches of 2, and saves the maps.
SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import torch
    from torch import nn
    from auditkit.explain.cache import MapCache
    from auditkit.explain.runner import explain_inputs

    def setup():
        torch.manual_seed(0)
        model = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 3),
        ).eval()
        inputs = torch.rand(7, 1, 12, 12, generator=torch.Generator().manual_seed(1))
        return model, inputs

    if __name__ == "__main__":
        model, inputs = setup()
        result = explain_inputs(model, inputs, method="ig", params={"n_steps": 24}, cache=MapCache(sys.argv[1]), batch_size=2)
        np.save(sys.argv[2], result.maps)
        print(result.n_from_cache)
    """
)


def _run(script: Path, cache: Path, out: Path, env_extra: dict[str, str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != FAULT_ENV}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, str(script), str(cache), str(out)], env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_a_killed_run_resumes_from_the_cache_with_identical_maps(tmp_path):
    script = tmp_path / "explain_job.py"
    script.write_text(SCRIPT)
    cache = tmp_path / "cache"
    killed = _run(script, cache, tmp_path / "never.npy", {FAULT_ENV: "3"})
    assert killed.returncode == -9, killed.stderr  # SIGKILL after the 3rd map: mid-way through batch 2
    entries = sorted(cache.rglob("*.npz"))
    assert len(entries) == 3
    assert not list(cache.rglob("*.tmp"))  # atomic writes: no half-written entry
    assert not (tmp_path / "never.npy").exists()

    resumed = _run(script, cache, tmp_path / "resumed.npy", {})
    assert resumed.returncode == 0, resumed.stderr
    # batch 1 (2 maps) came from the cache; batch 2 was recomputed whole; 3 and 4 were new
    assert resumed.stdout.strip() == "2"
    assert len(sorted(cache.rglob("*.npz"))) == 7

    fresh = _run(script, tmp_path / "fresh_cache", tmp_path / "fresh.npy", {})
    assert fresh.returncode == 0, fresh.stderr
    assert np.array_equal(np.load(tmp_path / "resumed.npy"), np.load(tmp_path / "fresh.npy"))


def test_cache_keys_change_with_every_input_that_determines_a_map():
    base = dict(model_sha256="m", input_sha256="i", method="ig", params={"n_steps": 50}, postprocessing=["sum_channels"], target="predicted")
    key = cache_key(**base)
    assert key == cache_key(**{**base, "params": {"n_steps": 50}})  # canonical: same dict, same key
    for change in (
        {"model_sha256": "m2"},
        {"input_sha256": "i2"},
        {"method": "smoothgrad"},
        {"params": {"n_steps": 49}},
        {"postprocessing": ["sum_channels", "abs"]},
        {"target": "class:1"},
    ):
        assert cache_key(**{**base, **change}) != key
    a = torch.zeros(1, 4, 4)
    b = a.clone()
    b[0, 0, 0] = 1e-6
    assert input_digest(a) != input_digest(b) and input_digest(a) == input_digest(a.clone())


def test_entries_round_trip_and_an_unreadable_entry_is_a_miss(tmp_path):
    cache = MapCache(tmp_path)
    entry = CachedMap(map=np.arange(6, dtype=np.float32).reshape(2, 3), target=1, scores=np.array([0.5, -1.0], np.float32),
                      extras={"delta": 0.01}, postprocessing=("sum_channels",))
    cache.put("ab" * 32, entry)
    back = cache.get("ab" * 32)
    assert np.array_equal(back.map, entry.map) and back.target == 1 and back.extras == {"delta": 0.01}
    assert back.postprocessing == ("sum_channels",)
    cache.path("cd" * 32).parent.mkdir(parents=True, exist_ok=True)
    cache.path("cd" * 32).write_bytes(b"PK\x03\x04 truncated")
    assert cache.get("cd" * 32) is None and cache.get("ef" * 32) is None


def test_explain_inputs_second_run_comes_from_the_cache(tmp_path, conv_gap_linear):
    inputs = torch.rand(5, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    cache = MapCache(tmp_path)
    first = explain_inputs(conv_gap_linear, inputs, method="gradcam", target_layer="conv", cache=cache, batch_size=2)
    second = explain_inputs(conv_gap_linear, inputs, method="gradcam", target_layer="conv", cache=cache, batch_size=2)
    assert first.n_from_cache == 0 and second.n_from_cache == 5
    assert np.array_equal(first.maps, second.maps) and second.postprocessing == first.postprocessing
    other_target = explain_inputs(conv_gap_linear, inputs, method="gradcam", target=0, target_layer="conv", cache=cache)
    assert other_target.n_from_cache == 0 and (other_target.targets == 0).all()
