"""Evaluating a trained model on a cached split (the winner's confusion matrix)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tasks.data.datasets import CachedDataset

EVAL_BATCH = 1024


def predict_split(model: Any, cached: CachedDataset, split: str) -> tuple[Any, Any]:
    """``(labels, predicted classes)`` of every example of ``split``, as NumPy arrays."""
    labels, predicted = [], []
    for images, batch_labels in cached.batches(split, EVAL_BATCH, budget=0):  # one pass, not held
        predicted.append(np.argmax(model.predict(images, verbose=0), axis=1))
        batch = batch_labels.numpy()
        labels.append(np.argmax(batch, axis=1) if batch.ndim == 2 else batch)  # one-hot rows
    return np.concatenate(labels), np.concatenate(predicted)
