"""Configuration models, checked once at the edge.

Every model forbids unknown keys, so a typo in a YAML file or a flag is refused
with its name instead of being silently ignored. `parse` turns pydantic's
multi-line validation report into the single line a user needs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from tasks.core.errors import ConfigError, short_repr

DEFAULT_DATASET = "digits"
MAX_IMAGE_SIDE = 8192
MAX_IMAGE_PIXELS = 4096 * 4096  # 64 MiB of float32 per gray image, 192 MiB per RGB one
MAX_SEED = 2**32 - 1  # NumPy's seeds (keras.utils.set_random_seed seeds NumPy too)

M = TypeVar("M", bound=BaseModel)


class DatasetSpec(BaseModel):
    """Which dataset to train on and how to preprocess it.

    Attributes:
        name: a TFDS catalog name (``mnist``, ``cifar10``), ``digits`` (bundled,
            offline), or a path to a folder with one subfolder of images per class.
        data_dir: where TFDS finds prepared catalog datasets (default: TFDS's own,
            ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``).
        image_size: ``(height, width)`` every image is resized to; ``None`` keeps
            the source's shape (for folders: the size of the first image).
        channels: 1 (grayscale) or 3 (RGB); ``None`` keeps the source's
            (for folders: that of the first image, alpha dropped).
        val_fraction: share of train carved out as validation when the source
            has no validation split.
        test_fraction: share of train carved out as test when the source has no
            test split.
        seed: seed of the carving; the same seed gives the same splits.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = DEFAULT_DATASET
    data_dir: str | None = None
    image_size: tuple[int, int] | None = None
    channels: Literal[1, 3] | None = None
    val_fraction: float = Field(0.1, gt=0, lt=0.5)
    test_fraction: float = Field(0.1, gt=0, lt=0.5)
    seed: int = Field(0, ge=0, le=MAX_SEED)

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name a dataset, e.g. digits, mnist or ./my_images")
        return value.strip()

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
    def kind(self) -> Literal["digits", "folder", "catalog"]:
        """How the name is read: the bundled digits, a local folder, or a TFDS name."""
        if self.name == DEFAULT_DATASET:
            return "digits"
        if looks_like_path(self.name):
            return "folder"
        return "catalog"


class ModelSpec(BaseModel):
    """The Keras model to tune.

    Attributes:
        kind: ``mlp`` (flatten, dense layers) or ``cnn`` (3x3 conv blocks, then dense).
        hidden_units: width of each hidden dense layer.
        filters: channels of each conv block (``cnn`` only).
        dropout: dropout rate after each hidden layer (0 turns it off).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["mlp", "cnn"] = "mlp"
    hidden_units: tuple[int, ...] = (128,)
    filters: tuple[int, ...] = (16, 32)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)

    @field_validator("hidden_units", "filters")
    @classmethod
    def _positive_layers(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(v < 1 for v in value):
            raise ValueError("every layer needs at least 1 unit")
        return value


SuggestionMethod = Literal["steepest", "valley", "minimum"]


class LRRangeSpec(BaseModel):
    """The learning-rate range test run once per batch size.

    Attributes:
        start_lr: first learning rate of the exponential ramp.
        end_lr: last learning rate of the ramp.
        steps: batches in the ramp; None picks one epoch, clamped to [10, 200].
        beta: smoothing factor of the loss's moving average.
        diverge_factor: stop once the smoothed loss exceeds this multiple of its minimum.
        method: which suggestion becomes the trials' learning rate.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    start_lr: float = Field(1e-6, gt=0)
    end_lr: float = Field(1.0, gt=0)
    steps: int | None = Field(None, ge=10, le=100_000)
    beta: float = Field(0.98, ge=0.0, lt=1.0)
    diverge_factor: float = Field(4.0, gt=1.0)
    method: SuggestionMethod = "minimum"  # best in bench/lr_range.py; see README

    @model_validator(mode="after")
    def _increasing(self) -> LRRangeSpec:
        if self.start_lr >= self.end_lr:
            raise ValueError(f"start_lr ({self.start_lr:g}) must be below end_lr ({self.end_lr:g})")
        return self


class TuneConfig(BaseModel):
    """Everything one tuning run needs; the `tune` flow's single parameter.

    Attributes:
        dataset: what to train on.
        model: what to train.
        batch_sizes: the grid's batch sizes; one LR sweep and one fit each.
        patiences: the grid's early-stopping patiences, all read off each fit.
        max_epochs: upper bound on epochs per fit.
        monitor: the metric early stopping and selection watch (a name ``fit`` logs).
        monitor_mode: whether ``monitor`` improves upward (``max``) or downward
            (``min``); ``auto`` reads it off the compiled Keras metric.
        min_delta: smallest change of ``monitor`` that counts as an improvement.
        lr_range: the learning-rate range test.
        seed: seeds splits, initial weights, shuffling and dropout.
        export_to: folder or ``s3://bucket/prefix`` that receives ``<run-id>/`` and
            ``latest.json``.
        s3_endpoint_url: S3-compatible endpoint (MinIO); default ``$AWS_ENDPOINT_URL``
            or AWS itself.
        cache_dir: dataset, sweep and trial store (default: ``$NIGHTTUNE_CACHE_DIR``).
        dispatch: ``local`` runs every step in this process; ``deployments`` runs one
            ``trial_deployment`` flow run per batch size on the workers of its pool.
        trial_deployment: the deployment that trains one batch size.
        trial_timeout_s: how long the parent waits for its children.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: DatasetSpec = DatasetSpec()
    model: ModelSpec = ModelSpec()
    batch_sizes: tuple[int, ...] = (32, 64, 128)
    patiences: tuple[int, ...] = (3, 6, 10)
    max_epochs: int = Field(30, ge=1, le=10_000)
    monitor: str = "val_accuracy"
    monitor_mode: Literal["auto", "max", "min"] = "auto"
    min_delta: float = Field(0.0, ge=0.0)
    lr_range: LRRangeSpec = LRRangeSpec()
    seed: int = Field(0, ge=0, le=MAX_SEED)
    export_to: str = "./exports"
    s3_endpoint_url: str | None = None
    tensorboard: bool | None = None  # None: on for local targets, off for S3
    cache_dir: str | None = None
    dispatch: Literal["local", "deployments"] = "local"
    trial_deployment: str = "train-trial/gpu"
    trial_timeout_s: int = Field(7200, ge=10)

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


def load_tune_config(path: str | None, overrides: dict[str, Any]) -> TuneConfig:
    """A YAML file (if any) with flag ``overrides`` on top; dotted keys reach nested specs.

    Raises:
        ConfigError: unreadable file, YAML that is not a mapping, an unknown key, or
            a value the models refuse.
    """

    data: dict[str, Any] = {}
    if path:
        from tasks.core.config_file import read_yaml

        loaded = read_yaml(path)
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(
                f"config {path} must be a mapping of keys (dataset:, batch_sizes:, ...), "
                f"not a {type(loaded).__name__}"
            )
        data = loaded or {}
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"config key '{part}' must be a mapping (got {child!r})")
            node = child
        node[leaf] = value
    return parse(TuneConfig, data)


def looks_like_path(name: str) -> bool:
    """True for names a user means as a folder (``./x``, ``~/x``, ``a/b``) or that exist."""
    return (
        name.startswith((".", "~", os.sep))
        or os.sep in name
        or (os.altsep is not None and os.altsep in name)
        or Path(name).is_dir()
    )


def parse(model: type[M], data: dict[str, Any], where: str = "") -> M:
    """Validate ``data`` into ``model``, raising a one-line `ConfigError` on failure.

    Args:
        model: the pydantic model class.
        data: raw values (from YAML, flags, or code).
        where: a prefix naming the section, e.g. ``"dataset."``.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, where)) from None


# Keys whose values may hold a secret: their errors never repeat the raw value.
QUIET_KEYS = {"s3_endpoint_url"}


def describe_validation_error(exc: ValidationError, where: str = "") -> str:
    """The first problem of a pydantic error, as ``key: problem (got value)``."""
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    key = (where + loc) if loc else (where.rstrip(".") or "config")
    if first["type"] == "extra_forbidden":
        return f"unknown key '{key}'; remove it or check its spelling"
    message = first["msg"].removeprefix("Value error, ")
    if not loc or key in QUIET_KEYS:  # the message names the values (secrets redacted)
        return f"{key}: {message}"
    return f"{key}: {message} (got {short_repr(first.get('input'))})"
