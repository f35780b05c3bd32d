"""A cached split on disk as blocks of examples, read back by TensorFlow's own ops.

``<entry>/<split>/x-00000.bin``, ``y-00000.bin``, ...: each block holds `block_rows`
examples (the last one fewer), inputs and labels as raw little-endian C-order arrays;
their dtypes and shapes are in the entry's ``meta.json`` (`CachedDataset`). Any block
is one ``read_file`` + ``decode_raw`` away, and so is any set of blocks.

Why blocks: tf.data's saved format (CACHE_FORMAT <= 4) is read example by example:
0.6-1.0 s an epoch for Fashion-MNIST's 54,000 train images on this project's 2-core CPU,
three to four times the fused epoch itself (bench/stream.py). Reading a block costs
about what copying its bytes does, and random access to blocks is what lets an epoch
past memory be shuffled: a fresh order of blocks, then a window of them at a time
shuffled as a whole (`window_blocks`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

# About one block's inputs as stored: small enough that a window of blocks can be a
# quarter of a modest memory budget, large enough that a block is read in one go.
BLOCK_BYTES = 2**20


def block_rows(example_shape: tuple[int, ...], dtype: Any) -> int:
    """Examples in one block for inputs of this shape and dtype."""
    example_bytes = math.prod(example_shape) * np.dtype(dtype).itemsize
    return max(1, BLOCK_BYTES // max(1, example_bytes))


def write_blocks(ds: Any, folder: Path, rows: int) -> int:
    """Write ``ds`` (a `tf.data.Dataset` of ``(x, y)`` examples) into ``folder`` as blocks
    of ``rows`` examples, one batch in memory at a time; return the examples written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    for index, (x, y) in enumerate(ds.batch(rows).as_numpy_iterator()):
        for part, array in (("x", x), ("y", y)):
            little = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
            little.tofile(folder / f"{part}-{index:05d}.bin")
        written += len(x)
    return written


def block_count(examples: int, rows: int) -> int:
    """How many blocks ``examples`` take at ``rows`` a block."""
    return -(-examples // rows)


def block_files(folder: str | Path, part: str, count: int) -> list[str]:
    """The paths of a split's ``count`` blocks of ``part`` ("x" inputs, "y" labels)."""
    return [str(Path(folder) / f"{part}-{index:05d}.bin") for index in range(count)]


def read_numpy(folder: str | Path, part: str, count: int, *, dtype: str, shape: tuple) -> Any:
    """A whole part of a split as one NumPy array (the block files concatenated)."""
    little = np.dtype(dtype).newbyteorder("<")
    arrays = [np.fromfile(path, dtype=little) for path in block_files(folder, part, count)]
    flat = np.concatenate(arrays) if arrays else np.empty(0, little)
    return flat.astype(np.dtype(dtype), copy=False).reshape((-1, *shape))


def block_reader(
    folder: str | Path, count: int, *, x: tuple[str, tuple], y: tuple[str, tuple]
) -> Any:
    """A TensorFlow function: int block ids (a vector) -> ``(x, y)`` of those blocks'
    examples, concatenated in the ids' order. ``x``/``y``: (dtype name, example shape)."""
    import tensorflow as tf

    paths = {part: tf.constant(block_files(folder, part, count)) for part in ("x", "y")}

    def part(name: str, ids: Any, layout: tuple[str, tuple]) -> Any:
        dtype, shape = layout
        files = tf.gather(paths[name], ids)
        raw = tf.map_fn(tf.io.read_file, files, fn_output_signature=tf.string)
        values = tf.io.decode_raw(tf.strings.reduce_join(raw), tf.dtypes.as_dtype(dtype))
        return tf.reshape(values, [-1, *shape])

    def read(ids: Any) -> tuple[Any, Any]:
        return part("x", ids, x), part("y", ids, y)

    return read


def window_blocks(budget: int, block_bytes: int) -> int:
    """Blocks shuffled together in one window when a split streams: as many as a quarter of
    the memory ``budget`` holds (at least one)."""
    return max(1, budget // 4 // max(1, block_bytes))
