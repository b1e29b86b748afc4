"""Seconds per stage of the demo's audit (phantom, training, prediction + statistics + saliency) on each device.

Runs what ``auditkit demo`` runs (the full plan: 4000 images of 64x64, smallcnn
for up to 12 epochs, Grad-CAM and Integrated Gradients on 256 images, 1000
bootstrap resamples) once per device named, side by side, without the PDF
(WeasyPrint needs Pango, which a GPU box may lack; ``benchmarks/report.py``
times the report). Prints seconds per stage, the GPU/CPU ratio, and whether
the planted flaws were caught on each device, since a faster run that stops
finding them would be no improvement.

Run: ``.venv/bin/python benchmarks/demo_stages.py --devices cuda,cpu [--quick]``.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch


def run_once(device: str, *, quick: bool, seed: int) -> dict[str, object]:
    """Return the stage timings and the expected-findings verdicts of one demo run on ``device``."""
    from auditkit.audit.config import build_config
    from auditkit.data.phantom import PhantomConfig, generate_phantom
    from auditkit.demo import FULL, PLANTED, QUICK
    from auditkit.pipeline import run_pipeline
    from auditkit.progress import set_quiet
    from auditkit.train import train

    plan = QUICK if quick else FULL
    seconds: dict[str, float] = {}
    set_quiet(True)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        start = time.perf_counter()
        config = PhantomConfig(n_images=plan.n_images, size=plan.size, seed=seed).with_flaws(
            tuple(p["flaw"] for p in PLANTED), {p["flaw"]: p["strength"] for p in PLANTED}
        )
        phantom = generate_phantom(out / "data", config, force=True)
        seconds["phantom"] = time.perf_counter() - start

        start = time.perf_counter()
        model_dir = out / "models" / "smallcnn"
        train(
            phantom.manifest_path, arch="smallcnn", out=model_dir, epochs=plan.epochs,
            batch_size=plan.batch_size, seed=seed, device=device, force=True,
        )  # fmt: skip
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds["train"] = time.perf_counter() - start

        start = time.perf_counter()
        audit = build_config(
            run={
                "model": model_dir, "manifest": phantom.manifest_path, "out": out / "audit",
                "policy": "default", "force": True, "device": device, "report": False,
            },
            overrides={
                "attributes": ["sex", "age_group"], "n_boot": plan.n_boot, "seed": seed,
                "saliency": plan.saliency,
                "expected_findings": [
                    {"name": p["flaw"], "description": p["description"], "rule": p["rule"], "metric": p["metric"]}
                    for p in PLANTED
                ],
            },
        )  # fmt: skip
        outcome = run_pipeline(audit)
        seconds["audit"] = time.perf_counter() - start
        findings = {
            f["name"]: f.get("caught") for f in outcome.results.data.get("expected_findings", [])
        }
    set_quiet(False)
    return {"seconds": seconds, "findings": findings}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", default="cuda,cpu" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="the demo's --quick plan")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    devices = [d.strip() for d in args.devices.split(",") if d.strip()]
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(
        f"demo stages ({'quick' if args.quick else 'full'} plan, seed {args.seed}); {platform.machine()}, "
        f"{torch.get_num_threads()} torch threads, GPU: {gpu}, torch {torch.__version__}"
    )
    rows = {}
    for device in devices:
        rows[device] = run_once(device, quick=args.quick, seed=args.seed)
        stages = rows[device]["seconds"]
        total = sum(stages.values())
        cells = "  ".join(f"{k} {v:7.1f} s" for k, v in stages.items())
        print(f"{device:6s} {cells}  total {total:7.1f} s  caught {rows[device]['findings']}")
    if len(devices) == 2:
        a, b = (rows[d]["seconds"] for d in devices)
        ratios = "  ".join(f"{k} {b[k] / a[k]:.2f}x" for k in a)
        print(
            f"{devices[1]} / {devices[0]} time: {ratios}  total {sum(b.values()) / sum(a.values()):.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
