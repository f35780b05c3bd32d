"""Images through the model in batches, in order, with a row for every file.

Files stream through one `tf.data` pipeline (read, decode any of png, jpeg, bmp, gif;
gray, RGB, RGBA or 16-bit; preprocess exactly as training did; batch; predict). A
file that cannot be read or decoded does not stop the others: it becomes an error
row, diagnosed in Python only for such files.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from nighttune.tasks.core.errors import clean_tf_message
from nighttune.tasks.data.images import (
    decode_exact,
    decode_image_file,
    decode_resized,
    finish,
    load_image,
    tf_path,
)
from nighttune.tasks.inference.rows import PredictionRow

STRICT_RESTARTS = 3  # failing batches redone file by file before switching to ignore_errors


def diagnose(path: str) -> str:
    """Why one file did not make it through the pipeline (called for failures only)."""
    import tensorflow as tf

    try:
        size = os.path.getsize(path)
        with open(path, "rb"):
            pass
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    if size == 0:
        return "empty file"
    try:
        decode_image_file(tf_path(path))
    except (tf.errors.InvalidArgumentError, tf.errors.OpError) as exc:
        message = exc.message.strip().splitlines()[0] if exc.message else type(exc).__name__
        return f"cannot decode: {clean_tf_message(message)[:200]}"
    return "cannot decode"


def _failed(path: str) -> PredictionRow:
    return PredictionRow.failed(path, diagnose(path))


def _pipeline(
    paths: list[str],
    input_shape: tuple[int, int, int],
    batch_size: int,
    *,
    tolerant: bool,
    exact: bool = False,
) -> Any:
    """`load_image`, split: the per-file part per element, the rest once per batch.

    Strict (the default) stops at the first file that fails; tolerant drops such
    files (`ignore_errors`, which costs about a fifth of the throughput). ``exact``
    (strict pipelines only) takes the fast path for files already of the model's size
    (`decode_exact`): a file of another size then fails like a broken one.
    """
    import tensorflow as tf

    height, width, channels = input_shape
    decode = decode_exact if exact else decode_resized
    ds = tf.data.Dataset.from_tensor_slices([tf_path(p) for p in paths]).map(
        lambda p: (p, decode(p, (height, width))),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    if tolerant:
        ds = ds.ignore_errors()
    return (
        ds.batch(batch_size).map(lambda p, x: (p, finish(x, channels))).prefetch(tf.data.AUTOTUNE)
    )


def _model_sized(path: str, input_shape: tuple[int, int, int]) -> bool:
    """Whether ``path`` decodes at the model's height and width (the fast path's bet)."""
    import tensorflow as tf

    try:
        return tuple(decode_image_file(tf_path(path)).shape[:2]) == tuple(input_shape[:2])
    except tf.errors.OpError:
        return False


class BatchPredictor:
    """A model's top-k labels for image files (see `predict_batches`)."""

    def __init__(
        self,
        model: Any,
        class_names: list[str],
        input_shape: tuple[int, int, int],
        *,
        top_k: int = 1,
        logits: bool = True,
    ) -> None:
        import tensorflow as tf

        self.names = np.array(class_names, dtype=object)
        self.input_shape = input_shape
        self.k = max(1, min(top_k, len(class_names)))

        @tf.function(reduce_retracing=True)
        def probabilities(x: Any) -> Any:
            outputs = model(x, training=False)
            return tf.nn.softmax(outputs) if logits else outputs

        self.probabilities = probabilities

    def rows(self, paths: list[str], images: Any) -> list[PredictionRow]:
        """One row per image, formatted a batch at a time with NumPy."""
        probs = self.probabilities(images).numpy()
        order = np.argsort(-probs, axis=1)[:, : self.k]
        top = np.take_along_axis(probs, order, axis=1)
        labels = self.names[order].tolist()
        confidences = np.char.mod("%.6f", top).tolist()
        return [
            PredictionRow(path, tuple(ls), tuple(cs))
            for path, ls, cs in zip(paths, labels, confidences, strict=True)
        ]

    def one_by_one(self, chunk: list[str]) -> list[PredictionRow]:
        """A batch that failed, file by file: the files that fail become error rows."""
        import tensorflow as tf

        loaded: dict[str, Any] = {}
        for path in chunk:
            try:
                loaded[path] = load_image(tf_path(path), self.input_shape)
            except tf.errors.OpError:
                continue
        good = self.rows(list(loaded), tf.stack(list(loaded.values()))) if loaded else []
        by_path = {row.path: row for row in good}
        return [by_path.get(p) or _failed(p) for p in chunk]


def predict_batches(
    model: Any,
    class_names: list[str],
    input_shape: tuple[int, int, int],
    *,
    paths: list[str],
    batch_size: int = 256,
    top_k: int = 1,
    logits: bool = True,
) -> Iterator[list[PredictionRow]]:
    """Lists of rows, in the order of ``paths``: predictions and error rows for failed files.

    The pipeline runs strict: when a batch fails, that batch alone is redone file by
    file (the failing files become error rows) and the pipeline restarts after it.
    After a few such batches it turns tolerant and drops failing files as it goes.
    When the first file is of the model's size, files are expected to be (the fast
    path) until a batch fails; from then on every file may be resized.
    """
    import tensorflow as tf

    predictor = BatchPredictor(model, class_names, input_shape, top_k=top_k, logits=logits)
    cursor, restarts = 0, 0
    model_sized = _model_sized(paths[0], input_shape)
    while cursor < len(paths):
        tolerant = restarts >= STRICT_RESTARTS
        exact = model_sized and restarts == 0  # tolerant needs restarts, so never both
        pipeline = _pipeline(
            paths[cursor:], input_shape, batch_size, tolerant=tolerant, exact=exact
        )
        batches = iter(pipeline)
        while True:
            try:
                batch_paths, images = next(batches)
            except StopIteration:
                if cursor < len(paths):  # files a tolerant pipeline dropped at the very end
                    yield [_failed(p) for p in paths[cursor:]]
                    cursor = len(paths)
                break
            except tf.errors.OpError:  # a file in the next batch failed: redo that batch
                end = min(cursor + batch_size, len(paths))
                yield predictor.one_by_one(paths[cursor:end])
                cursor, restarts = end, restarts + 1
                break
            rows = predictor.rows([os.fsdecode(p) for p in batch_paths.numpy()], images)
            merged, cursor = _with_dropped(rows, paths, cursor)
            yield merged


def _with_dropped(
    rows: list[PredictionRow], paths: list[str], cursor: int
) -> tuple[list[PredictionRow], int]:
    """A batch's rows with error rows for the files a tolerant pipeline dropped before
    them, and the cursor after the batch."""
    if paths[cursor : cursor + len(rows)] == [row.path for row in rows]:  # the usual case
        return rows, cursor + len(rows)
    merged: list[PredictionRow] = []
    for row in rows:
        while paths[cursor] != row.path:
            merged.append(_failed(paths[cursor]))
            cursor += 1
        merged.append(row)
        cursor += 1
    return merged, cursor
