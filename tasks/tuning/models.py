"""The model a sweep or trial trains: a built-in MLP / CNN, or the user's own builder.

Built-in models output logits and are compiled with sparse categorical cross-entropy
and an ``accuracy`` metric, so ``fit`` logs ``loss``, ``accuracy``, ``val_loss`` and
``val_accuracy``. A user's builder (``model.builder``) returns a `keras.Model`: when
it comes back compiled, its loss, metrics and optimizer (class and every setting) are
kept and only the learning rate is set; uncompiled, it is compiled as the built-ins
are (from logits unless its last layer is a softmax).
"""

from __future__ import annotations

import contextlib
import random
import warnings
from collections.abc import Iterator
from typing import Any

from nighttune.tasks.core.code import call_builder, code_version, load_builder
from nighttune.tasks.core.config import ModelSpec
from nighttune.tasks.core.errors import BuilderError
from nighttune.tasks.core.settings import use_xla_cpu_flags

# Keras turns XLA off, with this warning, for a model with a layer that does not support
# it (or with op determinism on); a trial's log line says which way it trains instead.
warnings.filterwarnings("ignore", message="Model doesn't support `jit_compile=True`")

DEFAULT_LR = 1e-3  # Adam's default: a model nobody gave a rate


def build_model(
    spec: ModelSpec,
    input_shape: tuple[int, ...],
    num_classes: int | None,
    *,
    learning_rate: Any = None,
    seed: int = 0,
    steps_per_execution: int = 1,
    jit_compile: bool | str = False,
) -> Any:
    """A compiled Keras model for ``spec``; the same seed gives the same initial weights.
    ``learning_rate``: a number, or a Keras `LearningRateSchedule`
    (`tasks.tuning.schedules`); None keeps the rate a user's builder compiled with
    (Adam's default 1e-3 for the rest).

    Python's global `random` is left as it was, and other threads drawing from it
    cannot change the weights (see `seeded_build`).
    """
    import keras

    if jit_compile:
        use_xla_cpu_flags()  # before the model's first (XLA) compile

    with seeded_build(seed):
        if spec.builder:
            return _user_model(
                spec,
                input_shape,
                num_classes,
                learning_rate=learning_rate,
                jit_compile=jit_compile,
            )
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
        outputs = keras.layers.Dense(num_classes or 1, name="logits" if num_classes else "value")(x)
        model = keras.Model(inputs, outputs, name=f"nighttune_{spec.kind}")
    model.compile(
        optimizer=keras.optimizers.Adam(DEFAULT_LR if learning_rate is None else learning_rate),
        **_loss_and_metrics(num_classes, logits=True),
        steps_per_execution=steps_per_execution,
        jit_compile=jit_compile,
    )
    return model


def _loss_and_metrics(num_classes: int | None, logits: bool) -> dict[str, Any]:
    """Classes: sparse cross-entropy and ``accuracy``; a regression: MSE and ``mae``."""
    import keras

    if num_classes is None:
        return {"loss": "mean_squared_error", "metrics": [keras.metrics.MeanAbsoluteError("mae")]}
    return {
        "loss": keras.losses.SparseCategoricalCrossentropy(from_logits=logits),
        "metrics": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    }


def _user_model(
    spec: ModelSpec,
    input_shape: tuple[int, ...],
    num_classes: int | None,
    *,
    learning_rate: Any,
    jit_compile: bool | str,
) -> Any:
    """The builder's model, compiled (kept, or as the built-ins), at ``learning_rate``."""
    import keras

    assert spec.builder is not None
    function = load_builder(spec.builder, spec.code_path)
    model = call_builder(spec.builder, function, tuple(input_shape), num_classes, **spec.kwargs)
    if not isinstance(model, keras.Model):
        raise BuilderError(
            f"builder {spec.builder!r} returned {type(model).__name__}, not a keras.Model"
        )
    if getattr(model, "optimizer", None) is None or not model.compiled:
        model.compile(
            optimizer=keras.optimizers.Adam(DEFAULT_LR if learning_rate is None else learning_rate),
            **_loss_and_metrics(num_classes, logits=outputs_kind(model) == "logits"),
            jit_compile=jit_compile,
        )
        return model
    refuse_own_schedule(model, spec.builder)
    if learning_rate is not None:
        model.optimizer.learning_rate = learning_rate
    model.jit_compile = jit_compile  # Keras turns it off for models that cannot
    return model


def model_key(spec: ModelSpec) -> dict[str, Any]:
    """What a stored sweep or trial of ``spec`` depends on: the spec without where its
    code was found, and for a builder the sha256 of its module (a changed builder is
    trained again)."""
    key = spec.model_dump(mode="json", exclude={"code_path"})
    if spec.builder:
        load_builder(spec.builder, spec.code_path)
        key["code"] = code_version(spec.builder)
    return key


def refuse_own_schedule(model: Any, label: str) -> None:
    """One line when the optimizer a user's builder compiled takes its rate from the
    user's own schedule.

    A user's `LearningRateSchedule` is refused rather than scaled to the range test's
    peak: its shape counts steps for the user's batch size and epochs, not the trial's,
    so scaled it would anneal at the wrong step; ``lr_schedule`` gives the shapes."""
    import keras

    schedule = keras.optimizers.schedules.LearningRateSchedule
    if isinstance(getattr(model.optimizer, "_learning_rate", None), schedule):
        raise BuilderError(
            f"builder {label!r}: the model's optimizer takes its learning rate from a "
            "schedule; nighttune drives the learning rate (lr_schedule: constant, cosine or "
            "one_cycle, the range test's LR its peak): compile with a number"
        )


@contextlib.contextmanager
def seeded_build(seed: int) -> Iterator[None]:
    """Keras, NumPy and TensorFlow seeded with ``seed`` while a model is built; Python's
    global `random` put back as it was on leaving.

    Keras gives every unseeded initializer a seed drawn from Python's global `random`
    when the layer is made. Other threads draw from it too: Prefect's services (retry
    jitter, the temporary server's port) run beside the build in a flow run, and one
    draw between seeding and a layer changed a model's weights (seen in CI, 1 run in
    many). So the draws Keras makes come from a generator of our own, seeded alike,
    which no other thread can reach; the global one is seeded as
    `keras.utils.set_random_seed` does (a user's builder may draw from it) and then
    restored: left seeded with 0, every `nighttune tune` process picked the same port for
    its temporary server, and two runs at once on one machine shared one server until
    the first ended and the second failed.
    """
    import keras
    from keras.src.random import seed_generator

    state = random.getstate()
    shared = seed_generator.python_random
    seed_generator.python_random = random.Random(seed)
    try:
        keras.utils.set_random_seed(seed)
        yield
    finally:
        seed_generator.python_random = shared
        random.setstate(state)


def outputs_kind(model: Any) -> str:
    """``probabilities`` when the model ends in a softmax, else ``logits``."""
    import keras

    last = getattr(model.layers[-1], "activation", None) if model.layers else None
    return "probabilities" if last is keras.activations.softmax else "logits"
