"""Benchmark: predict and IG-explain throughput at 1 and 2 processes, and statistics on a million predictions.

Issue 11. On this machine (2 cores, no GPU) both set-ups use both cores:
one process with 2 intra-op threads (``OMP_NUM_THREADS=2``) against
``torchrun --nproc-per-node 2`` with 1 thread per process. Each contender is
the whole command (``python -m auditkit predict|explain ...``), timed end to
end, start-up included (said in the output); the scaling efficiency is
throughput(2 processes) / throughput(1 process) / 1 for equal cores.
The outputs of both are checked to be equal (scores to 1e-5, maps exactly).

Statistics at scale: ``benchmarks/make_big_predictions.py``'s 1,000,000-row
table (2 attributes, 3 sites, patients of 1-5 images), audited with
``--no-explain --no-report`` and 1,000 resamples; wall time, CPU time and
peak RSS of that process (``resource.getrusage`` of the child). Budget:
10 minutes and 4 GiB on the 2-core machine.

Run: ``.venv/bin/python benchmarks/scaling.py [--images 512] [--ig-images 32] [--skip-stats]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent


def _run(cmd: list[str], *, threads: int, cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return wall, done


def _auditkit(*args: str) -> list[str]:
    return [sys.executable, "-m", "auditkit", "-q", *args]


def _torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--standalone",
            "-m", "auditkit", "-q", *args]  # fmt: skip


def _setup(root: Path, n_images: int, size: int) -> tuple[Path, Path]:
    from auditkit.data.phantom import PhantomConfig, generate_phantom
    from auditkit.progress import set_quiet
    from auditkit.train import train

    set_quiet(True)
    phantom = generate_phantom(root / "phantom", PhantomConfig(n_images=n_images, size=size, seed=0))
    model = train(phantom.manifest_path, arch="smallcnn", out=root / "model", epochs=0, batch_size=32, seed=0,
                  device="cpu", input_size=(size, size), augment=False, num_workers=0).model_dir  # fmt: skip
    return phantom.manifest_path, model


def bench_model_steps(args: argparse.Namespace) -> list[dict]:
    """Return rows (step, processes, seconds, images/s) for predict and IG explain at 1 and 2 processes."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifest, model = _setup(root, args.images, args.size)
        common = ["--model", str(model), "--manifest", str(manifest), "--device", "cpu"]
        tables = {}
        for procs in (1, 2):
            runner = _auditkit if procs == 1 else _torchrun
            out = root / f"p{procs}.parquet"
            wall, _ = _run(runner("predict", *common, "--out", str(out), "--batch-size", "32"),
                           threads=2 // procs, cwd=root)  # fmt: skip
            tables[procs] = pd.read_parquet(out)
            rows.append({"step": "predict", "processes": procs, "images": args.images, "seconds": wall,
                         "images_per_s": args.images / wall})  # fmt: skip
        assert np.allclose(tables[1]["score"], tables[2]["score"], atol=1e-5, rtol=0)
        assert tables[1]["id"].tolist() == tables[2]["id"].tolist()
        maps = {}
        for procs in (1, 2):
            runner = _auditkit if procs == 1 else _torchrun
            out = root / f"e{procs}"
            wall, _ = _run(runner("explain", *common, "--methods", "ig", "--out", str(out), "--limit",
                                  str(args.ig_images), "--batch-size", "4"), threads=2 // procs, cwd=root)  # fmt: skip
            maps[procs] = {p.name: np.load(p)["map"] for p in sorted((out / "cache").glob("*/*.npz"))}
            rows.append({"step": "explain ig (50 steps)", "processes": procs, "images": args.ig_images,
                         "seconds": wall, "images_per_s": args.ig_images / wall})  # fmt: skip
        assert maps[1].keys() == maps[2].keys()
        assert all(np.array_equal(maps[1][k], maps[2][k]) for k in maps[1])
    return rows


def bench_statistics(args: argparse.Namespace) -> dict:
    """Return wall/CPU seconds and peak RSS of the statistics-only audit of the 1M-row table."""
    sys.path.insert(0, str(HERE))
    from make_big_predictions import make_table

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        table = root / "big.parquet"
        make_table(args.rows, seed=0).to_parquet(table, index=False)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        cmd = _auditkit("audit", "--predictions", str(table), "--attributes", "sex,age_group",
                        "--external-site", "site_b", "--external-site", "site_c", "--no-explain",
                        "--no-report", "--n-boot", "1000", "--out", str(root / "audit"))  # fmt: skip
        wall, _ = _run(cmd, threads=2, cwd=root)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "rows": args.rows,
        "seconds": wall,
        "cpu_seconds": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "peak_rss_gib": after.ru_maxrss / 2**20,
    }


def main() -> None:
    """Run the benchmarks and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512, help="images to predict")
    parser.add_argument("--ig-images", type=int, default=32, help="images to explain with IG")
    parser.add_argument("--size", type=int, default=64, help="phantom image size")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the statistics table")
    parser.add_argument("--skip-stats", action="store_true")
    parser.add_argument("--skip-model", action="store_true")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}, "
          f"load average at start {os.getloadavg()[0]:.1f}; no GPU measured")  # fmt: skip
    if not args.skip_model:
        rows = pd.DataFrame(bench_model_steps(args))
        print("\nwhole commands, start-up included; 1 process x 2 threads vs torchrun 2 processes x 1 thread")
        print(rows.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
        for step, group in rows.groupby("step", sort=False):
            one, two = (group.set_index("processes")["images_per_s"][k] for k in (1, 2))
            print(f"{step}: 2-process / 1-process throughput {two / one:.2f}x (scaling efficiency on equal cores)")
    if not args.skip_stats:
        s = bench_statistics(args)
        print(f"\nstatistics-only audit of {s['rows']:,} rows, 1,000 resamples: {s['seconds']:.0f} s wall, "
              f"{s['cpu_seconds']:.0f} s CPU, peak RSS {s['peak_rss_gib']:.2f} GiB (budget 600 s, 4 GiB)")
    print(f"load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
