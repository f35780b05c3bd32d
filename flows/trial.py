"""The `train-trial` flow: one batch size's LR sweep, bracket and trial, on a (GPU) worker.

Deployed as ``train-trial/gpu`` on the ``gpu`` work pool. It loads the dataset into
the worker's own cache, runs the sweep and the shared-patience trial, and publishes
the result under the export target for the parent `tune` run to read
(`tasks.dispatch.handoff`). It logs the devices TensorFlow sees; with no GPU visible it
warns and trains on the CPU, or fails when ``require_gpu`` is set (or
``NIGHTTUNE_REQUIRE_GPU=1`` on the worker).
"""

from __future__ import annotations

import time

from prefect import flow

from nighttune.flows.steps import cache_dataset, lr_bracket, lr_sweep, train_trial
from nighttune.flows.target import export_target
from nighttune.tasks.core import settings
from nighttune.tasks.core.config import TuneConfig
from nighttune.tasks.core.logs import get_logger
from nighttune.tasks.dispatch.handoff import check_code, publish_trial
from nighttune.tasks.tuning.context import trial_context, within_budget


def check_devices(require_gpu: bool) -> list[str]:
    """Names of the GPUs TensorFlow sees; warn (or raise) when there are none."""
    import tensorflow as tf

    log = get_logger()
    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    cpus = [d.name for d in tf.config.list_physical_devices("CPU")]
    log.info("devices: %s", ", ".join(gpus + cpus))
    if not gpus:
        if require_gpu:
            raise RuntimeError("no GPU visible to TensorFlow and require_gpu is set")
        log.warning("no GPU visible to TensorFlow: training on the CPU")
    return gpus


@flow(name="train-trial", log_prints=False)
def train_trial_flow(
    config: TuneConfig,
    batch_size: int,
    *,
    require_gpu: bool = False,
    code: dict[str, str] | None = None,
    stop_at: float | None = None,
    epoch_s: float | None = None,
    epochs: int | None = None,
) -> str:
    """Sweep and train one batch size of ``config``'s grid; return the published folder.
    ``code``: the sha256 of each builder's module as the parent has it (a worker with
    other code refuses before training). ``stop_at``: the parent's time budget, as the
    wall-clock time (``time.time()``) by which this fit must stop at an epoch boundary;
    the schedule is then planned to anneal before it (`within_budget`) from ``epoch_s``
    (earlier runs' seconds an epoch) and ``epochs`` (the parent's plan: its share)."""
    check_code(config.trial, code or {})
    target = export_target(config)  # where the parent reads the result: checked first
    check_devices(require_gpu or settings.current().require_gpu)
    # Never rebuilt here (`cache: false`, `fresh`): the parent did that before its
    # children started, and siblings on this machine may be reading the entry.
    cached = cache_dataset(config.dataset.model_copy(update={"cache": True}), config.cache_dir)
    run = trial_context(config, cached)
    sweep = lr_sweep(
        cached,
        config.model,
        batch_size,
        spec=config.lr_range,
        seed=config.seed,
        cache_dir=str(run.store),
        fresh=run.fresh,
        budget=run.memory_budget,
    )
    sweep = lr_bracket(cached, run, sweep, stop_at=stop_at)
    if stop_at is not None:
        left = stop_at - time.time()
        run = within_budget(
            run, batch_size, left=left, epoch_s=epoch_s, trials_left=1, at_most=epochs
        )
    lr, factor = sweep.trial_lr(config.lr_bracket.center_factor)
    rows = train_trial(
        cached,
        run,
        batch_size,
        lr=lr,
        lr_method=sweep.method,
        lr_factor=factor,
        stop_at=stop_at,
    )
    entry = publish_trial(
        config.trial, batch_size, target=target, sweep=sweep, rows=rows, fresh=config.fresh
    )
    get_logger().info("batch size %d: published %s", batch_size, entry)
    return str(entry)
