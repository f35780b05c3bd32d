"""Configuration models, checked once at the edge.

Every model forbids unknown keys, so a typo in a YAML file or a flag is refused
with its name instead of being silently ignored. Each field's description is its
documentation, the help of its command-line flag, and its label in Prefect's UI.
Files and flags are read into these models in `tasks.core.config_file`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tasks.core.code import CODE_PATH_HELP, BuilderRef

DEFAULT_DATASET = "digits"
MAX_IMAGE_SIDE = 8192
MAX_IMAGE_PIXELS = 4096 * 4096  # 64 MiB of float32 per gray image, 192 MiB per RGB one
MAX_SEED = 2**32 - 1  # NumPy's seeds (keras.utils.set_random_seed seeds NumPy too)


class Strict(BaseModel):
    """Every config model: unknown keys refused, values fixed once read; text stripped and
    never empty (an empty path or name is a mistake, not "the default"); no inf or NaN."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        str_strip_whitespace=True,
        str_min_length=1,
        allow_inf_nan=False,
    )


class DatasetSpec(Strict):
    """Which dataset to train on and how to preprocess it."""

    name: str = Field(
        DEFAULT_DATASET,
        description="TFDS catalog name (mnist, fashion_mnist, cifar10), 'digits' (bundled, "
        "offline), or a folder with one subfolder of images per class.",
    )
    data_dir: str | None = Field(
        None,
        description="Where TFDS finds (or downloads) catalog datasets. "
        "Default: $TFDS_DATA_DIR or ~/tensorflow_datasets.",
    )
    image_size: tuple[int, int] | None = Field(
        None,
        description="Resize every image to HEIGHT,WIDTH. Default: the source's own size "
        "(for folders: that of the first image).",
    )
    channels: Literal[1, 3] | None = Field(
        None,
        description="1 (grayscale) or 3 (RGB). Default: the source's own (for folders: that "
        "of the first image, alpha dropped).",
    )
    val_fraction: float = Field(
        0.1,
        gt=0,
        lt=0.5,
        description="Share of train carved out as validation when the "
        "source has no validation split.",
    )
    test_fraction: float = Field(
        0.1,
        gt=0,
        lt=0.5,
        description="Share of train carved out as test when the source has no test split.",
    )
    seed: int = Field(
        0, ge=0, le=MAX_SEED, description="Seed of the carving: the same seed, the same splits."
    )
    builder: BuilderRef | None = Field(
        None,
        description="Your own data: module:function, called as function(**kwargs) -> "
        "{'train': (x, y), 'validation'?, 'test'?, 'class_names'?}; each split a pair "
        "of arrays or a tf.data.Dataset of (x, y). Default: name.",
    )
    kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments passed to the data builder."
    )
    code_path: tuple[str, ...] = Field((), description=CODE_PATH_HELP)
    cache: bool = Field(
        True, description="Reuse the cached splits when the data is unchanged; false rebuilds."
    )

    @field_validator("image_size")
    @classmethod
    def _positive_size(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and min(value) < 1:
            raise ValueError("must be two positive integers (height, width)")
        if value is not None and (
            max(value) > MAX_IMAGE_SIDE or value[0] * value[1] > MAX_IMAGE_PIXELS
        ):
            raise ValueError(
                f"at most {MAX_IMAGE_SIDE} a side and {MAX_IMAGE_PIXELS} pixels "
                "(4096x4096); images are cached as float32"
            )
        return value

    @property
    def kind(self) -> Literal["digits", "folder", "catalog", "builder"]:
        """How the name is read: the bundled digits, a local folder, or a TFDS name (or
        the user's builder, which wins over the name)."""
        if self.builder:
            return "builder"
        if self.name == DEFAULT_DATASET:
            return "digits"
        if looks_like_path(self.name):
            return "folder"
        return "catalog"


class ModelSpec(Strict):
    """The Keras model to tune."""

    kind: Literal["mlp", "cnn"] = Field(
        "mlp", description="mlp (flatten, dense layers) or cnn (3x3 conv blocks, then dense)."
    )
    builder: BuilderRef | None = Field(
        None,
        description="Your own model: module:function, called as function(input_shape, "
        "num_classes, **kwargs) -> keras.Model (compiled: its loss, metrics and optimizer "
        "are kept and only the learning rate is driven). Default: the built-in kind.",
    )
    kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments passed to the builder."
    )
    code_path: tuple[str, ...] = Field((), description=CODE_PATH_HELP)
    hidden_units: tuple[int, ...] = Field((128,), description="Width of each hidden dense layer.")
    filters: tuple[int, ...] = Field(
        (16, 32), description="Channels of each conv block (cnn only)."
    )
    dropout: float = Field(
        0.0, ge=0.0, lt=1.0, description="Dropout rate after each hidden layer (0: none)."
    )

    @property
    def label(self) -> str:
        """What the model is, for logs and reports: the builder's name or the kind."""
        return self.builder or self.kind

    @field_validator("hidden_units", "filters")
    @classmethod
    def _positive_layers(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(v < 1 for v in value):
            raise ValueError("every layer needs at least 1 unit")
        return value


SuggestionMethod = Literal["steepest", "valley", "minimum"]


class LRRangeSpec(Strict):
    """The learning-rate range test run once per batch size."""

    start_lr: float = Field(1e-6, gt=0, description="First learning rate of the exponential ramp.")
    end_lr: float = Field(1.0, gt=0, description="Last learning rate of the ramp.")
    steps: int | None = Field(
        None,
        ge=10,
        le=100_000,
        description="Batches in the ramp. Default: one epoch, within 10..200.",
    )
    beta: float = Field(
        0.98, ge=0.0, lt=1.0, description="Smoothing factor of the loss's moving average."
    )
    diverge_factor: float = Field(
        4.0, gt=1.0, description="Stop once the smoothed loss passes this multiple of its minimum."
    )
    method: SuggestionMethod = Field(  # minimum: best in bench/lr_range.py; see README
        "minimum", description="Which suggestion becomes the trials' learning rate."
    )

    @model_validator(mode="after")
    def _increasing(self) -> LRRangeSpec:
        if self.start_lr >= self.end_lr:
            raise ValueError(f"start_lr ({self.start_lr:g}) must be below end_lr ({self.end_lr:g})")
        return self


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
    seed: int = Field(
        0, ge=0, le=MAX_SEED, description="Seeds splits, initial weights, shuffling and dropout."
    )
    export_to: str = Field(
        "./exports",
        description="Folder or s3://bucket/prefix that receives <run-id>/ and latest.json.",
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

    @field_validator("s3_endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        from tasks.core.urls import endpoint_problem

        if value and (problem := endpoint_problem(value)):
            raise ValueError(problem)
        return value


def looks_like_path(name: str) -> bool:
    """True for names a user means as a folder (``./x``, ``~/x``, ``a/b``) or that exist."""
    return (
        name.startswith((".", "~", os.sep))
        or os.sep in name
        or (os.altsep is not None and os.altsep in name)
        or Path(name).is_dir()
    )
