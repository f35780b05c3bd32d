"""Suggestion rules on made-up curves with known answers (no TensorFlow)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nighttune.tasks.tuning.lr_suggest import choose, minimum, smooth, steepest, suggest_all, valley


def ramp(n: int = 100, start: float = 1e-6, end: float = 1.0) -> np.ndarray:
    return start * (end / start) ** (np.arange(n) / (n - 1))


def valley_curve(lrs: np.ndarray, centre: float = 1e-2) -> np.ndarray:
    """A plateau, a tanh drop centred on ``centre`` (log axis), then a blow-up."""
    x = np.clip(np.log10(lrs) - math.log10(centre), -1.2, None)
    loss = 1.3 - np.tanh(1.5 * x)
    return loss + np.where(x > 1.2, np.exp(4 * (x - 1.2)) - 1, 0.0)


def test_smooth_is_bias_corrected() -> None:
    assert smooth([5.0, 5.0, 5.0], beta=0.98) == pytest.approx([5.0, 5.0, 5.0])
    out = smooth([1.0, 3.0], beta=0.5)
    assert out[0] == pytest.approx(1.0) and out[1] == pytest.approx((0.25 + 1.5) / 0.75)


@pytest.mark.parametrize("centre", [1e-4, 1e-3, 1e-2])
def test_rules_find_the_known_descent(centre: float) -> None:
    lrs = ramp()
    losses = valley_curve(lrs, centre)
    found = suggest_all(lrs, losses, beta=0.0)  # no smoothing: the exact curve
    # steepest fall of tanh is at its centre; valley's run spans the whole drop
    assert found["steepest"].lr == pytest.approx(centre, rel=0.35)
    assert centre / 10 < found["valley"].lr < centre * 10
    assert found["minimum"].lr < found["minimum"].lr * 10 < 1.0
    assert all(s.lr is None or lrs[0] <= s.lr <= lrs[-1] for s in found.values())


def test_smoothing_tolerates_noise() -> None:
    lrs = ramp(200)
    noisy = valley_curve(lrs, 1e-3) + np.random.default_rng(0).normal(0, 0.15, 200)
    found = suggest_all(lrs, noisy, beta=0.9)
    assert 1e-4 < found["valley"].lr < 1e-2
    assert 1e-4 < found["steepest"].lr < 1e-1


@pytest.mark.parametrize(
    ("losses", "note"),
    [
        (np.full(100, 2.3), "flat"),
        (np.linspace(1.0, 3.0, 100), "never falls|no run of 3|lowest at the first"),
        ([2.3, 2.2], "too short"),
        ([], "too short"),
        ([math.nan] * 50, "too short"),
    ],
)
def test_no_descent_is_a_clear_answer_not_a_crash(losses, note: str) -> None:
    lrs = ramp(len(losses)) if len(losses) > 1 else np.full(len(losses), 1e-3)
    for rule in (steepest, valley, minimum):
        result = rule(lrs, losses)
        assert result.lr is None, rule.__name__
        assert any(word in result.note for word in note.split("|")), (rule.__name__, result.note)


def test_a_curve_that_barely_falls_is_flat_for_every_rule() -> None:
    """The 178-row wine table's sweep: the smoothed loss went 2.356 -> 2.31 over the ramp
    before it rose, and ``minimum`` read 0.1 off the noise. A fall under 5% of the start
    says nothing; a real fall of the same shape, deeper, still gives every rule an LR."""
    lrs = ramp(60)
    noise = np.random.default_rng(1).normal(0, 0.01, 60)
    shallow = 2.356 - 0.05 * np.exp(-(((np.log10(lrs) + 1.5) / 1.2) ** 2)) + noise
    shallow[-6:] += np.linspace(0.5, 3.0, 6)
    for rule in (steepest, valley, minimum):
        result = rule(lrs, shallow)
        assert result.lr is None and "flat" in result.note, (rule.__name__, result.note)
    assert "falls 1.1% below its start, 2.359 to 2.333" in minimum(lrs, shallow).note
    deep = shallow.copy()
    deep[:-6] = 2.356 - 1.5 * np.exp(-(((np.log10(lrs[:-6]) + 1.5) / 1.2) ** 2)) + noise[:-6]
    assert all(rule(lrs, deep).lr is not None for rule in (steepest, valley, minimum))


def test_nan_tail_is_cut_off() -> None:
    lrs = ramp()
    losses = valley_curve(lrs, 1e-3)
    losses[80:] = math.nan
    found = suggest_all(lrs, losses, beta=0.0)
    assert all(s.lr is not None and s.lr < lrs[80] for s in found.values())


def test_steepest_skips_begin_and_end_and_handles_short_curves() -> None:
    lrs = ramp(20)
    losses = valley_curve(lrs, 1e-3)
    assert steepest(lrs, losses, skip_begin=10, skip_end=5, window=5).lr is None  # 20 < 21
    assert steepest(lrs, losses, skip_begin=2, skip_end=2, window=2).lr is not None


def test_minimum_is_a_tenth_of_the_lowest_point() -> None:
    lrs = ramp(50)
    losses = (np.log10(lrs) + 2) ** 2 + 1  # lowest at 1e-2
    result = minimum(lrs, losses, beta=0.0)
    assert result.lr == pytest.approx(lrs[np.argmin(losses)] / 10)


def test_mismatched_lengths_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        valley([1e-3, 1e-2], [1.0])


def test_choose_falls_back_through_methods() -> None:
    lrs = ramp()
    found = suggest_all(lrs, valley_curve(lrs), beta=0.0)
    assert choose(found, "steepest") == (found["steepest"].lr, "steepest")
    flat = suggest_all(lrs, np.full(100, 1.0))
    assert choose(flat, "valley") is None
    partial = dict(flat, minimum=found["minimum"])
    assert choose(partial, "valley") == (found["minimum"].lr, "minimum")
