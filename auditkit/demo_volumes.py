"""``auditkit demo --volumes``: the 3-D phantom trained, audited, gated, and its saliency shown at full depth.

1. :func:`auditkit.data.phantom3d.generate_volume_phantom` writes CT-like
   volumes with a planted nodule, a corner-marker shortcut on internal
   positives and a shifted external site;
2. :func:`auditkit.train.volumes.train_volumes` trains ``smallcnn3d`` with the
   declared lung window (stored in the checkpoint);
3. the predictions table goes through the same audit pipeline as 2-D
   (discrimination, calibration, fairness, external validity, the default
   policy, the report), with the planted site shift declared as an expected
   finding (rule ``external-auroc-delta``);
4. Grad-CAM maps at the volumes' full depth (and IG maps, at voxel
   resolution: Grad-CAM's depth resolution is its layer's) are scored against the nodule
   masks and the marker's box (``volume_saliency.json``: per-volume energy in
   the lesion, share of saliency in the marker box and its ratio to the box's
   share of the volume, the most salient slices and the lesion's slices) and
   drawn as slice panels (``volume_panels/ID.png``, ``ID_ig.png``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from auditkit.errors import OutputExistsError


@dataclass(frozen=True)
class VolumeDemoOutcome:
    """What the 3-D demo produced."""

    out_dir: Path
    model_dir: Path
    audit_dir: Path
    saliency_path: Path
    panels: list[Path]
    expected_findings: list[dict[str, Any]]
    shortcut_caught: bool
    shortcut_ratio_marked: float
    shortcut_ratio_unmarked: float
    ig_shortcut_ratio_marked: float
    report_pdf: Path | None
    gate: Any | None
    seconds: dict[str, float]


def run_volume_demo(
    out: str | Path = "reports/demo-volumes",
    *,
    quick: bool = False,
    seed: int = 0,
    force: bool = False,
    report: bool = True,
) -> VolumeDemoOutcome:
    """Run the 3-D demo into ``out`` and return what it found (see the module docstring)."""
    from auditkit.data.phantom3d import VolumePhantomConfig, generate_volume_phantom
    from auditkit.fileio import atomic_write_text
    from auditkit.progress import status

    out = Path(out)
    if out.exists() and any(p.name != ".auditkit.lock" for p in out.iterdir()) and not force:
        raise OutputExistsError(
            f"{out} is not empty; pass --force to replace the demo there, or choose another --out"
        )
    seconds: dict[str, float] = {}
    size = 24 if quick else 32
    config = VolumePhantomConfig(n_volumes=120 if quick else 200, size=size, seed=seed)
    start = time.perf_counter()
    status(f"demo --volumes: writing {config.n_volumes} phantom volumes of {size}^3 voxels")
    phantom = generate_volume_phantom(out / "data", config, force=True)
    seconds["phantom"] = time.perf_counter() - start

    start = time.perf_counter()
    model_dir, loaded, table = _train_and_predict(phantom, out, size=size, quick=quick, seed=seed)
    predictions = out / "predictions.csv"
    atomic_write_text(predictions, table.to_csv(index=False, lineterminator="\n"))
    seconds["train"] = time.perf_counter() - start

    start = time.perf_counter()
    audit_dir = out / "audit"
    outcome = _audit(predictions, audit_dir, report=report, quick=quick, seed=seed)
    seconds["audit"] = time.perf_counter() - start

    start = time.perf_counter()
    status("demo --volumes: Grad-CAM at full depth on the internal validation/test positives")
    run = _explain_positives(loaded, table, phantom, config)
    panels = _write_panels(run, loaded, audit_dir / "volume_panels")
    document = _saliency_document(run, loaded, config)
    saliency_path = audit_dir / "volume_saliency.json"
    atomic_write_text(saliency_path, json.dumps(document, indent=1, sort_keys=True) + "\n")
    seconds["saliency"] = time.perf_counter() - start
    summary = document["summary"]
    return VolumeDemoOutcome(
        out_dir=out,
        model_dir=model_dir,
        audit_dir=audit_dir,
        saliency_path=saliency_path,
        panels=panels,
        expected_findings=list(outcome.results.data.get("expected_findings", [])),
        shortcut_caught=summary["shortcut_caught"],
        shortcut_ratio_marked=run.ratio_marked,
        shortcut_ratio_unmarked=run.ratio_unmarked,
        ig_shortcut_ratio_marked=run.ig_ratio_marked,
        report_pdf=outcome.files.get("report_pdf"),
        gate=outcome.gate,
        seconds=seconds,
    )


def _train_and_predict(
    phantom: Any, out: Path, *, size: int, quick: bool, seed: int
) -> tuple[Path, Any, pd.DataFrame]:
    """Return (model folder, loaded model, predictions table) of smallcnn3d trained on the phantom."""
    from auditkit.data.phantom3d import LUNG_WINDOW
    from auditkit.data.volumes import VolumePreprocess
    from auditkit.progress import status
    from auditkit.train.volumes import load_volume_model, predict_volumes, train_volumes

    status("demo --volumes: training smallcnn3d (lung window, declared in the checkpoint)")
    preprocess = VolumePreprocess(size=(size,) * 3, window=LUNG_WINDOW)
    model_dir = train_volumes(
        phantom.manifest_path,
        out=out / "models" / "smallcnn3d",
        preprocess=preprocess,
        epochs=6 if quick else 10,
        seed=seed,
    )
    loaded = load_volume_model(model_dir)
    return model_dir, loaded, predict_volumes(loaded, phantom.manifest_path)


def _audit(predictions: Path, audit_dir: Path, *, report: bool, quick: bool, seed: int) -> Any:
    """Return the pipeline outcome of the audit of the predictions, the site shift expected."""
    from auditkit.audit.config import build_config
    from auditkit.pipeline import run_pipeline

    audit_config = build_config(
        run={
            "predictions": predictions,
            "out": audit_dir,
            "policy": "default",
            "force": True,
            "report": report,
        },
        overrides={
            "attributes": ["sex"],
            "n_boot": 300 if quick else 1000,
            "seed": seed,
            "expected_findings": [
                {
                    "name": "site_shift",
                    "description": "site_C's volumes are 150 HU brighter and noisier, and carry no marker",
                    "rule": "external-auroc-delta",
                    "metric": "external.site_C.delta.auroc",
                }
            ],
        },
    )
    return run_pipeline(audit_config)


@dataclass(frozen=True)
class _SaliencyRun:
    """Grad-CAM and IG maps of the internal val/test positives, scored against masks and marker."""

    rows: pd.DataFrame
    inputs: torch.Tensor
    maps: np.ndarray
    ig_maps: np.ndarray
    masks: list[np.ndarray]
    scores: Any
    ig_scores: Any
    marked: np.ndarray
    shortcut_box: Any

    @property
    def ratio_marked(self) -> float:
        """Return the median Grad-CAM shortcut ratio of the marked volumes (NaN without any)."""
        marked = self.marked
        return float(np.nanmedian(self.scores.shortcut_ratio[marked])) if marked.any() else float("nan")

    @property
    def ratio_unmarked(self) -> float:
        """Return the median Grad-CAM shortcut ratio of the unmarked volumes (NaN without any)."""
        unmarked = self.scores.shortcut_ratio[~self.marked]
        return float(np.nanmedian(unmarked)) if np.isfinite(unmarked).any() else float("nan")

    @property
    def ig_ratio_marked(self) -> float:
        """Return the median IG shortcut ratio of the marked volumes (NaN without any)."""
        marked = self.marked
        return float(np.nanmedian(self.ig_scores.shortcut_ratio[marked])) if marked.any() else float("nan")


def _explain_positives(loaded: Any, table: pd.DataFrame, phantom: Any, config: Any) -> _SaliencyRun:
    """Return the maps and scores of the internal validation/test positives."""
    from auditkit.data.phantom3d import marker_box
    from auditkit.data.volumes import VolumeDataset, read_volume_mask
    from auditkit.explain.volumes import explain_volumes, volume_saliency_scores

    truth = {
        v["id"]: v for v in json.loads(phantom.truth_path.read_text(encoding="utf-8"))["volumes"]
    }
    rows = table[table["split"].isin(["val", "test"]) & (table["y_true"] == 1)].reset_index(
        drop=True
    )
    dataset = VolumeDataset(rows, loaded.preprocess)
    inputs = torch.stack([dataset[i][0] for i in range(len(dataset))])
    maps = explain_volumes(
        loaded.model, inputs, method="gradcam", target_layer=loaded.target_layer, target=1
    )
    # IG at voxel resolution beside Grad-CAM, whose depth resolution is the target layer's
    ig_maps = explain_volumes(loaded.model, inputs, method="ig", target=1, n_steps=32, internal_batch_size=32)
    masks = [read_volume_mask(m) for m in rows["mask"]]
    box = marker_box(config)
    return _SaliencyRun(
        rows=rows,
        inputs=inputs,
        maps=maps,
        ig_maps=ig_maps,
        masks=masks,
        scores=volume_saliency_scores(maps, masks, shortcut_box=box),
        ig_scores=volume_saliency_scores(ig_maps, masks, shortcut_box=box),
        marked=np.array([truth[i]["marker"] for i in rows["id"]], dtype=bool),
        shortcut_box=box,
    )


def _write_panels(run: _SaliencyRun, loaded: Any, panels_dir: Path, *, n_cases: int = 6) -> list[Path]:
    """Return the slice panels written (Grad-CAM, then IG) for the first ``n_cases`` volumes."""
    from auditkit.explain.volumes import slice_panel

    panels_dir.mkdir(parents=True, exist_ok=True)
    panels = []
    for i, case_id in enumerate(run.rows["id"][:n_cases]):
        for maps, suffix in ((run.maps, ""), (run.ig_maps, "_ig")):
            figure = slice_panel(loaded.preprocess.to_display(run.inputs[i]), maps[i], run.masks[i])
            path = panels_dir / f"{case_id}{suffix}.png"
            figure.savefig(path, dpi=110)
            panels.append(path)
    return panels


def _saliency_document(run: _SaliencyRun, loaded: Any, config: Any) -> dict[str, Any]:
    """Return volume_saliency.json: the methods, one record a volume and the summary."""
    from auditkit.explain.volumes import top_slices

    scores, ig_scores = run.scores, run.ig_scores
    cases = []
    for i, case_id in enumerate(run.rows["id"]):
        chosen = top_slices(run.maps[i], run.masks[i])
        cases.append(
            {
                "id": str(case_id),
                "marker": bool(run.marked[i]),
                "energy_pointing": _number(scores.energy_pointing[i]),
                "hit": _number(scores.hit[i]),
                "shortcut_share": _number(scores.shortcut_share[i]),
                "shortcut_ratio": _number(scores.shortcut_ratio[i]),
                "ig_energy_pointing": _number(ig_scores.energy_pointing[i]),
                "ig_shortcut_ratio": _number(ig_scores.shortcut_ratio[i]),
                "top_slices": chosen["saliency"],
                "lesion_slices": chosen["lesion"],
            }
        )
    ratio_marked, ig_marked = run.ratio_marked, run.ig_ratio_marked
    caught = bool(np.isfinite(ratio_marked) and ratio_marked > 5 and np.isfinite(ig_marked) and ig_marked > 5)
    return {
        "methods": {
            "gradcam": ["upsample (trilinear, full depth)", "relu"],
            "ig": ["sum_channels", "relu"],
        },
        "input_size": list(loaded.preprocess.size),
        "shortcut_box": run.shortcut_box,
        "summary": {
            "n_volumes": len(run.rows),
            "median_shortcut_ratio_marked": _number(ratio_marked),
            "median_shortcut_ratio_unmarked": _number(run.ratio_unmarked),
            "median_energy_pointing": _number(float(np.nanmedian(scores.energy_pointing))),
            "ig_median_shortcut_ratio_marked": _number(ig_marked),
            "ig_median_energy_pointing": _number(float(np.nanmedian(ig_scores.energy_pointing))),
            "shortcut_caught": caught,
        },
        "volumes": cases,
    }


def _number(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)
