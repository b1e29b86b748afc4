"""auditkit.results.format: the one text form of an estimate, checked against hand-written strings."""

from __future__ import annotations

from auditkit.results import Estimate
from auditkit.results.format import format_estimate, format_interval, format_number


def test_print_form_uses_typographic_minus_en_dash_and_to_for_negative_bounds():
    assert format_estimate({"estimate": 0.91234, "ci_low": 0.8866, "ci_high": 0.9344}) == (
        "0.912 (95% CI 0.887\u20130.934)"
    )
    assert format_estimate({"estimate": -0.024, "ci_low": -0.081, "ci_high": 0.0326}) == (
        "\u22120.024 (95% CI \u22120.081 to 0.033)"
    )


def test_ascii_form_for_a_console_that_may_not_be_utf8():
    text = format_estimate(
        {"estimate": -0.024, "ci_low": -0.081, "ci_high": 0.0326}, ascii_only=True
    )
    assert text == "-0.024 (95% CI -0.081 to 0.033)"
    assert text.isascii()
    assert (
        format_estimate(
            {"estimate": 0.5, "ci_low": 0.25, "ci_high": 0.75}, percent=True, ascii_only=True
        )
        == "50.0% (95% CI 25.0% to 75.0%)"
    )
    assert format_number(None, ascii_only=True) == "-"


def test_label_false_leaves_the_interval_name_to_the_header():
    estimate = {"estimate": 0.18, "ci_low": 0.13, "ci_high": 0.24}
    assert format_estimate(estimate, label=False) == "0.180 (0.130\u20130.240)"
    assert format_estimate(estimate, label=False, ascii_only=True) == "0.180 (0.130 to 0.240)"
    assert format_interval(0.13, 0.24, ci_level=0.9) == "90% CI 0.130\u20130.240"


def test_an_estimate_object_reads_like_its_json_form():
    estimate = Estimate(0.8, 0.7, 0.9)
    assert format_estimate(estimate, digits=2) == format_estimate(estimate.to_dict(), digits=2)
    assert format_estimate(Estimate.undefined("one class")) == "not computable: one class"
    assert format_estimate(None) == "not reported"
