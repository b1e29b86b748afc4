"""Robustness runner throughput vs plain inference x the number of conditions (goal >= 0.8 of that floor).

Reads a phantom test split like the demo's (64x64 PNGs), scores it with a
smallcnn (random weights: throughput does not depend on training) once plainly
(the runner with no perturbation: read, resize, normalise, forward) and once
under every declared perturbation at three severities. The floor is what
re-running plain inference once per condition would cost, so

    ratio = (images x (1 + conditions) / robustness seconds) / (images / plain seconds)

and a ratio of 1 means every perturbed copy costs one plain forward pass.
Also reported without JPEG (the one perturbation Pillow runs on the CPU).

Usage: python benchmarks/robustness.py [--n 600] [--device cpu|cuda] [--reps 3] [--arch smallcnn]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=600)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--arch", default="smallcnn")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    from auditkit.clinical.perturbations import resolve
    from auditkit.clinical.robustness import (
        conditions_of,
        image_batches,
        model_forward,
        run_perturbations,
    )
    from auditkit.data.phantom import PhantomConfig, generate_phantom
    from auditkit.data.transforms import Preprocess
    from auditkit.nets.zoo import build_model
    from auditkit.progress import set_quiet

    set_quiet(True)
    torch.manual_seed(0)
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        phantom = generate_phantom(Path(tmp) / "ph", PhantomConfig(n_images=args.n, size=args.size, seed=0))
        import pandas as pd

        frame = pd.read_csv(phantom.manifest_path)
        paths = [str(Path(phantom.manifest_path).parent / p) for p in frame["image"]]
        pre = Preprocess(input_size=(args.size, args.size), in_channels=1 if args.arch == "smallcnn" else 3)
        model = build_model(args.arch, in_channels=pre.in_channels, num_classes=2).to(device).eval()
        forward = model_forward(model)

        def timed(perturbations) -> float:  # type: ignore[no-untyped-def]
            t0 = time.perf_counter()
            run_perturbations(forward, image_batches(paths, pre, batch_size=args.batch_size), pre, perturbations,
                              device=device, model=model, forward_batch=1024)  # fmt: skip
            if device.type == "cuda":
                torch.cuda.synchronize()
            return time.perf_counter() - t0

        timed([])  # warm-up (cuDNN autotune, page cache)
        rows = []
        for label, names in (("all 9 perturbations", None),
                             ("without jpeg", [n for n in resolve(None) if n.name != "jpeg"])):  # fmt: skip
            perts = resolve(None) if names is None else names
            n_cond = len(conditions_of(perts))
            plain = statistics.median(timed([]) for _ in range(args.reps))
            rob = statistics.median(timed(perts) for _ in range(args.reps))
            plain_rate = args.n / plain
            rob_rate = args.n * (1 + n_cond) / rob
            rows.append((label, n_cond, plain_rate, rob_rate, rob_rate / plain_rate))
    print(f"machine: {platform.machine()} {platform.processor() or ''} cpus={torch.get_num_threads()} "
          f"device={args.device}{' ' + torch.cuda.get_device_name(0) if device.type == 'cuda' else ''}; "
          f"{args.n} images {args.size}x{args.size}, {args.arch}, batch {args.batch_size}, median of {args.reps}")  # fmt: skip
    print(f"{'conditions':<22}{'n':>4}{'plain img/s':>14}{'robustness img/s':>18}{'ratio':>8}")
    for label, n_cond, plain_rate, rob_rate, ratio in rows:
        print(f"{label:<22}{n_cond:>4}{plain_rate:>14.0f}{rob_rate:>18.0f}{ratio:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
