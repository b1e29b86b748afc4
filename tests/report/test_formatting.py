"""Number formatting: every string checked against a hand-written expectation."""

from __future__ import annotations

import pytest

from auditkit.report import formatting as fmt


def test_estimate_with_interval_reads_as_in_print():
    estimate = {"estimate": 0.91234, "ci_low": 0.8866, "ci_high": 0.9344}
    assert fmt.format_estimate(estimate) == "0.912 (95% CI 0.887\u20130.934)"


def test_interval_with_a_negative_bound_uses_to_and_typographic_minus():
    estimate = {"estimate": -0.024, "ci_low": -0.081, "ci_high": 0.0326}
    assert fmt.format_estimate(estimate) == "\u22120.024 (95% CI \u22120.081 to 0.033)"


def test_undefined_estimate_gives_its_reason():
    estimate = {"estimate": None, "ci_low": None, "ci_high": None, "reason": "only one class present"}
    assert fmt.format_estimate(estimate) == "not computable: only one class present"
    assert fmt.cell(estimate)["css"] == "undefined"


def test_missing_estimate_and_missing_interval():
    assert fmt.format_estimate(None) == "not reported"
    assert fmt.cell(None)["css"] == "absent"
    assert fmt.format_estimate({"estimate": 0.5, "ci_low": None, "ci_high": None}) == "0.500"


@pytest.mark.parametrize(
    ("level", "label"), [(0.95, "95% CI"), (0.9, "90% CI"), (0.975, "97.5% CI"), (None, "95% CI")]
)
def test_ci_label_follows_the_run_level(level, label):
    assert fmt.ci_label(level) == label


def test_ci_level_is_used_in_the_estimate_text():
    estimate = {"estimate": 0.5, "ci_low": 0.4, "ci_high": 0.6}
    assert fmt.format_estimate(estimate, ci_level=0.9) == "0.500 (90% CI 0.400\u20130.600)"


@pytest.mark.parametrize(
    ("p", "text"),
    [(0.003, "p = 0.003"), (0.0004, "p < 0.001"), (1e-12, "p < 0.001"), (0.04999, "p = 0.050"),
     (0.9996, "p > 0.999"), (None, ""), (float("nan"), "")],
)
def test_p_values(p, text):
    assert fmt.format_p_value(p) == text


def test_adjusted_p_value_names_the_correction():
    estimate = {"estimate": 0.3, "ci_low": 0.2, "ci_high": 0.4, "p_value": 0.004, "p_adjusted": 0.012}
    assert fmt.format_test(estimate, correction="holm") == "p = 0.004; Holm-adjusted p = 0.012"
    assert fmt.format_test(estimate, correction="bh") == "p = 0.004; Benjamini\u2013Hochberg-adjusted p = 0.012"
    assert fmt.format_test({"estimate": 0.3, "ci_low": 0.2, "ci_high": 0.4}) == ""


@pytest.mark.parametrize(
    ("word", "text", "css"),
    [("pass", "PASS", "verdict-pass"), ("fail", "FAIL", "verdict-fail"),
     ("insufficient", "INSUFFICIENT EVIDENCE", "verdict-insufficient"), ("warn", "WARNING", "verdict-warn"),
     ("not_applicable", "NOT APPLICABLE", "verdict-not_applicable"), (None, "UNDEFINED", "verdict-undefined")],
)
def test_verdict_words_and_colour_classes(word, text, css):
    assert fmt.verdict(word) == {"text": text, "css": css}


def test_rounding_never_prints_negative_zero_and_counts_group_thousands():
    assert fmt.format_number(-0.0004) == "0.000"
    assert fmt.format_number(-1.5, digits=2) == "\u22121.50"
    assert fmt.format_count(1234567) == "1,234,567"
    assert fmt.format_percent(0.3456) == "34.6%"


def test_open_scale_metrics_get_two_decimals():
    estimate = {"estimate": 3.04131, "ci_low": 2.5, "ci_high": 3.7}
    assert fmt.cell(estimate, key="lr_positive")["text"] == "3.04 (95% CI 2.50\u20133.70)"
    assert fmt.cell(estimate, key="auroc")["text"] == "3.041 (95% CI 2.500\u20133.700)"


def test_point_without_interval_states_why():
    estimate = {"estimate": 0.0, "ci_low": None, "ci_high": None, "reason": "only 1 image: no confidence interval"}
    assert fmt.format_estimate(estimate) == "0.000 (no CI: only 1 image: no confidence interval)"


def test_a_reason_that_already_says_no_interval_is_not_prefixed_twice():
    reason = "no interval: the statistic is undefined in 40% of the resamples"
    estimate = {"estimate": 0.5, "ci_low": None, "ci_high": None, "reason": reason}
    assert fmt.format_estimate(estimate) == "0.500 (no CI: the statistic is undefined in 40% of the resamples)"
