"""Phantom generation speed: images/s of ``generate_phantom`` against a naive per-image loop.

The peer renders and writes one image at a time (the same renderer called with
one-row batches, the same PNGs: image, lung ROI, and a mask per lesion), which is what a
straightforward generator does; the toolkit renders ~1 MiB batches with NumPy
and can spread chunks over processes. Both write identical bytes (checked on
the peer's subset). Prints medians of ``--repeats`` runs and the ratios.

    .venv/bin/python benchmarks/phantom_speed.py [--n 5000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from PIL import Image

from auditkit.data.phantom import PhantomConfig, generate_phantom
from auditkit.data.phantom.cohort import sample_cases
from auditkit.data.phantom.render import quantize, render_cases
from auditkit.progress import set_quiet


def naive_loop(out: Path, config: PhantomConfig, n: int) -> float:
    """Return the seconds a one-image-at-a-time render-and-write loop takes for ``n`` images."""
    start = time.perf_counter()
    cases = sample_cases(config)
    for folder in ("images", "masks", "roi"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    for row in range(n):
        rendered = render_cases(cases.iloc[[row]], config)
        name = cases["id"].iloc[row]
        Image.fromarray(quantize(rendered.images, 8)[0]).save(out / "images" / f"{name}.png", compress_level=6)
        if rendered.lesion_masks[0].any():
            Image.fromarray(rendered.lesion_masks[0].astype("uint8") * 255).save(
                out / "masks" / f"{name}.png", compress_level=6
            )
        Image.fromarray(rendered.roi_masks[0].astype("uint8") * 255).save(
            out / "roi" / f"{name}.png", compress_level=6
        )
    return time.perf_counter() - start


def toolkit(out: Path, config: PhantomConfig, workers: int) -> float:
    """Return the seconds ``generate_phantom`` takes (everything: PNGs, manifest, phantom.json)."""
    start = time.perf_counter()
    generate_phantom(out, config, workers=workers)
    return time.perf_counter() - start


def digest(paths: list[Path]) -> str:
    hasher = hashlib.sha256()
    for path in paths:
        hasher.update(path.read_bytes())
    return hasher.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--naive-n", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    set_quiet(True)
    config = PhantomConfig(n_images=args.n, seed=0)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"machine: {platform.machine()}, {cores} cores, python {platform.python_version()}")
    print(f"phantom: {args.n} images of {config.size}x{config.size}, all flaws (image + ROI PNG each, mask PNG per lesion)")
    rates: dict[str, list[float]] = {"naive per-image loop": [], "toolkit, in-process": [], "toolkit, 2 workers": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for repeat in range(args.repeats):
            seconds = naive_loop(root / f"naive{repeat}", config, args.naive_n)
            rates["naive per-image loop"].append(args.naive_n / seconds)
            for label, workers in (("toolkit, in-process", 0), ("toolkit, 2 workers", 2)):
                seconds = toolkit(root / f"{workers}-{repeat}", config, workers)
                rates[label].append(args.n / seconds)
        names = [f"{i:05d}" for i in range(args.naive_n)]
        same = digest([root / "naive0" / "images" / f"img{n}.png" for n in names]) == digest(
            [root / "0-0" / "images" / f"img{n}.png" for n in names]
        )
    peer = statistics.median(rates["naive per-image loop"])
    print(f"identical bytes (naive vs toolkit, first {args.naive_n} images): {same}")
    print(f"{'generator':<24} {'images/s (median)':>18} {'runs':>28} {'ratio to naive':>15}")
    for label, values in rates.items():
        median = statistics.median(values)
        runs = ", ".join(f"{v:.0f}" for v in values)
        print(f"{label:<24} {median:>18.0f} {runs:>28} {median / peer:>15.2f}")
    best = max(statistics.median(v) for k, v in rates.items() if k != "naive per-image loop")
    print(f"seconds for {args.n} images at the best toolkit setting: {args.n / best:.1f}")


if __name__ == "__main__":
    main()
