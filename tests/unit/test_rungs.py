"""The bracket and its successive halving, on made-up rung results (no fitting)."""

from __future__ import annotations

import pytest

from nighttune.tasks.core.records import LRSweep, RungResult
from nighttune.tasks.tuning.rungs import Rung, bracket, halving_plan, promote


def result(lr: float, value: float | None, *, factor: float = 1.0, rung: int = 0) -> RungResult:
    return RungResult(
        batch_size=32,
        rung=rung,
        epochs=2,
        lr=lr,
        lr_method="steepest",
        lr_factor=factor,
        value=value,
    )


def test_the_bracket_starts_at_the_suggestion_then_alternates_below_and_above() -> None:
    found = bracket(0.01, "steepest", width=5, factor=2.0)
    assert [c.lr for c in found] == pytest.approx([0.01, 0.005, 0.02, 0.0025, 0.04])
    assert [c.label for c in found] == [
        "steepest",
        "steepest /2",
        "steepest x2",
        "steepest /4",
        "steepest x4",
    ]
    assert [c.lr for c in bracket(0.01, "valley", width=1, factor=3.0)] == [0.01]


def test_an_even_width_ends_below_the_suggestion() -> None:
    found = bracket(0.09, "minimum", width=2, factor=3.0)
    assert [c.lr for c in found] == pytest.approx([0.09, 0.03])


@pytest.mark.parametrize(
    ("width", "eta", "first", "max_epochs", "plan"),
    [
        (1, 3, 2, 20, []),  # one candidate: nothing to tell apart
        (3, 3, 2, 20, [Rung(3, 2, 1)]),
        (9, 3, 1, 20, [Rung(9, 1, 3), Rung(3, 3, 1)]),
        (8, 2, 1, 20, [Rung(8, 1, 4), Rung(4, 2, 2), Rung(2, 4, 1)]),
        (5, 3, 2, 20, [Rung(5, 2, 1)]),
        (27, 3, 2, 10, [Rung(27, 2, 9), Rung(9, 6, 1)]),  # the next rung would be the trial
        (3, 3, 2, 2, []),  # the first rung as long as the trial: no rungs
    ],
)
def test_the_halving_plan(width, eta, first, max_epochs, plan) -> None:
    assert halving_plan(width, eta=eta, first_rung=first, max_epochs=max_epochs) == plan


def test_promote_keeps_the_best_for_a_metric_that_grows() -> None:
    marked = promote(
        [result(0.01, 0.90), result(0.005, 0.93, factor=0.5), result(0.02, 0.91, factor=2.0)],
        keep=1,
        direction="max",
    )
    assert [r.promoted for r in marked] == [False, True, False]
    assert marked[1].why == "1st of 3 after 2 epochs (0.9300): went on"
    assert marked[0].why == "3rd of 3 after 2 epochs (0.9000; best 0.9300, steepest /2): stopped"


def test_promote_keeps_the_lowest_for_a_loss() -> None:
    marked = promote(
        [result(0.01, 0.30), result(0.005, 0.25), result(0.02, 0.40), result(0.0025, 0.20)],
        keep=2,
        direction="min",
    )
    assert [r.promoted for r in marked] == [False, True, False, True]


def test_a_failed_fit_ranks_last_and_a_tie_keeps_bracket_order() -> None:
    marked = promote(
        [result(0.01, 0.9), result(0.005, 0.9), result(0.02, None)], keep=1, direction="max"
    )
    assert [r.promoted for r in marked] == [True, False, False]
    assert marked[2].why == "3rd of 3 after 2 epochs (failed): stopped"


def test_when_every_fit_failed_the_lowest_rate_goes_on() -> None:
    marked = promote(
        [result(0.01, None), result(0.005, None), result(0.02, None)], keep=1, direction="max"
    )
    assert [r.promoted for r in marked] == [False, True, False]


def test_the_trial_takes_the_last_rungs_promoted_candidate() -> None:
    sweep = LRSweep(
        batch_size=32,
        lrs=[],
        losses=[],
        smoothed=[],
        suggestions={},
        notes={},
        chosen_lr=0.01,
        method="steepest",
        steps=50,
        stop_reason="",
        seconds=1.0,
    )
    assert sweep.trial_lr() == (0.01, 1.0)  # no bracket: the suggestion
    rungs = [
        result(0.03, 0.9, factor=3.0).model_copy(update={"promoted": True}),
        result(0.01, 0.8),
        result(0.03, 0.91, factor=3.0, rung=1),
        result(0.09, 0.95, factor=9.0, rung=1).model_copy(update={"promoted": True}),
    ]
    assert sweep.model_copy(update={"rungs": rungs}).trial_lr() == (0.09, 9.0)


def test_a_centred_bracket_is_built_around_its_centre_and_says_its_multiples() -> None:
    found = bracket(0.03, "steepest", width=3, factor=3.0, center=1 / 3)
    assert [c.lr for c in found] == pytest.approx([0.01, 0.01 / 3, 0.03])
    assert [c.factor for c in found] == pytest.approx([1 / 3, 1 / 9, 1.0])
    assert [c.label for c in found] == ["steepest /3", "steepest /9", "steepest"]


def test_without_rungs_the_trial_takes_the_centre_times_the_suggestion() -> None:
    sweep = LRSweep(
        batch_size=32,
        lrs=[],
        losses=[],
        smoothed=[],
        suggestions={},
        notes={},
        chosen_lr=0.03,
        method="steepest",
        steps=50,
        stop_reason="",
        seconds=1.0,
    )
    assert sweep.trial_lr(0.5) == pytest.approx((0.015, 0.5))
