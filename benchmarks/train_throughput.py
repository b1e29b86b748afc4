"""Training throughput: auditkit's training loop vs a minimal plain PyTorch loop.

Both train the same model (smallcnn, 1×64×64 inputs, 2 classes) on the same
data with the same batch size and AdamW; auditkit's loop adds what it does
in ``auditkit train`` (class-weighted loss, per-step warm-up/cosine schedule,
grad-scaler plumbing, autocast plumbing, a live progress bar). Repetitions
are interleaved (the order alternating) so a shared, noisy CPU affects both
alike; each side reports its median images/s, and the median of the
per-repetition ratios auditkit / plain is the headline (goal: at least 0.9).

Two comparisons:

1. ``loop``: one epoch over in-memory tensors (isolates the loop's overhead).
2. ``train``: the full ``auditkit.train.train`` for three epochs on a phantom
   (normalisation statistics, caching, a validation pass and checkpoint and
   resume-state writes per epoch) vs caching the same training images and
   three plain epochs: the end-to-end cost of everything auditkit adds.

Run: ``.venv/bin/python benchmarks/train_throughput.py [--reps 7] [--images 1024]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from auditkit.nets.device import make_grad_scaler, select_device
from auditkit.nets.zoo import build_model
from auditkit.progress import make_progress
from auditkit.train.loop import train_one_epoch
from auditkit.train.schedule import make_scheduler


def _plain_epoch(model, loader, device) -> None:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    model.train()
    for x, y, *_ in loader:
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()


def _auditkit_epoch(model, loader, device) -> None:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    steps = len(loader)
    scheduler = make_scheduler(optimizer, total_steps=steps, warmup_steps=steps // 20)
    weight = torch.tensor([0.7, 1.8], device=device)
    with make_progress() as bar:
        task = bar.add_task("bench", total=steps)
        train_one_epoch(
            model, loader, optimizer=optimizer, scheduler=scheduler,
            scaler=make_grad_scaler(device), class_weight=weight, device=device,
            on_step=lambda: bar.advance(task),
        )  # fmt: skip


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_loop(n_images: int, batch_size: int, reps: int, device: torch.device) -> dict[str, list[float]]:
    """Return images/s per repetition for both loops over the same in-memory tensors."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n_images, 1, 64, 64, generator=generator)
    y = (torch.rand(n_images, generator=generator) < 0.3).long()
    dataset = TensorDataset(x, y, torch.arange(n_images))
    rates: dict[str, list[float]] = {"plain": [], "auditkit": []}
    for rep in range(reps + 1):  # repetition 0 warms up both and is discarded
        order = ["plain", "auditkit"] if rep % 2 == 0 else ["auditkit", "plain"]
        for side in order:
            torch.manual_seed(0)
            model = build_model("smallcnn", in_channels=1, num_classes=2).to(device)
            loader = DataLoader(
                dataset, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(rep)
            )
            run = _plain_epoch if side == "plain" else _auditkit_epoch
            seconds = _timed(lambda run=run, model=model, loader=loader: run(model, loader, device))
            if rep > 0:
                rates[side].append(n_images / seconds)
    return rates


def bench_train(
    n_images: int, batch_size: int, reps: int, device: torch.device, epochs: int = 3
) -> dict[str, list[float]]:
    """Return training images/s of ``auditkit.train.train`` (``epochs`` epochs) and a plain loop on the same phantom.

    The plain side caches the same training images and runs the same epochs
    with no validation, checkpoint or resume state; auditkit's side does
    everything ``auditkit train`` does (manifest already read).
    """
    from auditkit.data.dataset import ImageDataset
    from auditkit.data.manifest import read_manifest
    from auditkit.data.phantom import PhantomConfig, generate_phantom
    from auditkit.data.splits import assign_splits
    from auditkit.data.transforms import Preprocess
    from auditkit.train import train

    rates: dict[str, list[float]] = {"plain": [], "auditkit": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        phantom = generate_phantom(root / "phantom", PhantomConfig(n_images=n_images, size=64, seed=0))
        manifest = read_manifest(phantom.manifest_path)
        split = assign_splits(manifest.frame, seed=0)
        train_rows = manifest.frame.loc[split == "train"].reset_index(drop=True)
        n_train = len(train_rows)
        preprocess = Preprocess(input_size=(64, 64), in_channels=1, mean=(0.5,), std=(0.25,))
        for rep in range(reps + 1):
            order = ["plain", "auditkit"] if rep % 2 == 0 else ["auditkit", "plain"]
            for side in order:
                torch.manual_seed(0)
                if side == "plain":

                    def plain() -> None:
                        # the same decoding and caching work as auditkit's run, then bare epochs
                        cached = ImageDataset(train_rows, preprocess, augment=False, cache=True)
                        model = build_model("smallcnn", in_channels=1, num_classes=2).to(device)
                        loader = DataLoader(cached, batch_size=batch_size, shuffle=True)
                        for _ in range(epochs):
                            _plain_epoch(model, loader, device)

                    seconds = _timed(plain)
                else:
                    out = root / f"model_{rep}"
                    seconds = _timed(
                        lambda out=out: train(
                            manifest, arch="smallcnn", out=out, epochs=epochs, batch_size=batch_size,
                            seed=0, device=device, augment=False, input_size=(64, 64),
                        )
                    )
                if rep > 0:
                    rates[side].append(epochs * n_train / seconds)
    return rates


def _report(name: str, rates: dict[str, list[float]]) -> float:
    plain = statistics.median(rates["plain"])
    ours = statistics.median(rates["auditkit"])
    # each repetition ran both sides back to back, so the per-pair ratio cancels slow phases
    pairs = statistics.median(a / p for a, p in zip(rates["auditkit"], rates["plain"], strict=True))
    print(
        f"{name:6s} plain {plain:8.1f} img/s  auditkit {ours:8.1f} img/s  ratio of medians {ours / plain:.3f}  "
        f"median pair ratio {pairs:.3f}  (n={len(rates['plain'])}; plain {[round(r) for r in rates['plain']]}, "
        f"auditkit {[round(r) for r in rates['auditkit']]})"
    )
    return pairs


def main(argv: list[str] | None = None) -> int:
    """Run both comparisons and print the medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--only", choices=["loop", "train"], default=None)
    args = parser.parse_args(argv)
    device = select_device(args.device)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"batch {args.batch_size}, images {args.images}")  # fmt: skip
    if args.only in (None, "loop"):
        _report("loop", bench_loop(args.images, args.batch_size, args.reps, device))
    if args.only in (None, "train"):
        _report("train", bench_train(args.images, args.batch_size, args.reps, device))
    return 0


if __name__ == "__main__":
    sys.exit(main())
