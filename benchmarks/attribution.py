"""Attribution speed and memory, side by side with the peers, in one run.

Grad-CAM (ResNet-18 and DenseNet-121 at 224x224, batch 16; smallcnn at 64x64,
batch 16): plain inference vs auditkit's fast Grad-CAM (one forward, a
backward only to the target layer, post-processing on the device, maps
returned as NumPy at the input size, min-max like the peer) vs
pytorch-grad-cam's ``GradCAM`` (full backward with parameter gradients,
NumPy post-processing). Medians of interleaved repetitions; throughput ratios.
Extra peak memory (above the loaded model and input) of each, measured in a
fresh subprocess per contender (peak RSS on a CPU, peak allocation on CUDA).

Integrated Gradients (n_steps=50): auditkit (chunk from free memory) vs its
floor (a bare loop of forward + backward to the input over the same
n_steps x N samples in the same chunks, no captum) vs captum with
``internal_batch_size=None`` (all samples at once), with peak memory; and the
peak memory of IG on one 512x512 DenseNet-121 input with the automatic chunk
and with a chunk twice as large (peak must scale with the chunk, not with
n_steps).

Usage: ``python benchmarks/attribution.py [--reps 5] [--quick] [--skip-memory] [--device cpu]
[--clock wall|cpu] [--threads N]``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
import torchvision
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from auditkit.explain.baselines import make_baselines
from auditkit.explain.batching import auto_chunk_size
from auditkit.explain.gradcam import GradCAM
from auditkit.explain.integrated_gradients import IntegratedGradients
from auditkit.explain.postprocess import apply_steps


def build(name: str, size: int) -> tuple[nn.Module, str]:
    """Return an eval-mode model and its Grad-CAM target layer name."""
    torch.manual_seed(0)
    if name == "resnet18":
        return torchvision.models.resnet18(weights=None, num_classes=2).eval(), "layer4"
    if name == "densenet121":
        return torchvision.models.densenet121(weights=None, num_classes=2).eval(), "features.denseblock4"
    if name == "smallcnn":
        from auditkit.nets.smallcnn import SmallCNN

        return SmallCNN(in_channels=3, num_classes=2).eval(), "features.3"
    raise SystemExit(f"unknown model {name}")


def resolve(model: nn.Module, layer: str) -> nn.Module:
    return model.get_submodule(layer)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- the contenders ---------------------------------------------------------------------


def run_inference(model: nn.Module, layer: str, x: torch.Tensor) -> None:
    with torch.inference_mode():
        model(x)


def run_auditkit_gradcam(model: nn.Module, layer: str, x: torch.Tensor) -> None:
    out = GradCAM(model, layer).explain(x, "predicted")
    maps, _ = apply_steps(out.maps, ["relu", "upsample", "minmax"], size=tuple(x.shape[-2:]))
    maps.cpu().numpy()


def run_peer_gradcam(model: nn.Module, layer: str, x: torch.Tensor) -> None:
    from pytorch_grad_cam import GradCAM as PeerGradCAM

    with PeerGradCAM(model, [resolve(model, layer)]) as cam:
        cam(x, None)


def run_auditkit_ig(model: nn.Module, x: torch.Tensor, n_steps: int, chunk: int | None) -> int:
    out = IntegratedGradients(model, n_steps=n_steps, internal_batch_size=chunk).explain(x, 1)
    return out.internal_batch_size


def run_floor_ig(model: nn.Module, x: torch.Tensor, n_steps: int, chunk: int) -> None:
    """n_steps x N forward + backward-to-input passes in chunks, nothing else: IG's floor."""
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        alphas = torch.linspace(0, 1, n_steps)
        baseline = make_baselines(x, "black")
        scaled = torch.cat([baseline + a * (x - baseline) for a in alphas])
        for start in range(0, scaled.shape[0], chunk):
            part = scaled[start : start + chunk].clone().requires_grad_(True)
            out = model(part)
            torch.autograd.grad(out[:, 1].sum(), part)
    finally:
        for p, f in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(f)


def run_captum_ig_unchunked(model: nn.Module, x: torch.Tensor, n_steps: int) -> None:
    from captum.attr import IntegratedGradients as CaptumIG

    CaptumIG(model).attribute(x, baselines=make_baselines(x, "black"), target=1, n_steps=n_steps, method="gausslegendre")


# --- timing -----------------------------------------------------------------------------


CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = {"fn": time.perf_counter}


def interleaved(contenders: dict[str, Callable[[], object]], reps: int, device: torch.device) -> dict[str, float]:
    """Return the median seconds of each contender over ``reps`` interleaved rounds (after one warm-up).

    The clock is wall time, or with ``--clock cpu`` this process's CPU time: on a machine shared
    with other work, CPU time of a single-threaded run (``--threads 1``) counts the work done and
    not the time spent waiting for a core.
    """
    clock = _clock["fn"]
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for fn in contenders.values():
        fn()
    for _ in range(reps):
        for name, fn in contenders.items():
            sync(device)
            start = clock()
            fn()
            sync(device)
            times[name].append(clock() - start)
    return {name: statistics.median(values) for name, values in times.items()}


# --- memory (one fresh process per contender) -------------------------------------------------


def _rss_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def memory_child(spec: dict) -> dict:
    """Run one contender in this (fresh) process and return its extra peak memory in MiB."""
    device = torch.device(spec["device"])
    model, layer = build(spec["model"], spec["size"])
    model = model.to(device)
    x = torch.randn(spec["batch"], 3, spec["size"], spec["size"], device=device)
    kind = spec["kind"]

    def run() -> object:
        if kind == "inference":
            return run_inference(model, layer, x)
        if kind == "auditkit_gradcam":
            return run_auditkit_gradcam(model, layer, x)
        if kind == "peer_gradcam":
            return run_peer_gradcam(model, layer, x)
        if kind == "auditkit_ig":
            return run_auditkit_ig(model, x, spec["n_steps"], spec.get("chunk"))
        if kind == "floor_ig":
            return run_floor_ig(model, x, spec["n_steps"], spec["chunk"])
        if kind == "captum_ig_none":
            return run_captum_ig_unchunked(model, x, spec["n_steps"])
        raise SystemExit(kind)

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        result = run()
        torch.cuda.synchronize(device)
        extra = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    else:
        base = _rss_kib("VmRSS")
        result = run()
        extra = (_rss_kib("VmHWM") - base) / 1024
    return {"extra_mib": extra, "result": result}


def measure_memory(spec: dict) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- the report -------------------------------------------------------------------------------


def gradcam_section(args: argparse.Namespace, device: torch.device) -> list[str]:
    lines = [
        "### Grad-CAM throughput (images/s) and extra peak memory (MiB)",
        "",
        "| model | input | batch | inference | auditkit Grad-CAM | pytorch-grad-cam | auditkit / inference | auditkit / pytorch-grad-cam | memory: inference | auditkit | pytorch-grad-cam | auditkit / inference |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    configs = [("smallcnn", 64, 16), ("resnet18", 224, 16), ("densenet121", 224, 16)]
    if args.quick:
        configs = [("smallcnn", 64, 16), ("resnet18", 224, 16)]
    for name, size, batch in configs:
        model, layer = build(name, size)
        model = model.to(device)
        peer_model = copy.deepcopy(model)
        x = torch.randn(batch, 3, size, size, device=device)
        medians = interleaved(
            {
                "inference": partial(run_inference, model, layer, x),
                "auditkit": partial(run_auditkit_gradcam, model, layer, x),
                "peer": partial(run_peer_gradcam, peer_model, layer, x),
            },
            args.reps,
            device,
        )
        ips = {k: batch / v for k, v in medians.items()}
        mem = {}
        if not args.skip_memory:
            for kind in ("inference", "auditkit_gradcam", "peer_gradcam"):
                spec = {"device": str(device), "model": name, "size": size, "batch": batch, "kind": kind}
                mem[kind] = measure_memory(spec)["extra_mib"]
        mem_cells = (
            [f"{mem['inference']:.0f}", f"{mem['auditkit_gradcam']:.0f}", f"{mem['peer_gradcam']:.0f}",
             f"{mem['auditkit_gradcam'] / max(mem['inference'], 1e-9):.2f}x"]
            if mem else ["-"] * 4
        )
        lines.append(
            f"| {name} | {size}x{size} | {batch} | {ips['inference']:.1f} | {ips['auditkit']:.1f} | {ips['peer']:.1f} "
            f"| {ips['auditkit'] / ips['inference']:.2f}x | {ips['auditkit'] / ips['peer']:.2f}x | " + " | ".join(mem_cells) + " |"
        )
        print(lines[-1], flush=True)
    return lines


def ig_section(args: argparse.Namespace, device: torch.device) -> list[str]:
    n_steps = 50
    lines = [
        "",
        f"### Integrated Gradients, n_steps={n_steps} (milliseconds per call; extra peak memory MiB)",
        "",
        "| model | input | images | auto chunk | auditkit | floor (same chunks) | captum, internal_batch_size=None | floor / auditkit | captum None / auditkit | memory: auditkit | captum None |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    configs = [("smallcnn", 64, 4), ("resnet18", 224, 1)]
    for name, size, n in configs:
        model, _ = build(name, size)
        model = model.to(device)
        x = torch.randn(n, 3, size, size, device=device)
        chunk = auto_chunk_size(model, x[:1], limit=n_steps * n)
        medians = interleaved(
            {
                "auditkit": partial(run_auditkit_ig, model, x, n_steps, None),
                "floor": partial(run_floor_ig, model, x, n_steps, chunk),
                "captum_none": partial(run_captum_ig_unchunked, model, x, n_steps),
            },
            args.reps,
            device,
        )
        mem = {}
        if not args.skip_memory:
            for kind in ("auditkit_ig", "captum_ig_none"):
                spec = {"device": str(device), "model": name, "size": size, "batch": n, "kind": kind, "n_steps": n_steps}
                mem[kind] = measure_memory(spec)["extra_mib"]
        lines.append(
            f"| {name} | {size}x{size} | {n} | {chunk} | {1000 * medians['auditkit']:.1f} | {1000 * medians['floor']:.1f} | "
            f"{1000 * medians['captum_none']:.1f} | {medians['floor'] / medians['auditkit']:.2f}x | "
            f"{medians['captum_none'] / medians['auditkit']:.2f}x | "
            + (f"{mem['auditkit_ig']:.0f} | {mem['captum_ig_none']:.0f} |" if mem else "- | - |")
        )
        print(lines[-1], flush=True)
    return lines


def ig_large_section(args: argparse.Namespace, device: torch.device) -> list[str]:
    from auditkit.explain.batching import BACKWARD_FACTOR, activation_bytes_per_sample

    model, _ = build("densenet121", 512)
    x = torch.randn(1, 3, 512, 512)
    estimate = activation_bytes_per_sample(model, x) * BACKWARD_FACTOR / 2**20
    chunk = auto_chunk_size(model.to(device), x.to(device), limit=50)
    n_steps = 8  # the peak depends on the chunk, not on n_steps; 8 keeps a CPU run short
    lines = [
        "",
        f"### IG peak memory, DenseNet-121, one 512x512 input (n_steps={n_steps}; estimated {estimate:.0f} MiB per sample)",
        "",
        "| chunk | extra peak MiB | MiB per sample in the chunk |",
        "| ---: | ---: | ---: |",
    ]
    for c in (chunk, 2 * chunk):
        spec = {"device": str(device), "model": "densenet121", "size": 512, "batch": 1, "kind": "auditkit_ig", "n_steps": n_steps, "chunk": c}
        extra = measure_memory(spec)["extra_mib"]
        lines.append(f"| {c}{' (auto)' if c == chunk else ''} | {extra:.0f} | {extra / c:.0f} |")
        print(lines[-1], flush=True)
    lines.append(
        f"\ncaptum with internal_batch_size=None would hold all 50 steps at once: about {50 * estimate / 1024:.1f} GiB by the same estimate (not run)."
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="skip DenseNet-121 and the 512x512 IG memory run")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    _clock["fn"] = CLOCKS[args.clock]
    if args.child:
        print(json.dumps(memory_child(json.loads(args.child))))
        return
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.machine()} CPU, {os.cpu_count()} cores"
    print(
        f"# attribution benchmark on {name}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{args.clock} clock, medians of {args.reps} interleaved reps\n"
    )
    lines = gradcam_section(args, device)
    lines += ig_section(args, device)
    if not args.quick and not args.skip_memory:
        lines += ig_large_section(args, device)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
