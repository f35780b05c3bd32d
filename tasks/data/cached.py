"""`CachedDataset`: a dataset's cached splits on disk, and the ways training reads them.

A split is blocks of examples (`tasks.data.blocks`) stored as the source gave them
(uint8 images at their own size, float32 otherwise) and converted to the model's float32
as they are read. Three ways to read one:

- `stored_arrays`: the whole split in memory as stored (the fused epoch loop, when it
  fits the budget, converts each batch with `to_model`); `arrays`: converted;
- `batches`: batches for ``fit``, the LR range test and evaluation: held in memory when
  the split fits the budget, else read from disk every pass;
- `windows`: past the budget, the fused loop's input: each epoch a fresh order of blocks,
  taken a window (a quarter of the budget) at a time and shuffled within it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from nighttune.tasks.data.blocks import block_count, block_reader, read_numpy, window_blocks


class CachedDataset(BaseModel):
    """A dataset's cached splits on disk, and what a model needs to know about them."""

    path: str
    fingerprint: str
    source: str
    class_names: list[str]
    input_shape: tuple[int, ...]  # one example's: (height, width, channels) for images
    label_shape: tuple[int, ...] = ()  # (): integer classes; (k,): one-hot rows
    label_dtype: str = "int64"  # float32 for one-hot rows and regression targets
    num_examples: dict[str, int]
    stored: Literal["float32", "uint8"] = "float32"  # uint8: converted as it is read
    block_rows: int  # examples in one block on disk (`tasks.data.blocks`)
    cache_hit: bool = False

    @property
    def num_classes(self) -> int | None:
        """The classes' count; None for a regression (a data builder's float targets)."""
        return len(self.class_names) or None

    def split(self, name: str) -> Any:
        """The split as a `tf.data.Dataset` of ``(float32 input, label)``: int64 classes
        (one-hot float32 rows where a data builder gave those), in the stored order."""
        return self._examples(name).map(lambda x, y: (self.to_model(x), y))

    def stored_arrays(self, name: str) -> tuple[Any, Any]:
        """The whole split in memory as stored (inputs uint8 or float32, labels): what the
        fused epoch loop holds, converting each batch with `to_model` as it trains."""
        import tensorflow as tf

        folder = Path(self.path) / name
        count = self.blocks(name)
        x = read_numpy(folder, "x", count, dtype=self.stored, shape=self.input_shape)
        y = read_numpy(folder, "y", count, dtype=self.label_dtype, shape=self.label_shape)
        return tf.convert_to_tensor(x), tf.convert_to_tensor(y)

    def arrays(self, name: str) -> tuple[Any, Any]:
        """The whole split in memory as two tensors: float32 inputs and labels."""
        x, y = self.stored_arrays(name)
        return self.to_model(x), y

    def to_model(self, x: Any) -> Any:
        """Stored inputs (one or a batch) -> the model's float32: uint8 images converted
        (`tasks.data.images.expand_compact`), float32 as it is."""
        if self.stored == "float32":
            return x
        from nighttune.tasks.data.images import expand_compact

        return expand_compact(x, self.input_shape[-1])

    def blocks(self, name: str) -> int:
        """How many blocks the split takes on disk."""
        if name not in self.num_examples:
            raise KeyError(f"no split {name!r}; have {', '.join(self.num_examples)}")
        return block_count(self.num_examples[name], self.block_rows)

    def nbytes(self, name: str) -> int:
        """What the split's inputs take as stored: on disk, and in memory when held."""
        itemsize = 1 if self.stored == "uint8" else 4
        return itemsize * self.num_examples[name] * math.prod(self.input_shape)

    def held(self, name: str, budget: int | None) -> bool:
        """Whether the split is held in memory under ``budget`` bytes (None: always)."""
        return budget is None or self.nbytes(name) <= budget

    def batches(
        self,
        name: str,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        budget: int | None = None,
    ) -> Any:
        """The split batched as the model takes it, optionally reshuffled each pass
        (seeded): held in memory as stored when it fits ``budget`` bytes (always when
        None), else read from the cache on disk every pass, its blocks in a fresh order
        and the examples shuffled through a buffer of a quarter of the budget.

        Trials do not use this for training: see `tasks.tuning.epoch_loop` and `windows`.
        """
        import tensorflow as tf

        n = self.num_examples[name]
        if self.held(name, budget):
            ds, buffer = self._examples(name).cache(), n
        else:
            ids = tf.data.Dataset.range(self.blocks(name))
            if shuffle:
                ids = ids.shuffle(self.blocks(name), seed=seed, reshuffle_each_iteration=True)
            ds = self._examples(name, ids)
            buffer = max(256, min(n, (budget or 0) * n // 4 // self.nbytes(name)))
        if shuffle:
            ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
        batched = ds.batch(batch_size).map(lambda x, y: (self.to_model(x), y))
        return batched.prefetch(tf.data.AUTOTUNE)

    def windows(self, name: str, seed: int, budget: int, *, batch_size: int) -> tuple[Any, int]:
        """The fused epoch loop's input past the memory budget, and its elements an epoch.

        An endless `tf.data.Dataset` of ``(x as stored, y, permutation of len(x))`` like
        `tasks.tuning.epoch_loop.epoch_inputs`, one element a window: every epoch the
        blocks in a fresh seeded order, taken as many at a time as a quarter of ``budget``
        holds; the permutation (seeded too) shuffles the window. At most three windows
        are alive at once (being trained on, prefetched, being read).

        Every window holds at least one batch of ``batch_size``: a window is at least
        one block more than a batch takes, and the blocks left over at the end of an
        epoch join its last window instead of making a short one (the compiled loop
        cannot take a window smaller than its batch, and would train nothing on it).
        """
        import tensorflow as tf

        count = self.blocks(name)
        k = window_blocks(budget, self.nbytes(name) // self.num_examples[name] * self.block_rows)
        k = min(count, max(k, 1 + -(-(batch_size - 1) // self.block_rows)))
        per_epoch = count // k
        read = self._reader(name)

        def epoch(draw: Any) -> Any:
            key = tf.stack([tf.constant(seed, tf.int64), draw])
            order = tf.random.experimental.stateless_shuffle(tf.range(count, dtype=tf.int64), key)
            whole = (per_epoch - 1) * k
            windows = tf.data.Dataset.from_tensor_slices(order[:whole]).batch(k)
            last = tf.data.Dataset.from_tensors(order[whole:])  # k to 2k - 1 blocks
            numbered = windows.concatenate(last).enumerate()
            return numbered.map(lambda i, ids: (ids, tf.stack([draw, i])))

        def window(ids: Any, key: Any) -> Any:
            x, y = read(ids)
            return x, y, tf.random.experimental.stateless_shuffle(tf.range(tf.shape(y)[0]), key)

        ds = tf.data.Dataset.random(seed=seed).flat_map(epoch).map(window).prefetch(1)
        return ds, per_epoch

    # ------------------------------------------------------------------ reading blocks

    def _reader(self, name: str) -> Any:
        return block_reader(
            Path(self.path) / name,
            self.blocks(name),
            x=(self.stored, self.input_shape),
            y=(self.label_dtype, self.label_shape),
        )

    def _counted(self, examples: Any, name: str) -> Any:
        """``examples`` with their count known to tf.data (``unbatch`` loses it, and Keras
        warns "your input ran out of data" at the end of a pass of unknown length)."""
        import tensorflow as tf

        return examples.apply(tf.data.experimental.assert_cardinality(self.num_examples[name]))

    def _examples(self, name: str, ids: Any = None) -> Any:
        """The split's examples as stored, its blocks read in the order of ``ids`` (a
        dataset of block numbers; default: the stored order)."""
        import tensorflow as tf

        read = self._reader(name)
        ids = tf.data.Dataset.range(self.blocks(name)) if ids is None else ids
        blocks = ids.map(
            lambda i: read(tf.reshape(i, [1])),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        return self._counted(blocks.unbatch(), name)
