"""Batch prediction over folders of images with an exported run.

Files stream through one `tf.data` pipeline — read, decode (any of png, jpeg, bmp,
gif; gray, RGB, RGBA or 16-bit), preprocess exactly as training did (the run's
manifest gives the input shape and class names), batch, predict — and rows are
written as batches come, so memory stays flat on any number of files. A file that
cannot be read or decoded is dropped from the pipeline and becomes a row with an
error (diagnosed in Python, only for those files); the run goes on.

Rows: ``path,label,confidence,error`` (+ ``label_2,confidence_2,...`` with top-k),
in the sorted order of the files found. The CSV is written under a temporary name
and renamed when complete.
"""

from __future__ import annotations

import csv
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tasks.errors import UserError, first_line
from tasks.images import (
    IMAGE_EXTENSIONS,
    decode_exact,
    decode_image_file,
    decode_resized,
    finish,
    list_images,
    load_image,
)
from tasks.runs import RunUnavailable, open_run


@dataclass
class PredictSummary:
    """What a prediction run did."""

    files: int
    predicted: int
    errors: int
    seconds: float
    out: str

    @property
    def images_per_s(self) -> float:
        return self.files / self.seconds if self.seconds else 0.0


def find_images(folders: Sequence[str]) -> list[str]:
    """Every image under the folders, each real file once, in a stable order."""
    found: dict[str, str] = {}
    for folder in folders:
        root = Path(folder).expanduser()
        if not root.is_dir():
            raise UserError(f"image folder {folder} does not exist (or is not a folder)")
        for path in list_images(root):
            found.setdefault(os.path.realpath(path) if len(folders) > 1 else path, path)
    paths = sorted(found.values())
    if not paths:
        raise UserError(
            f"no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) under {', '.join(folders)}"
        )
    return paths


def load_run_model(
    ref: str, cache_dir: str | None = None, endpoint_url: str | None = None
) -> tuple[Any, dict[str, Any]]:
    """The run's model (loaded with ``safe_mode=True``) and its verified manifest."""
    run, manifest = open_run(ref, cache_dir, endpoint_url)  # before TensorFlow loads
    import keras

    try:
        model = keras.models.load_model(run / "model.keras", safe_mode=True)
    except Exception as exc:
        reason = first_line(exc)
        if "safe_mode" in reason or "lambda" in reason.lower():
            reason = "it holds code (a Lambda layer) that safe_mode refuses to run"
        raise RunUnavailable(f"model {ref!r} will not load: {reason[:300]}") from None
    return model, manifest


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
        decode_image_file(path)
    except (tf.errors.InvalidArgumentError, tf.errors.OpError) as exc:
        message = exc.message.strip().splitlines()[0] if exc.message else type(exc).__name__
        message = re.sub(r"\{\{.*?\}\}\s*|\s*\[Op:.*$", "", message)  # TF's op noise
        return f"cannot decode: {message[:200]}"
    return "cannot decode"


STRICT_RESTARTS = 3  # failing batches redone file by file before switching to ignore_errors


def _pipeline(
    paths: list[str],
    input_shape: tuple[int, int, int],
    batch_size: int,
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
    ds = tf.data.Dataset.from_tensor_slices(paths).map(
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
        return tuple(decode_image_file(path).shape[:2]) == tuple(input_shape[:2])
    except tf.errors.OpError:
        return False


def predict_batches(
    model: Any,
    class_names: list[str],
    input_shape: tuple[int, int, int],
    paths: list[str],
    batch_size: int = 256,
    top_k: int = 1,
    logits: bool = True,
) -> Iterator[list[list[Any]]]:
    """Lists of rows, in the order of ``paths``: predictions and error rows for failed files.

    The pipeline runs strict: when a batch fails, that batch alone is redone file by
    file (the failing files become error rows) and the pipeline restarts after it.
    After a few such batches it turns tolerant and drops failing files as it goes.
    When the first file is of the model's size, files are expected to be (the fast
    path) until a batch fails; from then on every file may be resized. Rows are
    formatted a batch at a time with NumPy.
    """
    import tensorflow as tf

    names = np.array(class_names, dtype=object)
    k = max(1, min(top_k, len(class_names)))

    @tf.function(reduce_retracing=True)
    def predict(x: Any) -> Any:
        outputs = model(x, training=False)
        return tf.nn.softmax(outputs) if logits else outputs

    def rows_for(got: list[str], images: Any) -> list[list[Any]]:
        probs = predict(images).numpy()
        order = np.argsort(-probs, axis=1)[:, :k]
        top = np.take_along_axis(probs, order, axis=1)
        columns = [got, names[order[:, 0]], [f"{c:.6f}" for c in top[:, 0]], [""] * len(got)]
        for j in range(1, k):
            columns += [names[order[:, j]], [f"{c:.6f}" for c in top[:, j]]]
        return [list(row) for row in zip(*columns, strict=True)]

    def one_by_one(chunk: list[str]) -> list[list[Any]]:
        loaded: dict[str, Any] = {}
        for path in chunk:
            try:
                loaded[path] = load_image(path, input_shape)
            except tf.errors.OpError:
                continue
        good = rows_for(list(loaded), tf.stack(list(loaded.values()))) if loaded else []
        by_path = {row[0]: row for row in good}
        return [by_path.get(p) or _error_row(p, diagnose(p), k) for p in chunk]

    cursor, restarts = 0, 0
    model_sized = _model_sized(paths[0], input_shape)
    while cursor < len(paths):
        tolerant = restarts >= STRICT_RESTARTS
        exact = model_sized and restarts == 0  # tolerant needs restarts, so never both
        batches = iter(_pipeline(paths[cursor:], input_shape, batch_size, tolerant, exact))
        while True:
            try:
                batch_paths, images = next(batches)
            except StopIteration:
                if cursor < len(paths):  # files a tolerant pipeline dropped at the very end
                    yield [_error_row(p, diagnose(p), k) for p in paths[cursor:]]
                    cursor = len(paths)
                break
            except tf.errors.OpError:  # a file in the next batch failed: redo that batch
                end = min(cursor + batch_size, len(paths))
                yield one_by_one(paths[cursor:end])
                cursor, restarts = end, restarts + 1
                break
            got = [p.decode() for p in batch_paths.numpy()]
            rows = rows_for(got, images)
            if paths[cursor : cursor + len(got)] == got:  # nothing dropped: the usual case
                cursor += len(got)
                yield rows
                continue
            merged: list[list[Any]] = []
            for path, row in zip(got, rows, strict=True):
                while paths[cursor] != path:  # files a tolerant pipeline dropped come first
                    merged.append(_error_row(paths[cursor], diagnose(paths[cursor]), k))
                    cursor += 1
                merged.append(row)
                cursor += 1
            yield merged


def _error_row(path: str, error: str, k: int) -> list[Any]:
    return [path, "", "", error] + ["", ""] * (k - 1)


def header(top_k: int) -> list[str]:
    extra = [f"{name}_{i}" for i in range(2, top_k + 1) for name in ("label", "confidence")]
    return ["path", "label", "confidence", "error", *extra]


BATCH_BYTES = 16 * 2**20  # input per batch when the batch size is not given
BATCH_RANGE = (32, 1024)


def auto_batch_size(input_shape: tuple[int, ...]) -> int:
    """As many images as fit `BATCH_BYTES` of float32 input, within `BATCH_RANGE`.

    Per-batch work (the model call, converting and formatting rows) is paid once per
    batch: 28x28 images at 1024 a batch predicted 1.47x as fast as at 256
    (bench/predict.py); 224x224x3 images get 32 (19 MB).
    """
    per_image = 4 * int(np.prod(input_shape))
    low, high = BATCH_RANGE
    return max(low, min(high, BATCH_BYTES // per_image))


def predict_to_csv(
    model_ref: str,
    folders: Sequence[str],
    out: str,
    batch_size: int | None = None,
    top_k: int = 1,
    cache_dir: str | None = None,
    endpoint_url: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PredictSummary:
    """Predict every image under ``folders`` into the CSV ``out`` (renamed into place at the end).

    Raises:
        UserError: a missing folder, no images at all, or a model that will not load.
    """
    if batch_size is not None and batch_size < 1:
        raise UserError(f"--batch-size must be a positive integer (got {batch_size})")
    paths = find_images(folders)
    model, manifest = load_run_model(model_ref, cache_dir, endpoint_url)
    class_names = manifest["class_names"]
    input_shape = tuple(manifest["input_shape"])
    batch_size = batch_size or auto_batch_size(input_shape)
    k = max(1, min(top_k, len(class_names)))
    target = Path(out).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    start = time.perf_counter()
    predicted = errors = 0
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(header(k))
            logits = manifest.get("outputs", "logits") == "logits"
            for rows in predict_batches(
                model, class_names, input_shape, paths, batch_size, k, logits
            ):
                writer.writerows(rows)
                failed = sum(1 for row in rows if row[3])
                errors += failed
                predicted += len(rows) - failed
                if progress:
                    progress(predicted + errors, len(paths))
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    return PredictSummary(len(paths), predicted, errors, time.perf_counter() - start, str(target))
