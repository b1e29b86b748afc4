"""Markup and formulas from a user's files stay inert in summary.md, the gate's Markdown and every CSV."""

from __future__ import annotations

import csv
import io

import markdown_it
import numpy as np
import pandas as pd
import pytest

from auditkit.audit.summary import render_summary
from auditkit.fileio import write_csv
from auditkit.textsafe import FORMULA_PREFIXES, csv_unquote, md_code, md_text

HOSTILE = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "[click](javascript:alert(1))",
    "![x](http://evil/x.png)",
    "``` `breakout` ```",
    "a|b|c",
    "line\nbreak # heading",
    "&lt;already&gt; &amp;",
]


def _html(markdown: str) -> str:
    return markdown_it.MarkdownIt("commonmark").enable("table").render(markdown)  # oracle: a CommonMark renderer with GFM tables


@pytest.mark.parametrize("text", HOSTILE)
def test_md_text_renders_to_no_tag_no_link(text):
    html = _html(f"before {md_text(text)} after")
    assert "<script" not in html and "<img" not in html and "<a " not in html and "<code" not in html
    assert html.count("<p>") == 1  # one paragraph: no heading, no block


@pytest.mark.parametrize("text", HOSTILE)
def test_md_code_is_one_code_span_holding_the_text(text):
    html = _html(f"| a | b |\n|---|---|\n| {md_code(text)} | x |\n")
    assert html.count("<code>") == 1 and html.count("<td>") == 2
    assert "<script" not in html and "<img" not in html


def test_summary_md_escapes_names_from_the_results(tmp_path):
    doc = {
        "model": {"name": "<script>alert(1)</script>"},
        "run": {"classes": ["<b>normal</b>", "lesion"], "positive_class": "lesion"},
        "cohorts": {"<img src=x onerror=alert(1)>": {"role": "test", "n_images": 3}},
        "warnings": [{"code": "x", "message": "[a](javascript:alert(1)) `code` | pipe"}],
    }
    html = _html(render_summary(doc))
    assert "<script" not in html and "<img" not in html and "<b>" not in html
    assert "href" not in html  # no link was made from the warning's text


@pytest.mark.parametrize("cell", ["=HYPERLINK(\"http://evil\",\"x\")", "@SUM(A1:A2)", "+1+1", "-2+3", "\t=1", "=cmd|' /C calc'!A0"])
def test_csv_cells_cannot_be_formulas_and_round_trip(tmp_path, cell):
    frame = pd.DataFrame({"id": [cell, "plain"], "score": [-0.5, 0.25]})
    path = write_csv(tmp_path / "t.csv", frame)
    rows = list(csv.reader(io.StringIO(path.read_text())))  # oracle: the csv module a spreadsheet import mimics
    assert rows[1][0].startswith("'") and not rows[1][0].startswith(FORMULA_PREFIXES)
    assert rows[1][1] == "-0.5" and rows[2] == ["plain", "0.25"]  # numbers are not text cells
    assert csv_unquote(rows[1][0]) == cell


def test_predict_csv_and_splits_are_neutralised_and_read_back(tmp_path, tiny_model):
    from auditkit.nets.checkpoint import read_splits, write_splits

    write_splits(tmp_path, pd.DataFrame({"patient_id": ["=1+1", "p2"], "split": ["train", "test"]}))
    assert "'=1+1" in (tmp_path / "splits.csv").read_text()
    assert read_splits(tmp_path)["patient_id"].tolist() == ["=1+1", "p2"]
    from auditkit.audit.predictions import read_predictions

    n = 60
    rng = np.random.default_rng(0)
    y = np.arange(n) % 2
    table = pd.DataFrame({"id": [f"=x{i}" for i in range(n)], "y_true": y, "score": rng.random(n),
                          "sex": ["@F", "M"] * (n // 2)})
    write_csv(tmp_path / "p.csv", table)
    back = read_predictions(tmp_path / "p.csv")
    assert back.frame["id"].tolist() == table["id"].tolist()
    assert sorted(set(back.frame["sex"])) == ["@F", "M"]
