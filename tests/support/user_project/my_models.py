"""A user's project as the tests see it: builders nighttune imports by name."""

import keras


@keras.saving.register_keras_serializable(package="my_models")
class Scale(keras.layers.Layer):
    """A custom layer: it must survive export and load with safe_mode once imported."""

    def __init__(self, factor: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return x * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def build(input_shape, num_classes, width=32):
    """Compiled by the user: SGD with momentum and clipnorm, from logits."""
    inputs = keras.Input(input_shape)
    x = Scale(1.0)(keras.layers.Flatten()(inputs))
    x = keras.layers.Dense(width, activation="relu")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Dropout(0.1)(x)
    model = keras.Model(inputs, keras.layers.Dense(num_classes)(x))
    model.compile(
        optimizer=keras.optimizers.SGD(0.5, momentum=0.9, clipnorm=1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def build_uncompiled(input_shape, num_classes):
    inputs = keras.Input(input_shape)
    hidden = keras.layers.Dense(16, activation="relu")(keras.layers.Flatten()(inputs))
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(hidden))


def build_with_schedule(input_shape, num_classes):
    model = build_uncompiled(input_shape, num_classes)
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy")
    return model


def build_raises(input_shape, num_classes):
    raise ValueError("width must be even")


def build_not_a_model(input_shape, num_classes):
    return "a model, honestly"


def build_one_hot(input_shape, num_classes, width=16):
    """For one-hot labels: compiled with categorical cross-entropy and Adam(amsgrad)."""
    inputs = keras.Input(input_shape)
    hidden = keras.layers.Dense(width, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(hidden))
    model.compile(
        optimizer=keras.optimizers.Adam(0.1, amsgrad=True),
        loss="categorical_crossentropy",
        metrics=[keras.metrics.CategoricalAccuracy(name="acc")],
    )
    return model


def build_regressor(input_shape, num_classes):
    """Uncompiled, one output: nighttune compiles it with MSE and an `mae` metric."""
    assert num_classes is None
    inputs = keras.Input(input_shape)
    hidden = keras.layers.Dense(16, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(1)(hidden))


class CountingModel(keras.Model):
    """A model with its own train_step (it counts the steps it ran)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.steps_run = keras.Variable(0, dtype="int64", trainable=False)

    def train_step(self, data):
        self.steps_run.assign_add(1)
        return super().train_step(data)


def build_counting(input_shape, num_classes):
    inputs = keras.Input(input_shape)
    hidden = keras.layers.Dense(16, activation="relu")(keras.layers.Flatten()(inputs))
    model = CountingModel(inputs, keras.layers.Dense(num_classes)(hidden))
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model
