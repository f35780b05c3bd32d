"""How much of a validation score is noise: the Wilson interval."""

from __future__ import annotations

import pytest

from tasks.core.stats import wilson_interval


def test_wilson_interval_matches_the_formula_and_stays_in_range():
    low, high = wilson_interval(0.5, 100)
    assert (low, high) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    low, high = wilson_interval(1.0, 270)  # digits' validation split, every example right
    assert high == 1.0 and low == pytest.approx(0.9860, abs=1e-4)
    low, high = wilson_interval(0.0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    narrow = wilson_interval(0.88, 6000)  # Fashion-MNIST's validation split
    wide = wilson_interval(0.88, 270)
    assert narrow[1] - narrow[0] < wide[1] - wide[0]
    with pytest.raises(ValueError):
        wilson_interval(0.5, 0)
