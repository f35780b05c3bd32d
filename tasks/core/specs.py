"""The parts of a run's configuration: what to train on, what to train, the LR range test.

`Strict` is every config model's base; `tasks.core.config.TuneConfig` puts these
together (and re-exports them). Each field's description is its documentation, the
help of its command-line flag, and its label in Prefect's UI.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from nighttune.tasks.core.code import CODE_PATH_HELP, BuilderRef

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
    def label(self) -> str:
        """What the data is, for logs and messages: the builder's name or the name."""
        return self.builder or self.name

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
        description="Batches in the ramp. Default: one epoch, within 50..200 (a small "
        "split is repeated).",
    )
    beta: float = Field(
        0.98, ge=0.0, lt=1.0, description="Smoothing factor of the loss's moving average."
    )
    diverge_factor: float = Field(
        4.0, gt=1.0, description="Stop once the smoothed loss passes this multiple of its minimum."
    )
    method: SuggestionMethod = Field(  # steepest: best in bench/schedules.py; see README
        "steepest",
        description="Which suggestion becomes the trials' learning rate (the peak of lr_schedule).",
    )

    @model_validator(mode="after")
    def _increasing(self) -> LRRangeSpec:
        if self.start_lr >= self.end_lr:
            raise ValueError(f"start_lr ({self.start_lr:g}) must be below end_lr ({self.end_lr:g})")
        return self


class LRBracketSpec(Strict):
    """Candidate LRs around the range test's suggestion, told apart by successive halving:
    each gets a short first rung (its whole schedule over ``first_rung`` epochs), the
    best ``1/eta`` go on to a rung ``eta`` times longer, and the last one standing gets
    the full trial (`tasks.tuning.halving`)."""

    width: int = Field(  # 1: no bracket measured better in bench/bracket.py; see README
        1,
        ge=1,
        le=9,
        description="Candidate LRs per batch size: the suggestion, then its multiples by "
        "factor below and above it in turn (1: the suggestion alone, no rungs).",
    )
    factor: float = Field(
        3.0, gt=1.0, le=100.0, description="Spacing of the candidates: each a multiple of the next."
    )
    eta: int = Field(
        3, ge=2, le=9, description="Successive halving: the best 1/eta of a rung go on."
    )
    first_rung: int = Field(
        2, ge=1, le=1000, description="Epochs of the first rung (each next one eta times more)."
    )
    center: float | None = Field(
        None,
        ge=0.001,
        le=1000.0,
        description="The multiple of the suggestion the bracket is centred on (the one "
        "candidate at width 1). Default: 1, or with warm_start the recent winners' multiple.",
    )

    @property
    def center_factor(self) -> float:
        """The centre as a number: 1 (the suggestion itself) when not set."""
        return self.center if self.center is not None else 1.0


def looks_like_path(name: str) -> bool:
    """True for names a user means as a folder (``./x``, ``~/x``, ``a/b``) or that exist."""
    return (
        name.startswith((".", "~", os.sep))
        or os.sep in name
        or (os.altsep is not None and os.altsep in name)
        or Path(name).is_dir()
    )
