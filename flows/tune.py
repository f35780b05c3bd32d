"""The `tune` flow: dataset -> LR sweep per batch size -> trials -> select -> export.

Every step is a Prefect task that keeps its finished work in the store
(`tasks.storage.store`), keyed by its inputs, so rerunning the same config after a crash
reuses the dataset, the sweeps and the trials that were done, and only redoes the
rest. Tasks are tagged ``cpu`` or ``gpu`` for work pools and concurrency limits.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prefect import flow
from prefect.runtime import flow_run

from flows import startup
from flows.steps import cache_dataset, export_run, lr_sweep, preflight, train_trial
from tasks.core.config import TuneConfig
from tasks.core.logs import get_logger
from tasks.core.records import ExportResult, LRSweep, TrialResult, TuneResult
from tasks.data.datasets import CachedDataset
from tasks.dispatch.deployments import run_trials_on_deployments, with_deployment_config
from tasks.runs.export import new_run_id
from tasks.runs.notify import context_of, notify_failed, notify_finished
from tasks.tuning.loops import memory_budget
from tasks.tuning.objective import resolve_objective
from tasks.tuning.selection import select_best


def publish_artifacts(
    rows: list[TrialResult],
    winner: TrialResult,
    export: ExportResult,
    seconds: dict[str, float],
    monitor: str,
) -> None:
    """The run in the Prefect UI: trials table, summary, link to the export."""
    import json

    from prefect.artifacts import (
        create_link_artifact,
        create_markdown_artifact,
        create_table_artifact,
    )

    from tasks.reporting.tables import trials_frame

    frame = trials_frame(rows, winner)
    create_table_artifact(
        json.loads(frame.to_json(orient="records")),
        key="trials",
        description="One row per batch size x patience",
    )
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items())
    promotion = export.promotion.text() if export.promotion else "not run"
    create_markdown_artifact(
        f"## nighttune run {export.run_id}\n\n"
        f"Winner: batch size **{winner.batch_size}**, patience **{winner.patience}**, "
        f"lr {winner.lr:.3g}; **{winner.scores_text(monitor)}**.\n\nTiming: {timing}.\n\n"
        f"Champion gate: **{promotion}**.\n\nExport: `{export.uri}`",
        key="tune-summary",
    )
    create_link_artifact(export.uri, link_text=f"export {export.run_id}", key="tune-export")


def _local_grid(
    config: TuneConfig, cached: CachedDataset, lap: Callable[[str], None]
) -> tuple[list[LRSweep], list[TrialResult]]:
    """The sweeps, then the trials, here: one of each per batch size."""
    sweeps = [
        lr_sweep(
            cached,
            config.model,
            b,
            *(config.lr_range, config.seed, config.cache_dir),
            fresh=config.fresh,
            budget=memory_budget(config),
        )
        for b in config.batch_sizes
    ]
    lap("sweeps")
    rows = [
        row
        for sweep in sweeps
        for row in train_trial(cached, config, sweep.batch_size, sweep.chosen_lr, sweep.method)
    ]
    return sweeps, rows


@flow(name="tune", log_prints=False)
def tune(config: TuneConfig | None = None) -> TuneResult:
    """Tune batch size x patience for ``config``, export the best model, promote it if
    it beats the model in service, and tell ``notify_url`` when the night went wrong."""
    config = with_deployment_config(config or TuneConfig())
    run_id = new_run_id()
    context = context_of(config) | {"flow_run": _flow_run_link()}
    try:
        result = _tune(config, run_id)
    except Exception as exc:
        notify_failed(config, run_id, exc, context)
        raise
    notify_finished(config, result, context)
    return result


def _flow_run_link() -> str | None:
    """This flow run's page in the Prefect UI, if there is a UI to link to."""
    from prefect.settings import PREFECT_UI_URL

    base, run = PREFECT_UI_URL.value(), flow_run.get_id()
    return f"{base}/flow-runs/flow-run/{run}" if base and run else None


def _tune(config: TuneConfig, run_id: str) -> TuneResult:
    log = get_logger()
    preflight(config)  # a scheduled run with a bad target fails here, not at export
    seconds: dict[str, float] = {}
    if (spent := startup.take()) is not None:  # run from the command line
        seconds["start-up"] = spent
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = round(now - clock, 3)
        clock = now

    dataset = config.dataset.model_copy(update={"cache": False}) if config.fresh else config.dataset
    cached = cache_dataset(dataset, config.cache_dir)  # rebuilt here, if at all: not by children
    # The model against the real data (a user's builder is first built here).
    objective = resolve_objective(config, cached)
    lap("data")
    if config.dispatch == "deployments":
        # One child run per batch size on the trial deployment's pool; each does its
        # sweep and its trial, so both are timed together.
        sweeps, rows = run_trials_on_deployments(config, str(flow_run.id))
        lap("sweeps and trials (workers)")
    else:
        sweeps, rows = _local_grid(config, cached, lap)
        lap("trials")
    for sweep in sweeps:
        log.info("batch size %d: lr %.3g (%s)", sweep.batch_size, sweep.chosen_lr, sweep.method)
    winner = select_best(rows, objective.column, objective.direction)
    log.info(
        "winner: batch size %d, patience %d, %s %.4f",
        winner.batch_size,
        winner.patience,
        objective.column,
        winner.value(objective.column),
    )
    export = export_run(config, cached, sweeps, rows, winner, run_id, dict(seconds))
    lap("export")
    publish_artifacts(rows, winner, export, seconds, config.monitor)
    return TuneResult(
        run_id=run_id,
        export=export,
        winner=winner,
        rows=rows,
        seconds=seconds,
        monitor=config.monitor,
        sweeps_reused=sum(sweep.reused for sweep in sweeps),
    )
