"""A trial's epoch as one compiled call: `fit` hands over the split and a permutation.

Keras's `fit` pays per batch (iterator, step dispatch; ~1 ms on a small MLP) and per
epoch (a new input iterator, ~10-20 ms). For the small models a nightly grid trains,
that is most of an epoch. Here the train split is held in memory once; every epoch
`epoch_inputs` yields ``(x, y, permutation)`` and the step that `fuse_epochs` installs
loops over the permutation's batches inside one XLA-compiled `tf.while_loop`,
gathering each batch there and running the model's own per-batch `train_step`
(same loss, optimizer, metrics). `fit` still drives the epochs, so callbacks,
validation and the history are unchanged; call it with ``steps_per_epoch=1``.

Every epoch trains on ``n // batch_size`` full batches of a fresh seeded permutation:
the fewer than ``batch_size`` examples left over differ from epoch to epoch (one
compiled shape, no second compile for a ragged last batch). Measured in
`bench/epoch.py` and README "Performance".

`batch_inputs` is the same sequence of batches for plain ``fit`` (``steps_per_epoch=
n // batch_size``): the path a trial falls back to when a model cannot run in the fused
loop (`tasks.tuning.training`). The same seed gives the same batches, in the same
order, on both paths.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _as_is(x: Any) -> Any:
    return x


def epoch_inputs(x: Any, y: Any, seed: int) -> Any:
    """Endless `tf.data.Dataset`: ``(x, y, permutation of len(x))``, reshuffled each epoch.

    The permutations are seeded: the same ``seed`` gives the same sequence.
    """
    import tensorflow as tf

    n = int(x.shape[0])
    x, y = tf.convert_to_tensor(x), tf.convert_to_tensor(y)
    return _orders(n, seed).map(lambda order: (x, y, order)).prefetch(1)


def batch_inputs(
    x: Any, y: Any, batch_size: int, *, seed: int, to_model: Callable[[Any], Any] = _as_is
) -> Any:
    """Endless `tf.data.Dataset` of ``(to_model(x), y)`` batches: each epoch's
    `examples_per_epoch` rows in the order `epoch_inputs` gives the fused loop for the
    same ``seed``."""
    import tensorflow as tf

    n = int(x.shape[0])
    size = min(batch_size, n)
    x, y = tf.convert_to_tensor(x), tf.convert_to_tensor(y)

    def batches(order: Any) -> Any:
        rows = tf.reshape(order[: n // size * size], [n // size, size])
        return tf.data.Dataset.from_tensor_slices(rows)

    return (
        _orders(n, seed)
        .flat_map(batches)
        .map(lambda rows: (to_model(tf.gather(x, rows)), tf.gather(y, rows)))
        .prefetch(tf.data.AUTOTUNE)
    )


def _orders(n: int, seed: int) -> Any:
    """Endless seeded permutations of ``range(n)``, one per epoch."""
    import tensorflow as tf

    def order(draw: Any) -> Any:
        key = tf.stack([tf.constant(seed, tf.int64), draw])
        return tf.random.experimental.stateless_shuffle(tf.range(n), seed=key)

    return tf.data.Dataset.random(seed=seed).map(order)


def examples_per_epoch(n: int, batch_size: int) -> int:
    """How many of ``n`` examples an epoch trains on: its full batches (at least one)."""
    size = min(batch_size, n)
    return n // size * size


def batches_per_epoch(n: int, batch_size: int) -> int:
    """How many optimizer steps an epoch of ``n`` examples takes: its full batches."""
    return examples_per_epoch(n, batch_size) // min(batch_size, n)


def fuse_epochs(model: Any, batch_size: int, to_model: Callable[[Any], Any] = _as_is) -> Any:
    """Make ``model.fit`` take `epoch_inputs` elements: one call trains a whole epoch.

    ``batch_size`` is capped at the number of examples, so a split smaller than one
    batch still trains. ``to_model`` converts each gathered batch of inputs as held
    (uint8 images: `tasks.data.cached.CachedDataset.to_model`) to what the model takes,
    inside the compiled loop, so the split is held at its stored size. Returns ``model``;
    its saved form is unchanged (the step is set on this instance only, not on its class).
    """
    import tensorflow as tf

    batch_step = type(model).train_step.__get__(model)

    def epoch_step(data: tuple[Any, Any, Any]) -> Any:
        x, y, order = data
        if order.shape[0] is not None:  # the whole split: its size is known
            size = min(batch_size, int(order.shape[0]))
            batches: Any = int(order.shape[0]) // size  # full batches only: `examples_per_epoch`
        else:  # a window of a split streamed from disk (`CachedDataset.windows`)
            size, batches = batch_size, tf.shape(order)[0] // batch_size

        def one_batch(i: Any) -> Any:
            rows = tf.slice(order, [i * size], [size])
            logs = batch_step((to_model(tf.gather(x, rows)), tf.gather(y, rows)))
            with tf.control_dependencies(tf.nest.flatten(logs)):
                return i + 1

        tf.while_loop(lambda i: i < batches, one_batch, [tf.constant(0)])
        return model.get_metrics_result()

    model.train_step = epoch_step
    model.train_function = None  # rebuilt from the new step on the next fit
    return model
