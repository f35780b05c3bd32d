"""What a run's ``manifest.json`` and a target's ``latest.json`` may hold, checked on read.

Both come from a folder or a bucket that others can write to, so neither is trusted:
each is parsed into a model here (size, schema, bounds; file names and run ids
checked by `tasks.storage.files.safe_relpath`) before any file it names is downloaded,
read or removed. Nothing here imports TensorFlow or Prefect.
"""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from nighttune.tasks.core.errors import DocumentInvalid, short_repr
from nighttune.tasks.storage.files import safe_relpath

MANIFEST = "manifest.json"
LATEST = "latest.json"
MAX_MANIFEST_BYTES = 16 * 2**20  # a run's manifest holds every trial row: ~100 kB for 9
MAX_LATEST_BYTES = 64 * 2**10
MAX_FILES = 100_000
MAX_CLASSES = 100_000
MAX_IMAGE_SIDE = 8192
MAX_IMAGE_PIXELS = 4096 * 4096  # 64 MiB of float32 per gray image, 192 MiB per RGB one

# One folder name: what `tasks.runs.export.new_run_id` makes, and any name of that alphabet.
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_run_id(value: object) -> str:
    """``value`` if it can name a run folder (one segment: letters, digits, ``._-``)."""
    if not isinstance(value, str) or not RUN_ID.fullmatch(value) or ".." in value:
        raise ValueError(
            f"run id {short_repr(value)} is not a run folder name (letters, digits, "
            "'.', '_', '-'; at most 128)"
        )
    return value


RunId = Annotated[str, AfterValidator(check_run_id)]
RelPath = Annotated[str, AfterValidator(lambda rel: safe_relpath(rel, "file name"))]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
ClassName = Annotated[str, StringConstraints(max_length=256)]


class Latest(BaseModel):
    """``latest.json``: the run a target serves."""

    model_config = ConfigDict(extra="allow")

    run_id: RunId
    uri: str | None = Field(None, max_length=4096)


class Manifest(BaseModel):
    """The parts of a run's manifest that decide what is read from disk or a bucket, and
    how images are shaped; the rest (config, trials, timings) is kept as given."""

    model_config = ConfigDict(extra="allow")

    run_id: RunId
    files: dict[RelPath, Sha256] = Field(max_length=MAX_FILES)
    class_names: list[ClassName] = Field(max_length=MAX_CLASSES)  # []: a regression
    input_shape: tuple[int, ...] = Field(min_length=1, max_length=4)  # images: H, W, C
    outputs: Literal["logits", "probabilities", "values"] = "logits"
    model: dict[str, Any] = {}  # the model spec, with a builder's name and code sha256
    created: str | None = None
    config: dict[str, Any] = {}
    winner: dict[str, Any] = {}
    promotion: dict[str, Any] = {}  # the champion gate's decision ({}: runs before the gate)
    timings: dict[str, float] = {}

    @field_validator("input_shape")
    @classmethod
    def _bounded(cls, shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(shape) != 3:  # not an image model (feature vectors, sequences)
            if any(d < 1 for d in shape) or math.prod(shape) > 3 * MAX_IMAGE_PIXELS:
                raise ValueError(f"sides must be positive, at most {3 * MAX_IMAGE_PIXELS} values")
            return shape
        height, width, channels = shape
        if not (0 < height <= MAX_IMAGE_SIDE and 0 < width <= MAX_IMAGE_SIDE):
            raise ValueError(f"height and width must be 1..{MAX_IMAGE_SIDE}")
        if height * width > MAX_IMAGE_PIXELS:
            raise ValueError(f"more than {MAX_IMAGE_PIXELS} pixels per image")
        if channels not in (1, 3):
            raise ValueError("channels must be 1 or 3")
        return shape


def _parse(model: type[Latest] | type[Manifest], text: str | bytes, *, where: str, limit: int):
    if len(text) > limit:
        raise DocumentInvalid(f"{where} is over {limit} bytes, more than a run ever writes")
    try:
        return model.model_validate(json.loads(text))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, ValidationError: ValueErrors
        raise DocumentInvalid(f"{where} is damaged ({_why(exc)}); export the run again") from None


def _why(exc: ValueError | RecursionError) -> str:
    if not isinstance(exc, ValidationError):
        return "not JSON"
    first = exc.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "document"
    return f"{key}: {first['msg'].removeprefix('Value error, ')}"[:200]


def parse_latest(text: str | bytes, where: str) -> Latest:
    """``latest.json``'s text as a `Latest`, or `DocumentInvalid` naming ``where``."""
    return _parse(Latest, text, where=where, limit=MAX_LATEST_BYTES)


def parse_manifest(text: str | bytes, where: str) -> Manifest:
    """A manifest's text as a `Manifest`, or `DocumentInvalid` naming ``where``."""
    return _parse(Manifest, text, where=where, limit=MAX_MANIFEST_BYTES)
