"""3-D attribution and inference throughput and peak memory, auditkit vs pytorch-grad-cam and captum.

Each measurement runs in a fresh subprocess so its peak resident memory
(``ru_maxrss``) belongs to it alone: the model is built and warmed with one
forward pass, the high-water mark is read, the method runs, and the growth of
the high-water mark is the method's peak extra memory. Times are medians of
``--repeats`` runs after one warm-up.

    .venv/bin/python benchmarks/volumes3d.py [--repeats 3] [--quick]

Contenders on the same model, layer, input and target:
- Grad-CAM: auditkit ``GradCAM`` (fast: one forward, backward to the layer
  only) + trilinear upsampling to the full depth vs pytorch-grad-cam's 3-D
  ``GradCAM`` (full backward; scipy spline zoom to the full size);
- IG: auditkit ``IntegratedGradients`` with ``internal_batch_size`` = chunk vs
  captum's ``IntegratedGradients`` with every step at once (its default);
- inference: volumes (or images) per second, batch of 4 (2: 128^3), no grad.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

WORKER = "--worker"


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _worker(spec: dict) -> dict:
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(int(spec.get("threads", os.cpu_count() or 1)))
    from auditkit.nets.layers import resolve_target_layer

    if spec["dims"] == 3:
        from auditkit.nets.nets3d import build_model_3d

        model = build_model_3d(spec["arch"], in_channels=1, num_classes=2).eval()
    else:
        from auditkit.nets.zoo import build_model

        model = build_model(spec["arch"], in_channels=1, num_classes=2).eval()
    size = spec["size"]
    shape = (spec["batch"], 1, *([size] * spec["dims"]))
    x = torch.randn(shape)
    with torch.no_grad():
        model(x[:1])
    base = _rss_mib()
    name, layer = resolve_target_layer(model, input_size=(size,) * spec["dims"])
    kind = spec["kind"]

    def run_once():
        if kind == "infer":
            with torch.inference_mode():
                return model(x)
        if kind == "gradcam_auditkit":
            from auditkit.explain.api import attribute

            return attribute(model, x, method="gradcam", target=1, target_layer=name).maps
        if kind == "gradcam_pgc":
            from pytorch_grad_cam import GradCAM
            from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

            with GradCAM(model=model, target_layers=[layer]) as cam:
                return cam(input_tensor=x, targets=[ClassifierOutputTarget(1)] * len(x))
        if kind == "ig_auditkit":
            from auditkit.explain.integrated_gradients import IntegratedGradients

            return IntegratedGradients(
                model, n_steps=spec["steps"], internal_batch_size=spec["chunk"]
            ).attribute(x, target=1)
        if kind == "ig_captum":
            from captum.attr import IntegratedGradients

            return IntegratedGradients(model).attribute(
                x,
                baselines=torch.zeros_like(x),
                target=1,
                n_steps=spec["steps"],
                method="gausslegendre",
            )
        raise ValueError(kind)

    out = run_once()  # warm-up (and the peak)
    depth = tuple(getattr(out, "shape", ()))
    times = []
    for _ in range(spec["repeats"]):
        start = time.perf_counter()
        run_once()
        times.append(time.perf_counter() - start)
    return {
        "seconds": statistics.median(times),
        "per_second": spec["batch"] / statistics.median(times),
        "peak_extra_mib": _rss_mib() - base,
        "output_shape": list(depth),
        "layer": name,
    }


def measure(spec: dict) -> dict:
    """Return the worker's measurement of ``spec``, run in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, __file__, WORKER, json.dumps(spec)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    parser.add_argument("--only", choices=("all", "cam", "ig", "infer", "infer3d", "infer2d"), default="all")
    parser.add_argument(
        "--ig-arch", default="r3d_18", help="architecture of the IG memory comparison"
    )
    parser.add_argument(
        "--ig-size", type=int, default=None, help="volume side of the IG comparison"
    )
    args = parser.parse_args()
    r = args.repeats
    print(
        f"machine: {platform.machine()} {os.cpu_count()} cores, {platform.processor() or 'cpu'}; "
        f"load average {os.getloadavg()[0]:.1f}; python {platform.python_version()}"
    )
    size = 32 if args.quick else 64
    parts = ("cam", "ig", "infer3d", "infer2d") if args.only == "all" else (args.only,)
    if args.only == "infer":
        parts = ("infer3d", "infer2d")
    for arch in ("smallcnn3d", "r3d_18") if "cam" in parts else ():
        for kind in ("gradcam_auditkit", "gradcam_pgc"):
            m = measure(
                {"dims": 3, "arch": arch, "size": size, "batch": 2, "kind": kind, "repeats": r}
            )
            print(
                f"grad-cam {arch} {size}^3 x2 {kind}: {m['seconds']:.2f} s, {m['per_second']:.2f} vol/s, "
                f"peak +{m['peak_extra_mib']:.0f} MiB, map {m['output_shape']}"
            )
    steps = 16
    ig_arch, ig_size = args.ig_arch, args.ig_size or size // 2
    base = {"dims": 3, "arch": ig_arch, "size": ig_size, "batch": 2, "steps": steps, "repeats": 1}
    for chunk in (2, 8, 32) if "ig" in parts else ():
        m = measure({**base, "kind": "ig_auditkit", "chunk": chunk})
        print(
            f"IG {ig_arch} {ig_size}^3 x2, {steps} steps, auditkit chunk {chunk}: "
            f"{m['seconds']:.2f} s, peak +{m['peak_extra_mib']:.0f} MiB"
        )
    if "ig" in parts:
        m = measure({**base, "kind": "ig_captum"})
        print(
            f"IG {ig_arch} {ig_size}^3 x2, {steps} steps, captum all at once: "
            f"{m['seconds']:.2f} s, peak +{m['peak_extra_mib']:.0f} MiB"
        )
    sizes3d = (32, 64) if args.quick else (64, 128)
    for arch in ("smallcnn3d", "r3d_18") if "infer3d" in parts else ():
        for s in sizes3d:
            spec = {
                "dims": 3,
                "arch": arch,
                "size": s,
                "batch": 2 if s >= 128 else 4,
                "kind": "infer",
                "repeats": r,
            }
            m = measure(spec)
            print(
                f"inference {arch} {s}^3: {m['per_second']:.2f} volumes/s, peak +{m['peak_extra_mib']:.0f} MiB"
            )
    sizes2d = (224,) if args.quick else (224, 512)
    for arch in ("resnet50", "densenet121") if "infer2d" in parts else ():
        for s in sizes2d:
            m = measure(
                {"dims": 2, "arch": arch, "size": s, "batch": 4, "kind": "infer", "repeats": r}
            )
            print(
                f"inference {arch} {s}x{s}: {m['per_second']:.2f} images/s, peak +{m['peak_extra_mib']:.0f} MiB"
            )


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == WORKER:
        print(json.dumps(_worker(json.loads(sys.argv[2]))))
    else:
        main()
