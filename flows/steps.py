"""Every Prefect task of the flows: thin wrappers over plain library functions.

The library (`tasks/`) knows nothing of Prefect; here each step gets its name, its
``cpu`` / ``gpu`` tag (work pools and the gpu concurrency limit) and no Prefect
caching: the store (`tasks.storage.store`) keeps finished work and is the cache, so
a rerun reuses what finished whichever process or machine did it.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE

from nighttune.tasks.core.logs import get_logger
from nighttune.tasks.data.datasets import load_dataset
from nighttune.tasks.inference.arrays import predict_rows_to_csv
from nighttune.tasks.inference.predict import PredictSummary
from nighttune.tasks.preflight import preflight as check_input
from nighttune.tasks.runs.export import export_run as write_export
from nighttune.tasks.runs.reader import RunAccess
from nighttune.tasks.tuning.halving import run_bracket
from nighttune.tasks.tuning.lr_range import stored_lr_range_test
from nighttune.tasks.tuning.training import train_trial as fit_trial

preflight = task(name="preflight", tags=["cpu"], cache_policy=NO_CACHE)(check_input)
cache_dataset = task(name="cache_dataset", tags=["cpu"], cache_policy=NO_CACHE)(load_dataset)
lr_sweep = task(name="lr_sweep", tags=["gpu"], cache_policy=NO_CACHE)(stored_lr_range_test)
lr_bracket = task(name="lr_bracket", tags=["gpu"], cache_policy=NO_CACHE)(run_bracket)
train_trial = task(name="train_trial", tags=["gpu"], cache_policy=NO_CACHE)(fit_trial)
export_run = task(name="export_run", tags=["cpu"], cache_policy=NO_CACHE)(write_export)


@task(name="predict", tags=["gpu"], cache_policy=NO_CACHE)
def predict_rows(
    model: str,
    *,
    images: list[str] | None,
    inputs: str | None,
    out: str,
    batch_size: int | None = None,
    top_k: int = 1,
    cache_dir: str | None = None,
    s3_endpoint_url: str | None = None,
) -> PredictSummary:
    """Prefect task: `predict_to_csv` over image folders, or `predict_inputs_to_csv` over
    an array file, reporting progress to an artifact."""
    what = inputs or ", ".join(images or [])
    artifact: Any = create_progress_artifact(
        0.0, key="predict-progress", description=f"Predicting {what}"
    )

    def progress(done: int, total: int) -> None:
        update_progress_artifact(artifact_id=artifact, progress=100.0 * done / total)

    summary = predict_rows_to_csv(
        model,
        images=images,
        inputs=inputs,
        out=out,
        batch_size=batch_size,
        top_k=top_k,
        progress=progress,
        access=RunAccess(cache_dir=cache_dir, endpoint_url=s3_endpoint_url),
    )
    get_logger().info(
        "predicted %d %s (%d errors) in %.1f s into %s",
        summary.files,
        summary.unit,
        summary.errors,
        summary.seconds,
        summary.out,
    )
    return summary
