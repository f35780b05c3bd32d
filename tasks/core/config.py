"""Configuration models, checked once at the edge.

Every model forbids unknown keys, so a typo in a YAML file or a flag is refused
with its name instead of being silently ignored. Each field's description is its
documentation, the help of its command-line flag, and its label in Prefect's UI.
Files and flags are read into these models in `tasks.core.config_file`; the dataset,
model and LR range parts are in `tasks.core.specs`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from nighttune.tasks.core.budget import check_deadline, parse_duration
from nighttune.tasks.core.records import LRSchedule, PromotePolicy, SelectRule
from nighttune.tasks.core.specs import (
    DEFAULT_DATASET,
    MAX_IMAGE_PIXELS,
    MAX_IMAGE_SIDE,
    MAX_SEED,
    DatasetSpec,
    LRBracketSpec,
    LRRangeSpec,
    ModelSpec,
    Strict,
    SuggestionMethod,
    looks_like_path,
)

__all__ = [
    "DEFAULT_DATASET",
    "MAX_IMAGE_PIXELS",
    "MAX_IMAGE_SIDE",
    "MAX_SEED",
    "DatasetSpec",
    "LRBracketSpec",
    "LRRangeSpec",
    "ModelSpec",
    "Strict",
    "SuggestionMethod",
    "TrialSpec",
    "TuneConfig",
    "looks_like_path",
]


class TrialSpec(Strict):
    """What one batch size's LR sweep and trial depend on, and nothing else (an
    allow-list): a stored trial's key and a deployment child's hand-off key are made
    of this part alone (`tasks.tuning.training.trial_key`), so the grid's other batch
    sizes, where the run exports, how the winner is chosen, notifications, time
    budgets, TensorBoard and ``fresh`` never make finished work look new."""

    dataset: DatasetSpec
    model: ModelSpec
    lr_range: LRRangeSpec
    lr_bracket: LRBracketSpec
    lr_schedule: LRSchedule
    patiences: tuple[int, ...]
    max_epochs: int
    monitor: str
    monitor_mode: Literal["auto", "max", "min"]
    min_delta: float
    seed: int
    training_loop: Literal["auto", "fused", "fit"]
    xla: Literal["auto", "on", "off"]
    memory_budget_mb: float | None


class TuneConfig(Strict):
    """Everything one tuning run needs; the `tune` flow's single parameter."""

    dataset: DatasetSpec = Field(DatasetSpec(), description="What to train on.")
    model: ModelSpec = Field(ModelSpec(), description="What to train.")
    batch_sizes: tuple[int, ...] = Field(
        (32, 64, 128), description="The grid's batch sizes: one LR range test and one fit each."
    )
    patiences: tuple[int, ...] = Field(
        (3, 6, 10), description="The grid's early-stopping patiences, all read off each fit."
    )
    max_epochs: int = Field(30, ge=1, le=10_000, description="Most epochs per fit.")
    monitor: str = Field(
        "val_accuracy",
        description="Metric early stopping and selection watch (a name fit logs).",
    )
    monitor_mode: Literal["auto", "max", "min"] = Field(
        "auto",
        description="Which way the monitor improves: max, min, or auto (read off the "
        "compiled Keras metric).",
    )
    min_delta: float = Field(
        0.0, ge=0.0, description="Smallest change of the monitor that counts as improvement."
    )
    training_loop: Literal["auto", "fused", "fit"] = Field(
        "auto",
        description="How trials train: fused (each epoch one compiled loop), fit (plain "
        "Keras fit), or auto (fused, falling back to fit when the model cannot run there).",
    )
    xla: Literal["auto", "on", "off"] = Field(
        "auto",
        description="XLA for the fused loop: auto (on with a GPU and for the built-in MLP; "
        "off on the CPU for the rest, where it measured slower), on, or off.",
    )
    lr_range: LRRangeSpec = Field(LRRangeSpec(), description="The learning-rate range test.")
    lr_bracket: LRBracketSpec = Field(
        LRBracketSpec(),
        description="Candidate LRs around the range test's suggestion and the successive "
        "halving that picks one for each batch size's trial.",
    )
    lr_schedule: LRSchedule = Field(  # one_cycle: best in bench/schedules.py; see README
        "one_cycle",
        description="How a trial's learning rate runs over its steps, the range test's LR "
        "its peak: constant, cosine (annealed from the peak to near zero at max_epochs), "
        "or one_cycle (a warm-up from a 25th of the peak over the first quarter, then "
        "cosine annealing).",
    )
    warm_start: bool = Field(
        True,
        description="Start from earlier nights of the same dataset and model under export_to: "
        "leave out a batch size that lost clearly 3 nights running (back after 4 nights "
        "out), centre the LR bracket on the recent winners' multiple of the suggestion.",
    )
    hurdle: bool = Field(  # on: bench/recipes.py; see docs/lr-range-test.md
        True,
        description="Stop a batch size's fit at a third of max_epochs when its best "
        "monitored value so far is behind what an earlier fit of this run had reached "
        "by then, so epochs go to the batch sizes that are ahead (local dispatch without "
        "a time budget).",
    )
    select: SelectRule = Field(
        "best",
        description="How the winner is chosen: best (the best validation score), or "
        "cheapest_within_noise (the cell cheapest to train among those a paired test on the "
        "validation examples cannot tell from the best).",
    )
    select_alpha: float = Field(
        0.05,
        gt=0.0,
        lt=1.0,
        description="For cheapest_within_noise: a cell is within noise of the best when "
        "the paired test's p-value is at least this.",
    )
    seed: int = Field(
        0, ge=0, le=MAX_SEED, description="Seeds splits, initial weights, shuffling and dropout."
    )
    export_to: str = Field(
        "./exports",
        description="Folder or s3://bucket/prefix that receives <run-id>/ and latest.json.",
    )
    promote: PromotePolicy = Field(
        "gate",
        description="When latest.json moves to this run: gate (its winner is not worse than "
        "the model latest.json serves, both scored on this run's test split), always, never.",
    )
    promote_margin: float = Field(
        0.0,
        description="How much worse than the served model the winner may score and still be "
        "promoted, in the monitored metric's units (negative: it must win by that much).",
    )
    time_budget: float | None = Field(
        None,
        description="Seconds the run may take, or 90m, 2h, 1h30m: batch sizes start while "
        "they fit, a trial stops at the epoch boundary where the next epoch would not, and "
        "what finished is exported (within a minute of the budget, export included).",
    )
    deadline: str | None = Field(
        None,
        description="HH:MM by which the run must be done, in `timezone` (the next such "
        "time after it starts); with time_budget, the earlier of the two.",
    )
    timezone: str = Field("UTC", description="Time zone of the deadline (Europe/Berlin).")
    notify_url: str | None = Field(
        None,
        description="Webhook that receives a JSON POST when a run fails, is not promoted, "
        "or scores outside its night-over-night band: a URL (shown only as scheme and "
        "host; the command line keeps it out of Prefect), env:NAME or secret:BLOCK (read "
        "where the flow runs). Default: $NIGHTTUNE_NOTIFY_URL there.",
    )
    s3_endpoint_url: str | None = Field(
        None,
        description="S3-compatible endpoint (MinIO). Default: $AWS_ENDPOINT_URL or AWS.",
    )
    tensorboard: bool | None = Field(
        None,
        description="TensorBoard logs of every trial in the export. "
        "Default: on for local targets, off for S3.",
    )
    code_dir: str | None = Field(
        None,
        description="Folder of your builders' modules (relative to the config file). "
        "Default: the config file's folder, then the working directory.",
    )
    cache_dir: str | None = Field(
        None,
        description="Dataset, sweep and trial store. "
        "Default: $NIGHTTUNE_CACHE_DIR or ~/.cache/nighttune.",
    )
    fresh: bool = Field(
        False,
        description="Rebuild the cached dataset and rerun every LR sweep and trial "
        "instead of reusing the store (the new results are stored).",
    )
    dispatch: Literal["local", "deployments"] = Field(
        "local",
        description="local: train here; deployments: one trial_deployment run per batch "
        "size, on the workers of its pool.",
    )
    trial_deployment: str = Field(
        "train-trial/gpu", description="The deployment that trains one batch size."
    )
    trial_timeout_s: int = Field(
        7200, ge=10, description="Seconds the parent waits for its children."
    )
    memory_budget_mb: float | None = Field(
        None,
        gt=0,
        description="Memory a train split may take as stored (uint8 images, else float32) and "
        "still train in memory (the fused loop); a larger one streams from the cache on disk. "
        "Default: RAM / 4.",
    )

    @field_validator("batch_sizes", "patiences")
    @classmethod
    def _grid_axis(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value:
            raise ValueError("needs at least one value")
        if any(v < 1 for v in value):
            raise ValueError("every value must be a positive integer")
        if len(set(value)) != len(value):
            dupes = sorted({v for v in value if value.count(v) > 1})
            raise ValueError(f"has duplicates: {', '.join(map(str, dupes))}")
        return value

    @field_validator("time_budget", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        return None if value is None else parse_duration(value)

    @field_validator("deadline")
    @classmethod
    def _time_of_day(cls, value: str | None) -> str | None:
        return None if value is None else check_deadline(value)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(value)
        except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError
            raise ValueError("unknown time zone; give an IANA name such as Europe/Berlin") from None
        return value

    @field_validator("notify_url")
    @classmethod
    def _webhook(cls, value: str | None) -> str | None:
        from nighttune.tasks.core.urls import webhook_problem

        if value and (problem := webhook_problem(value)):
            raise ValueError(problem)
        return value

    @field_validator("s3_endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        from nighttune.tasks.core.urls import endpoint_problem

        if value and (problem := endpoint_problem(value)):
            raise ValueError(problem)
        return value

    @property
    def trial(self) -> TrialSpec:
        """The part of this config that a trial depends on (see `TrialSpec`)."""
        return TrialSpec(**{name: getattr(self, name) for name in TrialSpec.model_fields})
