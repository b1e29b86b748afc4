"""Input pipeline speed: images/s of ImageDataset + make_loader against a plain PyTorch loader.

One epoch over a 64x64 phantom (batch 64, 1-channel model input), for the
toolkit with 0, 1 and 2 DataLoader workers and with the in-memory cache, and
for the peer: a minimal ``Dataset`` that opens each PNG with Pillow, scales it
and normalises it, in a DataLoader with 0 workers (what a short training
script does). The numbers justify ``make_loader``'s default worker count on
small CPU machines. Medians of ``--repeats`` epochs; the cached dataset's
one-off preload is reported separately.

    .venv/bin/python benchmarks/data_loader.py [--n 3000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from auditkit.data.dataset import ImageDataset, make_loader
from auditkit.data.manifest import read_manifest
from auditkit.data.phantom import PhantomConfig, generate_phantom
from auditkit.data.transforms import Preprocess
from auditkit.progress import set_quiet

MEAN, STD = 0.35, 0.2


class PlainPNGDataset(Dataset):
    """The peer: Pillow -> NumPy -> tensor, normalised; nothing else."""

    def __init__(self, paths: list[str], labels: np.ndarray) -> None:
        self.paths, self.labels = paths, labels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        array = np.asarray(Image.open(self.paths[index]), dtype=np.float32) / 255.0
        return (torch.from_numpy(array)[None] - MEAN) / STD, int(self.labels[index]), index


def epoch_rate(loader: DataLoader) -> float:
    """Return images/s of one pass over ``loader`` (batches are summed so nothing is skipped)."""
    start = time.perf_counter()
    seen, total = 0, 0.0
    for x, _, _ in loader:
        total += float(x.sum())
        seen += x.shape[0]
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    set_quiet(True)
    torch.set_num_threads(1)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"machine: {platform.machine()}, {cores} cores, python {platform.python_version()}, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        result = generate_phantom(Path(tmp), PhantomConfig(n_images=args.n, seed=0))
        frame = read_manifest(result.manifest_path).frame
        pre = Preprocess((64, 64), 1, (MEAN,), (STD,))
        peer = DataLoader(
            PlainPNGDataset(frame["image"].tolist(), frame["y_true"].to_numpy()), batch_size=64, shuffle=True
        )
        rates: dict[str, list[float]] = {"plain PyTorch, 0 workers (peer)": []}
        plain = ImageDataset(frame, pre)
        loaders = {
            f"toolkit, {w} worker(s)": make_loader(plain, batch_size=64, shuffle=True, device="cpu", num_workers=w)
            for w in (0, 1, 2)
        }
        start = time.perf_counter()
        cached = ImageDataset(frame, pre, cache=True)
        preload = time.perf_counter() - start
        loaders["toolkit, cached (0 workers)"] = make_loader(cached, batch_size=64, shuffle=True, device="cpu")
        default = make_loader(plain, batch_size=64, shuffle=True, device="cpu")
        for label in loaders:
            rates[label] = []
        for _ in range(args.repeats):
            rates["plain PyTorch, 0 workers (peer)"].append(epoch_rate(peer))
            for label, loader in loaders.items():
                rates[label].append(epoch_rate(loader))
    reference = statistics.median(rates["plain PyTorch, 0 workers (peer)"])
    print(f"{args.n} images of 64x64, batch 64; make_loader's default here: {default.num_workers} worker(s)")
    print(f"{'loader':<34} {'images/s (median)':>18} {'runs':>24} {'ratio to peer':>14}")
    for label, values in rates.items():
        median = statistics.median(values)
        runs = ", ".join(f"{v:.0f}" for v in values)
        print(f"{label:<34} {median:>18.0f} {runs:>24} {median / reference:>14.2f}")
    print(f"cache preload (once): {preload:.1f} s = {args.n / preload:.0f} images/s")


if __name__ == "__main__":
    main()
