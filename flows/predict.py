"""The `predict` flow: batch prediction over image folders with an exported run.

Deployable as ``predict/batch`` on the ``gpu`` pool. Progress shows as a Prefect
progress artifact; the CSV lands where ``out`` says (see `tasks.inference.predict`).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE

from tasks.core.logs import get_logger
from tasks.inference.predict import PredictSummary, predict_to_csv


@task(name="predict_folder", tags=["gpu"], cache_policy=NO_CACHE)
def predict_folder(
    model: str,
    images: list[str],
    out: str,
    batch_size: int | None = None,
    top_k: int = 1,
    cache_dir: str | None = None,
    s3_endpoint_url: str | None = None,
) -> PredictSummary:
    """Prefect task: `predict_to_csv`, reporting progress to an artifact."""
    artifact: Any = create_progress_artifact(
        0.0, key="predict-progress", description=f"Predicting {', '.join(images)}"
    )

    def progress(done: int, total: int) -> None:
        update_progress_artifact(artifact_id=artifact, progress=100.0 * done / total)

    summary = predict_to_csv(
        model, images, out, batch_size, top_k, cache_dir, s3_endpoint_url, progress
    )
    get_logger().info(
        "predicted %d files (%d errors) in %.1f s into %s",
        summary.files,
        summary.errors,
        summary.seconds,
        summary.out,
    )
    return summary


@flow(name="predict")
def predict(
    model: str,
    images: list[str],
    out: str = "predictions.csv",
    batch_size: int | None = None,
    top_k: int = 1,
    cache_dir: str | None = None,
    s3_endpoint_url: str | None = None,
) -> PredictSummary:
    """Predict every image under ``images`` with the run ``model`` into ``out``."""
    return predict_folder(model, images, out, batch_size, top_k, cache_dir, s3_endpoint_url)
