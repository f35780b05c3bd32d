"""Batch prediction over folders of images with an exported run, into one CSV.

The run's manifest gives the input shape and class names; files go through
`tasks.inference.pipeline` and rows (`tasks.inference.rows`) are written as batches
come, so memory stays flat on any number of files, in the sorted order of the files
found. The CSV is written under a temporary name and renamed when complete.
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

from nighttune.tasks.core.errors import UserError
from nighttune.tasks.data.images import find_images, printable
from nighttune.tasks.inference.pipeline import predict_batches
from nighttune.tasks.inference.rows import PredictionRow, header
from nighttune.tasks.runs.manifest import Manifest
from nighttune.tasks.runs.reader import DEFAULT_ACCESS, RunAccess, load_run_model
from nighttune.tasks.storage.files import check_writable_dir, remove_orphans, scratch_path


@dataclass
class PredictSummary:
    """What a prediction run did."""

    files: int
    predicted: int
    errors: int
    seconds: float
    out: str
    unit: str = "files"  # or "examples" (tasks.inference.arrays)
    renamed: int = 0  # names not valid UTF-8, written with \\xNN escapes
    outside: int = 0  # symlinked folders not followed (they lead outside --images)
    load_seconds: float = 0.0  # finding and verifying the run, loading its model (not in per_s)

    @property
    def per_s(self) -> float:
        return self.files / self.seconds if self.seconds else 0.0


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
    *,
    batch_size: int | None = None,
    top_k: int = 1,
    progress: Callable[[int, int], None] | None = None,
    access: RunAccess = DEFAULT_ACCESS,
) -> PredictSummary:
    """Predict every image under ``folders`` into the CSV ``out`` (renamed into place at the end).

    ``access``: where the run ``model_ref`` is loaded from (`load_run_model`);
    ``progress`` is told the rows written and the total. Image names that are not
    regular files (or too large) are error rows, never read; names that are not valid
    UTF-8 are written with ``\\xNN`` escapes (counted in the summary).

    Raises:
        UserError: a missing folder, no images at all, an unusable ``out``, or a model
            that will not load.
    """
    target = out_path(out, batch_size)
    found = find_images(folders)
    loading = time.perf_counter()
    model, manifest = load_run_model(model_ref, access)
    image_shape = _check_image_classifier(model_ref, manifest)
    k = max(1, min(top_k, len(manifest.class_names)))
    batches = (
        predict_batches(
            model,
            manifest.class_names,
            image_shape,
            paths=found.paths,
            batch_size=batch_size or auto_batch_size(image_shape),
            top_k=k,
            logits=manifest.outputs == "logits",
        )
        if found.paths
        else iter([])
    )
    total = len(found.paths) + len(found.rejected)
    summary = PredictSummary(total, 0, 0, 0.0, str(target), outside=len(found.outside))
    start = time.perf_counter()
    summary.load_seconds = start - loading
    rows = _with_rejected(batches, found.rejected)
    written = (counted(batch, summary, k) for batch in rows)
    write_csv(
        target,
        header(k),
        written,
        progress=lambda n: progress(n, total) if progress else None,
    )
    summary.seconds = time.perf_counter() - start
    return summary


def out_path(out: str, batch_size: int | None) -> Path:
    """The CSV to write, checked with the batch size before anything loads."""
    if batch_size is not None and batch_size < 1:
        raise UserError(f"--batch-size must be a positive integer (got {batch_size})")
    target = Path(out).expanduser()
    if target.is_dir():
        raise UserError(f"--out {out} is a folder; give the CSV file to write, e.g. {out}/p.csv")
    check_writable_dir(target.parent, "folder of --out")
    return target


def _check_image_classifier(model_ref: str, manifest: Manifest) -> tuple[int, int, int]:
    """The run's image shape; a run that does not classify images refused in one line."""
    if not manifest.class_names:
        raise UserError(
            f"model {model_ref!r} is a regression (it gives values, not classes); "
            "predicting image folders writes class labels"
        )
    if len(manifest.input_shape) != 3:
        raise UserError(
            f"model {model_ref!r} takes inputs of shape {list(manifest.input_shape)}, not "
            "images (height, width, channels); predicting image folders needs an image model"
        )
    height, width, channels = manifest.input_shape
    return height, width, channels


def write_csv(
    target: Path,
    head: list[str],
    batches: Iterator[list[list[str]]],
    *,
    progress: Callable[[int], None],
) -> None:
    """The CSV under a scratch name, renamed into place once complete; ``progress`` is
    told the rows written so far."""
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(target.parent)  # CSVs of killed runs
    tmp = scratch_path(target.with_name(f".{target.name}"), "tmp")
    written = 0
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(head)
            for cells in batches:
                writer.writerows(cells)
                written += len(cells)
                progress(written)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def counted(rows: Sequence[Any], summary: PredictSummary, k: int) -> list[list[str]]:
    """CSV cells of ``rows`` with printable paths, counted into ``summary``."""
    cells = []
    for row in rows:
        shown = printable(row.path)
        summary.renamed += shown is not row.path
        summary.errors += bool(row.error)
        summary.predicted += not row.error
        cells.append(row._replace(path=shown).cells(k))
    return cells


def _with_rejected(
    batches: Iterator[list[PredictionRow]], rejected: dict[str, str]
) -> Iterator[list[PredictionRow]]:
    """The batches' rows with the rejected files' error rows merged in, in path order."""
    pending = sorted(rejected.items())
    i = 0
    for rows in batches:
        merged: list[PredictionRow] = []
        for row in rows:
            while i < len(pending) and pending[i][0] < row.path:
                merged.append(PredictionRow.failed(*pending[i]))
                i += 1
            merged.append(row)
        yield merged
    if i < len(pending):
        yield [PredictionRow.failed(path, why) for path, why in pending[i:]]
