"""A night's time: durations, deadlines, the run's clock and what fits in it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from nighttune.tasks.core.budget import (
    EXPORT_RESERVE_S,
    check_deadline,
    next_deadline,
    parse_duration,
    planned_epochs,
    run_clock,
    trial_fits,
)


@pytest.mark.parametrize(
    ("given", "seconds"),
    [
        (5400, 5400.0),
        ("5400", 5400.0),
        ("90m", 5400.0),
        ("2h", 7200.0),
        ("1h30m", 5400.0),
        ("45s", 45.0),
        ("1.5h", 5400.0),
        (" 2H ", 7200.0),
    ],
)
def test_durations(given, seconds):
    assert parse_duration(given) == seconds


@pytest.mark.parametrize("given", ["", "soon", "90x", "m", "-5", 0, "0m", True])
def test_bad_durations_say_what_to_give(given):
    with pytest.raises(ValueError, match="give seconds or a duration|more than 0"):
        parse_duration(given)


def test_deadlines_are_the_next_such_time_of_day_in_the_schedules_zone():
    assert check_deadline("06:30") == "06:30"
    for bad in ("6.30", "24:00", "06:60", "morning"):
        with pytest.raises(ValueError, match="HH:MM"):
            check_deadline(bad)
    night = datetime(2026, 12, 4, 1, 0, tzinfo=UTC)  # 02:00 in Berlin
    at = next_deadline("06:30", "Europe/Berlin", night)
    assert at.isoformat() == "2026-12-04T06:30:00+01:00"
    late = datetime(2026, 12, 4, 6, 0, tzinfo=UTC)  # 07:00 in Berlin: past 06:30
    assert next_deadline("06:30", "Europe/Berlin", late).day == 5


def test_the_clock_ends_at_the_earlier_limit_and_keeps_time_for_the_export():
    assert run_clock(1000.0, None, None, timezone="UTC") is None
    clock = run_clock(1000.0, 600.0, None, timezone="UTC")
    assert clock.ends_at == 1600.0 and clock.export_reserve == EXPORT_RESERVE_S
    assert clock.stop_at == 1600.0 - EXPORT_RESERVE_S and clock.left(1100.0) == 470.0
    assert run_clock(1000.0, 600.0, None, timezone="UTC", export_s=40.0).export_reserve == 80.0
    assert run_clock(1000.0, 600.0, None, timezone="UTC", export_s=1.0).export_reserve == 10.0
    assert run_clock(1000.0, 60.0, None, timezone="UTC").export_reserve == 15.0  # a quarter at most
    started = datetime(2026, 12, 4, 5, 50, tzinfo=UTC).timestamp()
    by_deadline = run_clock(started, 7200.0, "06:00", timezone="UTC")
    assert by_deadline.ends_at == started + 600  # 06:00 comes before the two hours


def test_a_trial_starts_only_when_its_smallest_patience_can_stop_in_time():
    assert trial_fits(100.0, None, 3)  # nothing known yet: try
    assert trial_fits(100.0, 20.0, 3)  # 4 epochs of 20 s
    assert not trial_fits(70.0, 20.0, 3)
    assert not trial_fits(0.0, None, 3)


def test_an_annealed_schedule_is_planned_to_end_within_its_share_of_the_time_left():
    # 300 s for 3 trials at 10 s an epoch: 10 epochs each, so each one anneals in time
    assert planned_epochs(300.0, 10.0, max_epochs=30, trials_left=3) == 10
    assert planned_epochs(300.0, 10.0, max_epochs=30, trials_left=1) == 30  # capped
    assert planned_epochs(300.0, 10.0, max_epochs=50, trials_left=1) == 30
    assert planned_epochs(5.0, 10.0, max_epochs=30, trials_left=2) == 1  # at least one
    assert planned_epochs(-4.0, 10.0, max_epochs=30, trials_left=2) == 1
    # Never timed: no plan; the fit is cut at an epoch boundary as before
    assert planned_epochs(300.0, None, max_epochs=30, trials_left=3) == 30


def _context(schedule: str, max_epochs: int = 30):
    from pathlib import Path

    from nighttune.tasks.core.config import TuneConfig
    from nighttune.tasks.core.objective import Objective
    from nighttune.tasks.tuning.context import TrialContext

    spec = TuneConfig(lr_schedule=schedule, max_epochs=max_epochs).trial
    return TrialContext(
        spec=spec,
        objective=Objective(monitor="val_accuracy", direction="max"),
        store=Path("."),
        fresh=False,
        memory_budget=1 << 30,
        xla=False,
        xla_why="",
    )


def test_a_trial_plans_its_schedule_within_its_share_and_the_parents_plan():
    from nighttune.tasks.tuning.context import within_budget

    run = _context("cosine")
    planned = within_budget(run, 32, left=100.0, epoch_s=10.0, trials_left=2)
    assert planned.spec.max_epochs == 5 and planned.planned
    assert run.spec.max_epochs == 30 and not run.planned  # the config's run is untouched
    # A child run: the parent's share (``at_most``) and the child's own time left
    child = within_budget(run, 32, left=100.0, epoch_s=10.0, trials_left=1, at_most=4)
    assert child.spec.max_epochs == 4 and child.planned
    late = within_budget(run, 32, left=25.0, epoch_s=10.0, trials_left=1, at_most=4)
    assert late.spec.max_epochs == 2
    # Time for every epoch, no timing known, or a constant rate: no plan
    assert within_budget(run, 32, left=1000.0, epoch_s=10.0, trials_left=1) is run
    assert within_budget(run, 32, left=100.0, epoch_s=None, trials_left=1, at_most=4) is run
    constant = _context("constant")
    assert within_budget(constant, 32, left=10.0, epoch_s=10.0, trials_left=1) is constant
