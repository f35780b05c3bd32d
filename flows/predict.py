"""The `predict` flow: batch prediction over image folders (or an array file of
examples) with an exported run.

Deployable as ``predict/batch`` on the ``gpu`` pool. Progress shows as a Prefect
progress artifact; the CSV lands where ``out`` says (see `tasks.inference.predict`).
"""

from __future__ import annotations

from prefect import flow

from nighttune.flows.steps import predict_rows
from nighttune.tasks.inference.predict import PredictSummary


@flow(name="predict")
def predict(
    model: str,
    images: list[str] | None = None,
    out: str = "predictions.csv",
    *,
    batch_size: int | None = None,
    top_k: int = 1,
    cache_dir: str | None = None,
    s3_endpoint_url: str | None = None,
    inputs: str | None = None,
) -> PredictSummary:
    """Predict every image under ``images`` (or every example in the ``inputs`` .npy or
    .csv file) with the run ``model`` into ``out``."""
    return predict_rows(
        model,
        images=images,
        inputs=inputs,
        out=out,
        batch_size=batch_size,
        top_k=top_k,
        cache_dir=cache_dir,
        s3_endpoint_url=s3_endpoint_url,
    )
