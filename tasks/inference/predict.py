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
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tasks.core.errors import UserError, clean_tf_message, first_line
from tasks.data.images import (
    decode_exact,
    decode_image_file,
    decode_resized,
    find_images,
    finish,
    load_image,
    printable,
    tf_path,
)
from tasks.runs.manifest import Manifest
from tasks.runs.reader import RunUnavailable, open_run
from tasks.storage.files import check_writable_dir, remove_orphans, scratch_path


@dataclass
class PredictSummary:
    """What a prediction run did."""

    files: int
    predicted: int
    errors: int
    seconds: float
    out: str
    renamed: int = 0  # names not valid UTF-8, written with \\xNN escapes
    outside: int = 0  # symlinked folders not followed (they lead outside --images)

    @property
    def images_per_s(self) -> float:
        return self.files / self.seconds if self.seconds else 0.0


def load_run_model(
    ref: str, cache_dir: str | None = None, endpoint_url: str | None = None
) -> tuple[Any, Manifest]:
    """The run's model (loaded with ``safe_mode=True``) and its verified manifest, which
    must agree with the model on the input shape and the number of classes."""
    run, manifest = open_run(ref, cache_dir, endpoint_url)  # before TensorFlow loads
    import keras

    try:
        model = keras.models.load_model(run / "model.keras", safe_mode=True)
    except Exception as exc:
        reason = first_line(exc)
        if "safe_mode" in reason or "lambda" in reason.lower():
            reason = "it holds code (a Lambda layer) that safe_mode refuses to run"
        raise RunUnavailable(f"model {ref!r} will not load: {reason[:300]}") from None
    takes = tuple(getattr(model, "input_shape", ())[1:])
    gives = tuple(getattr(model, "output_shape", ())[1:])
    if takes != tuple(manifest.input_shape) or gives != (len(manifest.class_names),):
        raise RunUnavailable(
            f"model {ref!r}: its manifest says input {list(manifest.input_shape)} and "
            f"{len(manifest.class_names)} classes, the model takes {list(takes)} and gives "
            f"{list(gives)}; the run was changed — export it again"
        )
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
        decode_image_file(tf_path(path))
    except (tf.errors.InvalidArgumentError, tf.errors.OpError) as exc:
        message = exc.message.strip().splitlines()[0] if exc.message else type(exc).__name__
        return f"cannot decode: {clean_tf_message(message)[:200]}"
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
                loaded[path] = load_image(tf_path(path), input_shape)
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
            got = [os.fsdecode(p) for p in batch_paths.numpy()]
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
MAX_BATCH_BYTES = 128 * 2**20  # the floor of 32 images holds only while they fit this


def auto_batch_size(input_shape: tuple[int, ...]) -> int:
    """As many images as fit `BATCH_BYTES` of float32 input, within `BATCH_RANGE`.

    Per-batch work (the model call, converting and formatting rows) is paid once per
    batch: 28x28 images at 1024 a batch predicted 1.47x as fast as at 256
    (bench/predict.py); 224x224x3 images get 32 (19 MB). Images so large that 32 of
    them pass `MAX_BATCH_BYTES` get as many as fit it, at least one (4096x4096x3: 1).
    """
    per_image = 4 * int(np.prod(input_shape))
    low, high = BATCH_RANGE
    if low * per_image > MAX_BATCH_BYTES:
        return max(1, MAX_BATCH_BYTES // per_image)
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

    Image names that are not regular files (or too large) are error rows, never read;
    names that are not valid UTF-8 are written with ``\\xNN`` escapes (counted in
    the summary).

    Raises:
        UserError: a missing folder, no images at all, an unusable ``out``, or a model
            that will not load.
    """
    if batch_size is not None and batch_size < 1:
        raise UserError(f"--batch-size must be a positive integer (got {batch_size})")
    target = Path(out).expanduser()
    if target.is_dir():
        raise UserError(f"--out {out} is a folder; give the CSV file to write, e.g. {out}/p.csv")
    check_writable_dir(target.parent, "folder of --out")
    found = find_images(folders)
    model, manifest = load_run_model(model_ref, cache_dir, endpoint_url)
    batch_size = batch_size or auto_batch_size(manifest.input_shape)
    k = max(1, min(top_k, len(manifest.class_names)))
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(target.parent)  # CSVs of killed runs
    tmp = scratch_path(target.with_name(f".{target.name}"), "tmp")
    total = len(found.paths) + len(found.rejected)
    start = time.perf_counter()
    summary = PredictSummary(total, 0, 0, 0.0, str(target), outside=len(found.outside))
    batches = (
        predict_batches(
            model,
            manifest.class_names,
            manifest.input_shape,
            found.paths,
            batch_size,
            k,
            manifest.outputs == "logits",
        )
        if found.paths
        else iter([])
    )
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(header(k))
            for rows in _with_rejected(batches, found.rejected, k):
                writer.writerows(_counted(rows, summary))
                if progress:
                    progress(summary.predicted + summary.errors, total)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    summary.seconds = time.perf_counter() - start
    return summary


def _counted(rows: list[list[Any]], summary: PredictSummary) -> list[list[Any]]:
    """``rows`` with printable paths, counted into ``summary`` (renamed, errors, predicted)."""
    for row in rows:
        shown = printable(row[0])
        summary.renamed += shown is not row[0]
        row[0] = shown
        if row[3]:
            summary.errors += 1
        else:
            summary.predicted += 1
    return rows


def _with_rejected(
    batches: Iterator[list[list[Any]]], rejected: dict[str, str], k: int
) -> Iterator[list[list[Any]]]:
    """The batches' rows with the rejected files' error rows merged in, in path order."""
    pending = sorted(rejected.items())
    i = 0
    for rows in batches:
        merged: list[list[Any]] = []
        for row in rows:
            while i < len(pending) and pending[i][0] < row[0]:
                merged.append(_error_row(*pending[i], k))
                i += 1
            merged.append(row)
        yield merged
    if i < len(pending):
        yield [_error_row(path, why, k) for path, why in pending[i:]]
