"""Bad input to the statistics API: one clear error naming the argument and position; undefined math is NaN."""

from __future__ import annotations

import numpy as np
import pytest

from auditkit.errors import AuditkitError, InvalidInputError
from auditkit.stats import brier_score, expected_calibration_error, roc_auc
from auditkit.stats.bootstrap import make_resamples


@pytest.mark.parametrize(
    ("y", "p", "match"),
    [
        ([0, 1, 1], [0.1, np.nan, 0.3], r"y_prob\[1\] is nan"),
        ([0, 1, 1], [0.1, np.inf, 0.3], r"y_prob\[1\] is inf"),
        ([0, 1, 1], [0.1, 1.2, 0.3], r"y_prob\[1\] is 1.2, outside \[0, 1\]"),
        ([0, 2, 1], [0.1, 0.2, 0.3], r"y_true\[1\] is 2; binary labels must be 0 or 1"),
        ([0, 1], [0.1, 0.2, 0.3], "y_true has 2, y_prob has 3"),
        ([[0, 1]], [[0.1, 0.2]], "one-dimensional"),
    ],
)
def test_bad_arrays_raise_one_clear_error(y, p, match):
    with pytest.raises(InvalidInputError, match=match) as info:
        expected_calibration_error(y, p)
    assert isinstance(info.value, AuditkitError)
    assert "\n" not in str(info.value)


def test_scores_may_be_any_finite_number_for_ranking_but_not_nan():
    assert roc_auc([0, 1], [-5.0, 7.0]) == 1.0
    with pytest.raises(InvalidInputError, match=r"y_score\[0\] is nan"):
        roc_auc([0, 1], [np.nan, 1.0])


def test_one_class_is_undefined_not_an_error():
    assert np.isnan(roc_auc([1, 1, 1], [0.2, 0.4, 0.9]))
    assert brier_score([1, 1], [0.5, 1.0]) == pytest.approx(0.125)


def test_resampling_arguments_are_checked():
    with pytest.raises(InvalidInputError, match="n_boot must be at least 1"):
        make_resamples([0, 1], n_boot=0, random_state=0)
    with pytest.raises(InvalidInputError, match="empty table"):
        make_resamples([], n_boot=10, random_state=0)
