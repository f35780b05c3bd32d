"""Keras model builders: small MLPs and CNNs for image classification.

Models output logits and are compiled with sparse categorical cross-entropy and an
``accuracy`` metric, so ``fit`` logs ``loss``, ``accuracy``, ``val_loss`` and
``val_accuracy`` — the names early stopping and reports refer to.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from typing import Any

from tasks.core.config import ModelSpec
from tasks.core.settings import use_xla_cpu_flags


def build_model(
    spec: ModelSpec,
    input_shape: tuple[int, int, int],
    num_classes: int,
    learning_rate: float = 1e-3,
    seed: int = 0,
    steps_per_execution: int = 1,
    jit_compile: bool | str = False,
) -> Any:
    """A compiled Keras model for ``spec``; the same seed gives the same initial weights.

    Python's global `random` is left as it was (see `python_random_restored`).
    """
    import keras

    if jit_compile:
        use_xla_cpu_flags()  # before the model's first (XLA) compile

    with python_random_restored():
        keras.utils.set_random_seed(seed)
        inputs = keras.Input(shape=input_shape, name="image")
        x = inputs
        if spec.kind == "cnn":
            for i, filters in enumerate(spec.filters):
                x = keras.layers.Conv2D(
                    filters, 3, padding="same", activation="relu", name=f"conv{i}"
                )(x)
                if min(x.shape[1], x.shape[2]) >= 2:  # tiny inputs (8x8 digits) stop pooling
                    x = keras.layers.MaxPooling2D(2, name=f"pool{i}")(x)
        x = keras.layers.Flatten(name="flatten")(x)
        for i, units in enumerate(spec.hidden_units):
            x = keras.layers.Dense(units, activation="relu", name=f"dense{i}")(x)
            if spec.dropout:
                x = keras.layers.Dropout(spec.dropout, seed=seed + i, name=f"dropout{i}")(x)
        outputs = keras.layers.Dense(num_classes, name="logits")(x)
        model = keras.Model(inputs, outputs, name=f"nighttune_{spec.kind}")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        steps_per_execution=steps_per_execution,
        jit_compile=jit_compile,
    )
    return model


@contextlib.contextmanager
def python_random_restored() -> Iterator[None]:
    """Python's global `random` put back as it was on leaving.

    `keras.utils.set_random_seed` seeds it, and Keras draws unseeded initializers' seeds
    from it, so it must stay seeded while a model is built; but Prefect draws from it
    too (the temporary server's port, retry jitter). Left seeded with 0, every
    `nighttune tune` process picked the same port for its temporary server, and two runs
    at once on one machine shared one server until the first ended and the second failed.
    """
    state = random.getstate()
    try:
        yield
    finally:
        random.setstate(state)
