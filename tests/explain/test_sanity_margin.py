"""The sanity check's row has a number: margin = baseline SSIM − cascading SSIM, with a Welch interval.

Oracle: SciPy's Welch t-test statistic (the margin over its standard error) on the same planted values.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from auditkit.explain.evaluation.sanity import SanityResult, StepSimilarity


def _step(ssim: np.ndarray) -> StepSimilarity:
    return StepSimilarity("layer", ssim, ssim, ssim, ssim)


def test_margin_is_baseline_minus_cascading_with_a_welch_interval_and_its_sign_is_the_verdict():
    rng = np.random.default_rng(0)
    baseline = rng.uniform(0.3, 0.5, 50)
    steps = [_step(rng.uniform(0.05, 0.2, 20)), _step(rng.uniform(0.1, 0.3, 20))]
    result = SanityResult(True, "c", baseline, steps, [])
    margin = result.margin()
    per_image = np.mean([s.ssim for s in steps], axis=0)
    assert np.isclose(margin.estimate, baseline.mean() - per_image.mean())
    welch = stats.ttest_ind(baseline, per_image, equal_var=False)
    se = (margin.ci_high - margin.ci_low) / (2 * 1.959963984540054)
    assert np.isclose(margin.estimate / se, welch.statistic)
    assert margin.ci_low > 0  # a passed check shows a positive margin, not "estimate —"
    d = result.to_dict(n_boot=50)
    assert d["margin"]["estimate"] == margin.estimate and d["passed"] is True
