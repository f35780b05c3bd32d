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

from nighttune.flows import startup
from nighttune.flows.secrets import secret_block
from nighttune.flows.steps import (
    cache_dataset,
    export_run,
    lr_bracket,
    lr_sweep,
    preflight,
    train_trial,
)
from nighttune.flows.target import export_target
from nighttune.tasks.core.budget import (
    RunClock,
    not_run_rows,
    planned_order,
    run_clock,
    trial_fits,
)
from nighttune.tasks.core.config import TuneConfig
from nighttune.tasks.core.logs import get_logger
from nighttune.tasks.core.records import (
    ExportResult,
    LRSweep,
    Selection,
    TrialResult,
    TuneResult,
    WarmStart,
    rows_without_result,
)
from nighttune.tasks.data.datasets import CachedDataset
from nighttune.tasks.dispatch.deployments import run_trials_on_deployments, with_deployment_config
from nighttune.tasks.runs.export import new_run_id
from nighttune.tasks.runs.history import past_timings
from nighttune.tasks.runs.notify import context_of, notify_failed, notify_finished, warn_if_plain
from nighttune.tasks.runs.warm_start import setup_fingerprint, warm_start
from nighttune.tasks.storage.target import Target
from nighttune.tasks.tuning.context import TrialContext, trial_context, within_budget
from nighttune.tasks.tuning.hurdle import Hurdle
from nighttune.tasks.tuning.models import model_key
from nighttune.tasks.tuning.selection import select
from nighttune.tasks.tuning.training import stored_values


def publish_artifacts(
    rows: list[TrialResult],
    winner: TrialResult,
    export: ExportResult,
    *,
    seconds: dict[str, float],
    monitor: str,
    selection: Selection,
) -> None:
    """The run in the Prefect UI: trials table, summary, link to the export."""
    import json

    from prefect.artifacts import (
        create_link_artifact,
        create_markdown_artifact,
        create_table_artifact,
    )

    from nighttune.tasks.reporting.tables import trials_frame, with_noise

    frame = with_noise(trials_frame(rows, winner), monitor, selection)
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
        f"Selection ({selection.rule}): {selection.reason}.\n\n"
        f"Champion gate: **{promotion}**.\n\nExport: `{export.uri}`",
        key="tune-summary",
    )
    create_link_artifact(export.uri, link_text=f"export {export.run_id}", key="tune-export")


def _local_grid(
    run: TrialContext,
    cached: CachedDataset,
    *,
    batch_sizes: tuple[int, ...],
    lap: Callable[[str], None],
    clock: RunClock | None,
    epoch_s: dict[int, float],
    hurdle: bool,
) -> tuple[list[LRSweep], list[TrialResult]]:
    """The sweeps, then each one's bracket (its rungs), then the trials, here: one of each
    per batch size, each after the first meeting the earlier ones' hurdle (``hurdle``;
    not under a time budget, whose planned schedules differ in length:
    `tasks.tuning.hurdle`). With a time budget (``clock``), cheapest batch sizes first
    (``epoch_s``: earlier runs' seconds an epoch), each started only while it fits (a
    bracket with no time left is skipped: its trial takes the suggestion), an annealed
    schedule planned to end in its share of the time (`within_budget`), every fit
    stopped where its next epoch would end too late."""
    spec = run.spec
    order = planned_order(batch_sizes, epoch_s)
    left_out: dict[int, str] = {}
    sweeps = []
    for b in order:
        if clock is not None and clock.left(time.time()) <= 0:
            left_out[b] = "not started: no time left for its LR sweep"
            continue
        sweeps.append(
            lr_sweep(
                cached,
                spec.model,
                b,
                spec=spec.lr_range,
                seed=spec.seed,
                cache_dir=str(run.store),
                fresh=run.fresh,
                budget=run.memory_budget,
            )
        )
    lap("sweeps")
    stop_at = clock.stop_at if clock is not None else None
    sweeps = [
        lr_bracket(cached, run, sweep, stop_at=stop_at)
        if clock is None or clock.left(time.time()) > 0
        else sweep
        for sweep in sweeps
    ]
    if any(sweep.rungs for sweep in sweeps):
        lap("rungs")
    rows: list[TrialResult] = []
    race = Hurdle(run.objective.direction) if hurdle and clock is None else None
    for done, sweep in enumerate(sweeps):
        b = sweep.batch_size
        planned = run
        if clock is not None:
            left = clock.left(time.time())
            planned = within_budget(
                run, b, left=left, epoch_s=epoch_s.get(b), trials_left=len(sweeps) - done
            )
            # A planned schedule runs to its end: one epoch must fit, not a patience
            needs = 0 if planned is not run else min(spec.patiences)
            if not trial_fits(left, epoch_s.get(b), needs):
                left_out[b] = f"not started: {max(left, 0):.0f} s left"
                continue
        lr, factor = sweep.trial_lr(spec.lr_bracket.center_factor)
        rows += train_trial(
            cached,
            planned,
            b,
            lr=lr,
            lr_method=sweep.method,
            lr_factor=factor,
            stop_at=stop_at,
            hurdle=race,
        )
    for b, why in left_out.items():
        get_logger().warning("batch size %d: time budget: %s", b, why)
        rows += not_run_rows(spec.patiences, b, why)
    return sweeps, sorted(rows, key=lambda r: (r.batch_size, r.patience))


@flow(name="tune", log_prints=False)
def tune(config: TuneConfig | None = None) -> TuneResult:
    """Tune batch size x patience for ``config``, export the best model, promote it if
    it beats the model in service, and tell the webhook (``notify_url``, read where this
    runs) when the night went wrong."""
    config = with_deployment_config(config or TuneConfig())
    warn_if_plain(config)
    run_id = new_run_id()
    context = context_of(config) | {"flow_run": _flow_run_link()}
    try:
        target = export_target(config)  # the one target of this run
        result = _tune(config, run_id, target=target)
    except Exception as exc:
        notify_failed(config, run_id, exc, context=context, read_secret=secret_block)
        raise
    notify_finished(config, result, context, target=target, read_secret=secret_block)
    return result


def _flow_run_link() -> str | None:
    """This flow run's page in the Prefect UI, if there is a UI to link to."""
    from prefect.settings import PREFECT_UI_URL

    base = PREFECT_UI_URL.value()
    run = flow_run.get_id()
    return f"{base}/flow-runs/flow-run/{run}" if base and run else None


def _warm_start(
    config: TuneConfig, cached: CachedDataset, *, target: Target
) -> tuple[TuneConfig, WarmStart]:
    """`warm_start` for this run's setup, and ``config`` with the bracket's centre and
    width it carried over."""
    setup = setup_fingerprint(
        source=cached.source,
        input_shape=cached.input_shape,
        class_names=cached.class_names,
        model=model_key(config.model),
        trial_shape={
            "monitor": config.monitor,
            "lr_method": config.lr_range.method,
            "lr_schedule": config.lr_schedule,
        },
    )
    warm = warm_start(
        target,
        enabled=config.warm_start,
        setup=setup,
        train_examples=cached.num_examples["train"],
        batch_sizes=config.batch_sizes,
        width=config.lr_bracket.width,
        center=config.lr_bracket.center,
    )
    carried = {"center": warm.lr_center, "width": warm.width}
    bracket = config.lr_bracket.model_copy(
        update={key: value for key, value in carried.items() if value is not None}
    )
    return config.model_copy(update={"lr_bracket": bracket}), warm


def _clock(config: TuneConfig, target: Target) -> tuple[RunClock | None, dict[int, float]]:
    """The run's end under ``time_budget`` / ``deadline`` (from now), logged, and earlier
    runs' seconds an epoch by batch size (from ``target``'s runs); (None, {}) without a
    budget."""
    if config.time_budget is None and config.deadline is None:
        return None, {}
    epoch_s, export_s = past_timings(
        target,
        dataset=config.dataset.label,
        model=config.model.label,
    )
    started = time.time()
    clock = run_clock(
        started,
        config.time_budget,
        config.deadline,
        timezone=config.timezone,
        export_s=export_s,
    )
    assert clock is not None
    get_logger().info(
        "time budget: %.0f s, until %s (training until %.0f s before it: the export)",
        clock.ends_at - started,
        time.strftime("%H:%M:%S", time.localtime(clock.ends_at)),
        clock.export_reserve,
    )
    return clock, epoch_s


def _tune(config: TuneConfig, run_id: str, *, target: Target) -> TuneResult:
    log = get_logger()
    preflight(config, target=target)  # a scheduled run with a bad target fails here
    seconds: dict[str, float] = {}
    if (spent := startup.take()) is not None:  # run from the command line
        seconds["start-up"] = spent
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = round(now - clock, 3)
        clock = now

    budget, epoch_s = _clock(config, target)
    dataset = config.dataset.model_copy(update={"cache": False}) if config.fresh else config.dataset
    cached = cache_dataset(dataset, config.cache_dir)  # rebuilt here, if at all: not by children
    # What earlier nights of this dataset and model carry over (the bracket's centre
    # and width go into the config: they shape the trials), then the model against the
    # real data (a user's builder is first built here) and what every trial shares.
    config, warm = _warm_start(config, cached, target=target)
    run = trial_context(config, cached)
    batch_sizes = tuple(b for b in config.batch_sizes if b not in warm.left_out)
    objective = run.objective
    lap("data")
    if config.dispatch == "deployments":
        # One child run per batch size on the trial deployment's pool; each does its
        # sweep and its trial, so both are timed together.
        stop_at = budget.stop_at if budget is not None else None
        sweeps, rows = run_trials_on_deployments(
            config,
            str(flow_run.id),
            stop_at,
            target=target,
            batch_sizes=batch_sizes,
            epoch_s=epoch_s,
        )
        lap("sweeps and trials (workers)")
    else:
        sweeps, rows = _local_grid(
            run,
            cached,
            batch_sizes=batch_sizes,
            lap=lap,
            clock=budget,
            epoch_s=epoch_s,
            hurdle=config.hurdle,
        )
        lap("trials")
    for b, why in warm.left_out.items():
        why = f"warm start: {why}"
        rows += rows_without_result(config.patiences, b, status="not run", error=why)
    for sweep in sweeps:
        log.info("batch size %d: lr %.3g (%s)", sweep.batch_size, sweep.chosen_lr, sweep.method)
    winner, selection = select(
        rows,
        objective.column,
        objective.direction,
        values=stored_values(rows),
        rule=config.select,
        alpha=config.select_alpha,
    )
    log.info(
        "winner: batch size %d, patience %d, %s %.4f (%s)",
        winner.batch_size,
        winner.patience,
        objective.column,
        winner.value(objective.column),
        selection.reason,
    )
    export = export_run(
        config,
        cached,
        target=target,
        objective=objective,
        sweeps=sweeps,
        rows=rows,
        winner=winner,
        run_id=run_id,
        seconds=dict(seconds),
        selection=selection,
        warm_start=warm,
    )
    lap("export")
    publish_artifacts(
        rows,
        winner,
        export,
        seconds=seconds,
        monitor=config.monitor,
        selection=selection,
    )
    return TuneResult(
        run_id=run_id,
        export=export,
        winner=winner,
        rows=rows,
        seconds=seconds,
        monitor=config.monitor,
        selection=selection,
        sweeps_reused=sum(sweep.reused for sweep in sweeps),
    )
