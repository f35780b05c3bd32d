"""Every check that can fail before training, in one place, cheapest first.

`preflight` is the first step of the `tune` flow itself, so a run started by a
schedule or `prefect deployment run` with a bad bucket, dataset or monitor fails in
seconds with the same one line the CLI prints, instead of after training the grid.
The CLI calls it too, before it starts a temporary Prefect server: a mistake is then
reported before TensorFlow is even imported when it can be.
"""

from __future__ import annotations

from nighttune.tasks.core.config import TuneConfig
from nighttune.tasks.storage.target import Target


def preflight(config: TuneConfig, *, target: Target) -> None:
    """Raise the `UserError` a run of ``config`` would meet before any sweep or trial:
    the export ``target`` (reachable, writable), the dataset (there, or downloadable from
    here), the monitored metric (one the model logs), the trial deployment and its pool."""
    target.check()
    from nighttune.tasks.data.datasets import check_dataset

    check_dataset(config.dataset, config.cache_dir)
    if config.model.builder:  # its model is checked against the data once that is cached
        from nighttune.tasks.core.code import load_builder

        load_builder(config.model.builder, config.model.code_path)
    else:
        from nighttune.tasks.tuning.objective import resolve_objective

        resolve_objective(config.model, monitor=config.monitor, monitor_mode=config.monitor_mode)
    if config.dispatch == "deployments":
        from nighttune.tasks.dispatch.deployments import check_deployment

        check_deployment(config.trial_deployment)
