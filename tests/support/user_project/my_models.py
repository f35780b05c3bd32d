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


@keras.saving.register_keras_serializable(package="my_models")
class NumpyDouble(keras.layers.Layer):
    """Doubles its input in NumPy (tf.numpy_function): XLA cannot compile it."""

    def call(self, x):
        import tensorflow as tf

        @tf.custom_gradient
        def double(x):
            doubled = tf.numpy_function(lambda a: a * 2, [x], tf.float32, stateful=False)
            return tf.ensure_shape(doubled, x.shape), lambda upstream: 2 * upstream

        return double(x)


def build_numpy_op(input_shape, num_classes):
    inputs = keras.Input(input_shape)
    hidden = keras.layers.Dense(16, activation="relu")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, keras.layers.Dense(num_classes)(NumpyDouble()(hidden)))
    model.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


class OwnLossModel(keras.Model):
    """Compiled with an optimizer only: its train_step and test_step compute the loss
    and the metrics themselves (Keras's "customizing what happens in fit" pattern)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy]

    def _update(self, y, logits):
        loss = self.loss_fn(y, logits)
        self.loss_tracker.update_state(loss)
        self.accuracy.update_state(y, logits)
        return loss

    def train_step(self, data):
        import tensorflow as tf

        x, y = data
        with tf.GradientTape() as tape:
            loss = self._update(y, self(x, training=True))
        gradients = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        x, y = data
        self._update(y, self(x, training=False))
        return {m.name: m.result() for m in self.metrics}


def build_own_loss(input_shape, num_classes):
    inputs = keras.Input(input_shape)
    hidden = keras.layers.Dense(32, activation="relu")(keras.layers.Flatten()(inputs))
    model = OwnLossModel(inputs, keras.layers.Dense(num_classes)(hidden))
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    return model
