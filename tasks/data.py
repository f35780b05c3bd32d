"""Datasets in, cached preprocessed train / validation / test splits out.

A `DatasetSpec` names a TFDS catalog dataset, the bundled offline ``digits``, or
a folder of images with one subfolder per class. `load_dataset` preprocesses it
once (float32 in [0, 1], fixed shape, seeded validation/test carved from train
where the source has none), saves every split with `tf.data.Dataset.save` under
``<cache>/datasets/<name>-<fingerprint>/`` and returns a `CachedDataset`: plain
paths and metadata that Prefect can hash and pass between machines.

The fingerprint covers (source, version, splits, preprocessing), so changing any
of them builds a new entry. Entries are kept by `tasks.store`: staged and renamed,
``meta.json`` recording every file's sha256, rebuilt when they no longer match.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from tasks.config import DatasetSpec
from tasks.errors import DatasetUnavailable
from tasks.logs import get_logger
from tasks.sources import ImageFolder, open_source
from tasks.store import get_or_build

# Bump when the cached layout or the preprocessing code changes meaning.
CACHE_FORMAT = 3
SPLITS = ("train", "validation", "test")
# Splits up to this size are trained from memory (MNIST's train split: 188 MB).
IN_MEMORY_BYTES = int(os.environ.get("NIGHTTUNE_IN_MEMORY_MB", "2048")) * 2**20
STREAM_SHUFFLE_BUFFER = 50_000


class CachedDataset(BaseModel):
    """A dataset's cached splits on disk, and what a model needs to know about them."""

    path: str
    fingerprint: str
    source: str
    class_names: list[str]
    input_shape: tuple[int, int, int]
    num_examples: dict[str, int]
    cache_hit: bool = False

    def split(self, name: str) -> Any:
        """The split as a `tf.data.Dataset` of ``(float32 image, int64 label)``."""
        import tensorflow as tf

        if name not in self.num_examples:
            raise KeyError(f"no split {name!r}; have {', '.join(self.num_examples)}")
        return tf.data.Dataset.load(str(Path(self.path) / name))

    def nbytes(self, name: str) -> int:
        """Bytes of the split's float32 images."""
        height, width, channels = self.input_shape
        return self.num_examples[name] * height * width * channels * 4

    def batches(self, name: str, batch_size: int, shuffle: bool = False, seed: int = 0) -> Any:
        """The split in batches, reshuffled each pass when ``shuffle`` (seeded, repeatable).

        A split that fits `IN_MEMORY_BYTES` is loaded once per process into two tensors
        and every batch is one gather from them, the epoch's permutation drawn per pass:
        per batch, not per example, work (bench/epoch.py: 0.7x the epoch time of a
        per-example shuffle buffer). A larger split streams from disk through a
        shuffle buffer, reshuffled each pass.
        """
        import tensorflow as tf

        if self.nbytes(name) > IN_MEMORY_BYTES:
            ds = self.split(name)
            if shuffle:
                ds = ds.shuffle(STREAM_SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
            return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
        images, labels = _split_tensors(self.path, name)
        count = self.num_examples[name]
        steps = -(-count // batch_size)

        def batch_of(order: Any) -> Any:
            def take(step: Any) -> Any:
                index = order[step * batch_size : (step + 1) * batch_size]
                return tf.gather(images, index), tf.gather(labels, index)

            return tf.data.Dataset.range(steps).map(take)

        if shuffle:
            # One seed per pass over the dataset, so each epoch has its own permutation.
            seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)
            ds = seeds.flat_map(
                lambda s: batch_of(
                    tf.random.experimental.stateless_shuffle(
                        tf.range(count, dtype=tf.int64),
                        seed=tf.stack([s, tf.constant(seed, tf.int64)]),
                    )
                )
            )
        else:
            ds = batch_of(tf.range(count, dtype=tf.int64))
        # flat_map hides the length; Keras wants it to size epochs without a trial pass.
        return ds.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(tf.data.AUTOTUNE)


@functools.lru_cache(maxsize=3)  # one dataset's train, validation and test
def _split_tensors(path: str, name: str) -> tuple[Any, Any]:
    """A cached split as ``(images, labels)`` tensors, read from disk once per process."""
    import tensorflow as tf

    images, labels = [], []
    for x, y in tf.data.Dataset.load(str(Path(path) / name)).batch(8192):
        images.append(x)
        labels.append(y)
    return tf.concat(images, 0), tf.concat(labels, 0)


def resolve_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The flag if given, else ``$NIGHTTUNE_CACHE_DIR``, else ``~/.cache/nighttune``."""
    if cache_dir:
        return Path(cache_dir).expanduser().resolve()
    if env := os.environ.get("NIGHTTUNE_CACHE_DIR"):
        return Path(env).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg).expanduser().resolve() / "nighttune"


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
    key = {
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
    counts: dict[str, int] = {}

    def build(staging: Path) -> dict[str, Any]:
        log.info("dataset %s: preprocessing and caching", spec.name)
        for split, ds in source.splits().items():
            counts[split] = _save_split(ds, staging / split)
            if counts[split] == 0:
                raise DatasetUnavailable(
                    f"dataset {spec.name}: the {split} split came out empty; "
                    "add examples or lower val_fraction / test_fraction"
                )
        return {
            "class_names": source.class_names,
            "input_shape": list(source.input_shape),
            "num_examples": counts,
        }

    entry, meta, hit = get_or_build(root, "datasets", _slug(source.identity), key, build)
    log.info("dataset %s: %s %s", spec.name, "cache hit" if hit else "cached in", entry)
    if isinstance(source, ImageFolder) and (lost := len(source.files) - sum(counts.values())):
        log.warning("dataset %s: skipped %d unreadable image file(s)", spec.name, lost)
    data = meta["data"]
    return CachedDataset(
        path=str(entry),
        fingerprint=meta["fingerprint"],
        source=source.identity,
        class_names=data["class_names"],
        input_shape=tuple(data["input_shape"]),
        num_examples=data["num_examples"],
        cache_hit=hit,
    )


def check_dataset(spec: DatasetSpec, cache_dir: str | os.PathLike | None = None) -> None:
    """Raise the `UserError` that `load_dataset` would, without loading (seconds at most)."""
    open_source(spec, resolve_cache_dir(cache_dir)).check()


# Prefect task: `load_dataset`. The on-disk cache is the cache, so Prefect's is off.
cache_dataset = task(name="cache_dataset", tags=["cpu"], cache_policy=NO_CACHE)(load_dataset)


# --------------------------------------------------------------------------- entries


def _save_split(ds: Any, path: Path) -> int:
    """Save ``ds`` as one shard (stable order on load) and return its element count."""
    import tensorflow as tf

    ds.save(str(path), shard_func=lambda *_: tf.constant(0, tf.int64))
    return int(tf.data.Dataset.load(str(path)).reduce(0, lambda n, _: n + 1))


def _slug(identity: str) -> str:
    # Folders are absolute paths: their last part; TFDS names look like mnist/3.0.1.
    tail = Path(identity).name if os.path.isabs(identity) else identity.replace("/", "-")
    return tail
