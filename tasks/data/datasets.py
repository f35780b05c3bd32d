"""Datasets in, cached preprocessed train / validation / test splits out.

A `DatasetSpec` names a TFDS catalog dataset, the bundled offline ``digits``, or
a folder of images with one subfolder per class. `load_dataset` preprocesses it
once (fixed shape, seeded validation/test carved from train where the source has
none; catalog images already at their size and RGB folders kept as uint8 (resized ones
rounded to uint8 levels) and converted to float32 in [0, 1] as they are read, the rest
stored as float32), writes every split as blocks of
examples (`tasks.data.blocks`) under ``<cache>/datasets/<name>-<fingerprint>/`` and
returns a `CachedDataset`: plain paths and metadata that Prefect can hash and pass
between machines.

The fingerprint covers (source, version, splits, preprocessing), so changing any
of them builds a new entry. Entries are kept by `tasks.storage.store`: staged and renamed,
``meta.json`` recording every file's sha256, rebuilt when they no longer match.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nighttune.tasks.core import settings
from nighttune.tasks.core.config import DatasetSpec
from nighttune.tasks.core.errors import DatasetUnavailable
from nighttune.tasks.core.logs import get_logger
from nighttune.tasks.data.blocks import block_rows, write_blocks
from nighttune.tasks.data.cached import CachedDataset
from nighttune.tasks.data.folders import ImageFolder
from nighttune.tasks.data.sources import open_source
from nighttune.tasks.storage.files import existing_ancestor
from nighttune.tasks.storage.store import Slot

# Bump when the cached layout or the preprocessing code changes meaning.
# 4: images that need no resizing are kept as stored (uint8), converted when read.
# 5: splits as raw blocks of examples (tasks.data.blocks), not tf.data's saved format.
# 6: resized images rounded to uint8 levels; RGB folders kept as uint8.
CACHE_FORMAT = 6
SPLITS = ("train", "validation", "test")


def resolve_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The flag if given, else ``$NIGHTTUNE_CACHE_DIR``, else ``~/.cache/nighttune``."""
    if cache_dir:
        return Path(cache_dir).expanduser().resolve()
    return settings.current().cache_dir


def load_dataset(spec: DatasetSpec, cache_dir: str | os.PathLike | None = None) -> CachedDataset:
    """Return ``spec``'s cached splits, building (or rebuilding a damaged) entry if needed.

    Raises:
        DatasetUnavailable: unknown name, missing or unusable folder, or a catalog
            dataset that is not prepared and cannot be downloaded from here.
        ConfigError: a dataset that cannot be used as given (e.g. varying image
            sizes without ``image_size``).
    """
    log = get_logger()
    root = resolve_cache_dir(cache_dir)
    source = open_source(spec, root)
    key = _cache_key(source, spec)

    def build(staging: Path) -> dict[str, Any]:
        log.info("dataset %s: preprocessing and caching", spec.label)
        counts: dict[str, int] = {}
        splits = source.splits()  # (prepares a catalog dataset: its size is known after)
        check_space(spec, root, examples=source.num_examples(), input_shape=source.input_shape)
        x_spec, y_spec = splits["train"].element_spec
        rows = block_rows(tuple(x_spec.shape), x_spec.dtype.as_numpy_dtype)
        for split, ds in splits.items():
            counts[split] = write_blocks(ds, staging / split, rows)
            if counts[split] == 0:
                raise DatasetUnavailable(
                    f"dataset {spec.label}: the {split} split came out empty; "
                    "add examples or lower val_fraction / test_fraction"
                )
        return {
            "class_names": source.class_names,
            "input_shape": list(source.input_shape),
            "label_shape": list(y_spec.shape),
            "label_dtype": y_spec.dtype.name,
            "num_examples": counts,
            "stored": getattr(source, "stored", "float32"),
            "block_rows": rows,
        }

    entry = Slot(root, "datasets", _slug(source.identity), key).get_or_build(
        build, fresh=not spec.cache
    )
    log.info("dataset %s: %s %s", spec.label, "cache hit" if entry.hit else "cached in", entry.path)
    data = entry.data
    kept = sum(data["num_examples"].values())  # as recorded when the entry was built
    if isinstance(source, ImageFolder) and (lost := len(source.files) - kept):
        log.warning("dataset %s: skipped %d unreadable image file(s)", spec.label, lost)
    return CachedDataset(
        path=str(entry.path),
        fingerprint=entry.fingerprint,
        source=source.identity,
        class_names=data["class_names"],
        input_shape=tuple(data["input_shape"]),
        label_shape=tuple(data["label_shape"]),
        label_dtype=data["label_dtype"],
        num_examples=data["num_examples"],
        stored=data["stored"],
        block_rows=data["block_rows"],
        cache_hit=entry.hit,
    )


def _cache_key(source: Any, spec: DatasetSpec) -> dict[str, Any]:
    """Everything a cached entry depends on: the source's identity and version (for a
    data builder: a hash of what it returned), the splits and the preprocessing."""
    return {
        "format": CACHE_FORMAT,
        "source": source.identity,
        "version": source.version,
        "splits": source.split_plan,
        "preprocessing": {
            "dtype": "float32",
            "range": [0.0, 1.0],
            "input_shape": list(source.input_shape),
            "seed": spec.seed,
        },
    }


def check_dataset(spec: DatasetSpec, cache_dir: str | os.PathLike | None = None) -> None:
    """Raise the `UserError` that `load_dataset` would, without loading (seconds at most)."""
    root = resolve_cache_dir(cache_dir)
    source = open_source(spec, root)
    source.check()
    if examples := source.num_examples():  # known before preparing: folders, prepared TFDS
        check_space(spec, root, examples=examples, input_shape=source.input_shape)


def check_space(
    spec: DatasetSpec, folder: Path, *, examples: int, input_shape: tuple[int, ...]
) -> None:
    """Refuse a cache entry that would not fit the disk (float32 inputs, before writing)."""
    import math
    import shutil

    need = examples * 4 * (math.prod(input_shape) + 2)
    probe = existing_ancestor(folder)
    free = shutil.disk_usage(probe).free
    if need > 0.9 * free:
        shape = "x".join(map(str, input_shape))
        raise DatasetUnavailable(
            f"dataset {spec.label}: caching {examples} examples of {shape} "
            f"(float32) needs about {_size(need)} and {probe} has {_size(free)} free; "
            "give a smaller --image-size, or a --cache-dir on a disk with room"
        )


# --------------------------------------------------------------------------- entries


def _size(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def _slug(identity: str) -> str:
    # Folders are absolute paths: their last part; TFDS names look like mnist/3.0.1.
    tail = Path(identity).name if os.path.isabs(identity) else identity.replace("/", "-")
    return tail
