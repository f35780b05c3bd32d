"""The hurdle's record and bar, on made-up curves (no TensorFlow)."""

from __future__ import annotations

import math

from nighttune.tasks.tuning.hurdle import Bar, Hurdle, hurdle_epoch


def test_the_hurdle_stands_at_a_third_of_the_epochs() -> None:
    assert [hurdle_epoch(n) for n in (1, 2, 3, 15, 20, 30)] == [1, 1, 1, 5, 7, 10]


def test_no_bar_before_a_fit_has_run() -> None:
    assert Hurdle("max").bar(30) is None


def test_the_bar_is_the_best_value_reached_by_the_hurdle_epoch() -> None:
    """By epoch 2 (of 6), b32 had reached 0.7 (its best so far, not its value then) and
    b64 0.8: the bar is b64's. What b32 reached later does not count."""
    race = Hurdle("max")
    race.record(32, [0.7, 0.6, 0.95, 0.99])
    race.record(64, [0.5, 0.8, 0.81])
    assert race.bar(6) == Bar(epoch=2, value=0.8, batch_size=64)


def test_a_loss_is_a_bar_from_below_and_nan_epochs_never_count() -> None:
    race = Hurdle("min")
    race.record(128, [math.nan, 0.9, 0.4])
    race.record(256, [math.nan, math.nan, math.nan])  # diverged: reached nothing
    assert race.bar(9) == Bar(epoch=3, value=0.4, batch_size=128)
    only_nan = Hurdle("min")
    only_nan.record(32, [math.nan])
    assert only_nan.bar(9) is None


def test_a_fit_that_ended_before_the_hurdle_counts_with_what_it_reached() -> None:
    race = Hurdle("max")
    race.record(32, [0.6, 0.7])  # every patience stopped after 2 epochs
    assert race.bar(30) == Bar(epoch=10, value=0.7, batch_size=32)


def test_behind_means_short_of_the_bar_by_more_than_min_delta() -> None:
    bar = Bar(epoch=5, value=0.80, batch_size=32)
    assert bar.behind(0.79, mode="max", min_delta=0.0)
    assert not bar.behind(0.80, mode="max", min_delta=0.0)  # level is not behind
    assert not bar.behind(0.79, mode="max", min_delta=0.02)
    loss = Bar(epoch=5, value=0.40, batch_size=32)
    assert loss.behind(0.41, mode="min", min_delta=0.0)
    assert not loss.behind(0.39, mode="min", min_delta=0.0)
