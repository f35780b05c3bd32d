"""The parent's decisions about its children, without Prefect: retries, failures, keys."""

from __future__ import annotations

from nighttune.tasks.dispatch.policy import (
    MAX_ATTEMPTS,
    ChildState,
    failed_rows,
    failure,
    idempotency_key,
    next_attempt,
    pool_problem,
    timed_out,
)

FAILED = ChildState("brave-fox", final=True, kind="FAILED", message="OOM")
DONE = ChildState("calm-owl", final=True, completed=True, kind="COMPLETED")
RUNNING = ChildState("busy-bee", kind="RUNNING")


def test_a_reused_failed_child_runs_again_until_the_attempts_run_out() -> None:
    attempts, attempt = [0], 0
    while (attempt := next_attempt(True, FAILED, attempt)) is not None:  # type: ignore[assignment]
        attempts.append(attempt)
    assert attempts == list(range(MAX_ATTEMPTS))


def test_new_running_or_completed_children_are_waited_on() -> None:
    assert next_attempt(False, FAILED, 0) is None  # just started: its own failure is final
    assert next_attempt(True, RUNNING, 0) is None
    assert next_attempt(True, DONE, 0) is None
    assert next_attempt(True, None, 0) is None


def test_keys_differ_by_parent_batch_and_attempt() -> None:
    keys = {idempotency_key(p, b, a) for p in ("r1", "r2") for b in (32, 64) for a in (0, 1)}
    assert len(keys) == 8


def test_failures_say_which_run_and_why() -> None:
    assert failure(FAILED) == "train-trial run brave-fox ended FAILED: OOM"
    assert failure(DONE).endswith("ended COMPLETED without publishing a result")
    assert timed_out("slow-cat", 60, True) == "train-trial run slow-cat did not finish within 60 s"
    assert timed_out("idle-cat", 60, False).endswith("; it never started and was cancelled")


def test_a_pool_that_will_not_start_children_is_named_with_the_fix() -> None:
    paused = pool_problem("gpu", "PAUSED", 2)
    assert paused.startswith("work pool 'gpu' is paused: 2 child run(s) wait")
    assert "prefect work-pool resume gpu" in paused
    idle = pool_problem("gpu", "NOT_READY", 1)
    assert "no worker of work pool 'gpu' is online" in idle
    assert "prefect worker start --pool gpu" in idle
    assert pool_problem("gpu", "READY", 3) is None


def test_a_batch_without_result_is_one_failed_row_per_patience() -> None:
    rows = failed_rows((6, 3), 64, "x" * 2000)
    assert [r.patience for r in rows] == [3, 6]
    assert all(r.status == "failed" and r.batch_size == 64 and r.lr is None for r in rows)
    assert len(rows[0].error or "") == 500


def test_a_child_stops_training_in_time_to_hand_over() -> None:
    from nighttune.tasks.dispatch.policy import child_stop_at

    assert child_stop_at(1000.0, 0.0) == 1000.0 - 60.0  # a long night: a minute before
    assert child_stop_at(1000.0, 900.0) == 1000.0 - 15.0  # 15% of the 100 s left
    assert child_stop_at(1000.0, 990.0) == 1000.0 - 5.0  # at least two polls and a publish


def test_children_take_turns_on_the_gpu_slots() -> None:
    from nighttune.tasks.dispatch.policy import turns

    assert turns(3, 1) == 3  # one slot: one after another
    assert turns(3, 2) == 2
    assert turns(2, 2) == 1
    assert turns(3, None) == 1  # no limit: all at once
    assert turns(0, 2) == 1


def test_a_result_planned_shorter_by_a_time_budget_is_not_reused() -> None:
    from nighttune.tasks.core.records import TrialResult
    from nighttune.tasks.dispatch.handoff import cut_short

    full = TrialResult(batch_size=32, patience=3, lr=0.01, lr_method="steepest", epochs_run=20)
    planned = full.model_copy(update={"planned_epochs": 7, "epochs_run": 7})
    cut = full.model_copy(update={"status": "not run", "epochs_run": None})
    assert not cut_short([full, full])
    assert cut_short([full, planned])
    assert cut_short([full.model_dump(), cut.model_dump()])  # as published
