"""Volume cases in the viewer (headless Chromium): the slice slider, [ ] and PageUp/PageDown, served and exported.

The truth is planted: each slice k of the volume has grey value ``GREY[k]``
everywhere outside the lesion, the lesion crosses slices 2-4 only, and the
map's mass peaks on slice ``PEAK`` (the representative slice the record names
and the viewer opens on). Files are written by the saliency step's own writers
(:func:`auditkit.explain.cases.write_volume_slices` and ``write_cases``).
"""

from __future__ import annotations

import json
import threading

import numpy as np
import pandas as pd
import pytest

from auditkit.explain.overlay import OverlayScale

pytestmark = pytest.mark.browser

DEPTH, SIZE, PEAK = 6, 16, 3
GREY = [0.1 + 0.15 * k for k in range(DEPTH)]  # slice k's background, distinct per slice
LESION_SLICES = (2, 3, 4)


def _write_volume_report(folder):
    from auditkit.explain.cases import write_cases, write_volume_slices

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps({"schema_version": "1.0", "model": {"name": "vol", "arch": "smallcnn3d"}}))
    shown = np.stack([np.full((SIZE, SIZE), g, np.float32) for g in GREY])
    mask = np.zeros((DEPTH, SIZE, SIZE), bool)
    mask[list(LESION_SLICES), 5:9, 5:9] = True
    shown[mask] = 0.95
    saliency = np.zeros((DEPTH, SIZE, SIZE), np.float32)
    saliency[:, 6, 6] = [0.1, 0.2, 0.4, 1.0, 0.3, 0.0]  # the most mass on slice PEAK
    peak = int(np.argmax(saliency.sum(axis=(1, 2))))
    assert peak == PEAK
    scales = {"gradcam": OverlayScale(0.0, 1.0, "Grad-CAM, shared scale")}
    volume = write_volume_slices(folder, "vol01", shown, {"gradcam": saliency}, mask, scales, representative=peak)
    sample = pd.DataFrame([{"id": "vol01", "y_true": 1, "y_pred": 1, "_score": 0.9, "_cohort": "test",
                            "split": "test", "site": "site_A", "image": None}])  # fmt: skip
    write_cases(
        folder, sample, shown=[shown[peak]], masks=[mask[peak]], rois=[None],
        displays={"gradcam": saliency[peak][None]}, scales=scales, categories=["true_positive"],
        class_names=["normal", "nodule"], positive=1, threshold=0.5, attributes=[],
        methods={"gradcam": {"label": "Grad-CAM", "params": {}, "postprocessing": ["upsample", "relu"]}},
        corner_fraction=0.25, stems=["vol01"], volumes=[volume],
    )  # fmt: skip
    return volume


def _image_grey(page) -> int:
    """Return the red channel of the image panel's corner pixel (outside the lesion)."""
    return page.evaluate(
        """() => { const c = document.querySelector('canvas[data-panel="image"]');
                   return c.getContext('2d').getImageData(0, 0, 1, 1).data[0]; }"""
    )


def _outline_pixel(page) -> list[int]:
    """Return the RGB of the image panel at the lesion's corner (5, 5): cyan where the outline is drawn."""
    return page.evaluate(
        """() => { const c = document.querySelector('canvas[data-panel="image"]');
                   return Array.from(c.getContext('2d').getImageData(5, 5, 1, 1).data.slice(0, 3)); }"""
    )


def _slice_shown(page, k: int) -> None:
    page.wait_for_selector(f"body[data-drawn-slice='{k}']")
    assert (_outline_pixel(page) == [0, 255, 255]) == (k in LESION_SLICES)  # the outline of that slice's lesion
    assert page.text_content("#c-slice-out").startswith(f"{k} of {DEPTH}")
    # window 255 / level 128 maps code v to v - 0.5 (rounded half to even): within 1 of the slice's grey,
    # and neighbouring slices differ by 38 codes
    assert abs(_image_grey(page) - round(GREY[k] * 255)) <= 1


def test_the_slice_slider_pages_through_a_volume_served_and_exported(page, tmp_path):
    from auditkit.viewer.data import build_payload, image_paths
    from auditkit.viewer.page import export_html
    from auditkit.viewer.server import make_server

    folder = tmp_path / "reports" / "vol"
    volume = _write_volume_report(folder)
    record = json.loads((folder / "explain" / "cases.json").read_text())["cases"][0]
    assert record["volume"]["depth"] == DEPTH and record["volume"]["slice"] == PEAK
    assert record["source"]["format"] == "volume"
    assert volume["lesion_slices"] == list(LESION_SLICES)
    assert set(image_paths(build_payload(folder))) == {volume["sprites"]["image"], volume["sprites"]["mask"],
                                                       volume["sprites"]["maps"]["gradcam"], record["image"],
                                                       record["mask"], record["maps"]["gradcam"]}  # fmt: skip

    server = make_server(folder, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
        page.wait_for_selector("body[data-ready=true]")
        assert page.is_visible("#c-slice")
        _slice_shown(page, PEAK)  # opens on the representative slice
        page.locator("#cases").focus()
        page.keyboard.press("]")
        _slice_shown(page, PEAK + 1)
        page.keyboard.press("PageDown")
        _slice_shown(page, PEAK + 2)
        page.keyboard.press("PageDown")  # clamped at the last slice
        _slice_shown(page, DEPTH - 1)
        page.keyboard.press("[")
        _slice_shown(page, DEPTH - 2)
        page.fill("#c-slice", "1")  # the slider itself
        _slice_shown(page, 1)
        page.keyboard.press("PageUp")
        _slice_shown(page, 0)
        page.fill("#c-slice", str(PEAK))
        _slice_shown(page, PEAK)
        page.screenshot(path=str(tmp_path / "volume_viewer.png"))
    finally:
        server.shutdown()
        server.server_close()

    html = export_html(folder, tmp_path / "export" / "viewer.html", assets="viewer_assets")
    page.goto(html.as_uri())
    page.wait_for_selector("body[data-ready=true]")
    _slice_shown(page, PEAK)
    page.locator("#cases").focus()
    page.keyboard.press("[")
    _slice_shown(page, PEAK - 1)
