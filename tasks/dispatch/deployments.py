"""Fanning trials out to workers: one `train-trial` deployment run per batch size.

The Prefect calls only: what a child's state means, and when to try again, is
`tasks.dispatch.policy`; how results travel back is `tasks.dispatch.handoff`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from nighttune.tasks.core.budget import not_run_rows, planned_epochs
from nighttune.tasks.core.config import TuneConfig
from nighttune.tasks.core.config_file import deep_merge, parse
from nighttune.tasks.core.errors import ConfigError
from nighttune.tasks.core.logs import get_logger
from nighttune.tasks.core.records import LRSweep, TrialResult
from nighttune.tasks.dispatch.handoff import expected_code, read_published, reusable_result
from nighttune.tasks.dispatch.policy import (
    NOT_STARTED,
    POLL_SECONDS,
    POOL_CHECK_SECONDS,
    ChildState,
    child_stop_at,
    failed_rows,
    failure,
    idempotency_key,
    next_attempt,
    pool_problem,
    timed_out,
    turns,
)
from nighttune.tasks.storage.target import Target

Result = tuple[LRSweep | None, list[TrialResult]]
REPEAT_WARNING_S = 600.0


def check_deployment(name: str) -> None:
    """Refuse at once if the trial deployment or its work pool is missing."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        raise ConfigError(
            "dispatch 'deployments' needs a Prefect server: set PREFECT_API_URL "
            "(make server; make pools deploy)"
        )
    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name(name)
        except ObjectNotFound:
            raise ConfigError(
                f"deployment '{name}' not found on {url}; create it with `make deploy`"
            ) from None
        pool = deployment.work_pool_name or "(none)"
        try:
            client.read_work_pool(pool)
        except ObjectNotFound:
            raise ConfigError(
                f"work pool '{pool}' of deployment '{name}' not found on {url}; "
                "create it with `make pools`"
            ) from None


def gpu_slots() -> int | None:
    """The ``gpu`` tag's concurrency limit on the server (`make pools`), None if unset."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            return client.read_concurrency_limit_by_tag("gpu").concurrency_limit
        except ObjectNotFound:
            return None


def with_deployment_config(config: TuneConfig) -> TuneConfig:
    """For a flow run of a deployment: the ``config`` given at ``prefect deployment run
    -p`` merged key by key over the deployment's own (Prefect swaps the whole parameter),
    logged with where each key came from. Elsewhere, ``config`` as it is."""
    from prefect.client.orchestration import get_client
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    current = context.flow_run if context is not None else None
    if current is None or current.deployment_id is None:  # known here: no API call
        return config
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(current.id)  # the parameters as they were given
        deployment = client.read_deployment(current.deployment_id)
    base, given = deployment.parameters.get("config"), run.parameters.get("config")
    if not isinstance(base, dict) or not isinstance(given, dict) or base == given:
        return config
    merged, from_run = deep_merge(base, given)
    kept = sorted(key for key in base if key not in from_run)  # (or its other keys)
    get_logger().info(
        "config: %s from this run's parameters; %s from deployment %r",
        ", ".join(from_run) or "nothing",
        ", ".join(kept) or "nothing else",
        deployment.name,
    )
    return parse(TuneConfig, merged, "config.")


def _state(run: Any, state: Any) -> ChildState | None:
    if state is None:
        return None
    return ChildState(
        run.name, state.is_final(), state.is_completed(), state.type.value, state.message
    )


class ChildRuns:
    """One child flow run per batch size, started (or got back) and waited for."""

    def __init__(
        self,
        config: TuneConfig,
        parent_id: str,
        stop_at: float | None,
        *,
        target: Target,
        epoch_s: dict[int, float],
        turns: int = 1,
    ) -> None:
        self.config = config
        self.target = target  # where the children publish their results
        self.parent_id = parent_id
        self.stop_at = stop_at
        self.epoch_s = epoch_s  # earlier runs' seconds an epoch, by batch size
        self.turns = turns  # how many turns the children take on the gpu slots
        self.code = expected_code(config.trial)  # the builders every child must train with
        self.results: dict[int, Result] = {}
        self.waiting: dict[int, Any] = {}
        self.pool: str | None = None  # the trial deployment's work pool, once read
        self.said: tuple[str, float] = ("", 0.0)  # the last pool warning, and when
        self.budget_bound = False  # the wait ends with the time budget, not the timeout
        self.log = get_logger()

    def start(self, batch_size: int, attempt: int = 0) -> None:
        """Start the child (or get it back by its key); a reused child that failed
        in an earlier try is started again under the next attempt."""
        from prefect.deployments import run_deployment

        called = time.time()
        parameters: dict[str, Any] = {
            "config": self.config.model_dump(mode="json"),
            "batch_size": batch_size,
            "code": self.code,
        }
        if self.stop_at is not None:  # the child's fit stops in time to hand over
            stop_at = child_stop_at(self.stop_at, called)
            parameters["stop_at"] = stop_at
            parameters |= self._plan(batch_size, left=stop_at - called)
        run: Any = run_deployment(
            self.config.trial_deployment,
            parameters=parameters,
            timeout=0,
            idempotency_key=idempotency_key(self.parent_id, batch_size, attempt),
            as_subflow=True,
        )
        reused = run.created is not None and run.created.timestamp() < called - 1
        again = next_attempt(reused, _state(run, run.state), attempt)
        if again is not None:
            self.start(batch_size, again)
            return
        how = "reused" if reused else "scheduled"
        self.log.info("batch size %d: child run %s (%s)", batch_size, run.name, how)
        self.waiting[batch_size] = run

    def _plan(self, batch_size: int, *, left: float) -> dict[str, Any]:
        """What the child plans its schedule's length from (`within_budget`): earlier
        runs' seconds an epoch, and its share of the ``left`` seconds as epochs, the
        children taking `turns` on the gpu slots. Nothing where no run timed one."""
        epoch_s = self.epoch_s.get(batch_size)
        if epoch_s is None:
            return {}
        epochs = planned_epochs(
            left, epoch_s, max_epochs=self.config.max_epochs, trials_left=self.turns
        )
        return {"epoch_s": epoch_s, "epochs": epochs}

    def collect(self, batch_size: int, state: ChildState) -> None:
        """A finished child: its published result, or failed rows saying why not."""
        published = (
            read_published(self.config.trial, batch_size, target=self.target)
            if state.completed
            else None
        )
        if published is not None:
            self.results[batch_size] = published
            self.log.info("batch size %d: child %s completed", batch_size, state.name)
            return
        why = failure(state)
        self.log.error("batch size %d: %s", batch_size, why)
        self.results[batch_size] = (None, failed_rows(self.config.patiences, batch_size, why))

    def wait(self) -> None:
        """Poll until every child is final, or the timeout turns the rest into failed rows
        (children no worker began are cancelled: they would run whenever one appears).
        While children wait to start, their work pool is looked at every
        `POOL_CHECK_SECONDS`: paused, or with no worker online, is a warning."""
        from prefect.client.orchestration import get_client

        wait_s = float(self.config.trial_timeout_s)
        if self.stop_at is not None and self.stop_at - time.time() < wait_s:
            wait_s = max(self.stop_at - time.time(), 0.0)  # the time budget ends sooner
            self.budget_bound = True
        deadline = time.monotonic() + wait_s
        next_check = time.monotonic()
        with get_client(sync_client=True) as client:
            while self.waiting:
                states = {}
                for batch_size, run in list(self.waiting.items()):
                    state = _state(run, client.read_flow_run(run.id).state)
                    states[batch_size] = state
                    if state is not None and state.final:
                        del self.waiting[batch_size]
                        self.collect(batch_size, state)
                unstarted = [b for b in self.waiting if _not_started(states.get(b))]
                if unstarted and time.monotonic() >= next_check:
                    self._check_pool(client, len(unstarted))
                    next_check = time.monotonic() + POOL_CHECK_SECONDS
                if self.waiting and time.monotonic() > deadline:
                    self._give_up(client, states)
                    return
                if self.waiting:
                    time.sleep(POLL_SECONDS)

    def _check_pool(self, client: Any, waiting: int) -> None:
        """Warn when the trial pool will not start the waiting children (a warning is
        repeated when it changes, or every `REPEAT_WARNING_S`)."""
        if self.pool is None:
            deployment = client.read_deployment_by_name(self.config.trial_deployment)
            self.pool = deployment.work_pool_name
        found = client.read_work_pool(self.pool)
        status = "PAUSED" if found.is_paused else found.status.value if found.status else None
        problem = pool_problem(self.pool, status, waiting)
        now = time.monotonic()
        if problem and (problem != self.said[0] or now - self.said[1] > REPEAT_WARNING_S):
            self.log.warning("trials: %s", problem)
            self.said = (problem, now)

    def _give_up(self, client: Any, states: dict[int, ChildState | None]) -> None:
        """At the timeout every waiting child becomes failed rows (at the time budget's
        end, `not run` rows); those never started are cancelled."""
        from prefect.states import Cancelled

        for batch_size, run in self.waiting.items():
            started = not _not_started(states.get(batch_size))
            if not started:  # it would run whenever a worker appears: cancel it
                ended = "the time budget ended" if self.budget_bound else "timed out"
                message = f"cancelled by its parent: {ended} before it started"
                client.set_flow_run_state(run.id, Cancelled(message=message), force=True)
            if self.budget_bound:
                then = "finished" if started else "started"
                why = f"child {run.name}: the time budget ended before it {then}"
                rows = not_run_rows(self.config.patiences, batch_size, why)
            else:
                why = timed_out(run.name, self.config.trial_timeout_s, started)
                rows = failed_rows(self.config.patiences, batch_size, why)
            level = logging.WARNING if self.budget_bound else logging.ERROR
            self.log.log(level, "batch size %d: %s", batch_size, why)
            self.results[batch_size] = (None, rows)


def _not_started(state: ChildState | None) -> bool:
    return state is None or state.kind in NOT_STARTED


def run_trials_on_deployments(
    config: TuneConfig,
    parent_id: str,
    stop_at: float | None = None,
    *,
    target: Target,
    batch_sizes: tuple[int, ...] | None = None,
    epoch_s: dict[int, float] | None = None,
) -> tuple[list[LRSweep], list[TrialResult]]:
    """Start (or reuse) one child run per batch size (``batch_sizes``, default the grid's),
    wait for all (until ``stop_at``, the time budget's end, at most), gather their rows
    from what they published to ``target``. Under a time budget each child plans its
    annealed schedule to end in time, from earlier runs' seconds an epoch (``epoch_s``)."""
    if batch_sizes is None:
        batch_sizes = config.batch_sizes
    reused: dict[int, Result] = {}
    for batch_size in batch_sizes:
        published = reusable_result(config.trial, batch_size, target=target, fresh=config.fresh)
        if published is not None:
            get_logger().info("batch size %d: published before, reusing it", batch_size)
            reused[batch_size] = published
    to_start = [b for b in batch_sizes if b not in reused]
    shared = turns(len(to_start), gpu_slots()) if stop_at is not None and to_start else 1
    children = ChildRuns(
        config, parent_id, stop_at, target=target, epoch_s=epoch_s or {}, turns=shared
    )
    children.results.update(reused)
    for batch_size in to_start:
        children.start(batch_size)
    children.wait()
    results = [children.results[b] for b in batch_sizes]
    sweeps = [sweep for sweep, _ in results if sweep is not None]
    return sweeps, [row for _, rows in results for row in rows]
