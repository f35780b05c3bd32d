"""How much of a validation score is noise: intervals and the paired tests."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nighttune.tasks.core.stats import (
    interval,
    mcnemar_p,
    paired_bootstrap_p,
    paired_p,
    wilson_interval,
)


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


def test_mcnemar_counts_only_the_examples_where_the_two_disagree():
    a = np.array([1] * 100 + [1] * 6 + [0] * 0)
    b = np.array([1] * 100 + [0] * 6 + [0] * 0)
    assert mcnemar_p(a, b) == pytest.approx(2 / 2**6)  # 6 to 0: both tails of Bin(6, 1/2)
    assert mcnemar_p(b, a) == mcnemar_p(a, b)
    assert mcnemar_p(a, a) == 1.0  # no disagreement at all
    even = np.array([1, 0] * 50), np.array([0, 1] * 50)
    assert mcnemar_p(*even) == 1.0
    # 3 against 9: the textbook value, sum of Bin(12, 1/2) up to 3, doubled.
    a = np.array([1] * 3 + [0] * 9 + [1] * 40)
    b = np.array([0] * 3 + [1] * 9 + [1] * 40)
    expected = 2 * sum(math.comb(12, k) for k in range(4)) / 2**12
    assert mcnemar_p(a, b) == pytest.approx(expected) == pytest.approx(0.1460, abs=1e-4)
    # Thousands of disagreements (Fashion-MNIST's 6,000): exact integers, no underflow.
    many = np.array([1] * 1500 + [0] * 1400), np.array([0] * 1500 + [1] * 1400)
    assert 0.0 < mcnemar_p(*many) < 0.1


def test_the_paired_bootstrap_sees_a_shift_hidden_in_overlapping_intervals():
    rng = np.random.default_rng(1)
    a = rng.exponential(0.3, 2000)  # per-example losses
    b = a + 0.01 + rng.normal(0, 0.01, 2000)  # worse on every example, by a little
    low_a, high_a = interval(a)
    low_b, high_b = interval(b)
    assert low_b < high_a  # the two intervals overlap...
    assert paired_bootstrap_p(a, b) < 0.01  # ...yet paired, the difference is clear
    assert paired_bootstrap_p(a, a) == 1.0
    noise = a + rng.normal(0, 0.05, 2000)  # no shift: only noise
    assert paired_bootstrap_p(a, noise) > 0.05
    assert paired_p(a, b)[1] == "paired bootstrap"
    assert paired_p(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == (1.0, "McNemar")
    with pytest.raises(ValueError, match="same examples"):
        paired_p(a, b[:10])


def test_intervals_are_wilson_for_right_or_wrong_and_a_bootstrap_otherwise():
    right = np.array([1.0] * 250 + [0.0] * 20)
    assert interval(right) == wilson_interval(250 / 270, 270)
    losses = np.random.default_rng(0).exponential(0.3, 1000)
    low, high = interval(losses)
    assert low < losses.mean() < high
    assert interval(losses) == interval(losses)  # seeded: the same report twice
    wider = interval(losses[:100])
    assert wider[1] - wider[0] > high - low
    with pytest.raises(ValueError):
        interval(np.array([]))
