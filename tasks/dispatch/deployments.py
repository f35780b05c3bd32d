"""Fanning trials out to workers: one `train-trial` deployment run per batch size.

The Prefect calls only: what a child's state means, and when to try again, is
`tasks.dispatch.policy`; how results travel back is `tasks.dispatch.handoff`.
"""

from __future__ import annotations

import time
from typing import Any

from tasks.core.config import TuneConfig
from tasks.core.errors import ConfigError
from tasks.core.logs import get_logger
from tasks.core.records import LRSweep, TrialResult
from tasks.dispatch.handoff import expected_code, read_published
from tasks.dispatch.policy import (
    POLL_SECONDS,
    ChildState,
    failed_rows,
    failure,
    idempotency_key,
    next_attempt,
    timed_out,
)

Result = tuple[LRSweep | None, list[TrialResult]]


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


def _state(run: Any, state: Any) -> ChildState | None:
    if state is None:
        return None
    return ChildState(
        run.name, state.is_final(), state.is_completed(), state.type.value, state.message
    )


class ChildRuns:
    """One child flow run per batch size, started (or got back) and waited for."""

    def __init__(self, config: TuneConfig, parent_id: str) -> None:
        self.config, self.parent_id = config, parent_id
        self.code = expected_code(config)  # the builders every child must train with
        self.results: dict[int, Result] = {}
        self.waiting: dict[int, Any] = {}
        self.log = get_logger()

    def start(self, batch_size: int, attempt: int = 0) -> None:
        """Start the child (or get it back by its key); a reused child that failed
        in an earlier try is started again under the next attempt."""
        from prefect.deployments import run_deployment

        called = time.time()
        run: Any = run_deployment(
            self.config.trial_deployment,
            parameters={
                "config": self.config.model_dump(mode="json"),
                "batch_size": batch_size,
                "code": self.code,
            },
            timeout=0,
            idempotency_key=idempotency_key(self.parent_id, batch_size, attempt),
            as_subflow=True,
        )
        reused = run.created is not None and run.created.timestamp() < called - 1
        again = next_attempt(reused, _state(run, run.state), attempt)
        if again is not None:
            self.start(batch_size, again)
            return
        how = "reused" if reused else "started"
        self.log.info("batch size %d: child run %s (%s)", batch_size, run.name, how)
        self.waiting[batch_size] = run

    def collect(self, batch_size: int, state: ChildState) -> None:
        """A finished child: its published result, or failed rows saying why not."""
        published = read_published(self.config, batch_size) if state.completed else None
        if published is not None:
            self.results[batch_size] = published
            self.log.info("batch size %d: child %s completed", batch_size, state.name)
            return
        why = failure(state)
        self.log.error("batch size %d: %s", batch_size, why)
        self.results[batch_size] = (None, failed_rows(self.config.patiences, batch_size, why))

    def wait(self) -> None:
        """Poll until every child is final, or the timeout turns the rest into failed rows."""
        from prefect.client.orchestration import get_client

        deadline = time.monotonic() + self.config.trial_timeout_s
        with get_client(sync_client=True) as client:
            while self.waiting:
                for batch_size, run in list(self.waiting.items()):
                    state = _state(run, client.read_flow_run(run.id).state)
                    if state is not None and state.final:
                        del self.waiting[batch_size]
                        self.collect(batch_size, state)
                if self.waiting and time.monotonic() > deadline:
                    for batch_size, run in self.waiting.items():
                        why = timed_out(run.name, self.config.trial_timeout_s)
                        rows = failed_rows(self.config.patiences, batch_size, why)
                        self.results[batch_size] = (None, rows)
                    return
                if self.waiting:
                    time.sleep(POLL_SECONDS)


def run_trials_on_deployments(
    config: TuneConfig, parent_id: str
) -> tuple[list[LRSweep], list[TrialResult]]:
    """Start (or reuse) one child run per batch size, wait for all, gather their rows."""
    children = ChildRuns(config, parent_id)
    for batch_size in config.batch_sizes:
        published = read_published(config, batch_size)
        if published is not None:
            children.log.info("batch size %d: published before, reusing it", batch_size)
            children.results[batch_size] = published
        else:
            children.start(batch_size)
    children.wait()
    results = [children.results[b] for b in config.batch_sizes]
    sweeps = [sweep for sweep, _ in results if sweep is not None]
    return sweeps, [row for _, rows in results for row in rows]
