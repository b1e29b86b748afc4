"""The viewer in headless Chromium: filter, keyboard, overlays, the lesion outline, verdicts, export, escaping.

The truth is the planted report of conftest.py: outcomes, subgroups, the
corner marker on every third case and the lesion square at known pixels.
"""

from __future__ import annotations

import csv
import io
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.viewer.conftest import LESION, XSS_SITE

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def url(planted_report):
    from auditkit.viewer.server import make_server

    server = make_server(planted_report[0], port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _open(page, url):
    page.goto(url)
    page.evaluate("window.localStorage.clear()")
    page.reload()
    page.wait_for_selector("body[data-ready=true]")


def _pixels(page, panel: str) -> np.ndarray:
    """Return the (H, W, 4) pixels of a drawn panel's canvas, read in the page."""
    data = page.evaluate(
        """(name) => { const c = document.querySelector(`canvas[data-panel="${name}"]`);
                       const d = c.getContext('2d').getImageData(0, 0, c.width, c.height);
                       return {w: c.width, h: c.height, data: Array.from(d.data)}; }""",
        panel,
    )
    return np.array(data["data"], dtype=np.uint8).reshape(data["h"], data["w"], 4)


def _drawn(page, case_id: str):
    page.wait_for_selector(f"body[data-drawn='{case_id}']")


def test_filter_to_a_subgroups_false_negatives_step_flag_outline_verdict_export(page, url, tmp_path):
    _open(page, url)
    assert page.text_content("#count") == "12 of 12 cases match"
    for outcome in ("TP", "FP", "TN"):
        page.uncheck(f"input[name=outcome][value={outcome}]")
    page.select_option("#f-attr-0", "F")
    # planted: FN = case 1, 5, 9; female = cases 0-3 and 8-11
    assert page.text_content("#count") == "2 of 12 cases match"
    assert page.locator("#cases li .id").all_text_contents() == ["case01", "case09"]
    _drawn(page, "case01")

    page.locator("#cases").focus()
    page.keyboard.press("j")
    assert page.text_content("#case-title").startswith("Case case09 (2 of 2)")
    page.keyboard.press("k")
    assert page.text_content("#case-title").startswith("Case case01 (1 of 2)")
    page.keyboard.press("ArrowDown")
    assert page.text_content("#case-title").startswith("Case case09")

    page.check("input[name=flag][value=shortcut_suspected]")
    assert page.text_content("#count") == "1 of 12 cases match"  # case 9 carries the corner marker
    assert page.locator("#flags li.on[data-flag=shortcut_suspected]").count() == 1
    _drawn(page, "case09")

    # one overlay; the outline lies on the lesion's own pixels (rows 4-8, columns 6-11)
    page.check("input[name=layout][value=blend]")
    _drawn(page, "case09")
    page.wait_for_selector("canvas[data-panel=gradcam]")
    pixels = _pixels(page, "gradcam")
    cyan = (pixels[:, :, 0] == 0) & (pixels[:, :, 1] == 255) & (pixels[:, :, 2] == 255)
    lesion = np.zeros(cyan.shape, dtype=bool)
    lesion[LESION] = True
    border = lesion.copy()
    border[LESION[0].start + 1 : LESION[0].stop - 1, LESION[1].start + 1 : LESION[1].stop - 1] = False
    assert np.array_equal(cyan, border)
    page.keyboard.press("c")  # outline off
    page.wait_for_function("!document.querySelector('#c-contour').checked")
    page.wait_for_timeout(100)
    pixels = _pixels(page, "gradcam")
    assert not ((pixels[:, :, 0] == 0) & (pixels[:, :, 1] == 255) & (pixels[:, :, 2] == 255)).any()

    # opacity 0 shows the grey image alone; full opacity colours the marker corner
    page.fill("#c-opacity", "0")
    page.dispatch_event("#c-opacity", "input")
    page.wait_for_timeout(100)
    plain = _pixels(page, "gradcam")
    assert (plain[:, :, 0] == plain[:, :, 1]).all()
    page.fill("#c-opacity", "100")
    page.dispatch_event("#c-opacity", "input")
    page.wait_for_timeout(100)
    hot = _pixels(page, "gradcam")
    assert not np.array_equal(hot[0, 0, :3], plain[0, 0, :3])

    # the verdict, with a note a spreadsheet would run as a formula
    page.locator("#cases").focus()
    page.keyboard.press("2")
    page.fill("#v-note", '=HYPERLINK("x","y"), marker')
    page.fill("#v-reviewer", "Dr Test")
    assert page.text_content("#review-status") == "1 of 12 cases reviewed"
    with page.expect_download() as info:
        page.click("#export-csv")
    rows = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text(encoding="utf-8"))))
    assert rows == [{"id": "case09", "verdict": "looks_elsewhere", "note": "'=HYPERLINK(\"x\",\"y\"), marker",
                     "outcome": "FN", "cohort": XSS_SITE, "site": XSS_SITE, "score": rows[0]["score"],
                     "reviewed_at": rows[0]["reviewed_at"], "reviewer": "Dr Test"}]  # fmt: skip
    with page.expect_download() as info:
        page.click("#export-json")
    review = json.loads(Path(info.value.path()).read_text(encoding="utf-8"))
    assert review["format"] == "auditkit-review"
    assert [(v["id"], v["verdict"]) for v in review["verdicts"]] == [("case09", "looks_elsewhere")]

    shot = np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("L"), dtype=float)
    assert shot.shape == (800, 1280) and shot.std() > 10


def test_markup_in_a_site_name_shows_as_text(page, url):
    _open(page, url)
    options = page.locator("#f-cohort option").all_text_contents()
    assert XSS_SITE in options
    page.select_option("#f-site", "site_A")
    assert page.text_content("#count") == "8 of 12 cases match"  # planted: cases 0-7 at site_A
    page.select_option("#f-site", "")
    page.select_option("#f-cohort", XSS_SITE)
    assert page.text_content("#count") == "4 of 12 cases match"
    assert XSS_SITE in page.text_content("#facts")
    assert page.evaluate("window.__xss") is None
    assert page.locator("img").count() == 0


@pytest.mark.parametrize("assets", [None, "viewer_files"])
def test_the_exported_file_works_offline_with_its_images_inlined_or_beside_it(page, planted_report, tmp_path, assets):
    from auditkit.viewer.page import export_html

    out = export_html(planted_report[0], tmp_path / "viewer.html", assets=assets)
    html = out.read_text(encoding="utf-8")
    assert "http://" not in html and "https://" not in html
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(out.as_uri())
    page.wait_for_selector("body[data-ready=true]")
    _drawn(page, "case00")
    assert {u.split(":", 1)[0] for u in requests} <= {"file", "data", "blob"}
    assert page.locator("#panels canvas").count() == 3  # image, Grad-CAM, IG


def test_every_control_has_a_label_and_text_has_aa_contrast(page, url):
    _open(page, url)
    unlabeled = page.evaluate(
        """() => Array.from(document.querySelectorAll('input, select, textarea, button')).filter(el => {
             const named = (el.labels && el.labels.length) || el.getAttribute('aria-label') || el.textContent.trim();
             return !named; }).map(el => el.outerHTML)"""
    )
    assert unlabeled == []
    # WCAG 2.1 contrast ratio of each text element's colour on its panel's background
    ratios = page.evaluate(
        """() => {
          const lum = c => { const v = c.match(/\\d+(\\.\\d+)?/g).slice(0, 3).map(x => { x = x / 255;
                     return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4); });
                     return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]; };
          const bg = el => { while (el) { const c = getComputedStyle(el).backgroundColor;
                     if (c && !c.startsWith('rgba(0, 0, 0, 0)')) return c; el = el.parentElement; } return 'rgb(255, 255, 255)'; };
          return Array.from(document.querySelectorAll('h1, h2, legend, label, dt, dd, p, li, span, button, kbd'))
            .filter(el => el.textContent.trim() && el.offsetParent !== null)
            .map(el => { const a = lum(getComputedStyle(el).color), b = lum(bg(el));
                         return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05); });
        }"""
    )
    assert ratios and min(ratios) >= 4.5


def test_sorting_by_score_error_and_corner_share(page, url, planted_report):
    _open(page, url)
    frame = planted_report[1]["frame"]
    page.select_option("#f-sort", "score_desc")
    assert page.locator("#cases li .id").first.text_content() == frame.loc[frame["_score"].idxmax(), "id"]
    page.select_option("#f-sort", "error_desc")
    error = (frame["y_true"] - frame["_score"]).abs()
    expected = list(frame.loc[error.sort_values(ascending=False, kind="stable").index, "id"][:3])
    assert page.locator("#cases li .id").all_text_contents()[:3] == expected
    page.select_option("#f-sort", "corner_desc")
    top = page.locator("#cases li .id").all_text_contents()[:4]
    assert sorted(top) == ["case00", "case03", "case06", "case09"]  # the planted corner markers
