"""Datasets in, cached preprocessed train / validation / test splits out.

A `DatasetSpec` names a TFDS catalog dataset, the bundled offline ``digits``, or
a folder of images with one subfolder per class. `load_dataset` preprocesses it
once (fixed shape, seeded validation/test carved from train where the source has
none; images already at their size kept as uint8 and converted to float32 in [0, 1]
as they are read, the rest stored as float32), saves every split with `tf.data.Dataset.save` under
``<cache>/datasets/<name>-<fingerprint>/`` and returns a `CachedDataset`: plain
paths and metadata that Prefect can hash and pass between machines.

The fingerprint covers (source, version, splits, preprocessing), so changing any
of them builds a new entry. Entries are kept by `tasks.storage.store`: staged and renamed,
``meta.json`` recording every file's sha256, rebuilt when they no longer match.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from tasks.core import settings
from tasks.core.config import DatasetSpec
from tasks.core.errors import DatasetUnavailable
from tasks.core.logs import get_logger
from tasks.data.folders import ImageFolder
from tasks.data.sources import open_source
from tasks.storage.files import existing_ancestor
from tasks.storage.store import Slot

# Bump when the cached layout or the preprocessing code changes meaning.
# 4: images that need no resizing are kept as stored (uint8), converted when read.
CACHE_FORMAT = 4
SPLITS = ("train", "validation", "test")


class CachedDataset(BaseModel):
    """A dataset's cached splits on disk, and what a model needs to know about them."""

    path: str
    fingerprint: str
    source: str
    class_names: list[str]
    input_shape: tuple[int, ...]  # one example's: (height, width, channels) for images
    label_shape: tuple[int, ...] = ()  # (): integer classes; (k,): one-hot rows
    num_examples: dict[str, int]
    stored: Literal["float32", "uint8"] = "float32"  # uint8: converted as it is read
    cache_hit: bool = False

    @property
    def num_classes(self) -> int | None:
        """The classes' count; None for a regression (a data builder's float targets)."""
        return len(self.class_names) or None

    def split(self, name: str) -> Any:
        """The split as a `tf.data.Dataset` of ``(float32 input, label)``: int64 classes
        (one-hot float32 rows where a data builder gave those)."""
        import tensorflow as tf

        if name not in self.num_examples:
            raise KeyError(f"no split {name!r}; have {', '.join(self.num_examples)}")
        ds = tf.data.Dataset.load(str(Path(self.path) / name))
        if self.stored == "float32":
            return ds
        from tasks.data.images import expand_compact

        channels = self.input_shape[-1]
        return ds.map(
            lambda x, y: (expand_compact(x, channels), y),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )

    def arrays(self, name: str) -> tuple[Any, Any]:
        """The whole split in memory as two tensors: images and labels."""
        return self.split(name).batch(self.num_examples[name]).get_single_element()

    def float_bytes(self, name: str) -> int:
        """What the split's inputs take in memory as float32."""
        return 4 * self.num_examples[name] * math.prod(self.input_shape)

    def held(self, name: str, budget: int | None) -> bool:
        """Whether the split is held in memory under ``budget`` bytes (None: always)."""
        return budget is None or self.float_bytes(name) <= budget

    def batches(
        self,
        name: str,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        budget: int | None = None,
    ) -> Any:
        """The split batched, optionally reshuffled each pass (seeded): held in memory when
        it fits ``budget`` bytes as float32 (always when None), else read from the cache on
        disk every pass, shuffled through a buffer of a quarter of the budget.

        Trials in memory do not use this for training: see `tasks.tuning.epoch_loop`.
        """
        import tensorflow as tf

        n = self.num_examples[name]
        if budget is None or self.held(name, budget):
            ds, buffer = self.split(name).cache(), n
        else:  # a quarter of the budget's worth of examples
            ds, buffer = (
                self.split(name),
                max(256, min(n, budget * n // 4 // self.float_bytes(name))),
            )
        if shuffle:
            ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


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
        log.info("dataset %s: preprocessing and caching", spec.name)
        counts: dict[str, int] = {}
        splits = source.splits()  # (prepares a catalog dataset: its size is known after)
        check_space(spec, root, source.num_examples(), source.input_shape)
        for split, ds in splits.items():
            counts[split] = _save_split(ds, staging / split)
            if counts[split] == 0:
                raise DatasetUnavailable(
                    f"dataset {spec.name}: the {split} split came out empty; "
                    "add examples or lower val_fraction / test_fraction"
                )
        return {
            "class_names": source.class_names,
            "input_shape": list(source.input_shape),
            "label_shape": list(splits["train"].element_spec[1].shape),
            "num_examples": counts,
            "stored": getattr(source, "stored", "float32"),
        }

    entry = Slot(root, "datasets", _slug(source.identity), key).get_or_build(
        build, fresh=not spec.cache
    )
    log.info("dataset %s: %s %s", spec.name, "cache hit" if entry.hit else "cached in", entry.path)
    data = entry.data
    kept = sum(data["num_examples"].values())  # as recorded when the entry was built
    if isinstance(source, ImageFolder) and (lost := len(source.files) - kept):
        log.warning("dataset %s: skipped %d unreadable image file(s)", spec.name, lost)
    return CachedDataset(
        path=str(entry.path),
        fingerprint=entry.fingerprint,
        source=source.identity,
        class_names=data["class_names"],
        input_shape=tuple(data["input_shape"]),
        label_shape=tuple(data.get("label_shape", ())),
        num_examples=data["num_examples"],
        stored=data.get("stored", "float32"),
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
        check_space(spec, root, examples, source.input_shape)


def check_space(
    spec: DatasetSpec, folder: Path, examples: int, input_shape: tuple[int, ...]
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
            f"dataset {spec.name}: caching {examples} examples of {shape} "
            f"(float32) needs about {_size(need)} and {probe} has {_size(free)} free; "
            "give a smaller --image-size, or a --cache-dir on a disk with room"
        )


# --------------------------------------------------------------------------- entries


def _size(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def _save_split(ds: Any, path: Path) -> int:
    """Save ``ds`` as one shard (stable order on load) and return its element count."""
    import tensorflow as tf

    ds.save(str(path), shard_func=lambda *_: tf.constant(0, tf.int64))
    return int(tf.data.Dataset.load(str(path)).reduce(0, lambda n, _: n + 1))


def _slug(identity: str) -> str:
    # Folders are absolute paths: their last part; TFDS names look like mnist/3.0.1.
    tail = Path(identity).name if os.path.isabs(identity) else identity.replace("/", "-")
    return tail
