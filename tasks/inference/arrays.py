"""Batch prediction over an array file (``.npy`` or ``.csv``) with an exported run.

One CSV row per example, in the file's order; ``path`` is ``FILE:INDEX`` (0-based; a
CSV's header row not counted). A classifier writes labels and confidences as for
images; a regression writes its values (`tasks.inference.rows.ValueRow`). A ``.npy``
holds ``(n, *input_shape)`` numbers (memory-mapped, read a batch at a time); a
``.csv`` one example per line, ``prod(input_shape)`` numbers in row-major order, with
or without a header. A line that is not numbers, has the wrong count, or holds a NaN
or infinity is an error row; a file whose shape is wrong as a whole is refused in one
line before the model loads.
"""

from __future__ import annotations

import csv
import itertools
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nighttune.tasks.core.errors import UserError, first_line
from nighttune.tasks.inference.predict import (
    PredictSummary,
    auto_batch_size,
    counted,
    out_path,
    predict_to_csv,
    write_csv,
)
from nighttune.tasks.inference.rows import PredictionRow, ValueRow, header, value_header
from nighttune.tasks.runs.manifest import Manifest
from nighttune.tasks.runs.reader import DEFAULT_ACCESS, RunAccess, load_run_model

SUFFIXES = (".npy", ".csv")


@dataclass
class Block:
    """Up to a batch of examples: the good ones stacked, the others' reasons by index."""

    indices: list[int]
    x: np.ndarray  # (good examples, *input_shape), float32
    errors: dict[int, str] = field(default_factory=dict)


def check_inputs(inputs: str) -> Path:
    """The inputs file, or a one-line `UserError` (missing, a folder, another suffix)."""
    path = Path(inputs).expanduser()
    if path.suffix.lower() not in SUFFIXES:
        raise UserError(
            f"--inputs {inputs}: give a .npy or .csv file of examples "
            "(for image files use --images FOLDER)"
        )
    if not path.is_file():
        raise UserError(f"--inputs {inputs}: no such file")
    return path


def blocks(path: Path, shape: tuple[int, ...], size: int) -> tuple[int, Iterator[Block]]:
    """How many examples ``path`` holds, and its examples in blocks of ``size``."""
    if path.suffix.lower() == ".npy":
        return _npy_blocks(path, shape, size)
    return _csv_blocks(path, shape, size)


def _npy_blocks(path: Path, shape: tuple[int, ...], size: int) -> tuple[int, Iterator[Block]]:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise UserError(f"--inputs {path}: not a NumPy .npy file ({first_line(exc)})") from None
    if array.dtype.kind not in "biuf":
        raise UserError(f"--inputs {path}: holds {array.dtype} values; it needs numbers")
    if tuple(array.shape) == shape:
        array = array[np.newaxis]
    if tuple(array.shape[1:]) != shape:
        raise UserError(
            f"--inputs {path}: holds an array of shape {list(array.shape)}; the model takes "
            f"examples of shape {list(shape)}: give shape [n, {', '.join(map(str, shape))}]"
        )

    def read() -> Iterator[Block]:
        for start in range(0, len(array), size):
            x = np.asarray(array[start : start + size], dtype=np.float32)
            finite = np.isfinite(x.reshape(len(x), -1)).all(axis=1)
            indices = np.arange(start, start + len(x))
            errors = {int(i): "not a finite number" for i in indices[~finite]}
            yield Block(indices[finite].tolist(), x[finite], errors)

    return len(array), read()


def _csv_blocks(path: Path, shape: tuple[int, ...], size: int) -> tuple[int, Iterator[Block]]:
    width = math.prod(shape)

    def lines() -> Iterator[list[str]]:
        """The examples' lines: blank lines and a header (not all numbers) left out."""
        with open(path, newline="", encoding="utf-8", errors="replace") as fh:
            rows = (row for row in csv.reader(fh) if row)
            first = next(rows, None)
            if first is not None and not _is_header(first):
                yield first
            yield from rows

    total = sum(1 for _ in lines())
    first = next(lines(), None)
    if first is not None and len(first) != width:
        raise UserError(
            f"--inputs {path}: its rows have {len(first)} values; the model takes "
            f"{width} (shape {list(shape)}, row-major): drop any label or id column"
        )

    def read() -> Iterator[Block]:
        examples = enumerate(lines())
        while chunk := list(itertools.islice(examples, size)):
            good: list[int] = []
            rows: list[list[float]] = []
            errors: dict[int, str] = {}
            for i, line in chunk:
                values, problem = _numbers(line)
                if not problem and len(values) != width:
                    problem = f"has {len(values)} values; the model takes {width}"
                if problem:
                    errors[i] = problem
                else:
                    good.append(i)
                    rows.append(values)
            x = np.array(rows, dtype=np.float32).reshape(len(rows), *shape)
            yield Block(good, x, errors)

    return total, read()


def _is_header(line: list[str]) -> bool:
    """Whether a first line names columns: some cell of it is not a number at all."""
    try:
        [float(cell) for cell in line]
    except ValueError:
        return True
    return False


def _numbers(line: list[str]) -> tuple[list[float], str]:
    """A CSV line's values, or why it is not numbers (the first bad cell)."""
    values = []
    for column, cell in enumerate(line, 1):
        try:
            value = float(cell)
        except ValueError:
            return [], f"column {column} is {cell.strip()[:40]!r}, not a number"
        if not math.isfinite(value):
            return [], f"column {column} is {cell.strip()}, not a finite number"
        values.append(value)
    return values, ""


def predict_inputs_to_csv(
    model_ref: str,
    inputs: str,
    out: str,
    *,
    batch_size: int | None = None,
    top_k: int = 1,
    progress: Callable[[int, int], None] | None = None,
    access: RunAccess = DEFAULT_ACCESS,
) -> PredictSummary:
    """Predict every example in ``inputs`` into the CSV ``out`` (renamed into place at
    the end), with the run ``model_ref`` loaded through ``access`` (`load_run_model`).
    Raises `UserError` for a missing or malformed file or an unusable ``out``."""
    target = out_path(out, batch_size)
    source = check_inputs(inputs)
    loading = time.perf_counter()
    model, manifest = load_run_model(model_ref, access)
    shape = tuple(manifest.input_shape)
    total, examples = blocks(source, shape, batch_size or auto_batch_size(shape))
    maker = _row_maker(model, manifest, top_k)
    summary = PredictSummary(total, 0, 0, 0.0, str(target), unit="examples")
    start = time.perf_counter()
    summary.load_seconds = start - loading
    rows = (_rows(block, str(inputs), maker) for block in examples)
    written = (counted(batch, summary, maker.k) for batch in rows)
    write_csv(
        target,
        maker.head,
        written,
        progress=lambda n: progress(n, total) if progress else None,
    )
    summary.seconds = time.perf_counter() - start
    return summary


@dataclass
class RowMaker:
    """A run's rows: ``predict(names, x)``, ``failed(name, why)``, columns per row, header."""

    predict: Callable[[list[str], np.ndarray], list[Any]]
    failed: Callable[[str, str], Any]
    k: int
    head: list[str]


def _row_maker(model: Any, manifest: Manifest, top_k: int) -> RowMaker:
    """The rows of the run whose ``manifest`` says what ``model`` gives: class labels and
    confidences (``top_k`` of each), or values."""
    if manifest.class_names:
        from nighttune.tasks.inference.pipeline import BatchPredictor

        shape = tuple(model.input_shape[1:])
        classify = BatchPredictor(
            model,
            manifest.class_names,
            shape,
            top_k=top_k,
            logits=manifest.outputs == "logits",
        )
        return RowMaker(classify.rows, PredictionRow.failed, classify.k, header(classify.k))
    import tensorflow as tf

    n = math.prod(model.output_shape[1:])
    call = tf.function(lambda x: model(x, training=False), reduce_retracing=True)

    def values(names: list[str], x: np.ndarray) -> list[Any]:
        out = np.asarray(call(x)).reshape(len(x), n)
        cells = np.char.mod("%.6g", out).tolist()
        return [ValueRow(name, tuple(row)) for name, row in zip(names, cells, strict=True)]

    return RowMaker(values, ValueRow.failed, n, value_header(n))


def _rows(block: Block, name: str, maker: RowMaker) -> list[Any]:
    """The block's rows in index order: predictions and error rows."""
    names = [f"{name}:{i}" for i in block.indices]
    found = dict(zip(block.indices, maker.predict(names, block.x), strict=True)) if names else {}
    found |= {i: maker.failed(f"{name}:{i}", why) for i, why in block.errors.items()}
    return [found[i] for i in sorted(found)]


def predict_rows_to_csv(
    model_ref: str,
    *,
    images: Sequence[str] | None = None,
    inputs: str | None = None,
    out: str,
    batch_size: int | None = None,
    top_k: int = 1,
    progress: Callable[[int, int], None] | None = None,
    access: RunAccess = DEFAULT_ACCESS,
) -> PredictSummary:
    """`predict_to_csv` over image files and folders, or `predict_inputs_to_csv` over an
    array file: exactly one of ``images`` and ``inputs``; the rest as theirs."""
    if bool(images) == bool(inputs):
        raise UserError("give --images (image files or folders) or --inputs (a .npy or .csv file)")
    if inputs:
        return predict_inputs_to_csv(
            model_ref,
            inputs,
            out,
            batch_size=batch_size,
            top_k=top_k,
            progress=progress,
            access=access,
        )
    return predict_to_csv(
        model_ref,
        images or [],
        out,
        batch_size=batch_size,
        top_k=top_k,
        progress=progress,
        access=access,
    )
