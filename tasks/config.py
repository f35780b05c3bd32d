"""Configuration models, checked once at the edge.

Every model forbids unknown keys, so a typo in a YAML file or a flag is refused
with its name instead of being silently ignored. `parse` turns pydantic's
multi-line validation report into the single line a user needs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tasks.errors import ConfigError

DEFAULT_DATASET = "digits"

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
    seed: int = 0

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
        return value

    @property
    def kind(self) -> Literal["digits", "folder", "catalog"]:
        """How the name is read: the bundled digits, a local folder, or a TFDS name."""
        if self.name == DEFAULT_DATASET:
            return "digits"
        if looks_like_path(self.name):
            return "folder"
        return "catalog"


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


def describe_validation_error(exc: ValidationError, where: str = "") -> str:
    """The first problem of a pydantic error, as ``key: problem (got value)``."""
    first = exc.errors()[0]
    key = where + ".".join(str(p) for p in first["loc"]) or "config"
    if first["type"] == "extra_forbidden":
        return f"unknown key '{key}'; remove it or check its spelling"
    message = first["msg"].removeprefix("Value error, ")
    return f"{key}: {message} (got {first.get('input')!r})"
