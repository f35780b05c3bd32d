"""The records the grid passes around: plain data, no TensorFlow, Keras or Prefect.

A `TrialResult` is one (batch size, patience) cell; an `LRSweep` one range test; an
`ExportResult` where a run went; a `TuneResult` what a `tune` run produced. Ranking,
reports and the CLI read them without loading a framework (importing this module
takes pydantic only), as KerasTuner's `Trial` is the message between its Oracle and
its Tuner.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

# How a trial's LR was chosen: a rule of the range test (`tasks.tuning.lr_suggest`), or
# the fallback when no rule found a descent.
LRMethod = Literal["minimum", "steepest", "valley", "fallback"]


def sweep_files(batch_size: int) -> tuple[str, str]:
    """The one place that names a sweep's files: (JSON, PNG)."""
    return f"lr_sweep_b{batch_size}.json", f"lr_sweep_b{batch_size}.png"


def curves_file(batch_size: int) -> str:
    """The one place that names a batch size's learning-curve plot."""
    return f"learning_curves_b{batch_size}.png"


class TrialResult(BaseModel):
    """One (batch size, patience) cell of the grid. Epochs are counted from 1."""

    batch_size: int
    patience: int
    lr: float | None  # None when the trial failed before its LR was known
    lr_method: LRMethod | None
    status: Literal["ok", "failed"] = "ok"
    epochs_run: int | None = None
    stop_epoch: int | None = None  # None: ran to max_epochs without stopping
    best_epoch: int | None = None
    stopped_early: bool | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None
    test_loss: float | None = None
    test_accuracy: float | None = None
    train_seconds: float | None = None
    examples_per_s: float | None = None
    model_path: str | None = None
    error: str | None = None


class LRSweep(BaseModel):
    """One range test's curve, every method's suggestion, and the LR chosen for trials."""

    batch_size: int
    lrs: list[float]
    losses: list[float | None]
    smoothed: list[float | None]
    suggestions: dict[str, float | None]
    notes: dict[str, str]
    chosen_lr: float
    method: LRMethod
    steps: int
    stop_reason: str
    seconds: float
    path: str | None = None  # folder holding the saved JSON and PNG, once stored


class ExportResult(BaseModel):
    """Where a run went."""

    run_id: str
    uri: str  # where the run is: file:// or s3://
    path: str  # the local folder (for S3: the cached copy that was uploaded)
    latest: str  # the latest.json that now names it


class TuneResult(BaseModel):
    """What a tune run produced: the rows, the winner, where the export went, timings."""

    run_id: str
    export: ExportResult
    winner: TrialResult
    rows: list[TrialResult]
    seconds: dict[str, float]
