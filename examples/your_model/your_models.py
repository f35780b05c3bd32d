"""Model builders of a small user project: ``build(input_shape, num_classes, **kwargs)``.

Each returns a `keras.Model`; compiled, its optimizer (with every setting), loss and
metrics are kept and nighttune drives only the learning rate.
"""

import keras

import your_data


@keras.saving.register_keras_serializable(package="your_model")
class ConvBlock(keras.layers.Layer):
    """Conv 3x3 (no bias) -> BatchNormalization -> ReLU -> Dropout: a registered layer,
    so an exported model loads with safe_mode once this module is imported
    (``nighttune predict --code-dir examples/your_model``)."""

    def __init__(self, filters, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.dropout = filters, dropout
        self.conv = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)
        self.norm = keras.layers.BatchNormalization()
        self.drop = keras.layers.Dropout(dropout)

    def build(self, input_shape):
        self.conv.build(input_shape)
        self.norm.build(self.conv.compute_output_shape(input_shape))

    def call(self, x, training=None):
        x = keras.activations.relu(self.norm(self.conv(x), training=training))
        return self.drop(x, training=training)

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "dropout": self.dropout}


def fashion_cnn(input_shape, num_classes, filters=32, dropout=0.25):
    """A Fashion-MNIST-style CNN for any small images; SGD with Nesterov momentum."""
    inputs = keras.Input(input_shape)
    x = ConvBlock(filters, dropout / 2)(inputs)
    x = ConvBlock(filters, dropout / 2)(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = ConvBlock(2 * filters, dropout)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(dropout)(x)
    model = keras.Model(inputs, keras.layers.Dense(num_classes, name="logits")(x))
    model.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def tabular_classifier(input_shape, num_classes, table="breast_cancer", width=32, dropout=0.1):
    """An MLP over raw features (normalized inside the model); AdamW; logs AUC."""
    mean, variance = your_data.feature_stats(table)
    inputs = keras.Input(input_shape)
    x = keras.layers.Normalization(mean=mean, variance=variance)(inputs)
    x = keras.layers.Dense(width, activation="relu")(x)
    x = keras.layers.Dropout(dropout)(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.AdamW(1e-3, weight_decay=1e-4),
        loss="categorical_crossentropy",
        metrics=[keras.metrics.AUC(name="auc"), keras.metrics.CategoricalAccuracy("accuracy")],
    )
    return model


def regressor(input_shape, num_classes, table="diabetes", width=64):
    """A regression MLP (num_classes is None), left uncompiled: nighttune compiles it
    with mean squared error and an ``mae`` metric. Its output layer starts at the
    targets' mean, so training begins from a sensible guess."""
    assert num_classes is None, "a regression: the data builder gives float targets"
    mean, variance = your_data.feature_stats(table)
    target_mean = float(your_data.diabetes()["train"][1].mean())
    inputs = keras.Input(input_shape)
    x = keras.layers.Normalization(mean=mean, variance=variance)(inputs)
    x = keras.layers.Dense(width, activation="relu")(x)
    x = keras.layers.Dense(width // 2, activation="relu")(x)
    start = keras.initializers.Constant(target_mean)
    return keras.Model(inputs, keras.layers.Dense(1, bias_initializer=start)(x))
