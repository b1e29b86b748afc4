"""The dossier's clinician-review section: verdicts joined to the case records, Wilson CIs from SciPy's oracle."""

from __future__ import annotations

import json

import pytest
from scipy.stats import binomtest, chi2_contingency

from tests.viewer.conftest import write_planted_report

# planted verdicts: "looks elsewhere" on the corner-marker cases (0, 3, 6, 9), "cannot tell" on case 1,
# "looks at the finding" on the rest
ELSEWHERE = {0, 3, 6, 9}


def _review(path, *, extra=()):
    verdicts = [
        {"id": f"case{i:02d}", "verdict": "looks_elsewhere" if i in ELSEWHERE else ("cannot_tell" if i == 1 else "looks_at_finding"),
         "note": ""}
        for i in range(12)
    ] + list(extra)  # fmt: skip
    path.write_text(json.dumps({"format": "auditkit-review", "version": 1, "reviewer": "Dr <b>Test</b>",
                                "results_sha256": "f" * 64, "verdicts": verdicts}))  # fmt: skip
    return path


@pytest.fixture(scope="module")
def section(tmp_path_factory):
    from auditkit.report.sections.common import Source
    from auditkit.report.sections.review import build_review, read_review

    folder = tmp_path_factory.mktemp("review") / "r"
    write_planted_report(folder)
    review = read_review(_review(folder.parent / "review.json", extra=[{"id": "gone", "verdict": "looks_elsewhere"}]))
    results = json.loads((folder / "results.json").read_text())
    return build_review(Source(results, folder), review, results_sha256="0" * 64)


def _wilson_text(k: int, n: int) -> str:
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return f"{k / n:.3f} (95% CI {ci.low:.3f}\u2013{ci.high:.3f})"


def test_looks_elsewhere_per_outcome_matches_scipys_wilson_interval(section):
    by_outcome = {r["group"]: r for r in section["tables"][0]["rows"]}
    # TP = cases 0, 4, 8 (0 elsewhere); FN = 1 (cannot tell), 5, 9 (9 elsewhere); FP = 2, 6, 10; TN = 3, 7, 11
    assert (by_outcome["TP"]["k"], by_outcome["TP"]["n"]) == ("1", "3")
    assert (by_outcome["FN"]["k"], by_outcome["FN"]["n"], by_outcome["FN"]["cannot_tell"]) == ("1", "2", "1")
    assert by_outcome["TP"]["fraction"].replace("-", "\u2013") == _wilson_text(1, 3)
    assert by_outcome["FN"]["fraction"].replace("-", "\u2013") == _wilson_text(1, 2)


def test_the_cohort_rows_use_the_reports_cohort_names(section):
    cohort = next(t for t in section["tables"] if t["title"].startswith("By cohort"))
    assert [r["group"] for r in cohort["rows"]] == sorted(["Internal test", "<img src=x onerror=\"window.__xss=1\">site"])


def test_subgroups_and_agreement_with_the_flags(section):
    sex = next(t for t in section["tables"] if t["title"] == "By sex")
    rows = {r["group"]: r for r in sex["rows"]}
    # female = cases 0-3, 8-11: definite 0, 2, 3, 8, 9, 10, 11 -> elsewhere 0, 3, 9
    assert (rows["F"]["k"], rows["F"]["n"]) == ("3", "7")
    shortcut = next(a for a in section["agreement"] if a["flag"] == "Shortcut suspected" and a["method"] == "Grad-CAM")
    # flagged = the marker cases, all judged "looks elsewhere"; the 7 other definite ones none
    assert (shortcut["flagged"]["k"], shortcut["flagged"]["n"]) == ("4", "4")
    assert (shortcut["unflagged"]["k"], shortcut["unflagged"]["n"]) == ("0", "7")
    expected_p = chi2_contingency([[4, 0], [0, 7]], correction=False)[1]
    assert shortcut["p_value"] == ("p < 0.001" if expected_p < 0.001 else f"p = {expected_p:.3f}")
    # Newcombe (1998) method 10 by hand from SciPy's Wilson limits: d = 1 - 0
    a = binomtest(4, 4).proportion_ci(method="wilson")
    b = binomtest(0, 7).proportion_ci(method="wilson")
    low, high = 1 - ((1 - a.low) ** 2 + (b.high - 0) ** 2) ** 0.5, 1 + ((a.high - 1) ** 2 + (0 - b.low) ** 2) ** 0.5
    assert shortcut["difference"].replace("-", "\u2013") == f"1.000 (95% CI {low:.3f}\u2013{high:.3f})"
    assert section["counts"] == [{"verdict": "looks at the finding", "n": "7"}, {"verdict": "looks elsewhere", "n": "4"},
                                 {"verdict": "cannot tell", "n": "1"}]  # fmt: skip
    assert any("1 verdicts name cases" in n for n in section["notes"])
    assert any("another results.json" in n for n in section["notes"])


def test_the_rendered_html_shows_the_section_with_markup_escaped(tmp_path):
    from auditkit.report import render_report
    from tests.report.factory import write_results

    folder = tmp_path / "r"
    write_results(folder)  # a schema-valid results.json (the report tests' factory)
    write_planted_report(folder, results=False)
    review = _review(tmp_path / "review.json")
    html_path = render_report(folder / "results.json", out_html=tmp_path / "report.html", review=review)[0]
    html = html_path.read_text(encoding="utf-8")
    assert "Clinician review of the saliency maps" in html
    assert "Dr &lt;b&gt;Test&lt;/b&gt;" in html and "Dr <b>Test</b>" not in html
    assert _wilson_text(1, 3).split(" (")[0] in html


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not a JSON review file"),
        ('{"format": "other"}', "'format' is not 'auditkit-review'"),
        ('{"format": "auditkit-review", "verdicts": [{"id": "a", "verdict": "maybe"}]}', "use one of"),
    ],
)
def test_a_bad_review_file_is_one_line_exit_2(tmp_path, capsys, content, message):
    from auditkit.cli import run

    folder = tmp_path / "r"
    write_planted_report(folder, n=4)  # the review is read first, so results.json is never opened
    (tmp_path / "review.json").write_text(content)
    capsys.readouterr()  # the fixture's progress bar
    code = run(["report", str(folder / "results.json"), "--out", str(tmp_path / "x.html"),
                "--review", str(tmp_path / "review.json")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1


@pytest.mark.parametrize(("n1", "p1", "n2", "p2"), [(20, 0.6, 30, 0.3), (10, 0.9, 40, 0.1), (15, 0.5, 15, 0.5)])
def test_the_difference_interval_covers_a_known_difference_in_simulation(n1, p1, n2, p2):
    import numpy as np

    from auditkit.report.sections.review import newcombe_difference

    rng = np.random.default_rng(0)
    k1, k2 = rng.binomial(n1, p1, 4000), rng.binomial(n2, p2, 4000)
    covered = [low <= p1 - p2 <= high for a, b in zip(k1, k2, strict=True)
               for _, low, high in [newcombe_difference(int(a), n1, int(b), n2)]]  # fmt: skip
    # nominal 95%; Newcombe (1998) reports 93-97% for method 10 at these sizes; 4,000 draws: SE 0.35%
    assert 0.93 <= float(np.mean(covered)) <= 0.975
