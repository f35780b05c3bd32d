"""What the parent decides about its children, apart from how it asks Prefect.

`run_deployment` does not raise when a child fails or times out: each child's final
state is read, and a child that did not complete becomes failed rows. Idempotency
keys carry the parent run and an attempt number: a retried parent gets its running
or finished children back, and starts a failed child again under the next attempt,
up to `MAX_ATTEMPTS`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nighttune.tasks.core.records import TrialResult, rows_without_result

POLL_SECONDS = 2.0
POOL_CHECK_SECONDS = 30.0  # how often a parent with waiting children looks at their pool
MAX_ATTEMPTS = 3
MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class ChildState:
    """A child run's state as the parent sees it (Prefect's, reduced to what decides)."""

    name: str
    final: bool = False
    completed: bool = False
    kind: str = "PENDING"  # Prefect's state type: COMPLETED, FAILED, CRASHED, ...
    message: str | None = None


def idempotency_key(parent_id: str, batch_size: int, attempt: int) -> str:
    return f"{parent_id}:b{batch_size}:attempt{attempt}"


def next_attempt(reused: bool, state: ChildState | None, attempt: int) -> int | None:
    """The attempt to start when the child handed back is an earlier try's failure and
    tries are left; None: wait on the child handed back."""
    failed_before = reused and state is not None and state.final and not state.completed
    if failed_before and attempt + 1 < MAX_ATTEMPTS:
        return attempt + 1
    return None


def failure(state: ChildState) -> str:
    """Why a finished child gave no result (a completed one that published nothing too)."""
    why = f"train-trial run {state.name} ended {state.kind}"
    why += f": {state.message}" if state.message else ""
    if state.completed:
        why += " without publishing a result"
    return why


def timed_out(name: str, timeout_s: int, started: bool) -> str:
    why = f"train-trial run {name} did not finish within {timeout_s} s"
    return why if started else f"{why}; it never started and was cancelled"


NOT_STARTED = {"SCHEDULED", "PENDING"}  # Prefect's state types of a run no worker has begun


def pool_problem(pool: str, status: str | None, waiting: int) -> str | None:
    """Why ``waiting`` scheduled children will not start, from their work pool's status
    (Prefect's READY / NOT_READY / PAUSED), or None."""
    if status == "PAUSED":
        return (
            f"work pool '{pool}' is paused: {waiting} child run(s) wait until it is resumed "
            f"(prefect work-pool resume {pool})"
        )
    if status == "NOT_READY":
        return (
            f"no worker of work pool '{pool}' is online: {waiting} child run(s) wait for one "
            f"(start one: prefect worker start --pool {pool})"
        )
    return None


def turns(children: int, slots: int | None) -> int:
    """How many turns ``children`` take on ``slots`` gpu slots (the ``gpu`` tag's
    concurrency limit; None: no limit, every child trains at once)."""
    if not slots or slots <= 0:
        return 1
    return max(1, math.ceil(children / slots))


def failed_rows(patiences: tuple[int, ...], batch_size: int, error: str) -> list[TrialResult]:
    """The rows of a batch size whose child gave no result: one failed row per patience."""
    return rows_without_result(
        patiences, batch_size, status="failed", error=error[:MAX_ERROR_CHARS]
    )


def child_stop_at(stop_at: float, now: float) -> float:
    """When a child's training must stop for its result to be evaluated, published and
    read by the parent by ``stop_at`` (the parent's own end of training): 15% of the time
    left, at least 5 s (two polls and a publish), at most a minute."""
    return stop_at - min(60.0, max(5.0, 0.15 * (stop_at - now)))
