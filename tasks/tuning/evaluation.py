"""Evaluating a trained model on a cached split: its compiled metrics (the trials, the
champion gate) and its predicted classes (the winner's confusion matrix)."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from nighttune.tasks.data.datasets import CachedDataset

EVAL_BATCH = 1024  # examples in an evaluation batch at most


class _NoRetracingNote(logging.Filter):
    """Every model evaluated in a run (each patience's weights, the champion) compiles
    its own test function; TensorFlow counts them as retracings of one function and
    warns after five. Nothing is traced twice for one model: the note is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


logging.getLogger("tensorflow").addFilter(_NoRetracingNote())


def eval_batch(cached: CachedDataset, budget: int | None) -> int:
    """Examples in one evaluation batch: `EVAL_BATCH`, or fewer where that batch of the
    model's float32 inputs would take more than an eighth of the memory ``budget`` (bytes;
    None: no limit). A pass over a split holds a few batches at a time (the one being
    evaluated, its stored form, the next one read ahead), so at most about half the budget
    whatever the split's size: 1024 images of 128x128 RGB would be 200 MB a batch."""
    if budget is None:
        return EVAL_BATCH
    example_bytes = 4 * math.prod(cached.input_shape)
    return max(1, min(EVAL_BATCH, budget // 8 // example_bytes))


def _read_once(cached: CachedDataset, split: str, budget: int | None) -> Any:
    """One pass over ``split`` in evaluation batches, read from disk, not held."""
    return cached.batches(split, eval_batch(cached, budget), budget=0)


def evaluate_split(
    model: Any, cached: CachedDataset, split: str, *, budget: int | None = None
) -> dict[str, float]:
    """The model's loss and compiled metrics on every example of ``split``, by name,
    in batches of `eval_batch` under the memory ``budget`` (bytes)."""
    batches = _read_once(cached, split, budget)
    result = model.evaluate(batches, verbose=0, return_dict=True)
    return {name: float(value) for name, value in result.items()}


def predict_split(
    model: Any, cached: CachedDataset, split: str, *, budget: int | None = None
) -> tuple[Any, Any]:
    """``(labels, predicted classes)`` of every example of ``split``, as NumPy arrays."""
    labels, predicted = [], []
    for images, batch_labels in _read_once(cached, split, budget):
        predicted.append(np.argmax(model.predict(images, verbose=0), axis=1))
        batch = batch_labels.numpy()
        labels.append(np.argmax(batch, axis=1) if batch.ndim == 2 else batch)  # one-hot rows
    return np.concatenate(labels), np.concatenate(predicted)


def flat_metrics(metrics: list[Any]) -> list[Any]:
    """Every metric object of a compiled model, the ones Keras nests included."""
    found = []
    for metric in metrics:
        found.append(metric)
        inner = getattr(metric, "metrics", None)
        if inner and inner is not metrics:
            found.extend(flat_metrics(list(inner)))
    return found


def _outputs(
    model: Any, cached: CachedDataset, split: str, *, budget: int | None
) -> Iterator[tuple[Any, Any]]:
    """``(labels, outputs)`` of each batch of ``split`` as NumPy arrays (one pass over
    the split, not held)."""
    for images, labels in _read_once(cached, split, budget):
        yield labels.numpy(), np.asarray(model(images, training=False))


def _per_example_fn(model: Any, name: str) -> Any:
    """A function ``(labels, outputs) -> one value per example`` whose mean is the
    logged ``name``, or None: the loss (one function, not a dict of them), or a metric
    that is a mean over examples (accuracy, top-k, MAE: Keras's `MeanMetricWrapper`).
    AUC, precision, F1 are not means over examples: None."""
    import keras

    if name == "loss":
        loss = keras.losses.get(model.loss) if isinstance(model.loss, str) else model.loss
        if isinstance(loss, keras.losses.Loss):
            return loss.call  # unreduced: one value per example
        return loss if callable(loss) else None
    for metric in flat_metrics(list(model.metrics)):
        if metric.name == name and isinstance(metric, keras.metrics.MeanMetricWrapper):
            fn = metric._fn
            kwargs = getattr(metric, "_fn_kwargs", {})
            return lambda labels, outputs: fn(labels, outputs, **kwargs)
    return None


def per_example_values(
    model: Any,
    cached: CachedDataset,
    split: str,
    *,
    name: str,
    logged: float,
    budget: int | None = None,
) -> np.ndarray | None:
    """Each example's value of ``name`` on ``split`` (1/0 for accuracy, each example's
    loss), as float32: what the paired test between cells and the bootstrap interval
    read. None where ``name`` is not a mean over examples, or the values' mean does not
    reproduce ``logged`` (what `evaluate_split` measured): then no value is better than
    a wrong one."""
    fn = _per_example_fn(model, name)
    if fn is None:
        return None
    parts = []
    for labels, outputs in _outputs(model, cached, split, budget=budget):
        values = np.asarray(fn(labels, outputs), dtype=np.float64)
        parts.append(values.reshape(len(values), -1).mean(axis=1))
    values = np.concatenate(parts)
    if name == "loss" and model.losses:  # weight penalties count in the logged loss
        values += float(sum(np.asarray(penalty) for penalty in model.losses))
    if not np.isclose(values.mean(), logged, rtol=1e-3, atol=1e-4):
        return None
    return values.astype(np.float32)


# Resamples of a bootstrap that recomputes a Keras metric: each one is an eager
# update_state (AUC on 6,000 examples: 7 ms), so 200, not the 2,000 of a mean's.
METRIC_RESAMPLES = 200


def metric_interval(
    model: Any,
    cached: CachedDataset,
    split: str,
    *,
    name: str,
    seed: int = 0,
    budget: int | None = None,
) -> tuple[float, float] | None:
    """95% percentile-bootstrap interval of a compiled metric that is not a mean over
    examples (AUC, precision, F1): a fresh copy of the metric recomputed on resampled
    examples of ``split``. None when the model has no such metric."""
    import keras

    found = [m for m in flat_metrics(list(model.metrics)) if m.name == name]
    if not found or not isinstance(found[0], keras.metrics.Metric):
        return None
    metric = type(found[0]).from_config(found[0].get_config())
    batches = list(_outputs(model, cached, split, budget=budget))  # outputs only: no inputs kept
    y = np.concatenate([labels for labels, _ in batches])
    p = np.concatenate([outputs for _, outputs in batches])
    rng = np.random.default_rng(seed)
    results = []
    for _ in range(METRIC_RESAMPLES):
        picks = rng.integers(0, len(y), len(y))
        metric.reset_state()
        metric.update_state(y[picks], p[picks])
        results.append(float(np.mean(np.asarray(metric.result()))))
    low, high = np.percentile(results, [2.5, 97.5])
    return float(low), float(high)
