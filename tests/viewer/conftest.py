"""Fixtures for the viewer: a planted report folder and a headless Chromium driven by Playwright.

The report folder is built by the explanation step's own writer
(:func:`auditkit.explain.cases.write_cases`) from planted arrays: 16x16
images whose lesion is a known square, maps with a known peak, subgroups,
sites and outcomes chosen by hand, so every test can state the truth it
checks against without running a model.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from auditkit.explain.overlay import OverlayScale

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SIZE = 16
LESION = (slice(4, 9), slice(6, 12))  # rows 4..8, columns 6..11: 5 x 6 pixels
XSS_SITE = '<img src=x onerror="window.__xss=1">site'


def planted_cases(n: int = 12) -> dict:
    """Return the arrays and table of ``n`` planted cases (the truth the viewer tests check)."""
    rng = np.random.default_rng(0)
    outcomes = ["TP", "FN", "FP", "TN"]
    rows = []
    shown, masks, rois, gradcam, ig = [], [], [], [], []
    for i in range(n):
        outcome = outcomes[i % 4]
        positive = outcome in ("TP", "FN")
        predicted = outcome in ("TP", "FP")
        score = (0.7 + 0.02 * i if predicted else 0.2 + 0.01 * i)
        rows.append({
            "id": f"case{i:02d}",
            "y_true": int(positive),
            "y_pred": int(predicted),
            "_score": score,
            "_cohort": "test" if i < 8 else XSS_SITE,
            "split": "test" if i < 8 else "external",
            "site": "site_A" if i < 8 else XSS_SITE,
            "sex": "F" if i % 8 < 4 else "M",
            "image": None,
        })  # fmt: skip
        image = np.full((SIZE, SIZE), 0.25 + 0.02 * i, dtype=np.float32)
        mask = np.zeros((SIZE, SIZE), dtype=bool)
        if positive:
            mask[LESION] = True
            image[LESION] = 0.8
        shown.append(image)
        masks.append(mask if positive else None)
        rois.append(None)
        g = rng.random((SIZE, SIZE)).astype(np.float32) * 0.1
        if i % 3 == 0:
            g[:3, :3] = 1.0  # a corner marker: shortcut suspected, peak outside the lesion
        else:
            g[6, 8] = 1.0  # the peak inside the lesion square
        gradcam.append(g)
        ig.append(np.roll(g, 1, axis=1))
    return {
        "frame": pd.DataFrame(rows),
        "shown": shown,
        "masks": masks,
        "rois": rois,
        "displays": {"gradcam": np.stack(gradcam), "ig": np.stack(ig)},
    }


def write_planted_report(
    folder: Path, n: int = 12, *, source_paths: list[str | None] | None = None,
    source_frames: list[int | None] | None = None, results: bool = True,
) -> dict:  # fmt: skip
    """Write results.json and the explanation step's case records for planted cases into ``folder``."""
    from auditkit.explain.cases import write_cases

    planted = planted_cases(n)
    frame = planted["frame"]
    if source_paths is not None:
        frame["image"] = source_paths
    if source_frames is not None:
        frame["frame"] = pd.array(source_frames, dtype="Int64")
    categories = {"TP": "true_positive", "FN": "false_negative", "FP": "false_positive", "TN": "true_negative"}
    outcome = [("TP" if p else "FN") if t else ("FP" if p else "TN") for t, p in zip(frame.y_true, frame.y_pred, strict=True)]
    folder.mkdir(parents=True, exist_ok=True)
    if results:
        (folder / "results.json").write_text(
            json.dumps({"schema_version": "1.0", "created": "2026-12-01T00:00:00Z",
                        "model": {"name": "planted", "arch": "smallcnn", "sha256": "0" * 64}}),
            encoding="utf-8",
        )
    scales = {m: OverlayScale(0.0, 1.0, f"{m}, relu, shared scale") for m in planted["displays"]}
    write_cases(
        folder,
        frame,
        shown=planted["shown"],
        masks=planted["masks"],
        rois=planted["rois"],
        displays=planted["displays"],
        scales=scales,
        categories=[categories[o] for o in outcome],
        class_names=["normal", "lesion"],
        positive=1,
        threshold=0.5,
        attributes=["sex"],
        methods={"gradcam": {"label": "Grad-CAM", "params": {}, "postprocessing": ["upsample", "relu"]},
                 "ig": {"label": "Integrated Gradients", "params": {"n_steps": 8}, "postprocessing": ["relu"]}},
        corner_fraction=0.25,
        stems=list(frame["id"]),
    )  # fmt: skip
    planted["outcome"] = outcome
    return planted


@pytest.fixture(scope="session")
def planted_report(tmp_path_factory) -> tuple[Path, dict]:
    """(report folder, planted truth) shared by the viewer tests (read-only)."""
    folder = tmp_path_factory.mktemp("viewer") / "reports" / "planted"
    planted = write_planted_report(folder)
    return folder, planted


def _install_chromium() -> str | None:
    """Install Debian's chromium when it is missing; return why it cannot be had, or None."""
    if CHROMIUM.exists():
        return None
    if shutil.which("apt-get") is None:
        return "chromium is not installed and there is no apt-get to install it"
    if os.geteuid() != 0:
        return "chromium is not installed and installing it needs root (apt-get install chromium)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            return f"installing chromium failed ({' '.join(command)}: {done.stderr.strip()[-200:]})"
    return None if CHROMIUM.exists() else "apt-get installed chromium but /usr/bin/chromium is missing"


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """A headless Debian Chromium (fresh profile) driven by Playwright; skipped with the reason when unavailable."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright Python package is not installed (pip install -e '.[test]')")
    why = _install_chromium()
    if why:
        pytest.skip(why)
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 800},
            accept_downloads=True,
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser):
    """A new tab of the shared browser, closed after the test; JavaScript errors fail the test."""
    tab = browser.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    tab.close()
    assert not errors, f"JavaScript errors: {errors}"
