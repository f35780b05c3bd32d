"""Evaluating a trained model on a cached split: its compiled metrics (the trials, the
champion gate) and its predicted classes (the winner's confusion matrix)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from tasks.data.datasets import CachedDataset

EVAL_BATCH = 1024


class _NoRetracingNote(logging.Filter):
    """Every model evaluated in a run (each patience's weights, the champion) compiles
    its own test function; TensorFlow counts them as retracings of one function and
    warns after five. Nothing is traced twice for one model: the note is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


logging.getLogger("tensorflow").addFilter(_NoRetracingNote())


def evaluate_split(model: Any, cached: CachedDataset, split: str) -> dict[str, float]:
    """The model's loss and compiled metrics on every example of ``split``, by name."""
    batches = cached.batches(split, EVAL_BATCH, budget=0)  # one pass: read, not held
    result = model.evaluate(batches, verbose=0, return_dict=True)
    return {name: float(value) for name, value in result.items()}


def predict_split(model: Any, cached: CachedDataset, split: str) -> tuple[Any, Any]:
    """``(labels, predicted classes)`` of every example of ``split``, as NumPy arrays."""
    labels, predicted = [], []
    for images, batch_labels in cached.batches(split, EVAL_BATCH, budget=0):  # one pass, not held
        predicted.append(np.argmax(model.predict(images, verbose=0), axis=1))
        batch = batch_labels.numpy()
        labels.append(np.argmax(batch, axis=1) if batch.ndim == 2 else batch)  # one-hot rows
    return np.concatenate(labels), np.concatenate(predicted)
