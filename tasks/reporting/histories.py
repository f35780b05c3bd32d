"""Each trial's epoch logs: read back from the store, and written as TensorBoard scalars."""

from __future__ import annotations

import json
from pathlib import Path

from nighttune.tasks.core.records import TrialResult


def trial_histories(rows: list[TrialResult]) -> dict[int, list[dict[str, float]]]:
    """Per batch size, the epoch logs of its fit, read from where it is kept: a fit the
    hurdle or a time budget stopped before any patience did too."""
    histories: dict[int, list[dict[str, float]]] = {}
    for row in rows:
        folder = row.fit_path or (str(Path(row.model_path).parent) if row.model_path else None)
        if folder and row.batch_size not in histories:
            meta = Path(folder) / "meta.json"
            try:
                history = json.loads(meta.read_text())["data"].get("history")
            except (OSError, ValueError, KeyError):
                history = None
            if history:
                histories[row.batch_size] = history
    return histories


def write_tensorboard(out: Path, histories: dict[int, list[dict[str, float]]]) -> None:
    """Per trial, its epoch metrics as TensorBoard scalars (``b<batch>/train|validation``)."""
    import tensorflow as tf

    for batch_size, history in histories.items():
        for split, prefix in (("train", ""), ("validation", "val_")):
            writer = tf.summary.create_file_writer(str(out / f"b{batch_size}" / split))
            with writer.as_default():
                for epoch, logs in enumerate(history, 1):
                    for name, value in logs.items():
                        if name.startswith("val_") == bool(prefix):
                            tf.summary.scalar(name.removeprefix("val_"), value, step=epoch)
            writer.close()
